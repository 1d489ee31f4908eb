package xmpp_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"chatd/internal/xmpptest"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

func enableCarbons(t *testing.T, c *client) {
	t.Helper()
	c.Write(`<iq type='set' id='carbons'><enable xmlns='urn:xmpp:carbons:2'/></iq>`)
	if r := c.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "carbons" }); r.Attr("type") != "result" {
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
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a1 := e.Online(alice, "one")
	a2 := e.Online(alice, "two")
	a3 := e.Online(alice, "three") // never enables carbons
	enableCarbons(t, a1)
	enableCarbons(t, a2)
	b := e.Online(bob, "b")

	// Received: bob writes to a1's full JID; a2 gets a copy, a3 does not.
	b.Write(`<message to='` + a1.JID + `' type='chat' id='c1'><body>to one</body></message>`)
	a1.Expect(isMessage("to one"))
	w := a2.Expect(func(el *stanza.Element) bool { return forwarded(el, "received") != nil })
	inner := forwarded(w, "received")
	if w.Attr("id") != "c1" || w.Attr("from") != alice.JID || inner.ChildText("body", "") != "to one" ||
		inner.Attr("from") != b.JID || inner.Attr("to") != a1.JID {
		t.Errorf("received carbon %s", w)
	}
	// Sent: a1 writes to bob; a2 gets a copy.
	a1.Write(`<message to='` + bob.JID + `' type='chat' id='c2'><body>from one</body></message>`)
	b.Expect(isMessage("from one"))
	w = a2.Expect(func(el *stanza.Element) bool { return forwarded(el, "sent") != nil })
	if inner := forwarded(w, "sent"); w.Attr("id") != "c2" || inner.Attr("from") != a1.JID || inner.Attr("to") != bob.JID {
		t.Errorf("sent carbon %s", w)
	}
	// <private/> is not copied; a2 sees the next, copied, message first.
	a1.Write(`<message to='` + bob.JID + `' type='chat' id='c3'><body>secret</body><private xmlns='urn:xmpp:carbons:2'/></message>`)
	a1.Write(`<message to='` + bob.JID + `' type='chat' id='c4'><body>public</body></message>`)
	w = a2.Expect(func(el *stanza.Element) bool { return el.Name == "message" })
	if w.Attr("id") != "c4" {
		t.Errorf("a2 got %s before the copy of c4", w)
	}
	// a3 (carbons off) saw none of it.
	a3.Write(`<iq type='get' id='done'><ping xmlns='urn:xmpp:ping'/></iq>`)
	for el := a3.Next(); el.Attr("id") != "done"; el = a3.Next() {
		if el.Name == "message" {
			t.Fatalf("a resource without carbons got %s", el)
		}
	}
}

