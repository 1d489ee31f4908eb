package xmpp_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"chatd/internal/xmpptest"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

// manyAttrs returns n distinct attributes.
func manyAttrs(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, " b%d=''", i)
	}
	return b.String()
}

// Each robustness case ends the offending stream with the right error while
// another user's session keeps working.
func TestRobustness(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) { c.MaxStanzaBytes = 64 << 10 })
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	witness := e.Online(alice, "witness")
	wb := e.Online(bob, "wb")
	stillServed := func(t *testing.T) {
		t.Helper()
		body := fmt.Sprintf("still there %d", time.Now().UnixNano())
		wb.Write(`<message to='` + alice.JID + `' type='chat'><body>` + body + `</body></message>`)
		witness.Expect(isMessage(body))
	}
	cases := []struct {
		name, send, want string
	}{
		{"malformed XML", `<message><body>unclosed</message>`, "not-well-formed"},
		{"bad character", "<message><body>\x01</body></message>", "not-well-formed"},
		{"restricted XML", `<message><!-- comment --></message>`, "restricted-xml"},
		{"oversized stanza", `<message><body>` + strings.Repeat("x", 1<<20) + `</body></message>`, "policy-violation"},
		{"unknown top-level element", `<foo/>`, "unsupported-stanza-type"},
		{"an element of thousands of attributes", `<message` + manyAttrs(5000) + `/>`, "policy-violation"},
		{"elements nested hundreds deep", `<message>` + strings.Repeat(`<a>`, 500) + strings.Repeat(`</a>`, 500) + `</message>`, "policy-violation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.Login(bob, "victim-"+strings.ReplaceAll(tc.name, " ", "-"))
			c.WriteMayFail(tc.send)
			if got := c.Ended(); got != tc.want {
				t.Errorf("stream error %q, want %q", got, tc.want)
			}
			stillServed(t)
		})
	}
	t.Run("stanza before authentication", func(t *testing.T) {
		c := e.RawDial()
		c.Open()
		c.StartTLS()
		c.Open()
		c.Write(`<message to='` + alice.JID + `'><body>pre-auth</body></message>`)
		if got := c.StreamErrorOf(); got != "not-authorized" {
			t.Errorf("stream error %q, want not-authorized", got)
		}
		// It was never routed: the witness's next message is the check.
		stillServed(t)
	})
	t.Run("stanza before bind", func(t *testing.T) {
		c, _ := e.authOnly(bob)
		c.Write(`<message to='` + alice.JID + `'><body>pre-bind</body></message>`)
		if got := c.StreamErrorOf(); got != "not-authorized" {
			t.Errorf("stream error %q, want not-authorized", got)
		}
		stillServed(t)
	})
	t.Run("SASL before STARTTLS", func(t *testing.T) {
		c := e.RawDial()
		c.Open()
		c.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHB3</auth>`)
		if got := c.StreamErrorOf(); got != "policy-violation" {
			t.Errorf("stream error %q, want policy-violation", got)
		}
	})
	t.Run("wrong host", func(t *testing.T) {
		c := e.RawDial()
		c.Write(`<stream:stream to='example.org' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)
		c.Parser = stanza.NewParser(c.Conn, 1<<20)
		if got := c.StreamErrorOf(); got != "host-unknown" {
			t.Errorf("stream error %q, want host-unknown", got)
		}
	})
	t.Run("wrong namespace", func(t *testing.T) {
		c := e.RawDial()
		c.Write(`<stream:stream to='localhost' version='1.0' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>`)
		c.Parser = stanza.NewParser(c.Conn, 1<<20)
		if got := c.StreamErrorOf(); got != "invalid-namespace" {
			t.Errorf("stream error %q, want invalid-namespace", got)
		}
	})
}

