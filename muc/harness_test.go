package muc_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/sasl"

	"chatd/account"
	"chatd/history"
	"chatd/internal/certs"
	"chatd/muc"
	"chatd/store/sqlite"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

const domain = "localhost"

// env is a real chatd XMPP server with the MUC service on loopback, over a
// real SQLite store.
type env struct {
	t        testing.TB
	srv      *xmpp.Server
	muc      *muc.Service
	accounts *account.Service
	history  *history.Service
	app      *account.Application
	tls      *tls.Config
	plain    bool // no TLS: clients authenticate on the plain stream
}

type envOptions struct {
	muc      muc.Config
	history  history.Config
	plain    bool // no STARTTLS (benchmarks with thousands of clients)
	xmppEdit func(*xmpp.Config)
}

func quietLog() *slog.Logger {
	if os.Getenv("CHATD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
}

func startEnv(t testing.TB, o envOptions) *env {
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
	var tlsCfg *tls.Config
	if !o.plain {
		cert, _, err := certs.SelfSigned([]string{"localhost", "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	cfg := xmpp.Config{
		Domain:           domain,
		Listen:           "127.0.0.1:0",
		RequireTLS:       !o.plain,
		ShutdownWindow:   time.Millisecond,
		AuthFailureDelay: time.Millisecond,
	}
	if o.xmppEdit != nil {
		o.xmppEdit(&cfg)
	}
	srv, err := xmpp.New(cfg, tlsCfg, accounts, db.XMPP(), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	hist := history.NewService(db.History(), accounts, o.history, quietLog())
	srv.SetHistory(hist)
	m := muc.New(o.muc, srv, hist, quietLog())
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, muc: m, accounts: accounts, history: hist, app: app, tls: tlsCfg, plain: o.plain}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
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
	id       string // the user id, the nick in every room
}

func (e *env) newUser(login string) user { return e.newUserIn(e.app.ID, login) }

func (e *env) newUserIn(appID int64, login string) user {
	e.t.Helper()
	pw := "pw-" + login + "-secret"
	u, err := e.accounts.CreateUserAdmin(context.Background(), appID, login, pw)
	if err != nil {
		e.t.Fatal(err)
	}
	ref := xmpp.UserRef{App: appID, User: u.ID}
	return user{ref: ref, password: pw, jid: xmpp.UserJID(ref, domain).String(), id: fmt.Sprint(u.ID)}
}

// roomJID returns the room of a dialog.
func (e *env) roomJID(d *history.Dialog) string { return xmpp.RoomJID(d, domain).String() }

// group creates a group dialog over the history service, as REST does.
func (e *env) group(owner user, name string, joinRequired bool, others ...user) *history.Dialog {
	e.t.Helper()
	ids := make([]int64, len(others))
	for i, o := range others {
		ids[i] = o.ref.User
	}
	d, _, err := e.history.CreateDialog(context.Background(), owner.ref.App, owner.ref.User, history.DialogInput{
		Type: history.Group, Name: name, Occupants: ids, JoinRequired: &joinRequired})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// client is a raw XMPP client over a real socket: tests see exactly what
// goes over the wire.
type client struct {
	t      testing.TB
	name   string
	u      user
	conn   net.Conn
	parser *stanza.Parser
	jid    string // full JID once bound
	events chan clientEvent
}

type clientEvent struct {
	el  *stanza.Element
	err error
}

const wait = 10 * time.Second

func (c *client) write(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("%s: write: %v", c.name, err)
	}
}

func (c *client) open() *stanza.Element {
	c.t.Helper()
	c.write(`<?xml version='1.0'?><stream:stream to='` + domain + `' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)
	c.parser = stanza.NewParser(c.conn, 1<<22)
	c.conn.SetReadDeadline(time.Now().Add(wait))
	ev, err := c.parser.Next()
	if err != nil || ev.Kind != stanza.KindOpen {
		c.t.Fatalf("%s: no stream header: %v", c.name, err)
	}
	f := c.nextSync()
	if f.Name != "features" {
		c.t.Fatalf("%s: expected features, got %s", c.name, f)
	}
	return f
}

func (c *client) nextSync() *stanza.Element {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(wait))
	ev, err := c.parser.Next()
	if err != nil || ev.Kind != stanza.KindElement {
		c.t.Fatalf("%s: read: %v", c.name, err)
	}
	return ev.Element
}

// dial connects, authenticates with PLAIN and binds a resource, without
// starting to read.
func (e *env) dial(u user, resource string) *client {
	e.t.Helper()
	conn, err := net.DialTimeout("tcp", e.srv.TCPAddr().String(), wait)
	if err != nil {
		e.t.Fatal(err)
	}
	c := &client{t: e.t, u: u, conn: conn, name: u.id + "/" + resource}
	e.t.Cleanup(func() { c.conn.Close() })
	c.open()
	if !e.plain {
		c.write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
		if p := c.nextSync(); p.Name != "proceed" {
			e.t.Fatalf("starttls: %s", p)
		}
		tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			e.t.Fatal(err)
		}
		c.conn = tc
		c.open()
	}
	neg := sasl.NewClient(sasl.Plain, sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(fmt.Sprintf("%d-%d", u.ref.User, u.ref.App)), []byte(u.password), nil
	}))
	_, resp, _ := neg.Step(nil)
	c.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + b64(resp) + `</auth>`)
	if r := c.nextSync(); r.Name != "success" {
		e.t.Fatalf("login failed: %s", r)
	}
	c.open()
	req := `<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>`
	if resource != "" {
		req += `<resource>` + resource + `</resource>`
	}
	c.write(req + `</bind></iq>`)
	res := c.nextSync()
	if res.Attr("type") != "result" {
		e.t.Fatalf("bind failed: %s", res)
	}
	c.jid = res.Child("bind", "").ChildText("jid", "")
	return c
}

// online logs in, starts reading, sends initial presence and waits until
// the server processed it.
func (e *env) online(u user, resource string) *client {
	e.t.Helper()
	c := e.dial(u, resource)
	c.startReading()
	c.write(`<presence/>`)
	c.roundTrip()
	return c
}

func (c *client) startReading() {
	c.events = make(chan clientEvent, 4096)
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

var rtSeq atomic.Int64

// roundTrip pings the server and waits for the answer, discarding what
// comes before it. Everything this client sent earlier has been processed
// and everything enqueued for it before has been read, so it also proves
// absences: what did not arrive before the answer was never sent.
func (c *client) roundTrip() []*stanza.Element {
	c.t.Helper()
	id := fmt.Sprintf("rt-%d", rtSeq.Add(1))
	c.write(`<iq type='get' id='` + id + `'><ping xmlns='urn:xmpp:ping'/></iq>`)
	var before []*stanza.Element
	c.expectFn(func(el *stanza.Element) bool {
		if el.Name == "iq" && el.Attr("id") == id {
			return true
		}
		before = append(before, el)
		return false
	})
	return before
}

// next returns the next element.
func (c *client) next() *stanza.Element {
	c.t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok || ev.err != nil {
			c.t.Fatalf("%s: stream ended: %v", c.name, ev.err)
		}
		return ev.el
	case <-time.After(wait):
		c.t.Fatalf("%s: timed out waiting for a stanza", c.name)
	}
	return nil
}

func (c *client) expectFn(match func(*stanza.Element) bool) *stanza.Element {
	c.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok || ev.err != nil {
				c.t.Fatalf("%s: stream ended while waiting: %v", c.name, ev.err)
			}
			if match(ev.el) {
				return ev.el
			}
		case <-deadline:
			c.t.Fatalf("%s: timed out waiting for a matching stanza", c.name)
		}
	}
}

// runner is a small scenario runner: r.As("alice").Send(...), then
// r.As("bob").Expect(...), with bounded waits.
type runner struct {
	t       *testing.T
	e       *env
	users   map[string]user
	clients map[string]*client
}

func newRunner(t *testing.T, e *env, names ...string) *runner {
	r := &runner{t: t, e: e, users: map[string]user{}, clients: map[string]*client{}}
	for _, n := range names {
		r.users[n] = e.newUser(n)
	}
	return r
}

// U returns a user by name.
func (r *runner) U(name string) user { return r.users[name] }

// As returns the client of a user (name, or name/resource for more than
// one), connected and available on first use.
func (r *runner) As(name string) *actor {
	c := r.clients[name]
	if c == nil {
		base, res, _ := strings.Cut(name, "/")
		if res == "" {
			res = "r1"
		}
		u, ok := r.users[base]
		if !ok {
			r.t.Fatalf("no user %q", base)
		}
		c = r.e.online(u, res)
		c.name = name
		r.clients[name] = c
	}
	return &actor{c: c, r: r}
}

type actor struct {
	c *client
	r *runner
}

// Send writes raw XML; {alice} in it becomes alice's bare JID, {alice.id}
// her user id.
func (a *actor) Send(xml string) *actor {
	a.c.t.Helper()
	a.c.write(a.r.expand(xml))
	return a
}

// Expect waits for a stanza matching every condition, skipping others.
func (a *actor) Expect(conds ...cond) *stanza.Element {
	a.c.t.Helper()
	return a.c.expectFn(func(el *stanza.Element) bool { return matches(el, conds) })
}

// Next requires the very next stanza to match.
func (a *actor) Next(conds ...cond) *stanza.Element {
	a.c.t.Helper()
	el := a.c.next()
	if !matches(el, conds) {
		a.c.t.Fatalf("%s: next stanza %s does not match %s", a.c.name, el, describe(conds))
	}
	return el
}

// Sync waits until everything sent so far was processed and returns what
// arrived meanwhile.
func (a *actor) Sync() []*stanza.Element {
	a.c.t.Helper()
	return a.c.roundTrip()
}

// None syncs and fails if anything matching arrived.
func (a *actor) None(conds ...cond) {
	a.c.t.Helper()
	for _, el := range a.c.roundTrip() {
		if matches(el, conds) {
			a.c.t.Fatalf("%s: unexpected %s", a.c.name, el)
		}
	}
}

func (r *runner) expand(s string) string {
	for n, u := range r.users {
		s = strings.ReplaceAll(s, "{"+n+"}", u.jid)
		s = strings.ReplaceAll(s, "{"+n+".id}", u.id)
	}
	return s
}

// cond is one condition on a stanza.
type cond struct {
	desc string
	fn   func(*stanza.Element) bool
}

func matches(el *stanza.Element, conds []cond) bool {
	for _, c := range conds {
		if !c.fn(el) {
			return false
		}
	}
	return true
}

func describe(conds []cond) string {
	var parts []string
	for _, c := range conds {
		parts = append(parts, c.desc)
	}
	return strings.Join(parts, " & ")
}

func name(n string) cond {
	return cond{"<" + n + ">", func(el *stanza.Element) bool { return el.Name == n }}
}

func attr(k, v string) cond {
	return cond{k + "=" + v, func(el *stanza.Element) bool { return el.Attr(k) == v }}
}

func noAttr(k string) cond {
	return cond{"no " + k, func(el *stanza.Element) bool { return !el.HasAttr(k) }}
}

func body(b string) cond {
	return cond{"body " + b, func(el *stanza.Element) bool { return el.ChildText("body", "") == b }}
}

func hasChild(n, ns string) cond {
	return cond{"child " + n, func(el *stanza.Element) bool { return el.Child(n, ns) != nil }}
}

// codes matches the exact set of muc#user status codes, in order.
func codes(want ...string) cond {
	return cond{"status " + strings.Join(want, ","), func(el *stanza.Element) bool {
		return strings.Join(statusCodes(el), ",") == strings.Join(want, ",")
	}}
}

func statusCodes(el *stanza.Element) []string {
	x := el.Child("x", nsMUCUser)
	if x == nil {
		return nil
	}
	var out []string
	for _, c := range x.Elements() {
		if c.Name == "status" {
			out = append(out, c.Attr("code"))
		}
	}
	return out
}

func errCond(condition string) cond {
	return cond{"error " + condition, func(el *stanza.Element) bool {
		return el.Attr("type") == "error" && errorCondition(el) == condition
	}}
}

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

func presence(from string) []cond { return []cond{name("presence"), attr("from", from)} }

func extra(el *stanza.Element, n string) string {
	x := el.Child("extraParams", "jabber:client")
	if x == nil {
		return ""
	}
	return x.ChildText(n, "")
}

func b64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

const (
	nsMUC     = "http://jabber.org/protocol/muc"
	nsMUCUser = "http://jabber.org/protocol/muc#user"
)

func mucConfig(maxBroadcast int) muc.Config { return muc.Config{MaxBroadcastOccupants: maxBroadcast} }
