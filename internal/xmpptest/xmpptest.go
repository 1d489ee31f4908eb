// Package xmpptest is the test harness of the XMPP server and the services
// on it: a real chatd XMPP server on loopback over a real SQLite store
// (Start), its users (Env.NewUser), and a raw client over a real socket that
// writes text and reads elements with a parser, so tests see exactly what
// goes over the wire (Client), which also dials servers that tests started
// themselves (Dial). Only tests import it.
//
// Every wait is bounded by Wait: a test that expects something that never
// comes fails instead of hanging, and nothing sleeps.
//
// # Concurrency
//
// Env and Client fail the test through its testing.TB, so call them from the
// test's goroutine. After StartReading one goroutine per client reads the
// socket and hands what it read over on Client.Events, where Next, Expect,
// RoundTrip and Ended take it.
package xmpptest

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
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

// Domain is the server's XMPP domain.
const Domain = "localhost"

// Wait bounds every wait of the harness: a dial, a write, a read, an
// expectation, the end of a stream.
const Wait = 10 * time.Second

// QuietLog returns a logger for the server under test: errors only, and
// nowhere, unless CHATD_TEST_LOG is set, in which case everything from debug
// up goes to standard error.
func QuietLog() *slog.Logger {
	if os.Getenv("CHATD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
}

// Options configures Start. The zero value is a server requiring STARTTLS
// on one loopback TCP listener.
type Options struct {
	// Edit may change the server's configuration before the server is made.
	Edit func(*xmpp.Config)
	// History configures the history service.
	History history.Config
	// Plain starts the server without TLS: clients authenticate on the
	// plain stream (benchmarks with thousands of clients).
	Plain bool
	// Wire is called with the server and its history service before the
	// server starts, to attach the services under test (MUC).
	Wire func(*xmpp.Server, *history.Service)
	// ShutdownTimeout bounds the server's shutdown when the test ends.
	// Defaults to 10 seconds.
	ShutdownTimeout time.Duration
	// Events is how many elements a reading client holds before its
	// reading goroutine stops reading the socket. Defaults to 1024.
	Events int
	// Store, if set, is given the server's store (SQLite) and returns the
	// one the server uses: the same store with a test's hold on some call.
	Store func(xmpp.Store) xmpp.Store
}

// Env is a started server and what it runs on. Start stops it when the test
// ends: the server, then the history service, then the store.
type Env struct {
	T        testing.TB
	Server   *xmpp.Server
	Accounts *account.Service
	History  *history.Service
	App      *account.Application // the application NewUser creates users in
	TLS      *tls.Config          // nil if Plain
	DB       *sqlite.DB
	Plain    bool // no TLS: clients authenticate on the plain stream

	events int // Options.Events
}

// Start starts a server on 127.0.0.1 with a fresh store holding one
// application.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "chatd.db"))
	if err != nil {
		t.Fatal(err)
	}
	accounts := account.NewService(db.Accounts(), account.Config{Iterations: 64}, QuietLog())
	app, err := accounts.CreateApp(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	var tlsCfg *tls.Config
	if !o.Plain {
		cert, _, err := certs.SelfSigned([]string{"localhost", "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	cfg := xmpp.Config{
		Domain:     Domain,
		Listen:     "127.0.0.1:0",
		RequireTLS: !o.Plain,
		// Tests care about order, not pacing.
		ShutdownWindow:   time.Millisecond,
		AuthFailureDelay: time.Millisecond,
	}
	if o.Edit != nil {
		o.Edit(&cfg)
	}
	var store xmpp.Store = db.XMPP()
	if o.Store != nil {
		store = o.Store(store)
	}
	srv, err := xmpp.New(cfg, tlsCfg, accounts, store, QuietLog())
	if err != nil {
		t.Fatal(err)
	}
	hist := history.NewService(db.History(), accounts, o.History, QuietLog())
	srv.SetHistory(hist)
	if o.Wire != nil {
		o.Wire(srv, hist)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	e := &Env{T: t, Server: srv, Accounts: accounts, History: hist, App: app, TLS: tlsCfg, DB: db, Plain: o.Plain,
		events: cmp.Or(o.Events, 1024)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cmp.Or(o.ShutdownTimeout, 10*time.Second))
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hist.Close()
		db.Close()
	})
	return e
}

// User is a user of an Env, with what logging in takes.
type User struct {
	Ref      xmpp.UserRef
	Password string
	JID      string // bare
	ID       string // the user id, the nick in every room
}

// NewUser creates a user of the env's application.
func (e *Env) NewUser(login string) User {
	e.T.Helper()
	return e.NewUserIn(e.App.ID, login)
}

// NewUserIn creates a user of an application.
func (e *Env) NewUserIn(appID int64, login string) User {
	e.T.Helper()
	pw := "pw-" + login + "-secret"
	u, err := e.Accounts.CreateUserAdmin(context.Background(), appID, login, pw)
	if err != nil {
		e.T.Fatal(err)
	}
	ref := xmpp.UserRef{App: appID, User: u.ID}
	return User{Ref: ref, Password: pw, JID: xmpp.UserJID(ref, Domain).String(), ID: fmt.Sprint(u.ID)}
}

// Client is a raw XMPP client over a real socket: it writes text and reads
// elements with a parser, so tests see exactly what goes over the wire.
// Until StartReading, reads are synchronous (NextSync); after it, they come
// from Events (Next, Expect).
type Client struct {
	T      testing.TB
	Name   string // prefixes its failures; user id/resource once logged in
	User   User   // set by LoginNoRead
	Conn   net.Conn
	Parser *stanza.Parser
	JID    string // full JID once bound
	Events chan Event

	events int // Events' capacity; 1024 if zero
}

// Event is what a reading client read: an element, or the error or end
// (io.EOF) that ended the stream.
type Event struct {
	El  *stanza.Element
	Err error
}

// Dial connects over TCP to the XMPP listener at addr, a server's TCPAddr,
// and returns a client that has not sent anything. It is for servers started
// without Start (over a store and services of the test's own); the
// connection is closed when the test ends.
func Dial(t testing.TB, addr string) *Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, Wait)
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{T: t, Conn: conn}
	t.Cleanup(func() { c.Conn.Close() })
	return c
}