// While inactive (XEP-0352) presence and chat states wait, collapsed to the
// latest per sender; a message with a body goes out at once, after them.
func TestClientStateIndication(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "a")
	b := e.Online(bob, "b")
	// Mutual subscription so presence flows.
	a.Write(`<presence to='` + bob.JID + `' type='subscribe'/>`)
	b.Expect(func(el *stanza.Element) bool { return el.Attr("type") == "subscribe" })
	b.Write(`<presence to='` + alice.JID + `' type='subscribed'/>`)
	a.Expect(func(el *stanza.Element) bool { return el.Attr("type") == "subscribed" })
	b.Write(`<presence to='` + alice.JID + `' type='subscribe'/>`)
	a.Expect(func(el *stanza.Element) bool { return el.Attr("type") == "subscribe" })
	a.Write(`<presence to='` + bob.JID + `' type='subscribed'/>`)
	b.Expect(func(el *stanza.Element) bool {
		return el.Name == "presence" && el.Attr("from") == a.JID && el.Attr("type") == ""
	})

	b.Write(`<inactive xmlns='urn:xmpp:csi:0'/>`)
	b.RoundTrip()
	a.Write(`<presence><show>away</show></presence>`)
	a.Write(`<presence><show>dnd</show></presence>`)
	a.Write(`<message to='` + bob.JID + `' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	a.RoundTrip()
	// Nothing of that reaches bob yet.
	b.Write(`<iq type='get' id='quiet'><ping xmlns='urn:xmpp:ping'/></iq>`)
	for el := b.Next(); el.Attr("id") != "quiet"; el = b.Next() {
		t.Fatalf("inactive client got %s", el)
	}
	// A message with a body flushes what was held, in order, then itself.
	a.Write(`<message to='` + bob.JID + `' type='chat'><body>wake up</body></message>`)
	first, second, third := b.Next(), b.Next(), b.Next()
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
	a.Write(`<presence><show>xa</show></presence>`)
	a.RoundTrip()
	b.Write(`<active xmlns='urn:xmpp:csi:0'/>`)
	if el := b.Next(); el.ChildText("show", "") != "xa" {
		t.Errorf("after active got %s", el)
	}
}

// Carbon copies of chat states wait while the resource is inactive, as the
// chat states themselves do, collapsed to the latest per conversation; a
// carbon of a message with a body releases them (found in audit).
func TestClientStateIndicationHoldsChatStateCarbons(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "a")
	a2 := e.Online(alice, "a2")
	b := e.Online(bob, "b")
	enableCarbons(t, a2)
	a2.Write(`<inactive xmlns='urn:xmpp:csi:0'/>`)
	a2.RoundTrip()
	state := func(s string) string { return `<` + s + ` xmlns='http://jabber.org/protocol/chatstates'/>` }
	a.Write(`<message to='` + bob.JID + `' type='chat'>` + state("composing") + `</message>`)
	a.RoundTrip()
	b.Write(`<message to='` + alice.JID + `/a' type='chat'>` + state("composing") + `</message>`)
	b.RoundTrip()
	a.Write(`<message to='` + bob.JID + `' type='chat'>` + state("paused") + `</message>`)
	a.RoundTrip()
	if got := a2.RoundTrip(); len(got) != 0 {
		t.Fatalf("the inactive resource got %v", got)
	}
	a.Write(`<message to='` + bob.JID + `' type='chat'><body>hello</body></message>`)
	var kinds []string
	for range 3 {
		el := a2.Next()
		c := el.FirstElement()
		inner := c.Child("forwarded", "urn:xmpp:forward:0").Child("message", "jabber:client")
		k := c.Name + ":" + inner.ChildText("body", "")
		if st := inner.ChildNS("http://jabber.org/protocol/chatstates"); st != nil {
			k = c.Name + ":" + st.Name
		}
		kinds = append(kinds, k)
	}
	if want := []string{"sent:paused", "received:composing", "sent:hello"}; !slices.Equal(kinds, want) {
		t.Errorf("released %v, want %v", kinds, want)
	}
}

// The QuickBlox SDK's privacy list for blocking: two items per user (the
// user's JID and muc.<domain>/<id>), orders 1..2N, then default and active.
func TestPrivacyListsBlock(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob, carol := e.NewUser("alice"), e.NewUser("bob"), e.NewUser("carol")
	a := e.Online(alice, "a")
	b := e.Online(bob, "b")
	c := e.Online(carol, "c")
	bobID := fmt.Sprint(bob.Ref.User)
	ask := func(cl *client, id, xml string) *stanza.Element {
		cl.Write(xml)
		return cl.Expect(func(el *stanza.Element) bool { return el.Name == "iq" && el.Attr("id") == id })
	}
	// Mutual block: items without children block everything both ways.
	r := ask(a, "p1", `<iq type='set' id='p1' from='`+fmt.Sprintf("%d-%d", alice.Ref.User, alice.Ref.App)+`'><query xmlns='jabber:iq:privacy'><list name='blocked'>`+
		`<item type='jid' value='`+bob.JID+`' action='deny' order='1'/>`+
		`<item type='jid' value='muc.localhost/`+bobID+`' action='deny' order='2'/>`+
		`</list></query></iq>`)
	if r.Attr("type") != "result" {
		t.Fatalf("creating the list: %s", r)
	}
	for _, step := range []string{`<default name='blocked'/>`, `<active name='blocked'/>`} {
		if r := ask(a, "p2", `<iq type='set' id='p2'><query xmlns='jabber:iq:privacy'>`+step+`</query></iq>`); r.Attr("type") != "result" {
			t.Fatalf("%s: %s", step, r)
		}
	}
	// The list comes back in order, pairs kept.
	r = ask(a, "p3", `<iq type='get' id='p3'><query xmlns='jabber:iq:privacy'><list name='blocked'/></query></iq>`)
	items := r.Child("query", "").Child("list", "").Elements()
	if len(items) != 2 || items[0].Attr("value") != bob.JID || items[1].Attr("value") != "muc.localhost/"+bobID || items[1].Attr("order") != "2" {
		t.Errorf("list = %s", r)
	}
	r = ask(a, "p4", `<iq type='get' id='p4'><query xmlns='jabber:iq:privacy'/></iq>`)
	q := r.Child("query", "")
	if q.Child("default", "").Attr("name") != "blocked" || q.Child("active", "").Attr("name") != "blocked" || q.Child("list", "").Attr("name") != "blocked" {
		t.Errorf("names = %s", r)
	}
	// Bob writing to alice bounces with 503; so does alice writing to bob.
	b.Write(`<message to='` + alice.JID + `' type='chat' id='x1'><body>let me in</body></message>`)
	r = b.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "x1" })
	if xmpptest.ErrorCondition(r) != "service-unavailable" || r.Child("error", "").Attr("code") != "503" {
		t.Errorf("bob's message answered %s", r)
	}
	a.Write(`<message to='` + bob.JID + `' type='chat' id='x2'><body>go away</body></message>`)
	r = a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "x2" })
	if xmpptest.ErrorCondition(r) != "service-unavailable" || r.Child("error", "").Child("blocked", "urn:xmpp:blocking:errors") == nil {
		t.Errorf("alice's message answered %s", r)
	}
	// Carol is not blocked.
	c.Write(`<message to='` + alice.JID + `' type='chat'><body>hi from carol</body></message>`)
	a.Expect(isMessage("hi from carol"))
	// The block holds while alice is offline: nothing is stored for her.
	a.Conn.Close()
	deadline := time.Now().Add(xmpptest.Wait)
	for len(e.Server.Sessions(alice.Ref)) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("alice's session did not end")
		}
		time.Sleep(5 * time.Millisecond) // polling, bounded by the deadline
	}
	b.Write(`<message to='` + alice.JID + `' type='chat' id='x3'><body>while you are out</body></message>`)
	if r := b.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "x3" }); xmpptest.ErrorCondition(r) != "service-unavailable" {
		t.Errorf("offline block answered %s", r)
	}
	msgs, err := e.DB.XMPP().OfflineMessages(context.Background(), alice.Ref, 10)
	if err != nil || len(msgs) != 0 {
		t.Errorf("stored for alice despite the block: %d %v", len(msgs), err)
	}
	// Deleting the list (an empty <list/>) lifts the block.
	a2 := e.Online(alice, "a2")
	if r := ask(a2, "p5", `<iq type='set' id='p5'><query xmlns='jabber:iq:privacy'><list name='blocked'/></query></iq>`); r.Attr("type") != "result" {
		t.Fatalf("deleting the list: %s", r)
	}
	b.Write(`<message to='` + alice.JID + `' type='chat'><body>friends again</body></message>`)
	a2.Expect(isMessage("friends again"))
}

// Malformed privacy, blocking and carbons requests get bad-request and the
// session goes on (a privacy payload other than <query/> had crashed it;
// found in audit).
func TestMalformedListRequests(t *testing.T) {
	e := startEnv(t, nil)
	a := e.Online(e.NewUser("alice"), "a")
	for i, payload := range []string{
		`<list xmlns='jabber:iq:privacy' name='x'/>`,
		`<query xmlns='jabber:iq:privacy'><list name='a'/><list name='b'/></query>`,
		`<nothing xmlns='urn:xmpp:blocking'/>`,
		`<what xmlns='urn:xmpp:carbons:2'/>`,
	} {
		for _, typ := range []string{"get", "set"} {
			id := fmt.Sprintf("bad%d%s", i, typ)
			a.Write(`<iq type='` + typ + `' id='` + id + `'>` + payload + `</iq>`)
			r := a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == id })
			if r.Attr("type") != "error" || xmpptest.ErrorCondition(r) != "bad-request" {
				t.Errorf("%s %s answered %s, want bad-request", typ, payload, r)
			}
		}
	}
	if p := e.Server.Stats().Panics; p != 0 {
		t.Errorf("%d panics", p)
	}
}

// Blocking command (XEP-0191) on the same stored list.
func TestBlockingCommand(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "a")
	a2 := e.Online(alice, "a2")
	b := e.Online(bob, "b")
	ask := func(cl *client, id, xml string) *stanza.Element {
		cl.Write(xml)
		return cl.Expect(func(el *stanza.Element) bool { return el.Name == "iq" && el.Attr("id") == id })
	}
	if r := ask(a, "b1", `<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='`+bob.JID+`'/></block></iq>`); r.Attr("type") != "result" {
		t.Fatalf("block: %s", r)
	}
	// The other resource hears of it.
	a2.Expect(func(el *stanza.Element) bool { return el.Child("block", "urn:xmpp:blocking") != nil })
	r := ask(a, "b2", `<iq type='get' id='b2'><blocklist xmlns='urn:xmpp:blocking'/></iq>`)
	if it := r.Child("blocklist", "").Child("item", ""); it == nil || it.Attr("jid") != bob.JID {
		t.Errorf("blocklist = %s", r)
	}
	// It is the default privacy list.
	r = ask(a, "b3", `<iq type='get' id='b3'><query xmlns='jabber:iq:privacy'/></iq>`)
	if r.Child("query", "").Child("default", "").Attr("name") != "blocklist" {
		t.Errorf("privacy names after block: %s", r)
	}
	b.Write(`<message to='` + alice.JID + `' type='chat' id='m1'><body>hello?</body></message>`)
	if r := b.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "m1" }); xmpptest.ErrorCondition(r) != "service-unavailable" {
		t.Errorf("blocked message answered %s", r)
	}
	if r := ask(a, "b4", `<iq type='set' id='b4'><unblock xmlns='urn:xmpp:blocking'><item jid='`+bob.JID+`'/></unblock></iq>`); r.Attr("type") != "result" {
		t.Fatalf("unblock: %s", r)
	}
	b.Write(`<message to='` + alice.JID + `' type='chat'><body>back</body></message>`)
	a.Expect(isMessage("back"))
	if r := ask(a, "b5", `<iq type='get' id='b5'><blocklist xmlns='urn:xmpp:blocking'/></iq>`); len(r.Child("blocklist", "").Elements()) != 0 {
		t.Errorf("blocklist after unblock = %s", r)
	}
}

func TestAdvancedMessageProcessing(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "a")
	amp := func(rules string) string { return `<amp xmlns='http://jabber.org/protocol/amp'>` + rules + `</amp>` }
	byID := func(id string) func(*stanza.Element) bool {
		return func(el *stanza.Element) bool { return el.Attr("id") == id }
	}
	// Bob is offline: "error if it would be stored" bounces with the rule.
	a.Write(`<message to='` + bob.JID + `' type='chat' id='s1'><body>x</body>` + amp(`<rule condition='deliver' value='stored' action='error'/>`) + `</message>`)
	r := a.Expect(byID("s1"))
	if r.Attr("type") != "error" || r.Child("error", "").Child("failed-rules", "http://jabber.org/protocol/amp#errors") == nil ||
		r.Child("amp", "http://jabber.org/protocol/amp").Attr("status") != "error" {
		t.Errorf("deliver=stored/error answered %s, want failed-rules and <amp status='error'>", r)
	}
	// An expired message is dropped without a word; a live one is stored.
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	soon := time.Now().Add(300 * time.Millisecond).UTC().Format(time.RFC3339)
	a.Write(`<message to='` + bob.JID + `' type='chat' id='s2'><body>too late</body>` + amp(`<rule condition='expire-at' value='`+past+`' action='drop'/>`) + `</message>`)
	a.Write(`<message to='` + bob.JID + `' type='chat' id='s3'><body>expires while stored</body>` + amp(`<rule condition='expire-at' value='`+soon+`' action='drop'/>`) + `</message>`)
	a.Write(`<message to='` + bob.JID + `' type='chat' id='s4'><body>kept</body></message>`)
	// Unsupported conditions are refused, not ignored.
	a.Write(`<message to='` + bob.JID + `' type='chat' id='s5'><body>x</body>` + amp(`<rule condition='match-resource' value='any' action='drop'/>`) + `</message>`)
	r = a.Expect(byID("s5"))
	if r.Child("error", "").Child("unsupported-conditions", "http://jabber.org/protocol/amp#errors") == nil {
		t.Errorf("match-resource answered %s", r)
	}
	a.RoundTrip()
	// Wall time must pass s3's expire-at: that is the condition under test,
	// not a synchronisation.
	time.Sleep(400 * time.Millisecond)
	b := e.Login(bob, "b")
	b.Write(`<presence/>`)
	first := b.Expect(func(el *stanza.Element) bool { return el.Name == "message" })
	if first.Attr("id") != "s4" {
		t.Errorf("first offline message %s, want only s4 (s2 expired before, s3 while stored)", first)
	}
	b.RoundTrip() // bob's initial presence is done: he is available
	// Bob online: "notify if delivered directly" delivers and tells alice.
	a.Write(`<message to='` + bob.JID + `' type='chat' id='s6'><body>hello</body>` + amp(`<rule condition='deliver' value='direct' action='notify'/>`) + `</message>`)
	b.Expect(isMessage("hello"))
	n := a.Expect(byID("s6"))
	if st := n.Child("amp", "http://jabber.org/protocol/amp"); st == nil || st.Attr("status") != "notify" || st.Attr("to") != bob.JID {
		t.Errorf("notification %s", n)
	}
	// "drop if it cannot be delivered": nobody gets a bounce.
	a.Write(`<message to='999999-` + fmt.Sprint(alice.Ref.App) + `@localhost' type='chat' id='s7'><body>x</body>` + amp(`<rule condition='deliver' value='none' action='drop'/>`) + `</message>`)
	a.Write(`<iq type='get' id='after'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if r := a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "after" || el.Attr("id") == "s7" }); r.Attr("id") != "after" {
		t.Errorf("a dropped message was answered: %s", r)
	}
}

