package xmpp_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"chatd/internal/xmpptest"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

// authOnly connects, authenticates and restarts the stream, ready to bind
// or resume.
func (e *env) authOnly(u user) (*client, *stanza.Element) {
	e.T.Helper()
	c := e.RawDial()
	c.Open()
	c.StartTLS()
	c.Open()
	if r := c.Auth(sasl.Plain, fmt.Sprintf("%d-%d", u.Ref.User, u.Ref.App), u.Password); r.Name != "success" {
		e.T.Fatalf("auth: %s", r)
	}
	f := c.Open()
	return c, f
}

// resumable logs u in as resource, enables stream management with
// resumption and sends initial presence; it returns the client, reading,
// and the <enabled/> answer.
func (e *env) resumable(u user, resource string) (*client, *stanza.Element) {
	e.T.Helper()
	c, _ := e.authOnly(u)
	c.BindOnly(resource)
	c.Write(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
	c.StartReading()
	en := c.Expect(func(el *stanza.Element) bool { return el.Name == "enabled" })
	c.Write(`<presence/>`)
	c.RoundTrip()
	return c, en
}

func isStanza(el *stanza.Element) bool {
	return el.Space == "jabber:client" && (el.Name == "message" || el.Name == "presence" || el.Name == "iq")
}

func TestStreamManagementCounting(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) { c.SMAckEvery = 3 })
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	c, f := e.authOnly(alice)
	if f.Child("sm", "urn:xmpp:sm:3") == nil {
		t.Fatalf("no sm feature after auth: %s", f)
	}
	c.Bind("sm")
	c.Write(`<enable xmlns='urn:xmpp:sm:3'/>`)
	en := c.Expect(func(el *stanza.Element) bool { return el.Name == "enabled" })
	if en.HasAttr("id") || en.HasAttr("resume") {
		t.Errorf("enable without resume answered %s", en)
	}
	// Three client stanzas, then <r/>: h=3.
	c.Write(`<presence/>`)
	c.Write(`<iq type='get' id='i1'><ping xmlns='urn:xmpp:ping'/></iq>`)
	c.Write(`<iq type='get' id='i2'><ping xmlns='urn:xmpp:ping'/></iq>`)
	c.Write(`<r xmlns='urn:xmpp:sm:3'/>`)
	if a := c.Expect(func(el *stanza.Element) bool { return el.Name == "a" }); a.Attr("h") != "3" {
		t.Errorf("ack %s, want h=3", a)
	}
	// The server asks for an ack after three stanzas of its own.
	b := e.Online(bob, "b")
	for i := range 3 {
		b.Write(fmt.Sprintf(`<message to='%s' type='chat'><body>m%d</body></message>`, alice.JID, i))
	}
	msgs, asks := 0, 0
	for msgs < 3 || asks == 0 {
		el := c.Next()
		switch {
		case el.Name == "message":
			msgs++
		case el.Name == "r" && el.Space == "urn:xmpp:sm:3":
			asks++
		}
	}
	// Enabling twice fails.
	c.Write(`<enable xmlns='urn:xmpp:sm:3'/>`)
	if f := c.Expect(func(el *stanza.Element) bool { return el.Name == "failed" }); f.Child("unexpected-request", "") == nil {
		t.Errorf("second enable answered %s", f)
	}
}

// smClient counts what it receives, as a resuming client must.
type smClient struct {
	*client
	h      int
	id     string
	bodies []string
}

func (c *smClient) pump(until func(*stanza.Element) bool) *stanza.Element {
	c.T.Helper()
	for {
		el := c.Next()
		if isStanza(el) {
			c.h++
			if el.Name == "message" {
				c.bodies = append(c.bodies, el.ChildText("body", ""))
			}
		}
		if el.Name == "r" && el.Space == "urn:xmpp:sm:3" {
			c.Write(`<a xmlns='urn:xmpp:sm:3' h='` + strconv.Itoa(c.h) + `'/>`)
		}
		if until(el) {
			return el
		}
	}
}