// A client that never reads is closed when its queue overflows; the sender
// and everyone else go on.
func TestSlowConsumerIsCutOff(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) { c.MaxQueueBytes = 256 << 10; c.WriteTimeout = 2 * time.Second; c.ByteRate = -1 })
	alice, bob, carol := e.NewUser("alice"), e.NewUser("bob"), e.NewUser("carol")
	// The slow client binds and sends presence, then never reads again; a
	// small receive buffer makes the kernel push back soon.
	slow := e.LoginNoRead(bob, "slow")
	slow.Write(`<presence/>`)
	a := e.Online(alice, "a")
	c := e.Online(carol, "c")
	a.RoundTrip()
	// More than kernel socket buffers on loopback can absorb (several MB).
	big := strings.Repeat("y", 32<<10)
	for i := range 500 {
		a.Write(fmt.Sprintf(`<message to='%s' type='chat'><body>%d %s</body></message>`, bob.JID, i, big))
	}
	a.Write(`<message to='` + carol.JID + `' type='chat'><body>after the flood</body></message>`)
	c.Expect(isMessage("after the flood"))
	deadline := time.Now().Add(xmpptest.Wait)
	for e.Server.Stats().QueueOverflows == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no overflow counted; stats %+v", e.Server.Stats())
		}
		time.Sleep(10 * time.Millisecond) // polling the counter, bounded by the deadline
	}
	a.RoundTrip()
}

// A client that stops reading, with room left in its queue, is closed by
// the write timeout: the writer's deadline holds however often it is
// refreshed while writes still go through.
func TestStalledReaderTimesOut(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) {
		c.MaxQueueBytes = 64 << 20
		c.WriteTimeout = 500 * time.Millisecond
		c.ByteRate = -1
	})
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	stalled := e.LoginNoRead(bob, "stalled")
	stalled.Write(`<presence/>`)
	a := e.Online(alice, "a")
	big := strings.Repeat("z", 32<<10)
	for i := range 300 { // ~10 MB: more than loopback socket buffers hold
		a.Write(fmt.Sprintf(`<message to='%s' type='chat'><body>%d %s</body></message>`, bob.JID, i, big))
	}
	a.RoundTrip()
	deadline := time.Now().Add(xmpptest.Wait)
	for len(e.Server.Sessions(bob.Ref)) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stalled session is still bound")
		}
		time.Sleep(10 * time.Millisecond) // polling, bounded by the deadline
	}
	if got := e.Server.Stats().QueueOverflows; got != 0 {
		t.Errorf("%d queue overflows: the session should have ended on the write timeout", got)
	}
}

// Repeated wrong passwords are answered ever more slowly.
func TestAuthFailuresSlowDown(t *testing.T) {
	const base = 40 * time.Millisecond
	e := startEnv(t, func(c *xmpp.Config) { c.AuthFailureDelay = base })
	bob := e.NewUser("bob")
	c := e.RawDial()
	c.Open()
	c.StartTLS()
	c.Open()
	start := time.Now()
	for range 4 {
		if r := c.Auth(sasl.Plain, fmt.Sprintf("%d-%d", bob.Ref.User, bob.Ref.App), "wrong"); r.Name != "failure" {
			t.Fatalf("wrong password answered %s", r)
		}
	}
	// base + 2base + 4base + 8base at least.
	if took := time.Since(start); took < 15*base {
		t.Errorf("four failures took %v, want at least %v", took, 15*base)
	}
	// The fifth failure ends the stream.
	c.Auth(sasl.Plain, fmt.Sprintf("%d-%d", bob.Ref.User, bob.Ref.App), "wrong")
	if got := c.StreamErrorOf(); got != "policy-violation" {
		t.Errorf("after five failures: %q", got)
	}
}

func TestResourceConflictReplaces(t *testing.T) {
	e := startEnv(t, nil)
	alice := e.NewUser("alice")
	old := e.Online(alice, "same")
	fresh := e.Online(alice, "same")
	if got := old.Ended(); got != "conflict" {
		t.Errorf("old session ended with %q, want conflict", got)
	}
	fresh.RoundTrip()
}