// In-band bytestreams (XEP-0047) between two online users: 1 MB in 4 KiB
// blocks, every block acknowledged, the bytes intact.
func TestInBandBytestream(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "a")
	b := e.Online(bob, "b")
	file := make([]byte, 1<<20)
	for i := range file {
		file[i] = byte(i * 7)
	}
	const block = 4096
	a.Write(`<iq type='set' id='open' to='` + b.JID + `'><open xmlns='http://jabber.org/protocol/ibb' block-size='4096' sid='s1' stanza='iq'/></iq>`)
	open := b.Expect(func(el *stanza.Element) bool { return el.Child("open", "http://jabber.org/protocol/ibb") != nil })
	b.Write(`<iq type='result' id='` + open.Attr("id") + `' to='` + open.Attr("from") + `'/>`)
	a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "open" && el.Attr("type") == "result" })
	var got []byte
	for seq := 0; seq*block < len(file); seq++ {
		chunk := file[seq*block : min(len(file), (seq+1)*block)]
		id := fmt.Sprintf("d%d", seq)
		a.Write(`<iq type='set' id='` + id + `' to='` + b.JID + `'><data xmlns='http://jabber.org/protocol/ibb' seq='` +
			fmt.Sprint(seq) + `' sid='s1'>` + base64.StdEncoding.EncodeToString(chunk) + `</data></iq>`)
		d := b.Expect(func(el *stanza.Element) bool { return el.Child("data", "http://jabber.org/protocol/ibb") != nil })
		raw, err := base64.StdEncoding.DecodeString(d.Child("data", "").Content())
		if err != nil || d.Child("data", "").Attr("seq") != fmt.Sprint(seq) {
			t.Fatalf("block %d: %v %s", seq, err, d.Attr("id"))
		}
		got = append(got, raw...)
		b.Write(`<iq type='result' id='` + d.Attr("id") + `' to='` + d.Attr("from") + `'/>`)
		a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == id && el.Attr("type") == "result" })
	}
	a.Write(`<iq type='set' id='close' to='` + b.JID + `'><close xmlns='http://jabber.org/protocol/ibb' sid='s1'/></iq>`)
	cl := b.Expect(func(el *stanza.Element) bool { return el.Child("close", "http://jabber.org/protocol/ibb") != nil })
	b.Write(`<iq type='result' id='` + cl.Attr("id") + `' to='` + cl.Attr("from") + `'/>`)
	a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "close" })
	if !bytes.Equal(got, file) {
		t.Fatalf("received %d bytes that differ from the %d sent", len(got), len(file))
	}
}