// RawDial connects over TCP and returns a client that has not sent anything.
func (e *Env) RawDial() *Client {
	e.T.Helper()
	c := Dial(e.T, e.Server.TCPAddr().String())
	c.events = e.events
	return c
}

// LoginNoRead connects, negotiates TLS (unless the env is Plain),
// authenticates with PLAIN and binds a resource ("" lets the server choose),
// without starting to read.
func (e *Env) LoginNoRead(u User, resource string) *Client {
	e.T.Helper()
	c := e.RawDial()
	c.Negotiate(u, resource, !e.Plain)
	return c
}

// Login is LoginNoRead, then StartReading.
func (e *Env) Login(u User, resource string) *Client {
	e.T.Helper()
	c := e.LoginNoRead(u, resource)
	c.StartReading()
	return c
}

// Online logs in, starts reading and sends initial presence, then waits for
// the server to have processed it (a ping round trip).
func (e *Env) Online(u User, resource string) *Client {
	e.T.Helper()
	c := e.Login(u, resource)
	c.Write(`<presence/>`)
	c.RoundTrip()
	return c
}

func (c *Client) fatalf(format string, args ...any) {
	c.T.Helper()
	if c.Name != "" {
		format = c.Name + ": " + format
	}
	c.T.Fatalf(format, args...)
}

// Write writes raw XML.
func (c *Client) Write(s string) {
	c.T.Helper()
	c.Conn.SetWriteDeadline(time.Now().Add(Wait))
	if _, err := io.WriteString(c.Conn, s); err != nil {
		c.fatalf("write: %v", err)
	}
}

// WriteMayFail writes when the server may already have closed the stream
// (it stops reading at a stream error).
func (c *Client) WriteMayFail(s string) {
	c.Conn.SetWriteDeadline(time.Now().Add(Wait))
	io.WriteString(c.Conn, s)
}

