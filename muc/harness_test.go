package muc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"chatd/history"
	"chatd/internal/xmpptest"
	"chatd/muc"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

// The harness is internal/xmpptest's; what is here only the muc tests use.

type (
	user   = xmpptest.User
	client = xmpptest.Client
)

// env is a real chatd XMPP server with the MUC service on loopback, over a
// real SQLite store.
type env struct {
	*xmpptest.Env
	muc *muc.Service
}

type envOptions struct {
	muc      muc.Config
	history  history.Config
	plain    bool // no STARTTLS (benchmarks with thousands of clients)
	xmppEdit func(*xmpp.Config)
}

func startEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{}
	e.Env = xmpptest.Start(t, xmpptest.Options{
		Edit:    o.xmppEdit,
		History: o.history,
		Plain:   o.plain,
		Wire: func(srv *xmpp.Server, hist *history.Service) {
			e.muc = muc.New(o.muc, srv, hist, xmpptest.QuietLog())
		},
		ShutdownTimeout: 30 * time.Second,
		Events:          4096,
	})
	return e
}

// roomJID returns the room of a dialog.
func (e *env) roomJID(d *history.Dialog) string { return xmpp.RoomJID(d, xmpptest.Domain).String() }

// group creates a group dialog over the history service, as REST does.
func (e *env) group(owner user, name string, joinRequired bool, others ...user) *history.Dialog {
	e.T.Helper()
	ids := make([]int64, len(others))
	for i, o := range others {
		ids[i] = o.Ref.User
	}
	d, _, err := e.History.CreateDialog(context.Background(), owner.Ref.App, owner.Ref.User, history.DialogInput{
		Type: history.Group, Name: name, Occupants: ids, JoinRequired: &joinRequired})
	if err != nil {
		e.T.Fatal(err)
	}
	return d
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
		r.users[n] = e.NewUser(n)
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
		c = r.e.Online(u, res)
		c.Name = name
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
	a.c.T.Helper()
	a.c.Write(a.r.expand(xml))
	return a
}

// Expect waits for a stanza matching every condition, skipping others.
func (a *actor) Expect(conds ...cond) *stanza.Element {
	a.c.T.Helper()
	return a.c.Expect(func(el *stanza.Element) bool { return matches(el, conds) })
}

// Next requires the very next stanza to match.
func (a *actor) Next(conds ...cond) *stanza.Element {
	a.c.T.Helper()
	el := a.c.Next()
	if !matches(el, conds) {
		a.c.T.Fatalf("%s: next stanza %s does not match %s", a.c.Name, el, describe(conds))
	}
	return el
}

// Sync waits until everything sent so far was processed and returns what
// arrived meanwhile.
func (a *actor) Sync() []*stanza.Element {
	a.c.T.Helper()
	return a.c.RoundTrip()
}

// None syncs and fails if anything matching arrived.
func (a *actor) None(conds ...cond) {
	a.c.T.Helper()
	for _, el := range a.c.RoundTrip() {
		if matches(el, conds) {
			a.c.T.Fatalf("%s: unexpected %s", a.c.Name, el)
		}
	}
}

func (r *runner) expand(s string) string {
	for n, u := range r.users {
		s = strings.ReplaceAll(s, "{"+n+"}", u.JID)
		s = strings.ReplaceAll(s, "{"+n+".id}", u.ID)
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
		return el.Attr("type") == "error" && xmpptest.ErrorCondition(el) == condition
	}}
}

func presence(from string) []cond { return []cond{name("presence"), attr("from", from)} }

func extra(el *stanza.Element, n string) string {
	x := el.Child("extraParams", "jabber:client")
	if x == nil {
		return ""
	}
	return x.ChildText(n, "")
}

const (
	nsMUC     = "http://jabber.org/protocol/muc"
	nsMUCUser = "http://jabber.org/protocol/muc#user"
)

func mucConfig(maxBroadcast int) muc.Config { return muc.Config{MaxBroadcastOccupants: maxBroadcast} }
