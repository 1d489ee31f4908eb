package xmpp_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"mellium.im/sasl"

	"chatd/account"
	"chatd/internal/xmpptest"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

func TestFeaturesBeforeAndAfterTLS(t *testing.T) {
	e := startEnv(t, nil)
	c := e.RawDial()
	f := c.Open()
	st := f.Child("starttls", "urn:ietf:params:xml:ns:xmpp-tls")
	if st == nil || st.Child("required", "") == nil {
		t.Fatalf("STARTTLS must be offered and required: %s", f)
	}
	if f.Child("mechanisms", "") != nil {
		t.Fatalf("SASL offered before TLS: %s", f)
	}
	c.StartTLS()
	f = c.Open()
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
	alice := e.NewUser("alice")
	ctx := context.Background()
	sess, err := e.Accounts.StartSession(ctx, signedRequest(e.App, "alice", alice.Password))
	if err != nil {
		t.Fatal(err)
	}
	authcid := fmt.Sprintf("%d-%d", alice.Ref.User, alice.Ref.App)
	for _, mech := range []sasl.Mechanism{sasl.ScramSha256, sasl.ScramSha1, sasl.Plain} {
		for _, secret := range []struct{ name, value string }{{"password", alice.Password}, {"token", sess.Token}} {
			t.Run(mech.Name+"/"+secret.name, func(t *testing.T) {
				c := e.RawDial()
				c.Open()
				c.StartTLS()
				c.Open()
				if r := c.Auth(mech, authcid, secret.value); r.Name != "success" {
					t.Fatalf("auth failed: %s", r)
				}
				f := c.Open()
				if f.Child("bind", "urn:ietf:params:xml:ns:xmpp-bind") == nil {
					t.Fatalf("no bind feature after auth: %s", f)
				}
				c.Bind("")
				if !strings.HasPrefix(c.JID, alice.JID+"/") {
					t.Errorf("bound %q, want %s/…", c.JID, alice.JID)
				}
			})
		}
		t.Run(mech.Name+"/wrong", func(t *testing.T) {
			c := e.RawDial()
			c.Open()
			c.StartTLS()
			c.Open()
			r := c.Auth(mech, authcid, "not the password")
			if r.Name != "failure" || r.Child("not-authorized", "") == nil || r.ChildText("text", "") != "Password not verified" {
				t.Fatalf("wrong password answered %s", r)
			}
		})
	}
	// The bare JID works as the authentication identity too (node-xmpp-client
	// sends it as authzid; some clients use it as authcid).
	c := e.RawDial()
	c.Open()
	c.StartTLS()
	c.Open()
	if r := c.Auth(sasl.Plain, alice.JID, alice.Password); r.Name != "success" {
		t.Fatalf("bare JID as authcid: %s", r)
	}
	// A token of another user is no password of alice.
	bob := e.NewUser("bob")
	bobSess, err := e.Accounts.StartSession(ctx, signedRequest(e.App, "bob", bob.Password))
	if err != nil {
		t.Fatal(err)
	}
	c = e.RawDial()
	c.Open()
	c.StartTLS()
	c.Open()
	if r := c.Auth(sasl.ScramSha256, authcid, bobSess.Token); r.Name != "failure" {
		t.Fatalf("bob's token logged alice in: %s", r)
	}
}

func TestMessageDeliveryStampsFrom(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "phone")
	b := e.Online(bob, "laptop")
	// The QuickBlox SDK sends bare local parts as 'from'; spoofers send
	// others' JIDs: either way the server stamps the real sender.
	a.Write(`<message to='` + bob.JID + `' from='` + bob.JID + `/x' type='chat' id='m1'><body>hello bob</body></message>`)
	got := b.Expect(isMessage("hello bob"))
	if got.Attr("from") != a.JID || got.Attr("to") != b.JID || got.Attr("id") != "m1" || got.Attr("type") != "chat" {
		t.Errorf("delivered %s", got)
	}
	// To a full JID.
	b.Write(`<message to='` + a.JID + `' type='chat'><body>hi alice</body></message>`)
	if got := a.Expect(isMessage("hi alice")); got.Attr("from") != b.JID {
		t.Errorf("delivered %s", got)
	}
	// A message to an unknown resource falls back to the bare JID.
	b.Write(`<message to='` + alice.JID + `/gone' type='chat'><body>fallback</body></message>`)
	a.Expect(isMessage("fallback"))
}

