package xmpp_test

import (
	"slices"
	"testing"
	"time"

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
