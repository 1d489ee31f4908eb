package xmpp_test

import (
	"testing"

	"chatd/xmpp/stanza"
)

func enableCarbons(t *testing.T, c *client) {
	t.Helper()
	c.write(`<iq type='set' id='carbons'><enable xmlns='urn:xmpp:carbons:2'/></iq>`)
	if r := c.expect(func(el *stanza.Element) bool { return el.Attr("id") == "carbons" }); r.Attr("type") != "result" {
		t.Fatalf("enabling carbons: %s", r)
	}
}

// forwarded returns the message inside a carbon copy of the given kind.
func forwarded(el *stanza.Element, kind string) *stanza.Element {
	c := el.Child(kind, "urn:xmpp:carbons:2")
	if c == nil {
		return nil
	}
	f := c.Child("forwarded", "urn:xmpp:forward:0")
	if f == nil {
		return nil
	}
	return f.Child("message", "jabber:client")
}

func TestCarbons(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.newUser("alice"), e.newUser("bob")
	a1 := e.online(alice, "one")
	a2 := e.online(alice, "two")
	a3 := e.online(alice, "three") // never enables carbons
	enableCarbons(t, a1)
	enableCarbons(t, a2)
	b := e.online(bob, "b")

	// Received: bob writes to a1's full JID; a2 gets a copy, a3 does not.
	b.write(`<message to='` + a1.jid + `' type='chat' id='c1'><body>to one</body></message>`)
	a1.expect(isMessage("to one"))
	w := a2.expect(func(el *stanza.Element) bool { return forwarded(el, "received") != nil })
	inner := forwarded(w, "received")
	if w.Attr("id") != "c1" || w.Attr("from") != alice.jid || inner.ChildText("body", "") != "to one" ||
		inner.Attr("from") != b.jid || inner.Attr("to") != a1.jid {
		t.Errorf("received carbon %s", w)
	}
	// Sent: a1 writes to bob; a2 gets a copy.
	a1.write(`<message to='` + bob.jid + `' type='chat' id='c2'><body>from one</body></message>`)
	b.expect(isMessage("from one"))
	w = a2.expect(func(el *stanza.Element) bool { return forwarded(el, "sent") != nil })
	if inner := forwarded(w, "sent"); w.Attr("id") != "c2" || inner.Attr("from") != a1.jid || inner.Attr("to") != bob.jid {
		t.Errorf("sent carbon %s", w)
	}
	// <private/> is not copied; a2 sees the next, copied, message first.
	a1.write(`<message to='` + bob.jid + `' type='chat' id='c3'><body>secret</body><private xmlns='urn:xmpp:carbons:2'/></message>`)
	a1.write(`<message to='` + bob.jid + `' type='chat' id='c4'><body>public</body></message>`)
	w = a2.expect(func(el *stanza.Element) bool { return el.Name == "message" })
	if w.Attr("id") != "c4" {
		t.Errorf("a2 got %s before the copy of c4", w)
	}
	// a3 (carbons off) saw none of it.
	a3.write(`<iq type='get' id='done'><ping xmlns='urn:xmpp:ping'/></iq>`)
	for el := a3.next(); el.Attr("id") != "done"; el = a3.next() {
		if el.Name == "message" {
			t.Fatalf("a resource without carbons got %s", el)
		}
	}
}

// While inactive (XEP-0352) presence and chat states wait, collapsed to the
// latest per sender; a message with a body goes out at once, after them.
func TestClientStateIndication(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.newUser("alice"), e.newUser("bob")
	a := e.online(alice, "a")
	b := e.online(bob, "b")
	// Mutual subscription so presence flows.
	a.write(`<presence to='` + bob.jid + `' type='subscribe'/>`)
	b.expect(func(el *stanza.Element) bool { return el.Attr("type") == "subscribe" })
	b.write(`<presence to='` + alice.jid + `' type='subscribed'/>`)
	a.expect(func(el *stanza.Element) bool { return el.Attr("type") == "subscribed" })
	b.write(`<presence to='` + alice.jid + `' type='subscribe'/>`)
	a.expect(func(el *stanza.Element) bool { return el.Attr("type") == "subscribe" })
	a.write(`<presence to='` + bob.jid + `' type='subscribed'/>`)
	b.expect(func(el *stanza.Element) bool {
		return el.Name == "presence" && el.Attr("from") == a.jid && el.Attr("type") == ""
	})

	b.write(`<inactive xmlns='urn:xmpp:csi:0'/>`)
	b.roundTrip()
	a.write(`<presence><show>away</show></presence>`)
	a.write(`<presence><show>dnd</show></presence>`)
	a.write(`<message to='` + bob.jid + `' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	a.roundTrip()
	// Nothing of that reaches bob yet.
	b.write(`<iq type='get' id='quiet'><ping xmlns='urn:xmpp:ping'/></iq>`)
	for el := b.next(); el.Attr("id") != "quiet"; el = b.next() {
		t.Fatalf("inactive client got %s", el)
	}
	// A message with a body flushes what was held, in order, then itself.
	a.write(`<message to='` + bob.jid + `' type='chat'><body>wake up</body></message>`)
	first, second, third := b.next(), b.next(), b.next()
	if first.Name != "presence" || first.ChildText("show", "") != "dnd" {
		t.Errorf("first released %s, want the latest presence only", first)
	}
	if second.Child("composing", "") == nil {
		t.Errorf("second released %s, want the chat state", second)
	}
	if third.ChildText("body", "") != "wake up" {
		t.Errorf("third %s, want the message", third)
	}
	// Active releases the rest.
	a.write(`<presence><show>xa</show></presence>`)
	a.roundTrip()
	b.write(`<active xmlns='urn:xmpp:csi:0'/>`)
	if el := b.next(); el.ChildText("show", "") != "xa" {
		t.Errorf("after active got %s", el)
	}
}