func TestBareJIDGoesToEveryNonNegativeResource(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a1 := e.Online(alice, "one")
	a2 := e.Online(alice, "two")
	a3 := e.Login(alice, "three")
	a3.Write(`<presence><priority>-1</priority></presence>`)
	a3.RoundTrip()
	b := e.Online(bob, "b")
	b.Write(`<message to='` + alice.JID + `' type='chat'><body>to all</body></message>`)
	a1.Expect(isMessage("to all"))
	a2.Expect(isMessage("to all"))
	// The negative-priority resource gets nothing: ask it for a round trip
	// and make sure the message did not come before the answer.
	id := "check"
	a3.Write(`<iq type='get' id='` + id + `'><ping xmlns='urn:xmpp:ping'/></iq>`)
	for {
		el := a3.Next()
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
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "a")
	for i := range 4 {
		a.Write(fmt.Sprintf(`<message to='%s' type='chat' id='o%d'><body>offline %d</body></message>`, bob.JID, i, i))
	}
	// Headlines and chat states are not stored, and not bounced either.
	a.Write(`<message to='` + bob.JID + `' type='headline'><body>headline</body></message>`)
	a.Write(`<message to='` + bob.JID + `' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	r := a.Expect(func(el *stanza.Element) bool { return el.Attr("type") == "error" })
	if r.Attr("id") != "o3" || xmpptest.ErrorCondition(r) != "service-unavailable" || r.Child("error", "").Attr("code") != "503" {
		t.Errorf("the message past the limit answered %s", r)
	}
	a.Write(`<message to='999999-` + fmt.Sprint(alice.Ref.App) + `@localhost' type='chat' id='nobody'><body>x</body></message>`)
	if r := a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "nobody" }); xmpptest.ErrorCondition(r) != "service-unavailable" {
		t.Errorf("a message to nobody answered %s", r)
	}
	b := e.Login(bob, "b")
	b.Write(`<presence/>`)
	for i := range 3 {
		m := b.Next()
		for m.Name != "message" {
			m = b.Next()
		}
		d := m.Child("delay", "urn:xmpp:delay")
		if m.ChildText("body", "") != fmt.Sprintf("offline %d", i) || m.Attr("id") != fmt.Sprintf("o%d", i) ||
			d == nil || d.Attr("from") != "localhost" || d.Attr("stamp") == "" || m.Attr("from") != a.JID {
			t.Fatalf("offline message %d arrived as %s", i, m)
		}
	}
	b.RoundTrip()
	// Delivered messages are gone from storage; a new login gets nothing.
	b.Conn.Close()
	b2 := e.Login(bob, "b2")
	b2.Write(`<presence/>`)
	id := "after"
	b2.Write(`<iq type='get' id='` + id + `'><ping xmlns='urn:xmpp:ping'/></iq>`)
	for el := b2.Next(); !(el.Name == "iq" && el.Attr("id") == id); el = b2.Next() {
		if el.Name == "message" {
			t.Fatalf("delivered twice: %s", el)
		}
	}
}

func TestCrossApplicationRefused(t *testing.T) {
	e := startEnv(t, nil)
	other, err := e.Accounts.CreateApp(context.Background(), "other")
	if err != nil {
		t.Fatal(err)
	}
	alice := e.NewUser("alice")
	mallory := e.NewUserIn(other.ID, "mallory")
	a := e.Online(alice, "a")
	m := e.Online(mallory, "m")
	m.Write(`<message to='` + alice.JID + `' type='chat' id='c1'><body>cross</body></message>`)
	r := m.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "c1" })
	if r.Attr("type") != "error" || xmpptest.ErrorCondition(r) != "service-unavailable" {
		t.Errorf("cross-application message answered %s", r)
	}
	m.Write(`<iq to='` + alice.JID + `' type='get' id='c2'><query xmlns='jabber:iq:last'/></iq>`)
	if r := m.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "c2" }); r.Attr("type") != "error" {
		t.Errorf("cross-application IQ answered %s", r)
	}
	m.Write(`<presence to='` + alice.JID + `' type='subscribe'/>`)
	m.RoundTrip()
	a.RoundTrip()
	// Alice saw nothing of mallory.
	items, _, err := e.DB.XMPP().Roster(context.Background(), alice.Ref)
	if err != nil || len(items) != 0 {
		t.Errorf("alice's roster after a cross-app subscribe: %v %v", items, err)
	}
}

func TestServerIQs(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "a")
	ask := func(id, xml string) *stanza.Element {
		a.Write(xml)
		return a.Expect(func(el *stanza.Element) bool { return el.Name == "iq" && el.Attr("id") == id })
	}
	if r := ask("p", `<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`); r.Attr("type") != "result" || r.Attr("from") != "localhost" {
		t.Errorf("ping: %s", r)
	}
	r := ask("d", `<iq type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	for _, f := range []string{"urn:xmpp:ping", "jabber:iq:roster", "jabber:iq:last", "urn:xmpp:time", "jabber:iq:version", "msgoffline"} {
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
	if r := ask("l2", `<iq type='get' id='l2' to='`+bob.JID+`'><query xmlns='jabber:iq:last'/></iq>`); r.Attr("type") != "error" {
		t.Errorf("last activity of a never-seen user: %s", r)
	}
	b := e.Online(bob, "b")
	if r := ask("l3", `<iq type='get' id='l3' to='`+bob.JID+`'><query xmlns='jabber:iq:last'/></iq>`); r.Child("query", "").Attr("seconds") != "0" || r.Attr("from") != bob.JID {
		t.Errorf("last activity of an online user: %s", r)
	}
	b.Write(`<presence type='unavailable'><status>gone fishing</status></presence>`)
	b.RoundTrip()
	if r := ask("l4", `<iq type='get' id='l4' to='`+bob.JID+`'><query xmlns='jabber:iq:last'/></iq>`); r.Child("query", "").Content() != "gone fishing" {
		t.Errorf("last activity after going offline: %s", r)
	}
	if r := ask("u", `<iq type='get' id='u'><query xmlns='urn:example:unknown'/></iq>`); xmpptest.ErrorCondition(r) != "service-unavailable" {
		t.Errorf("unknown IQ: %s", r)
	}
	if r := ask("s", `<iq type='set' id='s' to='localhost'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`); r.Attr("type") != "result" {
		t.Errorf("legacy session IQ: %s", r)
	}
	// A ping to a user who does not exist gets no answer (QuickBlox SDK);
	// the next ping's answer comes first.
	a.Write(`<iq type='get' id='ghost' to='999999-` + fmt.Sprint(alice.Ref.App) + `@localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if r := ask("after", `<iq type='get' id='after'><ping xmlns='urn:xmpp:ping'/></iq>`); r.Attr("id") != "after" {
		t.Errorf("got %s", r)
	}
}

func TestRosterAndSubscriptions(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "a")
	a.Write(`<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
	r := a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "r1" })
	if q := r.Child("query", "jabber:iq:roster"); q == nil || len(q.Elements()) != 0 || q.Attr("ver") == "" {
		t.Fatalf("empty roster: %s", r)
	}
	ver0 := r.Child("query", "").Attr("ver")

	// Alice asks to see bob's presence while bob is offline.
	a.Write(`<presence to='` + bob.JID + `' type='subscribe'/>`)
	push := a.Expect(func(el *stanza.Element) bool { return el.Name == "iq" && el.Attr("type") == "set" })
	item := push.Child("query", "").Child("item", "")
	if item.Attr("jid") != bob.JID || item.Attr("subscription") != "none" || item.Attr("ask") != "subscribe" {
		t.Errorf("push after subscribe: %s", push)
	}
	// Bob logs in and gets the stored request with his initial presence.
	b := e.Login(bob, "b")
	b.Write(`<presence/>`)
	req := b.Expect(func(el *stanza.Element) bool { return el.Name == "presence" && el.Attr("type") == "subscribe" })
	if req.Attr("from") != alice.JID {
		t.Errorf("request from %q", req.Attr("from"))
	}
	b.Write(`<presence to='` + alice.JID + `' type='subscribed'/>`)
	a.Expect(func(el *stanza.Element) bool {
		return el.Name == "presence" && el.Attr("type") == "subscribed" && el.Attr("from") == bob.JID
	})
	// Alice now sees bob's presence.
	a.Expect(func(el *stanza.Element) bool {
		return el.Name == "presence" && el.Attr("type") == "" && el.Attr("from") == b.JID
	})
	a.Write(`<iq type='get' id='r2'><query xmlns='jabber:iq:roster' ver='` + ver0 + `'/></iq>`)
	r = a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "r2" })
	item = r.Child("query", "").Child("item", "")
	if item == nil || item.Attr("subscription") != "to" || item.HasAttr("ask") {
		t.Errorf("alice's roster after approval: %s", r)
	}
	ver := r.Child("query", "").Attr("ver")
	// Roster versioning: the current version gets an empty result.
	a.Write(`<iq type='get' id='r3'><query xmlns='jabber:iq:roster' ver='` + ver + `'/></iq>`)
	if r := a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "r3" }); r.Attr("type") != "result" || r.Child("query", "") != nil {
		t.Errorf("current version answered %s", r)
	}
	// Bob's presence changes reach alice; alice's do not reach bob.
	b.Write(`<presence><show>away</show></presence>`)
	a.Expect(func(el *stanza.Element) bool { return el.Name == "presence" && el.ChildText("show", "") == "away" })
	// Named item with groups; then removal cancels the subscription.
	a.Write(`<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='` + bob.JID + `' name='Bobby'><group>Friends</group></item></query></iq>`)
	a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "s1" && el.Attr("type") == "result" })
	a.Write(`<iq type='set' id='s2'><query xmlns='jabber:iq:roster'><item jid='` + bob.JID + `' subscription='remove'/></query></iq>`)
	a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "s2" && el.Attr("type") == "result" })
	b.Expect(func(el *stanza.Element) bool { return el.Name == "presence" && el.Attr("type") == "unsubscribe" })
	items, _, err := e.DB.XMPP().Roster(context.Background(), bob.Ref)
	if err != nil || len(items) != 1 || items[0].Subscription != "none" {
		t.Errorf("bob's roster after alice removed him: %+v %v", items, err)
	}
	// Going offline tells subscribers: bob subscribes to alice, alice goes.
	b.Write(`<presence to='` + alice.JID + `' type='subscribe'/>`)
	a.Expect(func(el *stanza.Element) bool { return el.Attr("type") == "subscribe" })
	a.Write(`<presence to='` + bob.JID + `' type='subscribed'/>`)
	b.Expect(func(el *stanza.Element) bool {
		return el.Name == "presence" && el.Attr("from") == a.JID && el.Attr("type") == ""
	})
	a.Conn.Close()
	b.Expect(func(el *stanza.Element) bool {
		return el.Name == "presence" && el.Attr("from") == a.JID && el.Attr("type") == "unavailable"
	})
}

