package xmpp_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

// Each robustness case ends the offending stream with the right error while
// another user's session keeps working.
func TestRobustness(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) { c.MaxStanzaBytes = 64 << 10 })
	alice, bob := e.newUser("alice"), e.newUser("bob")
	witness := e.online(alice, "witness")
	wb := e.online(bob, "wb")
	stillServed := func(t *testing.T) {
		t.Helper()
		body := fmt.Sprintf("still there %d", time.Now().UnixNano())
		wb.write(`<message to='` + alice.jid + `' type='chat'><body>` + body + `</body></message>`)
		witness.expect(isMessage(body))
	}
	cases := []struct {
		name, send, want string
	}{
		{"malformed XML", `<message><body>unclosed</message>`, "not-well-formed"},
		{"bad character", "<message><body>\x01</body></message>", "not-well-formed"},
		{"restricted XML", `<message><!-- comment --></message>`, "restricted-xml"},
		{"oversized stanza", `<message><body>` + strings.Repeat("x", 1<<20) + `</body></message>`, "policy-violation"},
		{"unknown top-level element", `<foo/>`, "unsupported-stanza-type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.login(bob, "victim-"+strings.ReplaceAll(tc.name, " ", "-"))
			c.writeMayFail(tc.send)
			if got := c.ended(); got != tc.want {
				t.Errorf("stream error %q, want %q", got, tc.want)
			}
			stillServed(t)
		})
	}
	t.Run("stanza before authentication", func(t *testing.T) {
		c := e.rawDial()
		c.open()
		c.startTLS()
		c.open()
		c.write(`<message to='` + alice.jid + `'><body>pre-auth</body></message>`)
		if got := c.streamErrorOf(); got != "not-authorized" {
			t.Errorf("stream error %q, want not-authorized", got)
		}
		// It was never routed: the witness's next message is the check.
		stillServed(t)
	})
	t.Run("stanza before bind", func(t *testing.T) {
		c := e.rawDial()
		c.open()
		c.startTLS()
		c.open()
		c.auth(sasl.Plain, fmt.Sprintf("%d-%d", bob.ref.User, bob.ref.App), bob.password)
		c.open()
		c.write(`<message to='` + alice.jid + `'><body>pre-bind</body></message>`)
		if got := c.streamErrorOf(); got != "not-authorized" {
			t.Errorf("stream error %q, want not-authorized", got)
		}
		stillServed(t)
	})
	t.Run("SASL before STARTTLS", func(t *testing.T) {
		c := e.rawDial()
		c.open()
		c.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHB3</auth>`)
		if got := c.streamErrorOf(); got != "policy-violation" {
			t.Errorf("stream error %q, want policy-violation", got)
		}
	})
	t.Run("wrong host", func(t *testing.T) {
		c := e.rawDial()
		c.write(`<stream:stream to='example.org' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)
		c.parser = stanza.NewParser(c.conn, 1<<20)
		if got := c.streamErrorOf(); got != "host-unknown" {
			t.Errorf("stream error %q, want host-unknown", got)
		}
	})
	t.Run("wrong namespace", func(t *testing.T) {
		c := e.rawDial()
		c.write(`<stream:stream to='localhost' version='1.0' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>`)
		c.parser = stanza.NewParser(c.conn, 1<<20)
		if got := c.streamErrorOf(); got != "invalid-namespace" {
			t.Errorf("stream error %q, want invalid-namespace", got)
		}
	})
}

// A client that never reads is closed when its queue overflows; the sender
// and everyone else go on.
func TestSlowConsumerIsCutOff(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) { c.MaxQueueBytes = 256 << 10; c.WriteTimeout = 2 * time.Second })
	alice, bob, carol := e.newUser("alice"), e.newUser("bob"), e.newUser("carol")
	// The slow client binds and sends presence, then never reads again; a
	// small receive buffer makes the kernel push back soon.
	slow := e.loginNoRead(bob, "slow")
	slow.write(`<presence/>`)
	a := e.online(alice, "a")
	c := e.online(carol, "c")
	a.roundTrip()
	// More than kernel socket buffers on loopback can absorb (several MB).
	big := strings.Repeat("y", 32<<10)
	for i := range 500 {
		a.write(fmt.Sprintf(`<message to='%s' type='chat'><body>%d %s</body></message>`, bob.jid, i, big))
	}
	a.write(`<message to='` + carol.jid + `' type='chat'><body>after the flood</body></message>`)
	c.expect(isMessage("after the flood"))
	deadline := time.Now().Add(wait)
	for e.srv.Stats().QueueOverflows == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no overflow counted; stats %+v", e.srv.Stats())
		}
		time.Sleep(10 * time.Millisecond) // polling the counter, bounded by the deadline
	}
	a.roundTrip()
}

// A client that stops reading, with room left in its queue, is closed by
// the write timeout: the writer's deadline holds however often it is
// refreshed while writes still go through.
func TestStalledReaderTimesOut(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) { c.MaxQueueBytes = 64 << 20; c.WriteTimeout = 500 * time.Millisecond })
	alice, bob := e.newUser("alice"), e.newUser("bob")
	stalled := e.loginNoRead(bob, "stalled")
	stalled.write(`<presence/>`)
	a := e.online(alice, "a")
	big := strings.Repeat("z", 32<<10)
	for i := range 300 { // ~10 MB: more than loopback socket buffers hold
		a.write(fmt.Sprintf(`<message to='%s' type='chat'><body>%d %s</body></message>`, bob.jid, i, big))
	}
	a.roundTrip()
	deadline := time.Now().Add(wait)
	for len(e.srv.Sessions(bob.ref)) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stalled session is still bound")
		}
		time.Sleep(10 * time.Millisecond) // polling, bounded by the deadline
	}
	if got := e.srv.Stats().QueueOverflows; got != 0 {
		t.Errorf("%d queue overflows: the session should have ended on the write timeout", got)
	}
}