func TestResourceConflictRejects(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) { c.ResourceConflict = "reject" })
	alice := e.NewUser("alice")
	e.Online(alice, "same")
	c, _ := e.authOnly(alice)
	c.Write(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>same</resource></bind></iq>`)
	if r := c.NextSync(); xmpptest.ErrorCondition(r) != "conflict" {
		t.Errorf("second bind answered %s", r)
	}
}

// A user may have MaxSessionsPerUser sessions at once: binding one more is
// refused with <resource-constraint/> (type wait), while taking over one of
// its resources, or binding after one ended, works.
func TestMaxSessionsPerUser(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) { c.MaxSessionsPerUser = 2 })
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	e.Online(alice, "one")
	two := e.Online(alice, "two")
	bindAs := func(resource string) *stanza.Element {
		c, _ := e.authOnly(alice)
		c.Write(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>` + resource + `</resource></bind></iq>`)
		return c.NextSync()
	}
	r := bindAs("three")
	if xmpptest.ErrorCondition(r) != "resource-constraint" || r.Child("error", "").Attr("type") != "wait" {
		t.Fatalf("a third session answered %s, want a wait/resource-constraint error", r)
	}
	if r := bindAs("one"); r.Attr("type") != "result" {
		t.Fatalf("taking over a resource of the user's answered %s", r)
	}
	e.Online(bob, "b") // other users are not counted with alice
	two.Write(`</stream:stream>`)
	two.Ended()
	deadline := time.Now().Add(xmpptest.Wait)
	for {
		r := bindAs("three")
		if r.Attr("type") == "result" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a session ended, binding still answered %s", r)
		}
		time.Sleep(10 * time.Millisecond) // polling, bounded by the deadline
	}
}

// Direct TLS (XEP-0368) needs no STARTTLS.
func TestDirectTLS(t *testing.T) {
	e := startEnv(t, nil)
	alice := e.NewUser("alice")
	conn, err := tlsDial(e.Server.TLSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := &client{T: t, Conn: conn}
	t.Cleanup(func() { conn.Close() })
	f := c.Open()
	if f.Child("starttls", "") != nil || f.Child("mechanisms", "") == nil {
		t.Fatalf("direct TLS features: %s", f)
	}
	if r := c.Auth(sasl.ScramSha256, fmt.Sprintf("%d-%d", alice.Ref.User, alice.Ref.App), alice.Password); r.Name != "success" {
		t.Fatalf("auth: %s", r)
	}
	c.Open()
	c.Bind("tls")
	c.RoundTrip()
}

// Shutdown tells every session and leaves no goroutine behind.
func TestShutdownLeavesNoGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		e := startEnv(t, nil)
		alice, bob := e.NewUser("alice"), e.NewUser("bob")
		a := e.Online(alice, "a")
		b := e.Online(bob, "b")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Server.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*client{a, b} {
			if got := c.Ended(); got != "system-shutdown" {
				t.Errorf("session ended with %q, want system-shutdown", got)
			}
			c.Conn.Close()
		}
		e.History.Close()
		e.DB.Close()
	}()
	deadline := time.Now().Add(xmpptest.Wait)
	for {
		n := runtime.NumGoroutine()
		if n <= base+2 { // the test's own client readers may still be exiting
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after shutdown, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond) // polling, bounded by the deadline
	}
}

// A session silent past the ping interval is pinged; one that answers stays
// (its reader waits for data at the top of its stack, with the read timeout
// still applied), one that does not is closed.
func TestSilentClientsPinged(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) {
		c.PingInterval = 200 * time.Millisecond
		c.PingTimeout = 300 * time.Millisecond
	})
	answers := e.Login(e.NewUser("answers"), "r")
	silent := e.Login(e.NewUser("silent"), "r")
	isPing := func(el *stanza.Element) bool {
		return el.Name == "iq" && el.Attr("type") == "get" && el.Child("ping", "urn:xmpp:ping") != nil
	}
	for range 3 {
		ping := answers.Expect(isPing)
		answers.Write(`<iq type='result' id='` + ping.Attr("id") + `' to='` + xmpptest.Domain + `'/>`)
	}
	answers.RoundTrip()
	silent.Expect(isPing)
	if cond := silent.Ended(); cond != "connection-timeout" {
		t.Errorf("the silent session ended with %q, want connection-timeout", cond)
	}
}