func TestStreamResumption(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	c, _ := e.authOnly(alice)
	c.Bind("phone")
	a := &smClient{client: c}
	a.Write(`<enable xmlns='urn:xmpp:sm:3' resume='true' max='60'/>`)
	en := a.pump(func(el *stanza.Element) bool { return el.Name == "enabled" })
	a.id = en.Attr("id")
	if a.id == "" || en.Attr("resume") != "true" || en.Attr("max") != "60" {
		t.Fatalf("enabled %s", en)
	}
	a.Write(`<presence/>`)
	a.Write(`<iq type='get' id='p0'><ping xmlns='urn:xmpp:ping'/></iq>`)
	a.pump(func(el *stanza.Element) bool { return el.Attr("id") == "p0" })

	b := e.Online(bob, "b")
	for i := range 3 {
		b.Write(fmt.Sprintf(`<message to='%s' type='chat' id='m%d'><body>m%d</body></message>`, alice.JID, i, i))
	}
	a.pump(func(el *stanza.Element) bool { return el.ChildText("body", "") == "m2" })
	// The connection dies without a goodbye; the client has handled h
	// stanzas but the server has no ack for the messages yet.
	handled := a.h
	a.Conn.Close()
	waitFor(t, func() bool { return e.Server.Stats().Detached == 1 })
	// Messages sent while the connection is gone wait for it.
	for i := 3; i < 6; i++ {
		b.Write(fmt.Sprintf(`<message to='%s' type='chat' id='m%d'><body>m%d</body></message>`, alice.JID, i, i))
	}
	b.RoundTrip()
	// The presence stays: bob saw no unavailable from alice.
	c2, f := e.authOnly(alice)
	if f.Child("sm", "urn:xmpp:sm:3") == nil {
		t.Fatal("no sm feature on the new stream")
	}
	c2.Write(`<resume xmlns='urn:xmpp:sm:3' previd='` + a.id + `' h='` + strconv.Itoa(handled) + `'/>`)
	c2.StartReading()
	a2 := &smClient{client: c2, h: handled}
	r := a2.pump(func(el *stanza.Element) bool { return el.Name == "resumed" || el.Name == "failed" })
	if r.Name != "resumed" || r.Attr("previd") != a.id || r.Attr("h") != "2" {
		t.Fatalf("resume answered %s (want h=2: presence and ping)", r)
	}
	a2.pump(func(el *stanza.Element) bool { return el.ChildText("body", "") == "m5" })
	if got := fmt.Sprint(a2.bodies); got != "[m3 m4 m5]" {
		t.Errorf("after resuming got %s, want exactly the three queued messages", got)
	}
	// The resumed session works both ways.
	a2.Write(`<message to='` + bob.JID + `' type='chat'><body>back online</body></message>`)
	b.Expect(isMessage("back online"))
	if s := e.Server.Stats(); s.Resumed != 1 {
		t.Errorf("stats %+v", s)
	}
	// bob never saw alice go unavailable.
	b.Write(`<iq type='get' id='chk'><ping xmlns='urn:xmpp:ping'/></iq>`)
	for el := b.Next(); el.Attr("id") != "chk"; el = b.Next() {
		if el.Name == "presence" && el.Attr("type") == "unavailable" {
			t.Fatalf("bob saw %s during the resumption", el)
		}
	}
}