// Open sends a stream header and reads the server's header and features,
// which it returns.
func (c *Client) Open() *stanza.Element {
	c.T.Helper()
	c.Write(`<?xml version='1.0'?><stream:stream to='` + Domain + `' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)
	c.Parser = stanza.NewParser(c.Conn, 1<<22)
	c.Conn.SetReadDeadline(time.Now().Add(Wait))
	ev, err := c.Parser.Next()
	if err != nil || ev.Kind != stanza.KindOpen {
		c.fatalf("no stream header: %v %+v", err, ev)
	}
	f := c.NextSync()
	if f.Name != "features" {
		c.fatalf("expected features, got %s", f)
	}
	return f
}

// Negotiate negotiates the stream of a client that has not sent anything:
// STARTTLS if startTLS, PLAIN authentication of u (authcid
// "<user_id>-<app_id>", as the QuickBlox SDK logs in), then binding a
// resource ("" lets the server choose), without starting to read.
func (c *Client) Negotiate(u User, resource string, startTLS bool) {
	c.T.Helper()
	c.User, c.Name = u, u.ID+"/"+resource
	c.Open()
	if startTLS {
		c.StartTLS()
		c.Open()
	}
	if r := c.Auth(sasl.Plain, fmt.Sprintf("%d-%d", u.Ref.User, u.Ref.App), u.Password); r.Name != "success" {
		c.T.Fatalf("login failed: %s", r)
	}
	c.Open()
	c.BindOnly(resource)
}

// NextSync reads the next element synchronously (during negotiation).
func (c *Client) NextSync() *stanza.Element {
	c.T.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(Wait))
	ev, err := c.Parser.Next()
	if err != nil {
		c.fatalf("read: %v", err)
	}
	if ev.Kind != stanza.KindElement {
		c.fatalf("expected an element, got event %d", ev.Kind)
	}
	return ev.Element
}

// StartTLS negotiates STARTTLS; the stream must be opened again after it.
func (c *Client) StartTLS() {
	c.T.Helper()
	c.Write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	if p := c.NextSync(); p.Name != "proceed" {
		c.fatalf("starttls: %s", p)
	}
	tc := tls.Client(c.Conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		c.T.Fatal(err)
	}
	c.Conn = tc
}

// Auth runs SASL with mellium's client implementation of the mechanism and
// returns the server's final element (success or failure). A SCRAM
// success's server signature is verified.
func (c *Client) Auth(mech sasl.Mechanism, username, password string) *stanza.Element {
	c.T.Helper()
	neg := sasl.NewClient(mech, sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(username), []byte(password), nil
	}))
	_, resp, err := neg.Step(nil)
	if err != nil {
		c.T.Fatal(err)
	}
	c.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='` + mech.Name + `'>` + B64(resp) + `</auth>`)
	for {
		el := c.NextSync()
		switch el.Name {
		case "challenge":
			data, _ := base64.StdEncoding.DecodeString(el.Content())
			_, resp, err := neg.Step(data)
			if err != nil {
				c.fatalf("sasl step: %v", err)
			}
			c.Write(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` + B64(resp) + `</response>`)
		case "success":
			if data := el.Content(); data != "" {
				// SCRAM: verify the server signature.
				raw, _ := base64.StdEncoding.DecodeString(data)
				if _, _, err := neg.Step(raw); err != nil {
					c.fatalf("server signature rejected: %v", err)
				}
			}
			return el
		default:
			return el
		}
	}
}

// B64 encodes SASL data for the wire ("=" for none).
func B64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// Bind binds a resource ("" lets the server choose) and starts reading.
func (c *Client) Bind(resource string) {
	c.T.Helper()
	c.BindOnly(resource)
	c.StartReading()
}

// BindOnly binds without starting to read.
func (c *Client) BindOnly(resource string) {
	c.T.Helper()
	req := `<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>`
	if resource != "" {
		req += `<resource>` + resource + `</resource>`
	}
	c.Write(req + `</bind></iq>`)
	res := c.NextSync()
	if res.Attr("type") != "result" {
		c.fatalf("bind failed: %s", res)
	}
	c.JID = res.Child("bind", "").ChildText("jid", "")
}

// StartReading moves reads to a goroutine feeding Events, which it closes
// after the event that ends the stream.
func (c *Client) StartReading() {
	c.Events = make(chan Event, cmp.Or(c.events, 1024))
	go func() {
		defer close(c.Events)
		for {
			c.Conn.SetReadDeadline(time.Time{})
			ev, err := c.Parser.Next()
			if err != nil {
				c.Events <- Event{Err: err}
				return
			}
			if ev.Kind == stanza.KindClose {
				c.Events <- Event{Err: io.EOF}
				return
			}
			c.Events <- Event{El: ev.Element}
		}
	}()
}

var rtSeq atomic.Int64

// RoundTrip pings the server and waits for the answer, returning what came
// before it. Everything this client sent earlier has been processed and
// everything enqueued for it before has been read, so it also proves
// absences: what did not arrive before the answer was never sent.
func (c *Client) RoundTrip() []*stanza.Element {
	c.T.Helper()
	id := fmt.Sprintf("rt-%d", rtSeq.Add(1))
	c.Write(`<iq type='get' id='` + id + `'><ping xmlns='urn:xmpp:ping'/></iq>`)
	var before []*stanza.Element
	c.Expect(func(el *stanza.Element) bool {
		if el.Name == "iq" && el.Attr("id") == id {
			return true
		}
		before = append(before, el)
		return false
	})
	return before
}

// Next returns the next element, failing after Wait or at the end of the
// stream.
func (c *Client) Next() *stanza.Element {
	c.T.Helper()
	select {
	case ev, ok := <-c.Events:
		if !ok || ev.Err != nil {
			c.fatalf("stream ended: %v", ev.Err)
		}
		return ev.El
	case <-time.After(Wait):
		c.fatalf("timed out waiting for a stanza")
	}
	return nil
}

// Expect returns the first element matching, skipping others, failing
// after Wait or at the end of the stream.
func (c *Client) Expect(match func(*stanza.Element) bool) *stanza.Element {
	c.T.Helper()
	deadline := time.After(Wait)
	for {
		select {
		case ev, ok := <-c.Events:
			if !ok || ev.Err != nil {
				c.fatalf("stream ended while waiting: %v", ev.Err)
			}
			if match(ev.El) {
				return ev.El
			}
		case <-deadline:
			c.fatalf("timed out waiting for a matching stanza")
		}
	}
}

// Ended waits for the stream to end and returns the stream error condition
// seen before the end ("" if none).
func (c *Client) Ended() string {
	c.T.Helper()
	cond := ""
	deadline := time.After(Wait)
	for {
		select {
		case ev, ok := <-c.Events:
			if !ok || ev.Err != nil {
				return cond
			}
			if ev.El.Name == "error" && ev.El.Space == stanza.NSStream {
				if f := ev.El.FirstElement(); f != nil {
					cond = f.Name
				}
			}
		case <-deadline:
			c.fatalf("timed out waiting for the stream to end")
		}
	}
}

// Survives writes raw and then a ping, and reads synchronously until the
// ping's answer or the end of the stream (for a client that never started
// reading). It fails when neither comes within Wait: the server hung on
// raw. A stream ended by raw is not a failure; the caller judges that.
func (c *Client) Survives(raw string) {
	c.T.Helper()
	c.WriteMayFail(raw + `<iq type='get' id='survives-ping'><ping xmlns='urn:xmpp:ping'/></iq>`)
	c.Conn.SetReadDeadline(time.Now().Add(Wait))
	for {
		ev, err := c.Parser.Next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.fatalf("no answer to a ping sent after %q", raw)
			}
			return // the stream ended
		}
		if ev.Kind == stanza.KindClose || ev.Kind == stanza.KindElement && ev.Element.Attr("id") == "survives-ping" {
			return
		}
	}
}

// StreamErrorOf reads synchronously until the stream ends and returns the
// stream error condition (for clients that never bound).
func (c *Client) StreamErrorOf() string {
	c.T.Helper()
	cond := ""
	for {
		c.Conn.SetReadDeadline(time.Now().Add(Wait))
		ev, err := c.Parser.Next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.fatalf("timed out waiting for the stream to end")
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

// ErrorCondition returns the defined condition of a stanza error ("" if
// el carries none).
func ErrorCondition(el *stanza.Element) string {
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
