package xmpp_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"

	"chatd/account"
	"chatd/history"
	"chatd/internal/certs"
	"chatd/store/sqlite"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

const domain = "localhost"

// env is a real chatd XMPP server on loopback with a real SQLite store.
type env struct {
	t        testing.TB
	srv      *xmpp.Server
	accounts *account.Service
	history  *history.Service
	app      *account.Application
	tls      *tls.Config
	db       *sqlite.DB
}

func quietLog() *slog.Logger {
	if os.Getenv("CHATD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
}

// startEnv starts a server; edit may change its configuration.
func startEnv(t *testing.T, edit func(*xmpp.Config)) *env { return startEnvTB(t, edit) }

// startEnvTB is startEnv for tests and benchmarks alike.
func startEnvTB(t testing.TB, edit func(*xmpp.Config)) *env {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "chatd.db"))
	if err != nil {
		t.Fatal(err)
	}
	accounts := account.NewService(db.Accounts(), account.Config{Iterations: 64}, quietLog())
	app, err := accounts.CreateApp(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := certs.SelfSigned([]string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	cfg := xmpp.Config{
		Domain:          domain,
		Listen:          "127.0.0.1:0",
		TLSListen:       "127.0.0.1:0",
		WebSocketListen: "127.0.0.1:0",
		RequireTLS:      true,
		// Tests care about order, not pacing.
		ShutdownWindow:   time.Millisecond,
		AuthFailureDelay: time.Millisecond,
	}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := xmpp.New(cfg, tlsCfg, accounts, db.XMPP(), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	hist := history.NewService(db.History(), accounts, history.Config{}, quietLog())
	srv.SetHistory(hist)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, accounts: accounts, history: hist, app: app, tls: tlsCfg, db: db}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hist.Close()
		db.Close()
	})
	return e
}

type user struct {
	ref      xmpp.UserRef
	password string
	jid      string // bare
}

// newUser creates a user of the env's application.
func (e *env) newUser(login string) user {
	e.t.Helper()
	return e.newUserIn(e.app.ID, login)
}

func (e *env) newUserIn(appID int64, login string) user {
	e.t.Helper()
	pw := "pw-" + login + "-secret"
	u, err := e.accounts.CreateUserAdmin(context.Background(), appID, login, pw)
	if err != nil {
		e.t.Fatal(err)
	}
	ref := xmpp.UserRef{App: appID, User: u.ID}
	return user{ref: ref, password: pw, jid: xmpp.UserJID(ref, domain).String()}
}

// client is a raw XMPP client over a real socket: it writes text and reads
// elements with a parser, so tests see exactly what goes over the wire.
type client struct {
	t      testing.TB
	conn   net.Conn
	parser *stanza.Parser
	jid    string // full JID once bound
	events chan clientEvent
	mu     sync.Mutex
	closed bool
}

type clientEvent struct {
	el  *stanza.Element
	err error
}

const wait = 10 * time.Second

// rawDial connects over TCP and returns a client that has not sent anything.
func (e *env) rawDial() *client {
	e.t.Helper()
	c, err := net.DialTimeout("tcp", e.srv.TCPAddr().String(), wait)
	if err != nil {
		e.t.Fatal(err)
	}
	cl := &client{t: e.t, conn: c}
	e.t.Cleanup(func() { cl.conn.Close() })
	return cl
}