// When nobody resumes, the unacknowledged messages go to offline storage
// with their ids and arrive at the next login.
func TestResumptionWindowEnds(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) { c.SMResumeWindow = 200 * time.Millisecond })
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	c, en := e.resumable(alice, "phone")
	b := e.Online(bob, "b")
	b.Write(`<message to='` + alice.JID + `' type='chat' id='lost1'><body>unacked</body></message>`)
	c.Expect(isMessage("unacked"))
	c.Conn.Close() // never acked
	waitFor(t, func() bool { return len(e.Server.Sessions(alice.Ref)) == 0 })
	b.Write(`<message to='` + alice.JID + `' type='chat' id='lost2'><body>after</body></message>`)
	b.RoundTrip()
	// Someone else's resume attempt fails and learns nothing.
	carol := e.NewUser("carol")
	c3, _ := e.authOnly(carol)
	c3.Write(`<resume xmlns='urn:xmpp:sm:3' previd='` + en.Attr("id") + `' h='0'/>`)
	if f := c3.NextSync(); f.Name != "failed" || f.Child("item-not-found", "") == nil || f.HasAttr("h") {
		t.Fatalf("another user's resume answered %s", f)
	}
	// Alice's resume attempt now fails, telling her how many of her
	// stanzas were handled (XEP-0198 §5): her presence and her ping; bind
	// works.
	c2, _ := e.authOnly(alice)
	c2.Write(`<resume xmlns='urn:xmpp:sm:3' previd='` + en.Attr("id") + `' h='0'/>`)
	if f := c2.NextSync(); f.Name != "failed" || f.Child("item-not-found", "") == nil || f.Attr("h") != "2" {
		t.Fatalf("stale resume answered %s, want failed with h='2'", f)
	}
	c2.Bind("again")
	c2.Write(`<presence/>`)
	first := c2.Expect(func(el *stanza.Element) bool { return el.Name == "message" })
	second := c2.Expect(func(el *stanza.Element) bool { return el.Name == "message" })
	if first.Attr("id") != "lost1" || second.Attr("id") != "lost2" || first.Child("delay", "urn:xmpp:delay") == nil {
		t.Errorf("after the window: %s then %s", first, second)
	}
}

// The QuickBlox browser SDK enables stream management without resume and
// never counts what it receives: the server must not take that as loss,
// overflow, or duplicate anything when the stream ends.
func TestStreamManagementQuickBloxStyle(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) { c.SMAckEvery = 2; c.MaxQueueBytes = 128 << 10 })
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	c, _ := e.authOnly(alice)
	c.BindOnly("browser")
	c.Write(`<enable xmlns='urn:xmpp:sm:3'/>`)
	c.StartReading()
	c.Expect(func(el *stanza.Element) bool { return el.Name == "enabled" })
	c.Write(`<presence/>`)
	b := e.Online(bob, "b")
	big := fmt.Sprintf("%01000d", 0)
	got := 0
	for round := range 8 { // 400 KB in all: more than the queue bound, were acks awaited
		for i := range 50 {
			b.Write(fmt.Sprintf(`<message to='%s' type='chat'><body>%d-%d %s</body></message>`, alice.JID, round, i, big))
		}
		for got < 50*(round+1) {
			el := c.Next()
			if el.Name == "r" {
				c.Write(`<a xmlns='urn:xmpp:sm:3' h='0'/>`) // miscounted, as the SDK does
			}
			if el.Name == "message" {
				got++
			}
		}
	}
	c.Write(`</stream:stream>`)
	c.Ended()
	waitFor(t, func() bool { return len(e.Server.Sessions(alice.Ref)) == 0 })
	// Nothing was put aside for a later login.
	if msgs, err := e.DB.XMPP().OfflineMessages(t.Context(), alice.Ref, 10); err != nil || len(msgs) != 0 {
		t.Errorf("offline after a non-resumable stream: %d %v", len(msgs), err)
	}
}

// waitFor polls cond until it holds, failing after the usual wait.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(xmpptest.Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in time")
		}
		time.Sleep(5 * time.Millisecond) // polling, bounded by the deadline
	}
}

// A message to the bare JID that a resource ends without acknowledging goes
// to the user's resources that came online after it was sent, and not
// again to those that got it with that resource.
func TestUnackedGoToResourcesThatMissedThem(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) { c.SMResumeWindow = 200 * time.Millisecond })
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	phone, _ := e.resumable(alice, "phone")
	b := e.Online(bob, "b")
	b.Write(`<message to='` + alice.JID + `' type='chat' id='early'><body>before the desk</body></message>`)
	phone.Expect(isMessage("before the desk"))
	desk := e.Online(alice, "desk")
	b.Write(`<message to='` + alice.JID + `' type='chat' id='both'><body>to both</body></message>`)
	phone.Expect(isMessage("to both"))
	desk.Expect(isMessage("to both"))
	phone.Conn.Close() // never acked either
	waitFor(t, func() bool { return len(e.Server.Sessions(alice.Ref)) == 1 })
	desk.Expect(isMessage("before the desk"))
	for _, el := range desk.RoundTrip() {
		if el.Name == "message" {
			t.Errorf("the desk got %s again", el)
		}
	}
}

