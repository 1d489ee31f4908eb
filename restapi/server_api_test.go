package restapi_test

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"chatd/restapi"
)

func TestMalformedInputChangesNothing(t *testing.T) {
	e := newEnv(t, restapi.Config{})
	token := e.appSession()
	post := func(ctype, body string) response {
		req := e.newRequest(http.MethodPost, "/users.json", body)
		req.Header.Set("QB-Token", token)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		return e.request(req)
	}
	form := "application/x-www-form-urlencoded"
	post(form, "user[login]=quin&user[password]=%zz").want(t, http.StatusBadRequest, `{"errors":["malformed value of parameter \"user[password]\""]}`)
	post(form, "user[login=quin&user[password]=quin-pass").want(t, http.StatusBadRequest, `{"errors":["malformed parameter name \"user[login\""]}`)
	post(form, "user=1&user[login]=quin&user[password]=quin-pass").want(t, http.StatusBadRequest, "")
	post("application/json", `{"user":{"login":"quin","password":"quin-pass"}`).want(t, http.StatusBadRequest, `{"errors":["malformed JSON body: unexpected end of input"]}`)
	post("application/json", `["user"]`).want(t, http.StatusBadRequest, `{"errors":["the JSON body must be an object"]}`)
	post("text/plain", "user[login]=quin").want(t, http.StatusUnsupportedMediaType, "")
	if n := e.userCount("quin"); n != 0 {
		t.Errorf("%d users stored from malformed requests", n)
	}
	// A malformed query string on a GET.
	req := e.newRequest(http.MethodGet, "/users.json?page=%zz", "")
	req.Header.Set("QB-Token", token)
	e.request(req).want(t, http.StatusBadRequest, `{"errors":["malformed value of parameter \"page\""]}`)
}

func TestBodyTooLarge(t *testing.T) {
	e := newEnv(t, restapi.Config{MaxBodyBytes: 512})
	token := e.appSession()
	big := strings.Repeat("x", 600)
	e.call(http.MethodPost, "/users.json", token, "user[login]", "rex", "user[password]", "rex-password", "user[custom_data]", big).
		want(t, http.StatusRequestEntityTooLarge, `{"errors":["Request entity too large"]}`)
	// Without a Content-Length (chunked), the limit holds too.
	req := e.newRequest(http.MethodPost, "/users.json", "")
	req.Body = readerCloser{strings.NewReader(form("user[login]", "rex", "user[password]", "rex-password", "user[custom_data]", big))}
	req.ContentLength = -1
	req.Header.Set("QB-Token", token)
	e.request(req).want(t, http.StatusRequestEntityTooLarge, `{"errors":["Request entity too large"]}`)
	if e.userCount("rex") != 0 {
		t.Error("an oversized request stored a user")
	}
	// Just under the limit is fine.
	e.call(http.MethodPost, "/users.json", token, "user[login]", "rex", "user[password]", "rex-password", "user[custom_data]", big[:400]).
		want(t, http.StatusCreated, "")
	e.keep("rex-password")
}

type readerCloser struct{ *strings.Reader }

func (readerCloser) Close() error { return nil }

