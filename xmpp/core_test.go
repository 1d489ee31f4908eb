package xmpp_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"mellium.im/sasl"

	"chatd/account"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

func TestFeaturesBeforeAndAfterTLS(t *testing.T) {
	e := startEnv(t, nil)
	c := e.rawDial()
	f := c.open()
	st := f.Child("starttls", "urn:ietf:params:xml:ns:xmpp-tls")
	if st == nil || st.Child("required", "") == nil {
		t.Fatalf("STARTTLS must be offered and required: %s", f)
	}
	if f.Child("mechanisms", "") != nil {
		t.Fatalf("SASL offered before TLS: %s", f)
	}
	c.startTLS()
	f = c.open()
	mechs := f.Child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
	if mechs == nil {
		t.Fatalf("no mechanisms after TLS: %s", f)
	}
	var names []string
	for _, m := range mechs.Elements() {
		names = append(names, m.Content())
	}
	if got := strings.Join(names, ","); got != "SCRAM-SHA-256,SCRAM-SHA-1,PLAIN" {
		t.Errorf("mechanisms = %s", got)
	}
	if strings.Contains(f.String(), "-PLUS") {
		t.Errorf("a -PLUS mechanism is advertised: %s", f)
	}
}

// Every mechanism accepts the password and a live REST session token; a
// wrong password fails with not-authorized and QuickBlox's text.
func TestSASLMechanisms(t *testing.T) {
	e := startEnv(t, nil)
	alice := e.newUser("alice")
	ctx := context.Background()
	sess, err := e.accounts.StartSession(ctx, signedRequest(e.app, "alice", alice.password))
	if err != nil {
		t.Fatal(err)
	}
	authcid := fmt.Sprintf("%d-%d", alice.ref.User, alice.ref.App)
	for _, mech := range []sasl.Mechanism{sasl.ScramSha256, sasl.ScramSha1, sasl.Plain} {
		for _, secret := range []struct{ name, value string }{{"password", alice.password}, {"token", sess.Token}} {
			t.Run(mech.Name+"/"+secret.name, func(t *testing.T) {
				c := e.rawDial()
				c.open()
				c.startTLS()
				c.open()
				if r := c.auth(mech, authcid, secret.value); r.Name != "success" {
					t.Fatalf("auth failed: %s", r)
				}
				f := c.open()
				if f.Child("bind", "urn:ietf:params:xml:ns:xmpp-bind") == nil {
					t.Fatalf("no bind feature after auth: %s", f)
				}
				c.bind("")
				if !strings.HasPrefix(c.jid, alice.jid+"/") {
					t.Errorf("bound %q, want %s/…", c.jid, alice.jid)
				}
			})
		}
		t.Run(mech.Name+"/wrong", func(t *testing.T) {
			c := e.rawDial()
			c.open()
			c.startTLS()
			c.open()
			r := c.auth(mech, authcid, "not the password")
			if r.Name != "failure" || r.Child("not-authorized", "") == nil || r.ChildText("text", "") != "Password not verified" {
				t.Fatalf("wrong password answered %s", r)
			}
		})
	}
	// The bare JID works as the authentication identity too (node-xmpp-client
	// sends it as authzid; some clients use it as authcid).
	c := e.rawDial()
	c.open()
	c.startTLS()
	c.open()
	if r := c.auth(sasl.Plain, alice.jid, alice.password); r.Name != "success" {
		t.Fatalf("bare JID as authcid: %s", r)
	}
	// A token of another user is no password of alice.
	bob := e.newUser("bob")
	bobSess, err := e.accounts.StartSession(ctx, signedRequest(e.app, "bob", bob.password))
	if err != nil {
		t.Fatal(err)
	}
	c = e.rawDial()
	c.open()
	c.startTLS()
	c.open()
	if r := c.auth(sasl.ScramSha256, authcid, bobSess.Token); r.Name != "failure" {
		t.Fatalf("bob's token logged alice in: %s", r)
	}
}

func TestMessageDeliveryStampsFrom(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.newUser("alice"), e.newUser("bob")
	a := e.online(alice, "phone")
	b := e.online(bob, "laptop")
	// The QuickBlox SDK sends bare local parts as 'from'; spoofers send
	// others' JIDs: either way the server stamps the real sender.
	a.write(`<message to='` + bob.jid + `' from='` + bob.jid + `/x' type='chat' id='m1'><body>hello bob</body></message>`)
	got := b.expect(isMessage("hello bob"))
	if got.Attr("from") != a.jid || got.Attr("to") != b.jid || got.Attr("id") != "m1" || got.Attr("type") != "chat" {
		t.Errorf("delivered %s", got)
	}
	// To a full JID.
	b.write(`<message to='` + a.jid + `' type='chat'><body>hi alice</body></message>`)
	if got := a.expect(isMessage("hi alice")); got.Attr("from") != b.jid {
		t.Errorf("delivered %s", got)
	}
	// A message to an unknown resource falls back to the bare JID.
	b.write(`<message to='` + alice.jid + `/gone' type='chat'><body>fallback</body></message>`)
	a.expect(isMessage("fallback"))
}

