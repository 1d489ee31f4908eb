package restapi_test

import (
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"testing"
	"time"

	"chatd/account"
	"chatd/restapi"
)

const noSession = `{"errors":{"base":["Required session does not exist"]}}`

// Signatures computed outside Go with
//
//	printf '%s' "$s" | openssl dgst -sha1 -hmac fixedSecretY
//	printf '%s' "$s" | openssl dgst -sha256 -hmac fixedSecretY
//
// over the strings below (values not escaped: bob's password holds a space,
// "&", "=" and "+").
var vectors = []struct {
	login, password string
	nonce           int64
	signed          string
	sha1, sha256    string
}{
	{"alice", "secret-pass", 8423,
		"application_id=1&auth_key=authKeyX&nonce=8423&timestamp=1795305916&user[login]=alice&user[password]=secret-pass",
		"2352cc744f5f4cf26907b3a22451dbcb89570b74", "c47646f013dc275f5e82f19983e04d37f419cf870a9879fc00a629ac5020a812"},
	{"alice", "secret-pass", 8424,
		"application_id=1&auth_key=authKeyX&nonce=8424&timestamp=1795305916&user[login]=alice&user[password]=secret-pass",
		"93400637d619e859a9e60ddd530ec24200cdccc5", "53a3bc664affa9ce73e30b844c4f3857eb45c4b4477a51af20a0a4af50cc2ff9"},
	{"bob", "p@ss w&rd=1+2", 99,
		"application_id=1&auth_key=authKeyX&nonce=99&timestamp=1795305916&user[login]=bob&user[password]=p@ss w&rd=1+2",
		"b5b984483982e237817a11aca9d3949a3926cda8", "e02054a3d9cc038d400b6f8876651b564be7b471cfd0919661e627fd14711cbc"},
}

// The test-side signer agrees with openssl.
func TestSignerMatchesOpenSSL(t *testing.T) {
	for _, v := range vectors {
		data := map[string]any{"application_id": 1, "auth_key": appKey, "nonce": v.nonce, "timestamp": t0Unix,
			"user": map[string]string{"login": v.login, "password": v.password}}
		if got := signSDK(sha1.New, appSecret, data); got != v.sha1 {
			t.Errorf("SHA-1 of %q = %s, want %s", v.signed, got, v.sha1)
		}
		if got := signSDK(sha256.New, appSecret, data); got != v.sha256 {
			t.Errorf("SHA-256 of %q = %s, want %s", v.signed, got, v.sha256)
		}
	}
}

// The hard-coded vectors open sessions, sent byte for byte as the SDK
// would send them (in another order, values escaped), each under SHA-1 and
// SHA-256.
func TestSessionFixedVectors(t *testing.T) {
	for i, v := range vectors {
		for _, sig := range []string{v.sha1, v.sha256} {
			t.Run(fmt.Sprintf("%d-%d", i, len(sig)*4), func(t *testing.T) {
				e := newEnv(t, restapi.Config{})
				if e.app.ID != 1 {
					t.Fatalf("test app id %d, the vectors sign application_id=1", e.app.ID)
				}
				u := e.mkUser(v.login, v.password, nil)
				e.keep(sig)
				body := "user[password]=" + encodeURIComponent(v.password) + "&signature=" + sig +
					"&timestamp=1795305916&nonce=" + itoa(v.nonce) + "&auth_key=authKeyX&application_id=1&user[login]=" + v.login
				req := e.newRequest(http.MethodPost, "/session.json", body)
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
				res := e.request(req)
				res.want(t, http.StatusCreated, "")
				s := res.obj(t)["session"].(map[string]any)
				e.keep(s["token"].(string))
				if got := num(t, s["user_id"]); got != u.ID {
					t.Errorf("user_id %d, want %d", got, u.ID)
				}
			})
		}
	}
}