// Offline messages go to a resource once it is available with a
// non-negative priority (XEP-0160): not to one whose initial presence has
// priority -1, but to it as soon as it raises its priority (found in
// audit).
func TestOfflineWaitsForNonNegativePriority(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	b := e.Online(bob, "b")
	b.Write(`<message to='` + alice.JID + `' type='chat' id='o1'><body>before</body></message>`)
	b.RoundTrip()
	a := e.Login(alice, "lurk")
	a.Write(`<presence><priority>-1</priority></presence>`)
	if got := msgIDs(a.RoundTrip()); len(got) > 0 {
		t.Errorf("a resource with priority -1 got offline messages %v", got)
	}
	b.Write(`<message to='` + alice.JID + `' type='chat' id='o2'><body>while negative</body></message>`)
	for _, el := range b.RoundTrip() {
		if el.Attr("type") == "error" {
			t.Fatalf("bob got %s", el)
		}
	}
	if got := msgIDs(a.RoundTrip()); len(got) > 0 {
		t.Errorf("a resource with priority -1 got %v", got)
	}
	a.Write(`<presence><priority>5</priority></presence>`)
	if got := msgIDs(a.RoundTrip()); !slices.Equal(got, []string{"o1", "o2"}) {
		t.Errorf("after raising its priority to 5 the resource got %v, want [o1 o2]", got)
	}
}