// A resume (or an ack) with an h below an earlier ack acknowledges nothing:
// every stanza not acknowledged before is sent again, in order (the wrapped
// difference had thrown them all away; found in audit).
func TestResumeWithOldHResendsUnacked(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) { c.SMAckEvery = 1000; c.SMAckInterval = time.Hour })
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	c, _ := e.authOnly(alice)
	c.Bind("phone")
	a := &smClient{client: c}
	a.Write(`<enable xmlns='urn:xmpp:sm:3' resume='true' max='60'/>`)
	en := a.pump(func(el *stanza.Element) bool { return el.Name == "enabled" })
	a.id = en.Attr("id")
	a.Write(`<presence/>`)
	a.Write(`<iq type='get' id='p0'><ping xmlns='urn:xmpp:ping'/></iq>`)
	a.pump(func(el *stanza.Element) bool { return el.Attr("id") == "p0" })
	b := e.Online(bob, "b")
	b.Write(`<message to='` + alice.JID + `' type='chat' id='m0'><body>m0</body></message>`)
	a.pump(func(el *stanza.Element) bool { return el.ChildText("body", "") == "m0" })
	acked := a.h
	a.Write(`<a xmlns='urn:xmpp:sm:3' h='` + strconv.Itoa(acked) + `'/>`)
	b.Write(`<message to='` + alice.JID + `' type='chat' id='m1'><body>m1</body></message>`)
	b.Write(`<message to='` + alice.JID + `' type='chat' id='m2'><body>m2</body></message>`)
	a.pump(func(el *stanza.Element) bool { return el.ChildText("body", "") == "m2" })
	a.Conn.Close()
	waitFor(t, func() bool { return e.Server.Stats().Detached == 1 })

	c2, _ := e.authOnly(alice)
	stale := acked - 1 // a client restored from an older checkpoint
	c2.Write(`<resume xmlns='urn:xmpp:sm:3' previd='` + a.id + `' h='` + strconv.Itoa(stale) + `'/>`)
	c2.StartReading()
	a2 := &smClient{client: c2, h: stale}
	r := a2.pump(func(el *stanza.Element) bool { return el.Name == "resumed" || el.Name == "failed" })
	if r.Name != "resumed" {
		t.Fatalf("resume with h=%d after an ack of h=%d: %s", stale, acked, r)
	}
	a2.Write(`<iq type='get' id='chk'><ping xmlns='urn:xmpp:ping'/></iq>`)
	a2.pump(func(el *stanza.Element) bool { return el.Attr("id") == "chk" })
	if got := fmt.Sprint(a2.bodies); got != "[m1 m2]" {
		t.Fatalf("resumed (%s) with h=%d after an ack of h=%d: re-sent %s, want [m1 m2] (never acknowledged)", r, stale, acked, got)
	}
}

// msgIDs returns the ids of the messages among els.
func msgIDs(els []*stanza.Element) []string {
	var out []string
	for _, el := range els {
		if el.Name == "message" {
			out = append(out, el.Attr("id"))
		}
	}
	return out
}

// A message a resumable session never acknowledged, whose window ends
// unresumed while the user's only other resource has a negative priority,
// is stored offline (that resource takes no message to the bare JID), and
// reaches the user's next login (it had been lost; found in audit).
func TestRescueSkipsNegativePriority(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) { c.SMResumeWindow = 300 * time.Millisecond })
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	phone, _ := e.resumable(alice, "phone")
	desk := e.Login(alice, "desk")
	desk.Write(`<presence><priority>-1</priority></presence>`)
	desk.RoundTrip()
	b := e.Online(bob, "b")
	b.Write(`<message to='` + alice.JID + `' type='chat' id='neg1'><body>to the phone only</body></message>`)
	phone.Expect(isMessage("to the phone only"))
	phone.Conn.Close() // never acknowledged: the window ends unresumed
	waitFor(t, func() bool { return len(e.Server.Sessions(alice.Ref)) == 1 })
	if ids := msgIDs(desk.RoundTrip()); len(ids) > 0 {
		t.Errorf("the priority -1 resource got %v", ids)
	}
	desk.Write(`</stream:stream>`)
	desk.Ended()
	waitFor(t, func() bool { return len(e.Server.Sessions(alice.Ref)) == 0 })
	again := e.Login(alice, "again")
	again.Write(`<presence/>`)
	if ids := msgIDs(again.RoundTrip()); !slices.Equal(ids, []string{"neg1"}) {
		t.Errorf("the next login got %v, want [neg1] from offline storage", ids)
	}
}

