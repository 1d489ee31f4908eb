package restapi_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"chatd/restapi"
	"chatd/turn"
)

const turnSecret = "turn-shared-secret-for-tests"

// testTURNConfig is a TURN configuration that needs no running server.
func testTURNConfig() *turn.Config {
	return &turn.Config{Secret: turnSecret, RelayAddress: "127.0.0.1", PublicHost: "turn.example.com",
		CredentialTTL: 2 * time.Hour}
}

func TestTURNCredentials(t *testing.T) {
	cfg := testTURNConfig()
	e := newChatEnv(t, restapi.Config{}, chatOptions{turn: cfg})
	e.keep(turnSecret)
	alice := e.person("alice")

	res := e.call(http.MethodGet, "/turn/credentials.json", alice.token)
	res.want(t, http.StatusOK, "")
	m := res.obj(t)
	username, password := m["username"].(string), m["password"].(string)
	e.keep(password)
	if want := itoa(t0Unix+7200) + ":" + itoa(alice.id); username != want {
		t.Errorf("username %q, want %q", username, want)
	}
	if num(t, m["ttl"]) != 7200 {
		t.Errorf("ttl %v, want 7200", m["ttl"])
	}
	var uris []string
	for _, u := range m["uris"].([]any) {
		uris = append(uris, u.(string))
	}
	want := []string{"turn:turn.example.com:3478?transport=udp", "turn:turn.example.com:3478?transport=tcp",
		"turns:turn.example.com:5349?transport=tcp"}
	if !slices.Equal(uris, want) {
		t.Errorf("uris %v, want %v", uris, want)
	}
	if res.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", res.header.Get("Cache-Control"))
	}
	// The password is what an Issuer with the same secret accepts, for this
	// user, until the expiry.
	check, err := turn.NewIssuer(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(t0Unix, 0)
	if id, err := check.Check(username, password, now); err != nil || id != alice.id {
		t.Errorf("Check = %d, %v; want %d", id, err, alice.id)
	}
	if _, err := check.Check(username, password, now.Add(2*time.Hour)); err == nil {
		t.Error("credentials accepted after their ttl")
	}
	if _, err := check.Check(username, password+"x", now); err == nil {
		t.Error("a wrong password accepted")
	}

	// An application session: 403; without a TURN issuer: 404.
	e.call(http.MethodGet, "/turn/credentials.json", e.appSession()).
		want(t, http.StatusForbidden, `{"errors":["Forbidden. Need user."]}`)
	plain := newChatEnv(t, restapi.Config{}, chatOptions{})
	bob := plain.person("bob")
	plain.call(http.MethodGet, "/turn/credentials.json", bob.token).want(t, http.StatusNotFound, "")
}