func TestBareJIDGoesToEveryNonNegativeResource(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.newUser("alice"), e.newUser("bob")
	a1 := e.online(alice, "one")
	a2 := e.online(alice, "two")
	a3 := e.login(alice, "three")
	a3.write(`<presence><priority>-1</priority></presence>`)
	a3.roundTrip()
	b := e.online(bob, "b")
	b.write(`<message to='` + alice.jid + `' type='chat'><body>to all</body></message>`)
	a1.expect(isMessage("to all"))
	a2.expect(isMessage("to all"))
	// The negative-priority resource gets nothing: ask it for a round trip
	// and make sure the message did not come before the answer.
	id := "check"
	a3.write(`<iq type='get' id='` + id + `'><ping xmlns='urn:xmpp:ping'/></iq>`)
	for {
		el := a3.next()
		if el.Name == "message" && el.ChildText("body", "") == "to all" {
			t.Fatal("a negative-priority resource got a bare-JID message")
		}
		if el.Name == "iq" && el.Attr("id") == id {
			break
		}
	}
}

// Messages to an offline user wait for it and arrive, in order, with delay
// stamps at its initial presence; a user that does not exist bounces them,
// and so does a full offline store.
func TestOfflineStorage(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) { c.OfflineLimit = 3 })
	alice, bob := e.newUser("alice"), e.newUser("bob")
	a := e.online(alice, "a")
	for i := range 4 {
		a.write(fmt.Sprintf(`<message to='%s' type='chat' id='o%d'><body>offline %d</body></message>`, bob.jid, i, i))
	}
	// Headlines and chat states are not stored, and not bounced either.
	a.write(`<message to='` + bob.jid + `' type='headline'><body>headline</body></message>`)
	a.write(`<message to='` + bob.jid + `' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	r := a.expect(func(el *stanza.Element) bool { return el.Attr("type") == "error" })
	if r.Attr("id") != "o3" || errorCondition(r) != "service-unavailable" || r.Child("error", "").Attr("code") != "503" {
		t.Errorf("the message past the limit answered %s", r)
	}
	a.write(`<message to='999999-` + fmt.Sprint(alice.ref.App) + `@localhost' type='chat' id='nobody'><body>x</body></message>`)
	if r := a.expect(func(el *stanza.Element) bool { return el.Attr("id") == "nobody" }); errorCondition(r) != "service-unavailable" {
		t.Errorf("a message to nobody answered %s", r)
	}
	b := e.login(bob, "b")
	b.write(`<presence/>`)
	for i := range 3 {
		m := b.next()
		for m.Name != "message" {
			m = b.next()
		}
		d := m.Child("delay", "urn:xmpp:delay")
		if m.ChildText("body", "") != fmt.Sprintf("offline %d", i) || m.Attr("id") != fmt.Sprintf("o%d", i) ||
			d == nil || d.Attr("from") != "localhost" || d.Attr("stamp") == "" || m.Attr("from") != a.jid {
			t.Fatalf("offline message %d arrived as %s", i, m)
		}
	}
	b.roundTrip()
	// Delivered messages are gone from storage; a new login gets nothing.
	b.conn.Close()
	b2 := e.login(bob, "b2")
	b2.write(`<presence/>`)
	id := "after"
	b2.write(`<iq type='get' id='` + id + `'><ping xmlns='urn:xmpp:ping'/></iq>`)
	for el := b2.next(); !(el.Name == "iq" && el.Attr("id") == id); el = b2.next() {
		if el.Name == "message" {
			t.Fatalf("delivered twice: %s", el)
		}
	}
}

func TestCrossApplicationRefused(t *testing.T) {
	e := startEnv(t, nil)
	other, err := e.accounts.CreateApp(context.Background(), "other")
	if err != nil {
		t.Fatal(err)
	}
	alice := e.newUser("alice")
	mallory := e.newUserIn(other.ID, "mallory")
	a := e.online(alice, "a")
	m := e.online(mallory, "m")
	m.write(`<message to='` + alice.jid + `' type='chat' id='c1'><body>cross</body></message>`)
	r := m.expect(func(el *stanza.Element) bool { return el.Attr("id") == "c1" })
	if r.Attr("type") != "error" || errorCondition(r) != "service-unavailable" {
		t.Errorf("cross-application message answered %s", r)
	}
	m.write(`<iq to='` + alice.jid + `' type='get' id='c2'><query xmlns='jabber:iq:last'/></iq>`)
	if r := m.expect(func(el *stanza.Element) bool { return el.Attr("id") == "c2" }); r.Attr("type") != "error" {
		t.Errorf("cross-application IQ answered %s", r)
	}
	m.write(`<presence to='` + alice.jid + `' type='subscribe'/>`)
	m.roundTrip()
	a.roundTrip()
	// Alice saw nothing of mallory.
	items, _, err := e.db.XMPP().Roster(context.Background(), alice.ref)
	if err != nil || len(items) != 0 {
		t.Errorf("alice's roster after a cross-app subscribe: %v %v", items, err)
	}
}

func TestServerIQs(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.newUser("alice"), e.newUser("bob")
	a := e.online(alice, "a")
	ask := func(id, xml string) *stanza.Element {
		a.write(xml)
		return a.expect(func(el *stanza.Element) bool { return el.Name == "iq" && el.Attr("id") == id })
	}
	if r := ask("p", `<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`); r.Attr("type") != "result" || r.Attr("from") != "localhost" {
		t.Errorf("ping: %s", r)
	}
	r := ask("d", `<iq type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	for _, f := range []string{"urn:xmpp:ping", "jabber:iq:roster", "jabber:iq:last", "urn:xmpp:time", "jabber:iq:version"} {
		if !strings.Contains(r.String(), `var="`+f+`"`) {
			t.Errorf("disco#info lacks %s: %s", f, r)
		}
	}
	if r := ask("v", `<iq type='get' id='v'><query xmlns='jabber:iq:version'/></iq>`); r.Child("query", "").ChildText("name", "") != "chatd" {
		t.Errorf("version: %s", r)
	}
	if r := ask("t", `<iq type='get' id='t'><time xmlns='urn:xmpp:time'/></iq>`); !strings.HasSuffix(r.Child("time", "").ChildText("utc", ""), "Z") {
		t.Errorf("time: %s", r)
	}
	if r := ask("l", `<iq type='get' id='l'><query xmlns='jabber:iq:last'/></iq>`); r.Child("query", "").Attr("seconds") == "" {
		t.Errorf("server last activity: %s", r)
	}
	// A user never seen online has no last activity; once gone, they do.
	if r := ask("l2", `<iq type='get' id='l2' to='`+bob.jid+`'><query xmlns='jabber:iq:last'/></iq>`); r.Attr("type") != "error" {
		t.Errorf("last activity of a never-seen user: %s", r)
	}
	b := e.online(bob, "b")
	if r := ask("l3", `<iq type='get' id='l3' to='`+bob.jid+`'><query xmlns='jabber:iq:last'/></iq>`); r.Child("query", "").Attr("seconds") != "0" || r.Attr("from") != bob.jid {
		t.Errorf("last activity of an online user: %s", r)
	}
	b.write(`<presence type='unavailable'><status>gone fishing</status></presence>`)
	b.roundTrip()
	if r := ask("l4", `<iq type='get' id='l4' to='`+bob.jid+`'><query xmlns='jabber:iq:last'/></iq>`); r.Child("query", "").Content() != "gone fishing" {
		t.Errorf("last activity after going offline: %s", r)
	}
	if r := ask("u", `<iq type='get' id='u'><query xmlns='urn:example:unknown'/></iq>`); errorCondition(r) != "service-unavailable" {
		t.Errorf("unknown IQ: %s", r)
	}
	if r := ask("s", `<iq type='set' id='s' to='localhost'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`); r.Attr("type") != "result" {
		t.Errorf("legacy session IQ: %s", r)
	}
	// A ping to a user who does not exist gets no answer (QuickBlox SDK);
	// the next ping's answer comes first.
	a.write(`<iq type='get' id='ghost' to='999999-` + fmt.Sprint(alice.ref.App) + `@localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if r := ask("after", `<iq type='get' id='after'><ping xmlns='urn:xmpp:ping'/></iq>`); r.Attr("id") != "after" {
		t.Errorf("got %s", r)
	}
}

func TestRosterAndSubscriptions(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.newUser("alice"), e.newUser("bob")
	a := e.online(alice, "a")
	a.write(`<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
	r := a.expect(func(el *stanza.Element) bool { return el.Attr("id") == "r1" })
	if q := r.Child("query", "jabber:iq:roster"); q == nil || len(q.Elements()) != 0 || q.Attr("ver") == "" {
		t.Fatalf("empty roster: %s", r)
	}
	ver0 := r.Child("query", "").Attr("ver")

	// Alice asks to see bob's presence while bob is offline.
	a.write(`<presence to='` + bob.jid + `' type='subscribe'/>`)
	push := a.expect(func(el *stanza.Element) bool { return el.Name == "iq" && el.Attr("type") == "set" })
	item := push.Child("query", "").Child("item", "")
	if item.Attr("jid") != bob.jid || item.Attr("subscription") != "none" || item.Attr("ask") != "subscribe" {
		t.Errorf("push after subscribe: %s", push)
	}
	// Bob logs in and gets the stored request with his initial presence.
	b := e.login(bob, "b")
	b.write(`<presence/>`)
	req := b.expect(func(el *stanza.Element) bool { return el.Name == "presence" && el.Attr("type") == "subscribe" })
	if req.Attr("from") != alice.jid {
		t.Errorf("request from %q", req.Attr("from"))
	}
	b.write(`<presence to='` + alice.jid + `' type='subscribed'/>`)
	a.expect(func(el *stanza.Element) bool {
		return el.Name == "presence" && el.Attr("type") == "subscribed" && el.Attr("from") == bob.jid
	})
	// Alice now sees bob's presence.
	a.expect(func(el *stanza.Element) bool {
		return el.Name == "presence" && el.Attr("type") == "" && el.Attr("from") == b.jid
	})
	a.write(`<iq type='get' id='r2'><query xmlns='jabber:iq:roster' ver='` + ver0 + `'/></iq>`)
	r = a.expect(func(el *stanza.Element) bool { return el.Attr("id") == "r2" })
	item = r.Child("query", "").Child("item", "")
	if item == nil || item.Attr("subscription") != "to" || item.HasAttr("ask") {
		t.Errorf("alice's roster after approval: %s", r)
	}
	ver := r.Child("query", "").Attr("ver")
	// Roster versioning: the current version gets an empty result.
	a.write(`<iq type='get' id='r3'><query xmlns='jabber:iq:roster' ver='` + ver + `'/></iq>`)
	if r := a.expect(func(el *stanza.Element) bool { return el.Attr("id") == "r3" }); r.Attr("type") != "result" || r.Child("query", "") != nil {
		t.Errorf("current version answered %s", r)
	}
	// Bob's presence changes reach alice; alice's do not reach bob.
	b.write(`<presence><show>away</show></presence>`)
	a.expect(func(el *stanza.Element) bool { return el.Name == "presence" && el.ChildText("show", "") == "away" })
	// Named item with groups; then removal cancels the subscription.
	a.write(`<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='` + bob.jid + `' name='Bobby'><group>Friends</group></item></query></iq>`)
	a.expect(func(el *stanza.Element) bool { return el.Attr("id") == "s1" && el.Attr("type") == "result" })
	a.write(`<iq type='set' id='s2'><query xmlns='jabber:iq:roster'><item jid='` + bob.jid + `' subscription='remove'/></query></iq>`)
	a.expect(func(el *stanza.Element) bool { return el.Attr("id") == "s2" && el.Attr("type") == "result" })
	b.expect(func(el *stanza.Element) bool { return el.Name == "presence" && el.Attr("type") == "unsubscribe" })
	items, _, err := e.db.XMPP().Roster(context.Background(), bob.ref)
	if err != nil || len(items) != 1 || items[0].Subscription != "none" {
		t.Errorf("bob's roster after alice removed him: %+v %v", items, err)
	}
	// Going offline tells subscribers: bob subscribes to alice, alice goes.
	b.write(`<presence to='` + alice.jid + `' type='subscribe'/>`)
	a.expect(func(el *stanza.Element) bool { return el.Attr("type") == "subscribe" })
	a.write(`<presence to='` + bob.jid + `' type='subscribed'/>`)
	b.expect(func(el *stanza.Element) bool {
		return el.Name == "presence" && el.Attr("from") == a.jid && el.Attr("type") == ""
	})
	a.conn.Close()
	b.expect(func(el *stanza.Element) bool {
		return el.Name == "presence" && el.Attr("from") == a.jid && el.Attr("type") == "unavailable"
	})
}

// signedRequest builds a session request the way a REST client signs it.
func signedRequest(app *account.Application, login, password string) account.SessionRequest {
	return testSessionRequest(app, login, password)
}