// A client that reconnects binding its usual resource instead of resuming
// (an app that restarted and lost its stream management id) gets what the
// replaced session never acknowledged (it had been lost; found in audit).
func TestRebindSameResourceKeepsUnacked(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) { c.SMResumeWindow = time.Minute })
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	phone, _ := e.resumable(alice, "phone")
	b := e.Online(bob, "b")
	b.Write(`<message to='` + alice.JID + `' type='chat' id='r1'><body>in flight</body></message>`)
	phone.Expect(isMessage("in flight"))
	phone.Conn.Close() // never acknowledged
	waitFor(t, func() bool { return e.Server.Stats().Detached == 1 })
	again := e.Login(alice, "phone")
	again.Write(`<presence/>`)
	again.Expect(isMessage("in flight"))
	waitFor(t, func() bool { return len(e.Server.Sessions(alice.Ref)) == 1 })
	if ids := msgIDs(again.RoundTrip()); len(ids) > 0 {
		t.Errorf("then also %v", ids)
	}
}

// Messages queued for a session waiting for resumption are not lost when
// its queue overflows: the session ends, and they reach offline storage
// with those that came after (they had been dropped; found in audit).
func TestDetachedOverflowKeepsMessages(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) {
		c.SMResumeWindow = time.Minute
		c.MaxQueueBytes = 16 << 10
		c.StanzaRate, c.StanzaBurst = 10000, 10000
	})
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	c, _ := e.resumable(alice, "phone")
	c.Conn.Close()
	waitFor(t, func() bool { return e.Server.Stats().Detached == 1 })
	b := e.Online(bob, "b")
	big := strings.Repeat("x", 1000)
	const n = 30 // 30 KB: more than the 16 KB queue
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("q%d", i))
		b.Write(fmt.Sprintf(`<message to='%s' type='chat' id='q%d'><body>%d %s</body></message>`, alice.JID, i, i, big))
	}
	for _, el := range b.RoundTrip() {
		if el.Name == "message" && el.Attr("type") == "error" {
			t.Errorf("bob got %s", el)
		}
	}
	nextLoginGetsEachOnce(t, e, alice, want)
}

// Stanzas written but never acknowledged count against the session's queue
// bound, so a client that reads but never acks cannot make the server hold
// without limit: once it has held more than the bound for two ack requests'
// time, its session ends with policy-violation, and every message it did
// not acknowledge reaches offline storage, once each (found in audit).
func TestUnackedCountAgainstQueueBound(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) {
		c.MaxQueueBytes = 16 << 10
		c.SMAckInterval = 5 * time.Millisecond
		c.StanzaRate, c.StanzaBurst = 10000, 10000
	})
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	c, _ := e.resumable(alice, "phone")
	b := e.Online(bob, "b")
	big := strings.Repeat("x", 1000)
	var (
		want      []string
		streamErr *stanza.Element
	)
	// One at a time, each read before the next is sent (the queue itself
	// never holds more than one), until the server gives up: bounded by
	// 1,000 messages, 1 MB, far past the 16 KB bound.
	for i := 0; streamErr == nil && i < 1000; i++ {
		id := fmt.Sprintf("u%d", i)
		want = append(want, id)
		b.Write(fmt.Sprintf(`<message to='%s' type='chat' id='%s'><body>%d %s</body></message>`, alice.JID, id, i, big))
		if el := c.Expect(func(el *stanza.Element) bool {
			return el.Attr("id") == id || (el.Name == "error" && el.Space == "http://etherx.jabber.org/streams")
		}); el.Name == "error" {
			streamErr = el
		}
	}
	if streamErr == nil {
		t.Fatal("the session that never acks got every message")
	}
	if streamErr.Child("policy-violation", "") == nil {
		t.Errorf("the session that never acks ended with %s, want policy-violation", streamErr)
	}
	for _, el := range b.RoundTrip() {
		if el.Name == "message" && el.Attr("type") == "error" {
			t.Errorf("bob got %s", el)
		}
	}
	nextLoginGetsEachOnce(t, e, alice, want)
}