var expirationFormat = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$`)

func TestAppSession(t *testing.T) {
	e := newEnv(t, restapi.Config{})
	data := e.sessionData(nil)
	res := e.postSession(data)
	res.want(t, http.StatusCreated, "")
	exp := res.header.Get("QB-Token-ExpirationDate")
	if !expirationFormat.MatchString(exp) || exp != "2026-11-22 02:05:16 UTC" {
		t.Errorf("QB-Token-ExpirationDate %q, want the clock + 2 h as YYYY-MM-DD HH:MM:SS UTC", exp)
	}
	s := res.obj(t)["session"].(map[string]any)
	var keys []string
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := []string{"_id", "application_id", "created_at", "device_id", "id", "nonce", "token", "ts", "updated_at", "user_id"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("session keys %v, want %v", keys, want)
	}
	if num(t, s["application_id"]) != e.app.ID || num(t, s["user_id"]) != 0 || num(t, s["device_id"]) != 0 ||
		num(t, s["nonce"]) != data["nonce"].(int64) || num(t, s["ts"]) != t0Unix || num(t, s["id"]) <= 0 {
		t.Errorf("session %v", s)
	}
	if s["created_at"] != "2026-11-22T00:05:16Z" || s["updated_at"] != "2026-11-22T00:05:16Z" {
		t.Errorf("session times %v %v", s["created_at"], s["updated_at"])
	}
	if id, _ := s["_id"].(string); !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(id) {
		t.Errorf("_id %q is not an ObjectId", id)
	}
	token := e.keep(s["token"].(string))

	// GET /session.json gives the same session; the sliding expiry moves.
	e.clock.Advance(10 * time.Minute)
	res = e.call(http.MethodGet, "/session.json", token)
	res.want(t, http.StatusOK, "")
	got := res.obj(t)["session"].(map[string]any)
	if got["token"] != token || num(t, got["id"]) != num(t, s["id"]) {
		t.Errorf("GET session %v, want %v", got, s)
	}
	if exp := res.header.Get("QB-Token-ExpirationDate"); exp != "2026-11-22 02:15:16 UTC" {
		t.Errorf("expiry after 10 min %q, want 2026-11-22 02:15:16 UTC", exp)
	}

	// DELETE /session.json: 200, empty body; the token is dead.
	res = e.call(http.MethodDelete, "/session.json", token)
	res.want(t, http.StatusOK, "")
	if len(res.body) != 0 {
		t.Errorf("DELETE /session.json body %q, want empty", res.body)
	}
	e.call(http.MethodGet, "/session.json", token).want(t, http.StatusUnauthorized, noSession)
}

func TestUserSession(t *testing.T) {
	e := newEnv(t, restapi.Config{})
	u := e.mkUser("carol", "carol-pass", func(in *account.UserInput) { in.Email = ptr("Carol@Example.com") })
	token, id := e.userSession("carol", "carol-pass")
	if id != u.ID {
		t.Fatalf("user_id %d, want %d", id, u.ID)
	}
	res := e.call(http.MethodGet, "/session.json", token)
	res.want(t, http.StatusOK, "")
	if num(t, res.obj(t)["session"].(map[string]any)["user_id"]) != u.ID {
		t.Errorf("GET session %s", res.body)
	}
	// By email, case-insensitively, with the SHA-256 signature.
	data := e.sessionData(map[string]string{"email": "carol@example.COM", "password": "carol-pass"})
	sig := e.keep(signSDK(sha256.New, appSecret, data))
	res = e.call(http.MethodPost, "/session.json", "", sessionForm(data, sig)...)
	res.want(t, http.StatusCreated, "")
	s := res.obj(t)["session"].(map[string]any)
	e.keep(s["token"].(string))
	if num(t, s["user_id"]) != u.ID {
		t.Errorf("session by email: %s", res.body)
	}
	if n := e.sessionsOf(u.ID); n != 2 {
		t.Errorf("%d sessions stored, want 2", n)
	}
}

func TestSessionRejected(t *testing.T) {
	e := newEnv(t, restapi.Config{})
	u := e.mkUser("dave", "dave-pass1", nil)
	badSig := `{"errors":{"base":["Unexpected signature"]}}`

	// A wrong signature: 422, and no session is created.
	data := e.sessionData(map[string]string{"login": "dave", "password": "dave-pass1"})
	e.call(http.MethodPost, "/session.json", "", sessionForm(data, signSDK(sha1.New, "not-the-secret", data))...).
		want(t, http.StatusUnprocessableEntity, badSig)
	// A signature that does not cover every parameter sent.
	data = e.sessionData(map[string]string{"login": "dave", "password": "dave-pass1"})
	kv := append(sessionForm(data, signSDK(sha1.New, appSecret, data)), "extra", "1")
	e.call(http.MethodPost, "/session.json", "", kv...).want(t, http.StatusUnprocessableEntity, badSig)
	// Signed over the escaped value instead of the value.
	data = e.sessionData(map[string]string{"login": "dave", "password": "dave pass"})
	escaped := map[string]any{}
	for k, v := range data {
		escaped[k] = v
	}
	escaped["user"] = map[string]string{"login": "dave", "password": "dave%20pass"}
	e.call(http.MethodPost, "/session.json", "", sessionForm(data, signSDK(sha1.New, appSecret, escaped))...).
		want(t, http.StatusUnprocessableEntity, badSig)
	// A wrong auth_key, correctly signed.
	data = e.sessionData(nil)
	data["auth_key"] = "other"
	e.call(http.MethodPost, "/session.json", "", sessionForm(data, signSDK(sha1.New, appSecret, data))...).
		want(t, http.StatusUnprocessableEntity, badSig)
	// An unknown application.
	data = e.sessionData(nil)
	data["application_id"] = 99
	e.call(http.MethodPost, "/session.json", "", sessionForm(data, signSDK(sha1.New, appSecret, data))...).
		want(t, http.StatusUnprocessableEntity, badSig)
	if n := e.sessionsOf(u.ID); n != 0 {
		t.Fatalf("%d sessions after bad signatures, want 0", n)
	}

	// A stale timestamp, then one from the future.
	for _, skew := range []time.Duration{-2 * time.Hour, 2 * time.Hour} {
		data = e.sessionData(map[string]string{"login": "dave", "password": "dave-pass1"})
		data["timestamp"] = e.clock.Now().Add(skew).Unix()
		res := e.postSession(data)
		res.want(t, http.StatusUnprocessableEntity, `{"errors":{"timestamp":["is too far from the server's clock"]}}`)
	}

	// The same nonce and timestamp twice: the second is refused and only
	// one session exists.
	data = e.sessionData(map[string]string{"login": "dave", "password": "dave-pass1"})
	res := e.postSession(data)
	res.want(t, http.StatusCreated, "")
	e.keep(res.obj(t)["session"].(map[string]any)["token"].(string))
	e.postSession(data).want(t, http.StatusUnprocessableEntity, `{"errors":{"nonce":["has already been used"]}}`)
	if n := e.sessionsOf(u.ID); n != 1 {
		t.Errorf("%d sessions after a replay, want 1", n)
	}

	// A wrong password or an unknown user.
	e.postSession(e.sessionData(map[string]string{"login": "dave", "password": "wrong-pass"})).
		want(t, http.StatusUnauthorized, `{"errors":["Unauthorized"]}`)
	e.postSession(e.sessionData(map[string]string{"login": "nobody", "password": "wrong-pass"})).
		want(t, http.StatusUnauthorized, `{"errors":["Unauthorized"]}`)

	// Missing parameters.
	e.call(http.MethodPost, "/session.json", "", "application_id", "1").
		want(t, http.StatusUnprocessableEntity, `{"errors":{"auth_key":["can't be blank"],"nonce":["can't be blank"],"signature":["can't be blank"],"timestamp":["can't be blank"]}}`)
	// A non-numeric application id.
	data = e.sessionData(nil)
	data["application_id"] = "x"
	e.call(http.MethodPost, "/session.json", "", sessionForm(data, signSDK(sha1.New, appSecret, data))...).
		want(t, http.StatusBadRequest, `{"errors":["application_id must be an integer"]}`)
	if n := e.sessionsOf(u.ID); n != 1 {
		t.Errorf("%d sessions at the end, want 1", n)
	}
}

func TestNoSession(t *testing.T) {
	e := newEnv(t, restapi.Config{})
	e.call(http.MethodGet, "/users.json", "").want(t, http.StatusUnauthorized, noSession)
	e.call(http.MethodGet, "/users.json", "0123456789abcdef0123456789abcdef01234567").want(t, http.StatusUnauthorized, noSession)
	e.call(http.MethodPost, "/users.json", "", "user[login]", "x", "user[password]", "xxxxxxxx").want(t, http.StatusUnauthorized, noSession)

	// The token as a parameter: in the query of a GET, the body of a DELETE.
	token := e.appSession()
	e.call(http.MethodGet, "/session.json", "", "token", token).want(t, http.StatusOK, "")
	res := e.call(http.MethodGet, "/session.json", "", "token", token)
	if res.header.Get("QB-Token-ExpirationDate") == "" {
		t.Error("no QB-Token-ExpirationDate when the token came as a parameter")
	}

	// Expired: two hours without a request.
	e.clock.Advance(2*time.Hour + time.Second)
	e.call(http.MethodGet, "/session.json", token).want(t, http.StatusUnauthorized, noSession)
	e.call(http.MethodDelete, "/session.json", "", "token", token).want(t, http.StatusUnauthorized, noSession)
}

func TestLoginLogout(t *testing.T) {
	e := newEnv(t, restapi.Config{})
	u := e.mkUser("erin", "erin-pass1", func(in *account.UserInput) { in.Email = ptr("erin@example.com") })
	token := e.appSession()

	// Wrong password: 401 and the session stays an application session.
	e.call(http.MethodPost, "/login.json", token, "login", "erin", "password", "nope-nope").
		want(t, http.StatusUnauthorized, `{"errors":["Unauthorized"]}`)
	// An application session may not log out.
	e.call(http.MethodDelete, "/login.json", token).want(t, http.StatusForbidden, `{"errors":["Forbidden. Need user."]}`)
	// Right after a failure the user's next attempt is refused unchecked
	// (account's login throttle), with when to retry.
	res := e.call(http.MethodPost, "/login.json", token, "login", "erin", "password", "erin-pass1")
	res.want(t, http.StatusTooManyRequests,
		`{"errors":{"base":["Too many failed login attempts for this user; retry after the time in Retry-After"]}}`)
	if got := res.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q, want 1 (the wait rounded up to whole seconds)", got)
	}
	e.clock.Advance(account.DefaultLoginFailureDelay)

	res = e.call(http.MethodPost, "/login.json", token, "login", "erin", "password", "erin-pass1")
	res.want(t, http.StatusAccepted, "")
	if num(t, res.obj(t)["user"].(map[string]any)["id"]) != u.ID {
		t.Errorf("login answered %s", res.body)
	}
	if !expirationFormat.MatchString(res.header.Get("QB-Token-ExpirationDate")) {
		t.Errorf("login: QB-Token-ExpirationDate %q", res.header.Get("QB-Token-ExpirationDate"))
	}
	sess := e.call(http.MethodGet, "/session.json", token).obj(t)["session"].(map[string]any)
	if num(t, sess["user_id"]) != u.ID {
		t.Errorf("after login the session is %v", sess)
	}
	// Writes need the user now bound: an update of self works.
	e.call(http.MethodPut, "/users/"+itoa(u.ID)+".json", token, "user[full_name]", "Erin").want(t, http.StatusOK, "")

	res = e.call(http.MethodDelete, "/login.json", token)
	res.want(t, http.StatusOK, "")
	if len(res.body) != 0 {
		t.Errorf("DELETE /login.json body %q", res.body)
	}
	sess = e.call(http.MethodGet, "/session.json", token).obj(t)["session"].(map[string]any)
	if num(t, sess["user_id"]) != 0 {
		t.Errorf("after logout the session is %v", sess)
	}
	e.call(http.MethodPut, "/users/"+itoa(u.ID)+".json", token, "user[full_name]", "X").
		want(t, http.StatusForbidden, `{"errors":["Forbidden. Need user."]}`)

	// Login by email with a JSON body.
	res = e.callJSON(http.MethodPost, "/login.json", token, `{"email":"erin@example.com","password":"erin-pass1"}`)
	res.want(t, http.StatusAccepted, "")
}