// An account deleted between authentication and bind cannot bind; one
// deleted after bind loses its session (chatd calls EndUserSessions when a
// user is deleted).
func TestDeletedAccountCannotBind(t *testing.T) {
	e := startEnv(t, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		u     user
		bound bool
	}{{e.NewUser("gone"), false}, {e.NewUser("gone-later"), true}} {
		u, bound := tc.u, tc.bound
		c, _ := e.authOnly(u)
		if bound {
			c.Bind("r")
		}
		if err := e.DB.Accounts().DeleteUser(ctx, u.Ref.App, u.Ref.User); err != nil {
			t.Fatal(err)
		}
		e.Server.EndUserSessions(u.Ref, "the account was deleted")
		if bound {
			if cond := c.Ended(); cond != "not-authorized" {
				t.Errorf("the bound session of a deleted account ended with %q, want not-authorized", cond)
			}
			continue
		}
		c.Write(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>`)
		if cond := c.StreamErrorOf(); cond != "not-authorized" {
			t.Errorf("bind after the account was deleted: stream error %q, want not-authorized", cond)
		}
	}
}

// An address holding its share of connections that have not authenticated
// has the next one refused with <policy-violation/> (a WebSocket upgrade
// with 503, a direct TLS connection closed); authenticating or leaving gives
// the place back, and logged-in sessions are not counted.
func TestUnauthenticatedPerAddress(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) {
		c.MaxUnauthenticatedPerAddress = 2
		c.WebSocketTLS = false
	})
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	witness := e.Online(alice, "witness")
	wb := e.Online(bob, "wb")

	// opens dials and reports whether the server answers the stream header
	// with its features (true) or a stream error (false).
	opens := func() bool {
		t.Helper()
		c := e.RawDial()
		defer c.Conn.Close()
		c.WriteMayFail(`<?xml version='1.0'?><stream:stream to='` + xmpptest.Domain + `' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)
		c.Parser = stanza.NewParser(c.Conn, 1<<20)
		c.Conn.SetReadDeadline(time.Now().Add(xmpptest.Wait))
		if ev, err := c.Parser.Next(); err != nil || ev.Kind != stanza.KindOpen {
			t.Fatalf("no stream header: %v", err)
		}
		switch el := c.NextSync(); {
		case el.Name == "features":
			return true
		case el.Name == "error" && el.Space == stanza.NSStream && el.FirstElement().Name == "policy-violation":
			return false
		default:
			t.Fatalf("unexpected answer: %s", el)
			return false
		}
	}

	silent := e.RawDial() // sends nothing
	half := e.RawDial()
	half.Open() // a stream, no authentication; accepted after silent
	if opens() {
		t.Fatal("a third unauthenticated connection from the address was accepted")
	}
	if got := e.Server.Stats().Refused; got != 1 {
		t.Errorf("connections_refused_total = %d, want 1", got)
	}
	if conn, err := tlsDial(e.Server.TLSAddr().String()); err == nil {
		conn.Close()
		t.Error("a direct TLS connection over the bound completed its handshake")
	}
	resp, err := http.Get("http://" + e.Server.WebSocketAddr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("WebSocket upgrade over the bound: %s, Retry-After %q; want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
	}

	// Logged-in users from the same address are served meanwhile.
	wb.Write(`<message to='` + alice.JID + `' type='chat'><body>still served</body></message>`)
	witness.Expect(isMessage("still served"))

	// Authenticating gives the place back: one more connection is accepted,
	// and then the address is full again.
	half.StartTLS()
	half.Open()
	if r := half.Auth(sasl.Plain, fmt.Sprintf("%d-%d", bob.Ref.User, bob.Ref.App), bob.Password); r.Name != "success" {
		t.Fatalf("auth: %s", r)
	}
	third := e.RawDial()
	third.Open()
	if opens() {
		t.Fatal("the address's places were not all taken again")
	}
	// So does leaving; the server sees the silent connection's end when it
	// reads it, so poll.
	silent.Conn.Close()
	deadline := time.Now().Add(xmpptest.Wait)
	for !opens() {
		if time.Now().After(deadline) {
			t.Fatal("a closed unauthenticated connection kept its place")
		}
		time.Sleep(10 * time.Millisecond) // polling, bounded by the deadline
	}
	witness.Write(`<message to='` + bob.JID + `' type='chat'><body>and after</body></message>`)
	wb.Expect(isMessage("and after"))
}

// Guesses made in parallel for one user are not all checked: while a
// failure's wait runs, another connection's attempt for that user, even
// with the right password (and SCRAM, where the wait is checked before the
// proof), is refused unchecked with <temporary-auth-failure/>; other users
// log in from the same address, and once the wait is over the user does.
func TestParallelGuessesRefused(t *testing.T) {
	const base = 2 * time.Second
	e := startEnv(t, func(c *xmpp.Config) { c.AuthFailureDelay = base })
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	authcid := func(u xmpptest.User) string { return fmt.Sprintf("%d-%d", u.Ref.User, u.Ref.App) }
	open := func() *xmpptest.Client {
		c := e.RawDial()
		c.Open()
		c.StartTLS()
		c.Open()
		return c
	}
	guesser := open()
	guesser.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` +
		xmpptest.B64([]byte("\x00"+authcid(bob)+"\x00wrong")) + `</auth>`)
	deadline := time.Now().Add(xmpptest.Wait)
	for e.Server.Stats().AuthFailures < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the wrong password was not checked")
		}
		time.Sleep(5 * time.Millisecond) // polling the counter, bounded by the deadline
	}
	// The guesser's failure is answered only after base; meanwhile:
	b := open()
	r := b.Auth(sasl.ScramSha256, authcid(bob), bob.Password)
	if r.Name != "failure" || r.FirstElement().Name != "temporary-auth-failure" {
		t.Fatalf("bob's right password during the wait answered %s, want <temporary-auth-failure/>", r)
	}
	if r := open().Auth(sasl.Plain, authcid(alice), alice.Password); r.Name != "success" {
		t.Fatalf("alice, from the same address, answered %s", r)
	}
	if r := guesser.NextSync(); r.Name != "failure" || r.FirstElement().Name != "not-authorized" {
		t.Fatalf("the wrong password answered %s", r)
	}
	// The wait is over once the failure is answered.
	if r := b.Auth(sasl.ScramSha256, authcid(bob), bob.Password); r.Name != "success" {
		t.Fatalf("bob after the wait answered %s", r)
	}
	if got := e.Server.Stats().AuthFailures; got != 1 {
		t.Errorf("auth_failures_total = %d, want 1 (a refusal unchecked is not a failure)", got)
	}
}

// A session sending more bytes per second than ByteRate is slowed down, not
// disconnected: every message arrives, and the server counts the waits.
func TestByteRateSlowsDown(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) {
		c.MaxStanzaBytes = 16 << 10
		c.ByteRate = 32 << 10 // a burst of 64 KiB
	})
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "a")
	b := e.Online(bob, "b")
	body := strings.Repeat("x", 12<<10)
	for i := range 10 { // 120 KiB: past the burst
		a.Write(fmt.Sprintf(`<message to='%s' type='chat' id='m%d'><body>%s</body></message>`, bob.JID, i, body))
	}
	for i := range 10 {
		id := fmt.Sprintf("m%d", i)
		b.Expect(func(el *stanza.Element) bool { return el.Name == "message" && el.Attr("id") == id })
	}
	if got := e.Server.Stats().Throttled; got == 0 {
		t.Error("120 KiB sent at once against a 64 KiB burst was not slowed down")
	}
	a.RoundTrip() // still connected
}