func TestCORS(t *testing.T) {
	e := newEnv(t, restapi.Config{})
	req := e.newRequest(http.MethodOptions, "/users/12.json", "")
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "PUT")
	req.Header.Set("Access-Control-Request-Headers", "qb-token, content-type")
	res := e.request(req)
	if res.status != http.StatusNoContent || len(res.body) != 0 {
		t.Fatalf("preflight: %s", res)
	}
	for k, v := range map[string]string{
		"Access-Control-Allow-Origin":   "https://app.example",
		"Access-Control-Allow-Methods":  "GET, POST, PUT, DELETE, PATCH, OPTIONS",
		"Access-Control-Allow-Headers":  "Content-Type, QB-Token, QB-SDK, QB-OS, QB-Account-Key, Authorization, On-Behalf-Of",
		"Access-Control-Expose-Headers": "QB-Token-ExpirationDate, X-Request-Id",
	} {
		if got := res.header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	// A real request carries the origin and exposes the expiry header.
	token := e.appSession()
	req = e.newRequest(http.MethodGet, "/session.json", "")
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("QB-Token", token)
	res = e.request(req)
	if res.status != http.StatusOK || res.header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(res.header.Get("Access-Control-Expose-Headers"), "QB-Token-ExpirationDate") {
		t.Errorf("GET with Origin: %s %v", res, res.header)
	}
	// Without an Origin: "*". Errors carry CORS headers too.
	res = e.call(http.MethodGet, "/users.json", "")
	if res.status != http.StatusUnauthorized || res.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("401 without Origin: %s %v", res, res.header)
	}

	// Configured origins only.
	e = newEnv(t, restapi.Config{CORSOrigins: []string{"https://ok.example"}})
	for origin, want := range map[string]string{"https://ok.example": "https://ok.example", "https://evil.example": "", "": ""} {
		req := e.newRequest(http.MethodOptions, "/session.json", "")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		res := e.request(req)
		if res.status != http.StatusNoContent || res.header.Get("Access-Control-Allow-Origin") != want {
			t.Errorf("origin %q: %d, Allow-Origin %q, want %q", origin, res.status, res.header.Get("Access-Control-Allow-Origin"), want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (restapi.Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
	if err := (restapi.Config{CORSOrigins: []string{"*", "https://a.example:8443", "http://b.example/"}}).Validate(); err != nil {
		t.Errorf("valid origins: %v", err)
	}
	err := restapi.Config{MaxBodyBytes: -1, CORSOrigins: []string{"a.example", "https://a.example/path", "ftp://x"},
		XMPPDomain: "chat@example"}.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, s := range []string{"max_body_bytes", `"a.example"`, `"https://a.example/path"`, `"ftp://x"`, "xmpp_domain"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
}

func TestPanicAndInternalErrors(t *testing.T) {
	const secret = "db password is hunter2"
	e := newEnv(t, restapi.Config{}, func(s *restapi.Server) {
		restapi.HandleForTest(s, http.MethodGet, "/test/panic", false, func(context.Context) (any, error) {
			panic("handler exploded")
		})
		restapi.HandleForTest(s, http.MethodGet, "/test/fail", false, func(context.Context) (any, error) {
			return nil, errors.New(secret)
		})
	})
	internal := `{"errors":["Internal server error"]}`
	res := e.call(http.MethodGet, "/test/panic.json", "")
	res.want(t, http.StatusInternalServerError, internal)
	id := res.header.Get("X-Request-Id")
	logs := e.logs.String()
	if id == "" || !regexp.MustCompile(`(?m)^.*panic serving request.*request_id=`+id+`.*handler exploded.*goroutine`).MatchString(logs) {
		t.Errorf("panic not logged with its request id and stack:\n%s", logs)
	}
	// The server lives on.
	e.appSession()

	res = e.call(http.MethodGet, "/test/fail.json", "")
	res.want(t, http.StatusInternalServerError, internal)
	if strings.Contains(string(res.body), "hunter2") {
		t.Error("an internal error leaked to the client")
	}
	if !strings.Contains(e.logs.String(), "request_id="+res.header.Get("X-Request-Id")) || !strings.Contains(e.logs.String(), "hunter2") {
		t.Errorf("internal error not logged with its request id:\n%s", e.logs.String())
	}
}

func TestRouting(t *testing.T) {
	e := newEnv(t, restapi.Config{}, func(s *restapi.Server) {
		restapi.HandleForTest(s, http.MethodGet, "/test/whoami", true, func(ctx context.Context) (any, error) {
			p, ok := restapi.PrincipalFrom(ctx)
			if !ok {
				return nil, errors.New("no principal in the context")
			}
			return map[string]int64{"user_id": p.UserID, "app_id": p.App.ID}, nil
		})
	})
	u := e.mkUser("sam", "sam-password", nil)
	token, _ := e.userSession("sam", "sam-password")
	// Without .json; and the principal is in the request context.
	e.call(http.MethodGet, "/users/"+itoa(u.ID), token).want(t, http.StatusOK, "")
	e.call(http.MethodGet, "/test/whoami.json", token).want(t, http.StatusOK, `{"app_id":1,"user_id":`+itoa(u.ID)+`}`)
	// HEAD answers like GET, without a body.
	req := e.newRequest(http.MethodHead, "/users/"+itoa(u.ID)+".json", "")
	req.Header.Set("QB-Token", token)
	if res := e.request(req); res.status != http.StatusOK || len(res.body) != 0 || res.header.Get("QB-Token-ExpirationDate") == "" {
		t.Errorf("HEAD: %s %v", res, res.header)
	}
	// Unknown paths and methods: JSON errors.
	e.call(http.MethodGet, "/nothing/here.json", token).want(t, http.StatusNotFound, `{"errors":["Not Found"]}`)
	e.call(http.MethodPatch, "/users.json", token).want(t, http.StatusMethodNotAllowed, `{"errors":["Method Not Allowed"]}`)
	// Every response to an authenticated request carries the expiry, errors
	// included.
	res := e.call(http.MethodGet, "/users/999.json", token)
	if res.status != http.StatusNotFound || !expirationFormat.MatchString(res.header.Get("QB-Token-ExpirationDate")) {
		t.Errorf("404 of an authenticated request: %s, expiry %q", res, res.header.Get("QB-Token-ExpirationDate"))
	}
}

func TestAPIKey(t *testing.T) {
	e := newEnv(t, restapi.Config{})
	tia := e.mkUser("tia", "tia-password", nil)
	_, key, err := e.svc.CreateAPIKey(context.Background(), e.app.ID, "integration")
	if err != nil {
		t.Fatal(err)
	}
	e.keep(key)
	call := func(method, path, onBehalfOf string, kv ...string) response {
		req := e.newRequest(method, path, form(kv...))
		req.Header.Set("Authorization", "ApiKey "+key)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if onBehalfOf != "" {
			req.Header.Set("On-Behalf-Of", onBehalfOf)
		}
		return e.request(req)
	}
	self := "/users/" + itoa(tia.ID) + ".json"
	// As the application: reads, creates users, but no user writes.
	res := call(http.MethodGet, self, "")
	res.want(t, http.StatusOK, "")
	if res.header.Get("QB-Token-ExpirationDate") != "" {
		t.Error("an API key has no session expiry to report")
	}
	call(http.MethodPut, self, "", "user[full_name]", "X").want(t, http.StatusForbidden, `{"errors":["Forbidden. Need user."]}`)
	call(http.MethodPost, "/users.json", "", "user[login]", "uma", "user[password]", "uma-password").want(t, http.StatusCreated, "")
	e.keep("uma-password")
	// On behalf of tia: her writes.
	res = call(http.MethodPut, self, itoa(tia.ID), "user[full_name]", "Tia")
	res.want(t, http.StatusOK, "")
	if res.obj(t)["user"].(map[string]any)["full_name"] != "Tia" {
		t.Errorf("update on behalf: %s", res)
	}
	call(http.MethodGet, "/session.json", itoa(tia.ID)).want(t, http.StatusForbidden, "")
	call(http.MethodGet, self, "abc").want(t, http.StatusBadRequest, `{"errors":["On-Behalf-Of must be a user id"]}`)
	call(http.MethodGet, self, "999").want(t, http.StatusNotFound, "")
	// A wrong key.
	req := e.newRequest(http.MethodGet, self, "")
	req.Header.Set("Authorization", "ApiKey nope")
	e.request(req).want(t, http.StatusUnauthorized, noSession)
}

// Requests in parallel share the server safely (run with -race).
func TestConcurrentRequests(t *testing.T) {
	e := newEnv(t, restapi.Config{})
	token := e.appSession()
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := range 8 {
		wg.Go(func() {
			login := "par" + itoa(int64(i))
			body := form("user[login]", login, "user[password]", "parallel-pw")
			req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/users.json", strings.NewReader(body))
			req.Header.Set("QB-Token", token)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			res, err := e.ts.Client().Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			res.Body.Close()
			if res.StatusCode != http.StatusCreated {
				errs <- login + ": " + res.Status
			}
			for range 3 {
				req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/users.json?per_page=100", nil)
				req.Header.Set("QB-Token", token)
				res, err := e.ts.Client().Do(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					errs <- "list: " + res.Status
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	e.keep("parallel-pw")
	ids(t, e.call(http.MethodGet, "/users.json", token, "per_page", "100"), 1, 100, 8)
}