// signedRequest builds a session request the way a REST client signs it.
func signedRequest(app *account.Application, login, password string) account.SessionRequest {
	return testSessionRequest(app, login, password)
}

// A contact without an account gets no roster rows: a roster set for it is
// refused with item-not-found, and a subscription request is answered
// "unsubscribed" on its behalf (RFC 6121 §3.1.3), with nothing stored for
// either side. A client could otherwise write rows for user ids nobody has
// without end.
func TestNoRosterRowsForNoOne(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	ghost := xmpp.UserRef{App: alice.Ref.App, User: bob.Ref.User + 1000}
	ghostJID := xmpp.UserJID(ghost, xmpptest.Domain).String()
	a := e.Online(alice, "a")
	a.Write(`<iq type='set' id='set'><query xmlns='jabber:iq:roster'><item jid='` + ghostJID + `' name='nobody'/></query></iq>`)
	if r := a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "set" }); xmpptest.ErrorCondition(r) != "item-not-found" {
		t.Errorf("roster set for a user id nobody has answered %s, want item-not-found", r)
	}
	a.Write(`<presence to='` + ghostJID + `' type='subscribe'/>`)
	if r := a.Expect(func(el *stanza.Element) bool { return el.Name == "presence" || el.Name == "iq" }); r.Name != "presence" ||
		r.Attr("type") != "unsubscribed" || r.Attr("from") != ghostJID {
		t.Errorf("subscribing to nobody answered %s, want <presence type='unsubscribed' from='%s'/>", r, ghostJID)
	}
	// A real contact still works, and only its rows exist.
	a.Write(`<iq type='set' id='bob'><query xmlns='jabber:iq:roster'><item jid='` + bob.JID + `'/></query></iq>`)
	if r := a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "bob" }); r.Attr("type") != "result" {
		t.Fatalf("roster set for bob answered %s", r)
	}
	ctx := context.Background()
	for _, owner := range []xmpp.UserRef{alice.Ref, ghost} {
		items, _, err := e.DB.XMPP().Roster(ctx, owner)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if it.JID != bob.JID {
				t.Errorf("%v's roster holds %+v", owner, it)
			}
		}
		if owner == ghost && len(items) != 0 {
			t.Errorf("a roster was stored for a user id nobody has: %+v", items)
		}
	}
}

