package muc_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"chatd/history"
	"chatd/internal/xmpptest"
	"chatd/muc"
	"chatd/xmpp/stanza"
)

// sdkJoin is the QuickBlox SDK's join (compat §0 item 16).
func sdkJoin(room, id, nick string) string {
	return `<presence id='` + id + `:join' to='` + room + `/` + nick + `'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>`
}

// plainJoin is a standard client's join, without a <history/> element.
func plainJoin(room, id, nick string) string {
	return `<presence id='` + id + `' to='` + room + `/` + nick + `'><x xmlns='http://jabber.org/protocol/muc'/></presence>`
}

func itemOf(el *stanza.Element) *stanza.Element {
	if x := el.Child("x", nsMUCUser); x != nil {
		return x.Child("item", nsMUCUser)
	}
	return nil
}

// Joins go exactly as compat §7.5 says: the others' presences first,
// without status codes and with ids, then the self-presence echoing the
// join's id with 110 as its first status (the QuickBlox SDK reads only the
// first <status>; with 100 first its join callback never fired); an SDK join gets no subject, a standard join does
// (after the history, here empty).
func TestJoinOrderIdsAndStatusCodes(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob", "carol")
	d := e.group(r.U("alice"), "Party", false, r.U("bob"), r.U("carol"))
	room := e.roomJID(d)

	alice := r.As("alice")
	alice.Send(sdkJoin(room, "a1", r.U("alice").ID))
	self := alice.Next(append(presence(room+"/"+r.U("alice").ID), attr("id", "a1:join"), codes("110", "100"))...)
	if it := itemOf(self); it == nil || it.Attr("affiliation") != "owner" || it.Attr("role") != "moderator" {
		t.Fatalf("owner's self-presence %s", self)
	}
	alice.None(hasChild("subject", ""))

	bob := r.As("bob")
	bob.Send(sdkJoin(room, "b1", r.U("bob").ID))
	other := bob.Next(append(presence(room+"/"+r.U("alice").ID), codes())...)
	if other.Attr("id") == "" || other.HasAttr("type") {
		t.Fatalf("occupant presence without id or with a type: %s", other)
	}
	self = bob.Next(append(presence(room+"/"+r.U("bob").ID), attr("id", "b1:join"), codes("110", "100"))...)
	if it := itemOf(self); it.Attr("affiliation") != "member" || it.Attr("role") != "participant" || it.Attr("jid") != r.U("bob").JID {
		t.Fatalf("member's self-presence %s", self)
	}
	bob.None(hasChild("subject", ""))
	joined := alice.Next(append(presence(room+"/"+r.U("bob").ID), codes())...)
	if joined.Attr("id") == "" {
		t.Fatalf("broadcast presence without id: %s", joined)
	}

	// A standard client: no <history/>, an id of its own.
	carol := r.As("carol")
	carol.Send(plainJoin(room, "c1", r.U("carol").ID))
	seen := map[string]bool{}
	for range 2 {
		p := carol.Next(name("presence"), codes())
		if p.Attr("id") == "" {
			t.Fatalf("presence without id: %s", p)
		}
		seen[p.Attr("from")] = true
	}
	if !seen[room+"/"+r.U("alice").ID] || !seen[room+"/"+r.U("bob").ID] {
		t.Fatalf("carol saw %v", seen)
	}
	carol.Next(append(presence(room+"/"+r.U("carol").ID), attr("id", "c1"), codes("110", "100"))...)
	subj := carol.Next(name("message"), attr("from", room), attr("type", "groupchat"), hasChild("subject", ""))
	if subj.ChildText("subject", "") != "Party" || subj.Attr("id") == "" || subj.Child("body", "") != nil {
		t.Fatalf("subject %s", subj)
	}
	alice.Expect(append(presence(room+"/"+r.U("carol").ID), codes())...)
	bob.Expect(append(presence(room+"/"+r.U("carol").ID), codes())...)
}

// A join with another nick is accepted under the user id, with 210.
func TestNickIsTheUserID(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice")
	d := e.group(r.U("alice"), "g", false)
	room := e.roomJID(d)
	a := r.As("alice")
	a.Send(sdkJoin(room, "x", "Alice Cooper"))
	a.Next(append(presence(room+"/"+r.U("alice").ID), attr("id", "x:join"), codes("110", "100", "210"))...)
}

