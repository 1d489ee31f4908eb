package xmpp_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"chatd/history"
	"chatd/internal/oid"
	"chatd/internal/xmpptest"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

// Messages with save_to_history that a client sends together are stored
// together and delivered in order (pipeline.go); these tests check that
// nothing else a session does can overtake them.

func storedMessage(to, body string) string {
	return `<message to='` + to + `' type='chat' id='` + body + `'><body>` + body + `</body>` +
		`<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>`
}

// badMessage is refused by chat history when it is stored: its dialog does
// not exist.
func badMessage(to string) string {
	return `<message to='` + to + `' type='chat' id='bad'><body>bad</body><extraParams xmlns='jabber:client'>` +
		`<save_to_history>1</save_to_history><dialog_id>` + oid.New(time.Now()) + `</dialog_id></extraParams></message>`
}

// untilEnd reads c's stream to its end and returns each element as
// "name id type".
func untilEnd(t *testing.T, c *xmpptest.Client) []string {
	t.Helper()
	var got []string
	deadline := time.After(xmpptest.Wait)
	for {
		select {
		case ev, ok := <-c.Events:
			if !ok || ev.Err != nil {
				return got
			}
			got = append(got, ev.El.Name+" "+ev.El.Attr("id")+" "+ev.El.Attr("type"))
		case <-deadline:
			t.Fatalf("the stream did not end; read %v", got)
		}
	}
}

// A client that sends messages and ends its stream in one write (or breaks
// it) gets the answers to its messages before the stream ends.
func TestPipelinedAnsweredBeforeStreamEnds(t *testing.T) {
	for name, tail := range map[string]string{"close": `</stream:stream>`, "stream error": `junk`} {
		t.Run(name, func(t *testing.T) {
			e := startEnv(t, nil)
			alice, bob := e.NewUser("alice"), e.NewUser("bob")
			a := e.Online(alice, "a")
			b := e.Online(bob, "b")
			a.Write(storedMessage(bob.JID, "s1") + badMessage(bob.JID) + tail)
			b.Expect(isMessage("s1"))
			got := untilEnd(t, a)
			i := slices.Index(got, "message bad error")
			if i < 0 {
				t.Fatalf("alice's stream ended without the answer to 'bad': %v", got)
			}
			if name == "stream error" && !slices.Contains(got[i:], "error  ") {
				t.Errorf("the stream error came before the answer to 'bad': %v", got)
			}
		})
	}
}

// A message refused before it is stored (a malformed or foreign address, a
// blocked recipient) is answered after the messages sent before it.
func TestPipelinedRefusalsInOrder(t *testing.T) {
	for name, second := range map[string]func(bob string) string{
		"foreign domain": func(string) string { return storedMessage("x@elsewhere.example", "second") },
		"malformed to":   func(string) string { return `<message to='a@b@c' type='chat' id='second'><body>x</body></message>` },
		"blocked":        func(bob string) string { return storedMessage(bob, "second") },
	} {
		t.Run(name, func(t *testing.T) {
			e := startEnv(t, nil)
			alice, bob, carol := e.NewUser("alice"), e.NewUser("bob"), e.NewUser("carol")
			a := e.Online(alice, "a")
			e.Online(bob, "b")
			c := e.Online(carol, "c")
			c.Write(`<iq type='set' id='block'><block xmlns='urn:xmpp:blocking'><item jid='` + alice.JID + `'/></block></iq>`)
			c.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "block" })
			a.Write(badMessage(bob.JID) + second(carol.JID))
			var answers []string
			for len(answers) < 2 {
				if el := a.Next(); el.Name == "message" && el.Attr("type") == "error" {
					answers = append(answers, el.Attr("id"))
				}
			}
			if want := []string{"bad", "second"}; !slices.Equal(answers, want) {
				t.Errorf("alice got errors for %v, want %v (in the order sent)", answers, want)
			}
		})
	}
}

// Input the server will refuse, but cannot refuse before the client sends
// more, does not hold back the messages before it.
func TestPipelinedNotHeldByPartialInput(t *testing.T) {
	for _, tail := range []string{"<!--", "<?x", "<message to='x'"} {
		t.Run(tail, func(t *testing.T) {
			e := startEnv(t, func(c *xmpp.Config) { c.PingInterval = 10 * time.Minute })
			alice, bob := e.NewUser("alice"), e.NewUser("bob")
			a := e.Online(alice, "a")
			b := e.Online(bob, "b")
			a.Write(storedMessage(bob.JID, "s1") + storedMessage(bob.JID, "s2") + tail)
			b.Expect(isMessage("s1"))
			b.Expect(isMessage("s2"))
		})
	}
}

// gatedHistory holds the reader inside Begin of the message whose text is
// text until release is closed, so a test can act while the messages read
// before it are pending.
type gatedHistory struct {
	*history.Service
	text    string
	entered chan struct{}
	release chan struct{}
}

func (g *gatedHistory) Begin(ctx context.Context, in history.NewMessage) *history.Recording {
	if in.Text == g.text {
		close(g.entered)
		<-g.release
	}
	return g.Service.Begin(ctx, in)
}

func startGated(t *testing.T, text string, edit func(*xmpp.Config)) (*env, *gatedHistory) {
	g := &gatedHistory{text: text, entered: make(chan struct{}), release: make(chan struct{})}
	e := &env{xmpptest.Start(t, xmpptest.Options{Edit: edit, Wire: func(srv *xmpp.Server, h *history.Service) {
		g.Service = h
		srv.SetHistory(g)
	}})}
	t.Cleanup(func() {
		select {
		case <-g.release:
		default:
			close(g.release)
		}
	})
	return e, g
}