// heldOffline is the server's store, with its first read of a backlog of
// offline messages held until release is closed (entered tells it was
// reached).
type heldOffline struct {
	xmpp.Store
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (h *heldOffline) OfflineMessages(ctx context.Context, owner xmpp.UserRef, max int) ([]xmpp.OfflineMessage, error) {
	msgs, err := h.Store.OfflineMessages(ctx, owner, max)
	if len(msgs) > 0 {
		h.once.Do(func() {
			close(h.entered)
			<-h.release
		})
	}
	return msgs, err
}

// startHeldOffline starts a server whose store holds its first read of a
// backlog of offline messages (see heldOffline).
func startHeldOffline(t *testing.T) (*env, *heldOffline) {
	held := &heldOffline{entered: make(chan struct{}), release: make(chan struct{})}
	return &env{xmpptest.Start(t, xmpptest.Options{Store: func(s xmpp.Store) xmpp.Store {
		held.Store = s
		return held
	}})}, held
}

// A message to a resource's full JID that comes while the resource is being
// delivered its offline messages comes after them, as one to the bare JID
// does (found in audit: it overtook them).
func TestFullJIDMessageAfterOfflineBacklog(t *testing.T) {
	e, held := startHeldOffline(t)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	b := e.Online(bob, "b")
	// Another resource of alice's, with carbons and a negative priority
	// (so the messages to the bare JID are stored).
	tab := e.Login(alice, "tab")
	enableCarbons(t, tab)
	tab.Write(`<presence><priority>-1</priority></presence>`)
	tab.RoundTrip()
	for _, id := range []string{"o1", "o2", "o3"} {
		b.Write(`<message to='` + alice.JID + `' type='chat' id='` + id + `'><body>stored</body></message>`)
	}
	b.RoundTrip()
	a := e.Login(alice, "phone")
	a.Write(`<presence/>`)
	<-held.entered // the delivery of the backlog has begun
	b.Write(`<message to='` + alice.JID + `/phone' type='chat' id='live'><body>live</body></message>`)
	for _, el := range b.RoundTrip() {
		if el.Attr("type") == "error" {
			t.Errorf("bob got %s", el)
		}
	}
	close(held.release)
	if got := msgIDs(a.RoundTrip()); !slices.Equal(got, []string{"o1", "o2", "o3", "live"}) {
		t.Errorf("alice got %v, want [o1 o2 o3 live]", got)
	}
	// The other resource got its carbon copy, as for any message to a full
	// JID.
	var carbons []string
	for _, el := range tab.RoundTrip() {
		if m := forwarded(el, "received"); m != nil {
			carbons = append(carbons, m.Attr("id"))
		}
	}
	if !slices.Equal(carbons, []string{"live"}) {
		t.Errorf("the carbon-enabled resource got copies of %v, want [live]", carbons)
	}
}

// Offline messages that a session closing in the middle of their delivery
// could not take stay stored for the next session (found in audit: they
// were deleted unsent).
func TestOfflineKeptWhenSessionEndsDuringDelivery(t *testing.T) {
	e, held := startHeldOffline(t)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	b := e.Online(bob, "b")
	for _, id := range []string{"o1", "o2", "o3"} {
		b.Write(`<message to='` + alice.JID + `' type='chat' id='` + id + `'><body>stored</body></message>`)
	}
	b.RoundTrip()
	first := e.Login(alice, "phone")
	first.Write(`<presence/>`)
	<-held.entered // the backlog is read, not yet delivered
	// The same resource again replaces the first session, which closes.
	second := e.Login(alice, "phone")
	if cond := first.Ended(); cond != "conflict" {
		t.Errorf("the replaced session ended with %q, want conflict", cond)
	}
	close(held.release)
	waitFor(t, func() bool { return len(e.Server.Sessions(alice.Ref)) == 1 })
	second.Write(`<presence/>`)
	if got := msgIDs(second.RoundTrip()); !slices.Equal(got, []string{"o1", "o2", "o3"}) {
		t.Errorf("the next session got %v, want [o1 o2 o3]", got)
	}
}

// A resource that raises its priority from below 0 gets the offline
// messages first, then what came to the bare JID meanwhile.
func TestBareJIDMessageAfterOfflineBacklogOnPriorityRaise(t *testing.T) {
	e, held := startHeldOffline(t)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	b := e.Online(bob, "b")
	a := e.Login(alice, "lurk")
	a.Write(`<presence><priority>-1</priority></presence>`)
	a.RoundTrip()
	for _, id := range []string{"o1", "o2"} {
		b.Write(`<message to='` + alice.JID + `' type='chat' id='` + id + `'><body>stored</body></message>`)
	}
	b.RoundTrip()
	a.Write(`<presence><priority>5</priority></presence>`)
	<-held.entered
	b.Write(`<message to='` + alice.JID + `' type='chat' id='live'><body>live</body></message>`)
	b.RoundTrip()
	close(held.release)
	if got := msgIDs(a.RoundTrip()); !slices.Equal(got, []string{"o1", "o2", "live"}) {
		t.Errorf("alice got %v, want [o1 o2 live]", got)
	}
}

// A marker sent with a chat state is a message like others, not a chat
// state notification: an inactive client gets it when active again (it is
// not replaced by the next chat state), and an offline user gets it from
// offline storage; a QuickBlox typing notification (a chat state with
// extraParams) is still only a chat state (found in audit).
func TestMarkerWithChatStateIsNotChatStateOnly(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob, carol := e.NewUser("alice"), e.NewUser("bob"), e.NewUser("carol")
	const markerWithState = `<displayed xmlns='urn:xmpp:chat-markers:0' id='seen-1'/><active xmlns='http://jabber.org/protocol/chatstates'/>`
	const sdkTyping = `<composing xmlns='http://jabber.org/protocol/chatstates'/><extraParams xmlns='jabber:client'><dialog_id>d1</dialog_id></extraParams>`
	a := e.Online(alice, "a")
	a.Write(`<inactive xmlns='urn:xmpp:csi:0'/>`)
	a.RoundTrip()
	b := e.Online(bob, "b")
	b.Write(`<message to='` + alice.JID + `' type='chat' id='mk1'>` + markerWithState + `</message>`)
	b.Write(`<message to='` + alice.JID + `' type='chat' id='cs2'>` + sdkTyping + `</message>`)
	b.Write(`<message to='` + alice.JID + `' type='chat' id='cs3'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	b.RoundTrip()
	a.Write(`<active xmlns='urn:xmpp:csi:0'/>`)
	if ids := msgIDs(a.RoundTrip()); !slices.Equal(ids, []string{"mk1", "cs3"}) {
		t.Errorf("after CSI active alice got %v, want the marker and the latest chat state [mk1 cs3]", ids)
	}
	b.Write(`<message to='` + carol.JID + `' type='chat' id='mk2'>` + markerWithState + `</message>`)
	b.Write(`<message to='` + carol.JID + `' type='chat' id='cs4'>` + sdkTyping + `</message>`)
	for _, el := range b.RoundTrip() {
		if el.Attr("id") == "mk2" {
			t.Errorf("the marker to offline carol bounced: %s", el)
		}
	}
	c := e.Login(carol, "c")
	c.Write(`<presence/>`)
	if ids := msgIDs(c.RoundTrip()); !slices.Equal(ids, []string{"mk2"}) {
		t.Errorf("carol's offline messages %v, want [mk2] (not the typing notification)", ids)
	}
}

// A resource whose active privacy list refuses a sender's messages gets no
// carbon copy of them either (found in audit).
func TestCarbonsHonourActiveList(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	phone := e.Online(alice, "phone")
	desk := e.Online(alice, "desk")
	for _, c := range []*client{phone, desk} {
		c.Write(`<iq type='set' id='cb'><enable xmlns='urn:xmpp:carbons:2'/></iq>`)
		c.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "cb" })
	}
	phone.Write(`<iq type='set' id='l1'><query xmlns='jabber:iq:privacy'><list name='nobob'>` +
		`<item type='jid' value='` + bob.JID + `' action='deny' order='1'><message/></item></list></query></iq>`)
	phone.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "l1" })
	phone.Write(`<iq type='set' id='a1'><query xmlns='jabber:iq:privacy'><active name='nobob'/></query></iq>`)
	phone.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "a1" })
	b := e.Online(bob, "b")
	b.Write(`<message to='` + alice.JID + `' type='chat' id='c1'><body>hello alice</body></message>`)
	desk.Expect(isMessage("hello alice"))
	for _, el := range phone.RoundTrip() {
		if el.Name == "message" && strings.Contains(el.String(), "hello alice") {
			t.Errorf("the phone, whose active list denies bob's messages, got %s", el)
		}
	}
}

// A contact the user blocks reaches the user with nothing (XEP-0016,
// XEP-0191): not a directed presence, not a subscription request, and an IQ
// to the user's bare JID (last activity would tell that the user is online)
// gets an error; an unblocked contact's do go through (found in audit).
func TestBlockedContactReachesNothing(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob, carol := e.NewUser("alice"), e.NewUser("bob"), e.NewUser("carol")
	b := e.Online(bob, "b")
	a := e.Online(alice, "a")
	c := e.Online(carol, "c")
	b.Write(`<iq type='set' id='blk'><block xmlns='urn:xmpp:blocking'><item jid='` + alice.JID + `'/></block></iq>`)
	b.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "blk" })
	for _, x := range []*client{a, c} {
		x.Write(`<presence to='` + bob.JID + `'><status>knock knock</status></presence>`)
		x.Write(`<presence to='` + bob.JID + `/b'><status>knock on b</status></presence>`)
		x.Write(`<presence to='` + bob.JID + `' type='subscribe'/>`)
		x.RoundTrip()
	}
	got := map[string]int{}
	for _, el := range b.RoundTrip() {
		if el.Name == "presence" {
			got[el.Attr("from")+" "+el.Attr("type")+el.ChildText("status", "")]++
		}
	}
	for k := range got {
		if strings.HasPrefix(k, alice.JID) {
			t.Errorf("bob, who blocks alice, got her presence %q", k)
		}
	}
	if len(got) != 3 {
		t.Errorf("bob got %v, want carol's two directed presences and her subscription request", got)
	}
	a.Write(`<iq type='get' id='last' to='` + bob.JID + `'><query xmlns='jabber:iq:last'/></iq>`)
	if r := a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "last" }); xmpptest.ErrorCondition(r) != "service-unavailable" {
		t.Errorf("alice, whom bob blocks, asked his last activity and got %s", r)
	}
	c.Write(`<iq type='get' id='last' to='` + bob.JID + `'><query xmlns='jabber:iq:last'/></iq>`)
	if r := c.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "last" }); r.Attr("type") != "result" {
		t.Errorf("carol asked bob's last activity and got %s", r)
	}
}

// Blocking a subscriber with a privacy list, as the QuickBlox SDK does
// (a deny-all item, then default and active), sends it the user's
// unavailable presence at once (XEP-0016); it had gone on seeing the user
// online for good (found in audit).
func TestPrivacyBlockSendsUnavailable(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "a")
	b := e.Online(bob, "b")
	b.Write(`<presence to='` + alice.JID + `' type='subscribe'/>`)
	a.Expect(func(el *stanza.Element) bool { return el.Attr("type") == "subscribe" })
	a.Write(`<presence to='` + bob.JID + `' type='subscribed'/>`)
	b.Expect(func(el *stanza.Element) bool {
		return el.Name == "presence" && el.Attr("from") == a.JID && el.Attr("type") == ""
	})
	a.Write(`<iq type='set' id='l1'><query xmlns='jabber:iq:privacy'><list name='blocked'>` +
		`<item type='jid' value='` + bob.JID + `' action='deny' order='1'/>` +
		`<item type='jid' value='muc.localhost/` + bob.ID + `' action='deny' order='2'/></list></query></iq>`)
	a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "l1" })
	a.Write(`<iq type='set' id='d1'><query xmlns='jabber:iq:privacy'><default name='blocked'/></query></iq>`)
	a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "d1" })
	b.Expect(func(el *stanza.Element) bool {
		return el.Name == "presence" && el.Attr("from") == a.JID && el.Attr("type") == "unavailable"
	})
	// Activating the same list changes nothing for bob: no second one.
	a.Write(`<iq type='set' id='a1'><query xmlns='jabber:iq:privacy'><active name='blocked'/></query></iq>`)
	a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "a1" })
	for _, el := range b.RoundTrip() {
		if el.Name == "presence" && el.Attr("from") == a.JID {
			t.Errorf("then bob got %s", el)
		}
	}
}

// What a user keeps in privacy lists is bounded: a 51st list and a
// blocklist past 10,000 items are refused with <policy-violation/>, and what
// was stored stays as it was.
func TestPrivacyBounds(t *testing.T) {
	e := startEnv(t, nil)
	alice := e.NewUser("alice")
	a := e.Online(alice, "a")
	ask := func(id, xml string) *stanza.Element {
		a.Write(xml)
		return a.Expect(func(el *stanza.Element) bool { return el.Name == "iq" && el.Attr("id") == id })
	}
	list := func(name string) string {
		return `<iq type='set' id='` + name + `'><query xmlns='jabber:iq:privacy'><list name='` + name +
			`'><item type='jid' value='x@example.com' action='deny' order='1'/></list></query></iq>`
	}
	for i := range 50 {
		name := fmt.Sprintf("l%d", i)
		if r := ask(name, list(name)); r.Attr("type") != "result" {
			t.Fatalf("list %d: %s", i, r)
		}
	}
	if r := ask("l50", list("l50")); xmpptest.ErrorCondition(r) != "policy-violation" {
		t.Errorf("a 51st list answered %s, want policy-violation", r)
	}
	if r := ask("l7", list("l7")); r.Attr("type") != "result" {
		t.Errorf("replacing one of the 50 answered %s", r)
	}
	// The blocklist grows by block commands; 3,000 JIDs a stanza.
	block := func(id string, from int) string {
		var b strings.Builder
		b.WriteString(`<iq type='set' id='` + id + `'><block xmlns='urn:xmpp:blocking'>`)
		for i := from; i < from+3000; i++ {
			fmt.Fprintf(&b, `<item jid='spam%d@example.com'/>`, i)
		}
		b.WriteString(`</block></iq>`)
		return b.String()
	}
	for i := range 3 {
		// Each is answered within the harness's wait: the blocklist was
		// scanned once per JID blocked, for every JID, and the second of
		// these was not answered within it.
		if r := ask(fmt.Sprintf("b%d", i), block(fmt.Sprintf("b%d", i), i*3000)); r.Attr("type") != "result" {
			t.Fatalf("block %d: %s", i, r)
		}
	}
	if r := ask("b3", block("b3", 9000)); xmpptest.ErrorCondition(r) != "policy-violation" {
		t.Errorf("growing the blocklist to 12,000 answered %s, want policy-violation", r)
	}
	r := ask("get", `<iq type='get' id='get'><blocklist xmlns='urn:xmpp:blocking'/></iq>`)
	if n := len(r.Child("blocklist", "").Elements()); n != 9000 {
		t.Errorf("the blocklist holds %d JIDs, want the 9,000 blocked before", n)
	}
}