// Join errors echo the id and the <x/> child, come from the occupant JID
// asked for and carry the legacy code.
func TestJoinErrors(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "dave")
	d := e.group(r.U("alice"), "members", false)
	room := e.roomJID(d)
	other := e.NewUserIn(mustApp(t, e), "eve")
	r.users["eve"] = other

	check := func(el *stanza.Element, id, from, condition, code string) {
		t.Helper()
		if el.Attr("id") != id || el.Attr("from") != from || el.Attr("type") != "error" ||
			el.Child("x", nsMUC) == nil || xmpptest.ErrorCondition(el) != condition || el.Child("error", "").Attr("code") != code {
			t.Fatalf("join error %s, want %s %s from %s", el, condition, code, from)
		}
	}
	dave := r.As("dave")
	dave.Send(sdkJoin(room, "d1", r.U("dave").ID))
	check(dave.Next(name("presence")), "d1:join", room+"/"+r.U("dave").ID, "registration-required", "407")
	// The refused join is not a room dave is in: his unavailable presence
	// later gets no leave answered from it.
	dave.Send(`<presence type='unavailable'/>`)
	dave.None(name("presence"))
	dave.Send(`<presence/>`)

	// A room of another application does not exist for eve.
	eve := r.As("eve")
	eve.Send(sdkJoin(room, "e1", r.U("eve").ID))
	check(eve.Next(name("presence")), "e1:join", room+"/"+r.U("eve").ID, "item-not-found", "404")

	// A dialog id that names no dialog is not created by joining.
	missing := strings.Replace(room, d.ID, "0123456789abcdef01234567", 1)
	dave.Send(sdkJoin(missing, "d2", r.U("dave").ID))
	check(dave.Next(name("presence")), "d2:join", missing+"/"+r.U("dave").ID, "item-not-found", "404")

	// Without a nick.
	dave.Send(`<presence id='d3' to='` + room + `'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	check(dave.Next(name("presence")), "d3", room, "jid-malformed", "400")
}

// With room creation by joining turned off, a join to a room that does not
// exist is refused with not-allowed (XEP-0045 §10.1.1) and creates nothing,
// while the rooms of group dialogs made over REST are joined as before.
func TestNoCreateByJoin(t *testing.T) {
	e := startEnv(t, envOptions{muc: muc.Config{NoCreateByJoin: true}})
	r := newRunner(t, e, "alice")
	room := strconv.FormatInt(e.App.ID, 10) + "_newroom@muc.localhost"
	a := r.As("alice")
	a.Send(plainJoin(room, "n1", r.U("alice").ID))
	el := a.Next(name("presence"))
	if el.Attr("type") != "error" || xmpptest.ErrorCondition(el) != "not-allowed" || el.Attr("id") != "n1" {
		t.Fatalf("joining a room that does not exist answered %s, want not-allowed", el)
	}
	if _, err := e.History.RoomDialog(t.Context(), e.App.ID, "newroom"); !errors.Is(err, history.ErrNotFound) {
		t.Errorf("the refused join left a dialog (%v)", err)
	}
	d := e.group(r.U("alice"), "made over REST", false)
	a.Send(plainJoin(e.roomJID(d), "n2", r.U("alice").ID))
	a.Next(append(presence(e.roomJID(d)+"/"+r.U("alice").ID), attr("id", "n2"), codes("110", "100"))...)
}

// mustApp creates a second application.
func mustApp(t *testing.T, e *env) int64 {
	t.Helper()
	app, err := e.Accounts.CreateApp(t.Context(), "other")
	if err != nil {
		t.Fatal(err)
	}
	return app.ID
}

// Leaving answers with a 110 self-presence and tells the others with a
// status-less unavailable presence; a session's end does the same.
func TestLeaveAndSessionEnd(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob", "carol")
	d := e.group(r.U("alice"), "g", false, r.U("bob"), r.U("carol"))
	room := e.roomJID(d)
	for _, n := range []string{"alice", "bob", "carol"} {
		r.As(n).Send(sdkJoin(room, n, r.U(n).ID))
		r.As(n).Expect(append(presence(room+"/"+r.U(n).ID), codes("110", "100"))...)
	}
	bob := r.As("bob")
	bob.Send(`<presence type='unavailable' id='bye' to='` + room + `/` + r.U("bob").ID + `'/>`)
	self := bob.Expect(append(presence(room+"/"+r.U("bob").ID), attr("type", "unavailable"))...)
	if self.Attr("id") != "bye" || strings.Join(statusCodes(self), ",") != "110" {
		t.Fatalf("leave answer %s", self)
	}
	for _, n := range []string{"alice", "carol"} {
		p := r.As(n).Expect(append(presence(room+"/"+r.U("bob").ID), attr("type", "unavailable"))...)
		if len(statusCodes(p)) != 0 || p.Attr("id") == "" {
			t.Fatalf("%s saw bob leave as %s", n, p)
		}
	}
	// Carol's connection ends without a word.
	r.As("carol").c.Conn.Close()
	p := r.As("alice").Expect(append(presence(room+"/"+r.U("carol").ID), attr("type", "unavailable"))...)
	if len(statusCodes(p)) != 0 {
		t.Fatalf("session end seen as %s", p)
	}
	if st := e.muc.Stats(); st.Occupants != 1 || st.Sessions != 1 {
		t.Fatalf("stats after leaves: %+v", st)
	}
}

// One user in several resources is one occupant: others see its join on
// the first and its leave on the last.
func TestSeveralResourcesShareTheNick(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob")
	d := e.group(r.U("alice"), "g", false, r.U("bob"))
	room := e.roomJID(d)
	alice := r.As("alice")
	alice.Send(sdkJoin(room, "a", r.U("alice").ID))
	alice.Expect(codes("110", "100"))
	bob := room + "/" + r.U("bob").ID
	r.As("bob/phone").Send(sdkJoin(room, "p", r.U("bob").ID))
	r.As("bob/phone").Expect(attr("id", "p:join"), codes("110", "100"))
	alice.Expect(presence(bob)...)
	r.As("bob/web").Send(sdkJoin(room, "w", r.U("bob").ID))
	r.As("bob/web").Expect(attr("id", "w:join"), codes("110", "100"))
	r.As("bob/web").Sync() // its join was processed to the end
	alice.None(presence(bob)...)
	r.As("bob/web").Send(`<presence type='unavailable' to='` + bob + `'/>`)
	r.As("bob/web").Expect(attr("type", "unavailable"), codes("110"))
	r.As("bob/web").Sync()
	alice.None(presence(bob)...)

	// Messages reach both the remaining resource; then the last leaves.
	alice.Send(`<message type='groupchat' to='` + room + `' id='m1'><body>hi</body></message>`)
	r.As("bob/phone").Expect(body("hi"))
	r.As("bob/phone").Send(`<presence type='unavailable' to='` + bob + `'/>`)
	alice.Expect(append(presence(bob), attr("type", "unavailable"))...)
}

// Above MaxBroadcastOccupants, joins and leaves are not broadcast and a
// joiner gets only its own presence.
func TestPresenceFloodBound(t *testing.T) {
	e := startEnv(t, envOptions{muc: mucConfig(2)})
	r := newRunner(t, e, "a", "b", "c", "d")
	d := e.group(r.U("a"), "big", false, r.U("b"), r.U("c"), r.U("d"))
	room := e.roomJID(d)
	r.As("a").Send(sdkJoin(room, "1", r.U("a").ID))
	r.As("a").Next(codes("110", "100"))
	r.As("b").Send(sdkJoin(room, "2", r.U("b").ID))
	r.As("b").Next(presence(room + "/" + r.U("a").ID)...)
	r.As("b").Next(codes("110", "100"))
	r.As("a").Expect(presence(room + "/" + r.U("b").ID)...)
	// The third occupant takes the room above 2.
	r.As("c").Send(sdkJoin(room, "3", r.U("c").ID))
	r.As("c").Next(append(presence(room+"/"+r.U("c").ID), codes("110", "100"))...)
	r.As("c").Sync()
	r.As("a").None(name("presence"))
	r.As("b").None(name("presence"))
	// Leaves are quiet too while the room is above the bound.
	r.As("c").Send(`<presence type='unavailable' to='` + room + `/` + r.U("c").ID + `'/>`)
	r.As("c").Expect(codes("110"))
	r.As("c").Sync()
	r.As("a").None(name("presence"))
	// Messages are not bounded.
	r.As("c").Send(sdkJoin(room, "4", r.U("c").ID))
	r.As("c").Expect(codes("110", "100"))
	r.As("a").Send(`<message type='groupchat' to='` + room + `'><body>all</body></message>`)
	for _, n := range []string{"a", "b", "c"} {
		r.As(n).Expect(body("all"))
	}
}

// A presence without <x/> from a session in the room changes its
// availability (XEP-0045 §7.7): the others see the new presence, the
// session its own with 110; nothing else is sent again. A self-ping
// (XEP-0410) is answered while the session is in the room.
func TestAvailabilityChangeAndSelfPing(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob")
	d := e.group(r.U("alice"), "g", false, r.U("bob"))
	room := e.roomJID(d)
	joinAll(r, room, "alice", "bob")
	bob := room + "/" + r.U("bob").ID
	r.As("bob").Send(`<presence id='away1' to='` + bob + `'><show>away</show><status>lunch</status></presence>`)
	self := r.As("bob").Next(append(presence(bob), attr("id", "away1"), codes("110", "100"))...)
	if self.ChildText("show", "") != "away" {
		t.Fatalf("own presence %s", self)
	}
	r.As("bob").None(name("presence"))
	p := r.As("alice").Expect(append(presence(bob), codes())...)
	if p.ChildText("show", "") != "away" || p.ChildText("status", "") != "lunch" || p.Attr("id") == "" {
		t.Fatalf("alice saw %s", p)
	}

	r.As("bob").Send(`<iq type='get' id='sp1' to='` + bob + `'><ping xmlns='urn:xmpp:ping'/></iq>`)
	r.As("bob").Expect(attr("id", "sp1"), attr("type", "result"), attr("from", bob))
	r.As("bob").Send(`<presence type='unavailable' to='` + bob + `'/>`)
	r.As("bob").Expect(codes("110"))
	r.As("bob").Send(`<iq type='get' id='sp2' to='` + bob + `'><ping xmlns='urn:xmpp:ping'/></iq>`)
	r.As("bob").Expect(attr("id", "sp2"), errCond("not-acceptable"))
}