// nextLoginGetsEachOnce waits until u has no session, logs u in and checks
// that the offline messages it gets are want (ids numbered after a common
// prefix), each once, in whatever order.
func nextLoginGetsEachOnce(t *testing.T, e *env, u user, want []string) {
	t.Helper()
	waitFor(t, func() bool { return len(e.Server.Sessions(u.Ref)) == 0 })
	again := e.Login(u, "again")
	again.Write(`<presence/>`)
	got := msgIDs(again.RoundTrip())
	sorted := slices.Clone(got)
	slices.SortStableFunc(sorted, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	if !slices.Equal(sorted, want) {
		t.Errorf("the next login got %d messages %v, want each of the %d sent once", len(got), got, len(want))
	}
}

// A resumable session that is delivered an offline backlog larger than the
// queue bound keeps going: it cannot acknowledge what it gets until the
// delivery is over, since its acks are read afterwards.
func TestLargeBacklogToResumableSession(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) {
		c.MaxQueueBytes = 16 << 10
		c.SMAckInterval = 5 * time.Millisecond
		c.StanzaRate, c.StanzaBurst = 10000, 10000
	})
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	c, _ := e.resumable(alice, "phone")
	c.Write(`<presence><priority>-1</priority></presence>`)
	c.RoundTrip()
	b := e.Online(bob, "b")
	big := strings.Repeat("x", 1000)
	var want []string
	for i := range 60 { // 60 KB
		id := fmt.Sprintf("b%d", i)
		want = append(want, id)
		b.Write(fmt.Sprintf(`<message to='%s' type='chat' id='%s'><body>%d %s</body></message>`, alice.JID, id, i, big))
	}
	b.RoundTrip()
	// Raising the priority delivers the backlog; the client acks what the
	// server asks as it reads.
	c.Write(`<presence><priority>5</priority></presence>`)
	var got []string
	for len(got) < len(want) {
		el := c.Next()
		switch {
		case el.Name == "r":
			c.Write(fmt.Sprintf(`<a xmlns='urn:xmpp:sm:3' h='%d'/>`, len(got)))
		case el.Name == "message":
			got = append(got, el.Attr("id"))
		case el.Name == "error":
			t.Fatalf("the session ended: %s", el)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	b.Write(`<message to='` + alice.JID + `' type='chat' id='after'><body>after</body></message>`)
	c.Expect(func(el *stanza.Element) bool {
		if el.Name == "r" {
			c.Write(fmt.Sprintf(`<a xmlns='urn:xmpp:sm:3' h='%d'/>`, len(got)))
		}
		if el.Name == "error" {
			t.Fatalf("the session ended: %s", el)
		}
		return el.Attr("id") == "after"
	})
}

// An unacknowledged message that offline storage cannot take any more (the
// recipient's store is full) bounces to its sender when the session ends
// unresumed, instead of vanishing (found in audit).
func TestRescuePastOfflineLimitBounces(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) { c.SMResumeWindow = 200 * time.Millisecond; c.OfflineLimit = 1 })
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	phone, _ := e.resumable(alice, "phone")
	b := e.Online(bob, "b")
	b.Write(`<message to='` + alice.JID + `' type='chat' id='f1'><body>one</body></message>`)
	b.Write(`<message to='` + alice.JID + `' type='chat' id='f2'><body>two</body></message>`)
	phone.Expect(isMessage("two"))
	phone.Conn.Close() // never acknowledged
	bounce := b.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "f2" })
	if bounce.Attr("type") != "error" || xmpptest.ErrorCondition(bounce) != "service-unavailable" {
		t.Errorf("bob got %s, want a service-unavailable error for f2", bounce)
	}
	waitFor(t, func() bool { return len(e.Server.Sessions(alice.Ref)) == 0 })
	again := e.Login(alice, "again")
	again.Write(`<presence/>`)
	if ids := msgIDs(again.RoundTrip()); !slices.Equal(ids, []string{"f1"}) {
		t.Errorf("alice's next login got %v, want [f1]", ids)
	}
}