// A roster item has at most 100 groups: more is refused with
// not-acceptable, and the item stays as it was.
func TestRosterGroupsBounded(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "a")
	set := func(id string, n int) *stanza.Element {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "<group>g%d</group>", i)
		}
		a.Write(`<iq type='set' id='` + id + `'><query xmlns='jabber:iq:roster'><item jid='` + bob.JID + `'>` + b.String() + `</item></query></iq>`)
		return a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == id })
	}
	if r := set("ok", 100); r.Attr("type") != "result" {
		t.Fatalf("100 groups answered %s", r)
	}
	if r := set("over", 101); xmpptest.ErrorCondition(r) != "not-acceptable" {
		t.Errorf("101 groups answered %s, want not-acceptable", r)
	}
	it, err := e.DB.XMPP().RosterItem(context.Background(), alice.Ref, bob.JID)
	if err != nil || len(it.Groups) != 100 {
		t.Errorf("the item after the refused set: %+v (%v), want its 100 groups", it, err)
	}
}

// A session may have directed presence out to at most 1,000 entities at
// once: one more is answered with policy-violation, and sending one of them
// unavailable frees its place.
func TestDirectedPresenceBounded(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "a")
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, "<presence to='%s/r%d'/>", bob.JID, i)
	}
	a.Write(b.String())
	a.RoundTrip()
	a.Write(`<presence to='` + bob.JID + `/one-more' id='over'/>`)
	r := a.Expect(func(el *stanza.Element) bool { return el.Name == "presence" && el.Attr("id") == "over" })
	if r.Attr("type") != "error" || xmpptest.ErrorCondition(r) != "policy-violation" {
		t.Fatalf("the 1,001st directed presence answered %s, want a policy-violation error", r)
	}
	a.Write(`<presence to='` + bob.JID + `/r7' type='unavailable'/><presence to='` + bob.JID + `/one-more' id='now'/>`)
	for _, el := range a.RoundTrip() {
		if el.Attr("id") == "now" {
			t.Errorf("after one was sent unavailable, the next was answered %s", el)
		}
	}
}
