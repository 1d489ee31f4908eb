package xmpp_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"chatd/account"
	"chatd/internal/xmpptest"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

// The harness is internal/xmpptest's; what is here only the xmpp tests use.

type (
	user   = xmpptest.User
	client = xmpptest.Client
)

// env is a real chatd XMPP server on loopback with a real SQLite store,
// listening for TCP, direct TLS and WebSocket.
type env struct{ *xmpptest.Env }

// startEnv starts a server; edit may change its configuration.
func startEnv(t *testing.T, edit func(*xmpp.Config)) *env { return startEnvTB(t, edit) }

// startEnvTB is startEnv for tests and benchmarks alike.
func startEnvTB(t testing.TB, edit func(*xmpp.Config)) *env {
	t.Helper()
	return &env{xmpptest.Start(t, xmpptest.Options{Edit: func(c *xmpp.Config) {
		c.TLSListen = "127.0.0.1:0"
		c.WebSocketListen = "127.0.0.1:0"
		if edit != nil {
			edit(c)
		}
	}})}
}

func isMessage(body string) func(*stanza.Element) bool {
	return func(el *stanza.Element) bool {
		return el.Name == "message" && el.ChildText("body", "") == body
	}
}

var nonces struct {
	sync.Mutex
	n int64
}

// testSessionRequest signs a POST /session.json for a user as a REST client
// does (HMAC-SHA1 over the sorted pairs).
func testSessionRequest(app *account.Application, login, password string) account.SessionRequest {
	nonces.Lock()
	nonces.n++
	nonce := nonces.n
	nonces.Unlock()
	ts := time.Now().Unix()
	signed := fmt.Sprintf("application_id=%d&auth_key=%s&nonce=%d&timestamp=%d&user[login]=%s&user[password]=%s",
		app.ID, app.AuthKey, nonce, ts, login, password)
	mac := hmac.New(sha1.New, []byte(app.AuthSecret))
	mac.Write([]byte(signed))
	return account.SessionRequest{AppID: app.ID, AuthKey: app.AuthKey, Nonce: nonce, Timestamp: ts,
		Signature: hex.EncodeToString(mac.Sum(nil)), Signed: signed, Login: login, Password: password}
}

func tlsDial(addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: xmpptest.Wait}
	return tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
}

// syncOutput collects a child process's output for polling.
type syncOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncOutput) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncOutput) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