// Repeated wrong passwords are answered ever more slowly.
func TestAuthFailuresSlowDown(t *testing.T) {
	const base = 40 * time.Millisecond
	e := startEnv(t, func(c *xmpp.Config) { c.AuthFailureDelay = base })
	bob := e.newUser("bob")
	c := e.rawDial()
	c.open()
	c.startTLS()
	c.open()
	start := time.Now()
	for range 4 {
		if r := c.auth(sasl.Plain, fmt.Sprintf("%d-%d", bob.ref.User, bob.ref.App), "wrong"); r.Name != "failure" {
			t.Fatalf("wrong password answered %s", r)
		}
	}
	// base + 2base + 4base + 8base at least.
	if took := time.Since(start); took < 15*base {
		t.Errorf("four failures took %v, want at least %v", took, 15*base)
	}
	// The fifth failure ends the stream.
	c.auth(sasl.Plain, fmt.Sprintf("%d-%d", bob.ref.User, bob.ref.App), "wrong")
	if got := c.streamErrorOf(); got != "policy-violation" {
		t.Errorf("after five failures: %q", got)
	}
}

func TestResourceConflictReplaces(t *testing.T) {
	e := startEnv(t, nil)
	alice := e.newUser("alice")
	old := e.online(alice, "same")
	fresh := e.online(alice, "same")
	if got := old.ended(); got != "conflict" {
		t.Errorf("old session ended with %q, want conflict", got)
	}
	fresh.roundTrip()
}

func TestResourceConflictRejects(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) { c.ResourceConflict = "reject" })
	alice := e.newUser("alice")
	e.online(alice, "same")
	c := e.rawDial()
	c.open()
	c.startTLS()
	c.open()
	c.auth(sasl.Plain, fmt.Sprintf("%d-%d", alice.ref.User, alice.ref.App), alice.password)
	c.open()
	c.write(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>same</resource></bind></iq>`)
	if r := c.nextSync(); errorCondition(r) != "conflict" {
		t.Errorf("second bind answered %s", r)
	}
}

// Direct TLS (XEP-0368) needs no STARTTLS.
func TestDirectTLS(t *testing.T) {
	e := startEnv(t, nil)
	alice := e.newUser("alice")
	conn, err := tlsDial(e.srv.TLSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, conn: conn}
	t.Cleanup(func() { conn.Close() })
	f := c.open()
	if f.Child("starttls", "") != nil || f.Child("mechanisms", "") == nil {
		t.Fatalf("direct TLS features: %s", f)
	}
	if r := c.auth(sasl.ScramSha256, fmt.Sprintf("%d-%d", alice.ref.User, alice.ref.App), alice.password); r.Name != "success" {
		t.Fatalf("auth: %s", r)
	}
	c.open()
	c.bind("tls")
	c.roundTrip()
}

// Shutdown tells every session and leaves no goroutine behind.
func TestShutdownLeavesNoGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		e := startEnv(t, nil)
		alice, bob := e.newUser("alice"), e.newUser("bob")
		a := e.online(alice, "a")
		b := e.online(bob, "b")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*client{a, b} {
			if got := c.ended(); got != "system-shutdown" {
				t.Errorf("session ended with %q, want system-shutdown", got)
			}
			c.conn.Close()
		}
		e.history.Close()
		e.db.Close()
	}()
	deadline := time.Now().Add(wait)
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
	answers := e.login(e.newUser("answers"), "r")
	silent := e.login(e.newUser("silent"), "r")
	isPing := func(el *stanza.Element) bool {
		return el.Name == "iq" && el.Attr("type") == "get" && el.Child("ping", "urn:xmpp:ping") != nil
	}
	for range 3 {
		ping := answers.expect(isPing)
		answers.write(`<iq type='result' id='` + ping.Attr("id") + `' to='` + domain + `'/>`)
	}
	answers.roundTrip()
	silent.expect(isPing)
	if cond := silent.ended(); cond != "connection-timeout" {
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
	}{{e.newUser("gone"), false}, {e.newUser("gone-later"), true}} {
		u, bound := tc.u, tc.bound
		c := e.rawDial()
		c.open()
		c.startTLS()
		c.open()
		if r := c.auth(sasl.Plain, fmt.Sprintf("%d-%d", u.ref.User, u.ref.App), u.password); r.Name != "success" {
			t.Fatalf("login failed: %s", r)
		}
		c.open()
		if bound {
			c.bind("r")
		}
		if err := e.db.Accounts().DeleteUser(ctx, u.ref.App, u.ref.User); err != nil {
			t.Fatal(err)
		}
		e.srv.EndUserSessions(u.ref, "the account was deleted")
		if bound {
			if cond := c.ended(); cond != "not-authorized" {
				t.Errorf("the bound session of a deleted account ended with %q, want not-authorized", cond)
			}
			continue
		}
		c.write(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>`)
		if cond := c.streamErrorOf(); cond != "not-authorized" {
			t.Errorf("bind after the account was deleted: stream error %q, want not-authorized", cond)
		}
	}
}