func bodies(els []*stanza.Element) []string {
	var out []string
	for _, el := range els {
		if el.Name == "message" {
			out = append(out, el.ChildText("body", ""))
		}
	}
	return out
}

// An ack (<a/>) from the client between stored messages does not hold them
// apart, while an ack request (<r/>) is answered after the messages before
// it were delivered, so that its count covers them.
func TestPipelinedAcks(t *testing.T) {
	for _, tc := range []struct {
		name, between  string
		deliveredFirst bool
	}{
		{"ack", `<a xmlns='urn:xmpp:sm:3' h='0'/>`, false},
		{"request", `<r xmlns='urn:xmpp:sm:3'/>`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, g := startGated(t, "s2", nil)
			alice, bob := e.NewUser("alice"), e.NewUser("bob")
			a, _ := e.resumable(alice, "a")
			b := e.Online(bob, "b")
			a.Write(storedMessage(bob.JID, "s1") + tc.between + storedMessage(bob.JID, "s2"))
			<-g.entered // the reader is storing s2
			before := bodies(b.RoundTrip())
			if got := slices.Contains(before, "s1"); got != tc.deliveredFirst {
				t.Errorf("while s2 was being stored, bob had %v", before)
			}
			close(g.release)
			if !tc.deliveredFirst {
				b.Expect(isMessage("s1"))
			}
			b.Expect(isMessage("s2"))
		})
	}
}

// A sender slowed down by the stanza rate limit does not hold back the
// messages it sent before; nor does it hold up the server's shutdown at the
// test's end (which fails the test when it times out).
func TestPipelinedBeforeThrottle(t *testing.T) {
	// A token every 20 s, longer than a test waits for a stanza; logging
	// in took two of the four (presence and a ping).
	e := startEnv(t, func(c *xmpp.Config) { c.StanzaRate = 0.05; c.StanzaBurst = 4 })
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "a")
	b := e.Online(bob, "b")
	a.Write(storedMessage(bob.JID, "s1") + storedMessage(bob.JID, "s2") + storedMessage(bob.JID, "s3"))
	b.Expect(isMessage("s1"))
	b.Expect(isMessage("s2"))
	waitFor(t, func() bool { return e.Server.Stats().Throttled == 1 })
}

// A sender whose own queue is too full to read more (it does not read what
// it is sent) does not hold back the messages it sent before.
func TestPipelinedBeforeOwnQueueWait(t *testing.T) {
	e, g := startGated(t, "s2", func(c *xmpp.Config) { c.MaxQueueBytes = 32 << 20; c.WriteTimeout = time.Minute; c.ByteRate = -1 })
	alice, bob, carol := e.NewUser("alice"), e.NewUser("bob"), e.NewUser("carol")
	// Alice's socket buffers little, so the server's writes to her block
	// soon once she stops reading.
	d := net.Dialer{Timeout: xmpptest.Wait, Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", e.Server.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	a := &client{T: t, Conn: conn}
	a.Negotiate(alice, "a", true)
	a.Write(`<presence/><iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`)
	for a.NextSync().Attr("id") != "p1" {
	}
	b := e.Online(bob, "b")
	c := e.Online(carol, "c")

	a.Write(storedMessage(bob.JID, "s1") + storedMessage(bob.JID, "s2") + storedMessage(bob.JID, "s3"))
	<-g.entered // s1 is pending, the reader is storing s2
	// Carol fills alice's queue past half while alice does not read.
	big := strings.Repeat("y", 32<<10)
	var flood strings.Builder
	for i := range 768 { // 24 MiB, more than the kernel buffers
		fmt.Fprintf(&flood, `<message to='%s/a' type='chat'><body>%d %s</body></message>`, alice.JID, i, big)
	}
	c.Write(flood.String())
	c.RoundTrip() // all of it is queued for alice
	close(g.release)
	b.Expect(isMessage("s1"))
	b.Expect(isMessage("s2"))
	// s3 waits until alice reads.
	if got := bodies(b.RoundTrip()); len(got) > 0 {
		t.Fatalf("bob got %v before alice read: her reader did not wait for her queue", got)
	}
	a.StartReading()
	b.Expect(isMessage("s3"))
}

// Once the server ended a stream for good (the account was deleted), what
// the client sent after is not acted on even when it was read already; the
// messages already being stored are delivered.
func TestPipelinedInputAfterForcedClose(t *testing.T) {
	e, g := startGated(t, "s2", nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "a")
	b := e.Online(bob, "b")
	a.Write(storedMessage(bob.JID, "s1") + storedMessage(bob.JID, "s2") + storedMessage(bob.JID, "s3"))
	<-g.entered // s1 is pending, s2 being stored, s3 read
	e.Server.EndUserSessions(alice.Ref, "the account was deleted")
	close(g.release)
	if end := a.Ended(); !strings.Contains(end, "not-authorized") {
		t.Errorf("alice's stream ended with %q", end)
	}
	waitFor(t, func() bool { return len(e.Server.Sessions(alice.Ref)) == 0 })
	el := b.Expect(isMessage("s1"))
	b.Expect(isMessage("s2"))
	if got := bodies(b.RoundTrip()); len(got) > 0 {
		t.Errorf("bob got %v after alice's session ended", got)
	}
	msgs, err := e.History.Messages(context.Background(), e.App.ID, bob.Ref.User, extra(el, "dialog_id"), history.MessageQuery{}, false)
	var stored []string
	for _, m := range msgs {
		stored = append(stored, m.Text)
	}
	if want := []string{"s1", "s2"}; err != nil || !slices.Equal(stored, want) {
		t.Errorf("history holds %v (%v), want %v", stored, err, want)
	}
}