func (c *client) write(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// writeMayFail writes when the server may already have closed the stream
// (it stops reading at a stream error).
func (c *client) writeMayFail(s string) {
	c.conn.SetWriteDeadline(time.Now().Add(wait))
	io.WriteString(c.conn, s)
}

// open sends a stream header and reads the server's header and features.
func (c *client) open() *stanza.Element {
	c.t.Helper()
	c.write(`<?xml version='1.0'?><stream:stream to='` + domain + `' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)
	c.parser = stanza.NewParser(c.conn, 1<<22)
	c.conn.SetReadDeadline(time.Now().Add(wait))
	ev, err := c.parser.Next()
	if err != nil || ev.Kind != stanza.KindOpen {
		c.t.Fatalf("no stream header: %v %+v", err, ev)
	}
	f := c.nextSync()
	if f.Name != "features" {
		c.t.Fatalf("expected features, got %s", f)
	}
	return f
}

// nextSync reads the next element synchronously (during negotiation).
func (c *client) nextSync() *stanza.Element {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(wait))
	ev, err := c.parser.Next()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if ev.Kind != stanza.KindElement {
		c.t.Fatalf("expected an element, got event %d", ev.Kind)
	}
	return ev.Element
}

func (c *client) startTLS() {
	c.t.Helper()
	c.write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	if p := c.nextSync(); p.Name != "proceed" {
		c.t.Fatalf("starttls: %s", p)
	}
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.conn = tc
}

// auth runs SASL with mellium's client implementation of the mechanism and
// returns the server's final element (success or failure).
func (c *client) auth(mech sasl.Mechanism, username, password string) *stanza.Element {
	c.t.Helper()
	neg := sasl.NewClient(mech, sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(username), []byte(password), nil
	}))
	_, resp, err := neg.Step(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='` + mech.Name + `'>` + b64(resp) + `</auth>`)
	for {
		el := c.nextSync()
		switch el.Name {
		case "challenge":
			data, _ := base64.StdEncoding.DecodeString(el.Content())
			_, resp, err := neg.Step(data)
			if err != nil {
				c.t.Fatalf("sasl step: %v", err)
			}
			c.write(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` + b64(resp) + `</response>`)
		case "success":
			if data := el.Content(); data != "" {
				// SCRAM: verify the server signature.
				raw, _ := base64.StdEncoding.DecodeString(data)
				if _, _, err := neg.Step(raw); err != nil {
					c.t.Fatalf("server signature rejected: %v", err)
				}
			}
			return el
		default:
			return el
		}
	}
}

func b64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// bind binds a resource ("" lets the server choose) and starts reading
// asynchronously.
func (c *client) bind(resource string) {
	c.t.Helper()
	c.bindOnly(resource)
	c.startReading()
}

// bindOnly binds without starting to read.
func (c *client) bindOnly(resource string) {
	c.t.Helper()
	req := `<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>`
	if resource != "" {
		req += `<resource>` + resource + `</resource>`
	}
	c.write(req + `</bind></iq>`)
	res := c.nextSync()
	if res.Attr("type") != "result" {
		c.t.Fatalf("bind failed: %s", res)
	}
	c.jid = res.Child("bind", "").ChildText("jid", "")
}

// startReading moves reads to a goroutine feeding c.events.
func (c *client) startReading() {
	c.events = make(chan clientEvent, 1024)
	go func() {
		defer close(c.events)
		for {
			c.conn.SetReadDeadline(time.Time{})
			ev, err := c.parser.Next()
			if err != nil {
				c.events <- clientEvent{err: err}
				return
			}
			if ev.Kind == stanza.KindClose {
				c.events <- clientEvent{err: io.EOF}
				return
			}
			c.events <- clientEvent{el: ev.Element}
		}
	}()
}

// login connects, negotiates TLS, authenticates with PLAIN and binds.
func (e *env) login(u user, resource string) *client {
	e.t.Helper()
	c := e.loginNoRead(u, resource)
	c.startReading()
	return c
}

// loginNoRead logs in and binds but reads nothing more.
func (e *env) loginNoRead(u user, resource string) *client {
	e.t.Helper()
	c := e.rawDial()
	c.open()
	c.startTLS()
	c.open()
	if r := c.auth(sasl.Plain, fmt.Sprintf("%d-%d", u.ref.User, u.ref.App), u.password); r.Name != "success" {
		e.t.Fatalf("login failed: %s", r)
	}
	c.open()
	c.bindOnly(resource)
	return c
}

// online logs in and sends initial presence, then waits for the server to
// have processed it (a ping round trip).
func (e *env) online(u user, resource string) *client {
	e.t.Helper()
	c := e.login(u, resource)
	c.write(`<presence/>`)
	c.roundTrip()
	return c
}

// roundTrip pings the server and waits for the answer, discarding anything
// before it: everything sent earlier has been processed.
func (c *client) roundTrip() {
	c.t.Helper()
	id := fmt.Sprintf("rt-%d", time.Now().UnixNano())
	c.write(`<iq type='get' id='` + id + `'><ping xmlns='urn:xmpp:ping'/></iq>`)
	c.expect(func(el *stanza.Element) bool { return el.Name == "iq" && el.Attr("id") == id })
}

// next returns the next element, failing after the wait.
func (c *client) next() *stanza.Element {
	c.t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok || ev.err != nil {
			c.t.Fatalf("stream ended: %v", ev.err)
		}
		return ev.el
	case <-time.After(wait):
		c.t.Fatal("timed out waiting for a stanza")
	}
	return nil
}

// expect returns the first element matching, skipping others.
func (c *client) expect(match func(*stanza.Element) bool) *stanza.Element {
	c.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok || ev.err != nil {
				c.t.Fatalf("stream ended while waiting: %v", ev.err)
			}
			if match(ev.el) {
				return ev.el
			}
		case <-deadline:
			c.t.Fatal("timed out waiting for a matching stanza")
		}
	}
}

// ended waits for the stream to end and returns the stream error condition
// seen before the end ("" if none).
func (c *client) ended() string {
	c.t.Helper()
	cond := ""
	deadline := time.After(wait)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return cond
			}
			if ev.err != nil {
				return cond
			}
			if ev.el.Name == "error" && ev.el.Space == stanza.NSStream {
				if f := ev.el.FirstElement(); f != nil {
					cond = f.Name
				}
			}
		case <-deadline:
			c.t.Fatal("timed out waiting for the stream to end")
		}
	}
}

// streamErrorOf reads synchronously until the stream ends and returns the
// stream error condition (for clients that never bound).
func (c *client) streamErrorOf() string {
	c.t.Helper()
	cond := ""
	for {
		c.conn.SetReadDeadline(time.Now().Add(wait))
		ev, err := c.parser.Next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatal("timed out waiting for the stream to end")
			}
			return cond
		}
		if ev.Kind == stanza.KindClose {
			return cond
		}
		if ev.Kind == stanza.KindElement && ev.Element.Name == "error" && ev.Element.Space == stanza.NSStream {
			if f := ev.Element.FirstElement(); f != nil {
				cond = f.Name
			}
		}
	}
}

// errorCondition returns the defined condition of a stanza error.
func errorCondition(el *stanza.Element) string {
	e := el.Child("error", "")
	if e == nil {
		return ""
	}
	for _, c := range e.Elements() {
		if c.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.Name != "text" {
			return c.Name
		}
	}
	return ""
}

func isMessage(body string) func(*stanza.Element) bool {
	return func(el *stanza.Element) bool {
		return el.Name == "message" && el.ChildText("body", "") == body
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

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
	d := &net.Dialer{Timeout: wait}
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
