package muc_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"chatd/history"
)

// aliceAndBob starts a server with alice and bob, a group named name owned
// by alice with bob in it, and the named users joined to its room.
func aliceAndBob(t *testing.T, name string, joinRequired bool, joiners ...string) (*env, *runner, *history.Dialog, string) {
	t.Helper()
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob")
	d := e.group(r.U("alice"), name, joinRequired, r.U("bob"))
	room := e.roomJID(d)
	joinAll(r, room, joiners...)
	return e, r, d, room
}

// Stanzas of type error sent to a room, an occupant or the service are
// never answered (no error loops), and every error reply goes to the
// sender's full JID with the original id.
func TestNoErrorLoops(t *testing.T) {
	_, r, _, room := aliceAndBob(t, "g", false, "alice", "bob")
	a := r.As("alice")
	occ := room + "/" + r.U("bob").ID
	for _, to := range []string{room, occ, room + "/999999", "muc.localhost"} {
		a.Send(`<message type='error' id='e1' to='` + to + `'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`)
		a.Send(`<iq type='error' id='e2' to='` + to + `'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)
		a.Send(`<presence type='error' id='e3' to='` + to + `'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`)
	}
	a.None(attr("type", "error"))
	r.As("bob").None(attr("type", "error"))

	// An error answer: from the address asked, to the sender's full JID,
	// with the original id.
	a.Send(`<message type='chat' id='pm' to='` + room + `/999999'><body>?</body></message>`)
	el := a.Expect(attr("id", "pm"), errCond("item-not-found"))
	if el.Attr("from") != room+"/999999" || el.Attr("to") != a.c.JID {
		t.Fatalf("error reply %s", el)
	}
}

// A join from a session already in the room is a full resynchronisation
// (XEP-0045 §17.3 rule 3): the others' presences and the self-presence
// again, without a second occupant and without the others seeing a new
// join.
func TestRejoinResyncs(t *testing.T) {
	e, r, _, room := aliceAndBob(t, "g", false, "alice", "bob")
	b := r.As("bob")
	b.Send(plainJoin(room, "again", r.U("bob").ID))
	b.Next(append(presence(room+"/"+r.U("alice").ID), codes())...)
	b.Next(append(presence(room+"/"+r.U("bob").ID), attr("id", "again"), codes("110", "100"))...)
	b.Expect(name("message"), hasChild("subject", ""))
	b.Sync()
	r.As("alice").None(name("presence"))
	if st := e.muc.Stats(); st.Occupants != 2 || st.Sessions != 2 {
		t.Fatalf("stats after a re-join: %+v", st)
	}
}

// XEP-0045 §10.9: the occupants of a destroyed room are told the reason
// and the alternate venue the owner gave.
func TestDestroyCarriesReasonAndVenue(t *testing.T) {
	e, r, _, room := aliceAndBob(t, "g", false, "alice", "bob")
	alt := "1_elsewhere@muc.localhost"
	r.As("alice").Send(`<iq type='set' id='bad' to='` + room + `'><query xmlns='` + nsOwner + `'><destroy jid='@@'/></query></iq>`)
	r.As("alice").Expect(attr("id", "bad"), errCond("jid-malformed"))
	r.As("alice").Send(`<iq type='set' id='x1' to='` + room + `'><query xmlns='` + nsOwner + `'><destroy jid='` + alt + `'><reason>moving</reason></destroy></query></iq>`)
	for _, n := range []string{"alice", "bob"} {
		p := r.As(n).Expect(append(presence(room+"/"+r.U(n).ID), attr("type", "unavailable"))...)
		x := p.Child("x", nsMUCUser).Child("destroy", nsMUCUser)
		if x == nil || x.Attr("jid") != alt || x.ChildText("reason", nsMUCUser) != "moving" {
			t.Fatalf("%s told of the destruction with %s", n, p)
		}
	}
	r.As("alice").Expect(attr("id", "x1"), attr("type", "result"))

	// A room deleted over REST has no reason: a bare <destroy/>.
	d2 := e.group(r.U("alice"), "g2", false, r.U("bob"))
	room2 := e.roomJID(d2)
	joinAll(r, room2, "bob")
	if _, err := e.History.DeleteDialogs(context.Background(), e.App.ID, r.U("alice").Ref.User, []string{d2.ID}, true); err != nil {
		t.Fatal(err)
	}
	p := r.As("bob").Expect(append(presence(room2+"/"+r.U("bob").ID), attr("type", "unavailable"))...)
	if x := p.Child("x", nsMUCUser).Child("destroy", nsMUCUser); x == nil || x.HasAttr("jid") || len(x.Elements()) != 0 {
		t.Fatalf("REST deletion seen as %s", p)
	}
}

// XEP-0045 §17.4 rules 4 to 6: an admin item names one user and changes
// either an affiliation or a role; anything else is a bad request. An owner
// cannot revoke its own ownership (§10.6: conflict) and an admin or owner
// cannot ban itself (§9.1: conflict).
func TestAdminItemValidation(t *testing.T) {
	e, r, d, room := aliceAndBob(t, "g", false, "alice", "bob")
	a := r.As("alice")
	set := func(id, item, want string) {
		t.Helper()
		a.Send(`<iq type='set' id='` + id + `' to='` + room + `'><query xmlns='` + nsAdmin + `'>` + item + `</query></iq>`)
		a.Expect(attr("id", id), errCond(want))
	}
	set("both", `<item affiliation='member' role='none' nick='{bob.id}'/>`, "bad-request")
	set("neither", `<item nick='{bob.id}'/>`, "bad-request")
	set("nobody", `<item role='none'/>`, "bad-request")
	set("nojid", `<item affiliation='member'/>`, "bad-request")
	set("malformed", `<item affiliation='member' jid='@@'/>`, "jid-malformed")
	set("selfmember", `<item affiliation='member' jid='{alice}'/>`, "conflict")
	set("selfnone", `<item affiliation='none' jid='{alice}'/>`, "conflict")
	set("selfban", `<item affiliation='outcast' jid='{alice}'/>`, "conflict")
	dd, err := e.History.DialogAny(context.Background(), e.App.ID, d.ID)
	if err != nil || dd.OwnerID != r.U("alice").Ref.User || !slices.Equal(dd.Occupants, []int64{r.U("alice").Ref.User, r.U("bob").Ref.User}) {
		t.Fatalf("dialog changed by refused requests: %+v %v", dd, err)
	}
	// A member may still leave the group by its own affiliation.
	r.As("bob").Send(`<iq type='set' id='leave' to='` + room + `'><query xmlns='` + nsAdmin + `'><item affiliation='none' jid='{bob}'/></query></iq>`)
	r.As("bob").Expect(attr("id", "leave"), attr("type", "result"))
}

// XEP-0045 §6.6: a disco request to an occupant JID from a non-occupant is
// a bad request (a self-ping keeps XEP-0410's not-acceptable).
func TestDiscoOccupantByNonOccupant(t *testing.T) {
	_, r, _, room := aliceAndBob(t, "g", false, "alice")
	b := r.As("bob")
	b.Send(`<iq type='get' id='di' to='` + room + `/` + r.U("alice").ID + `'><query xmlns='` + nsInfo + `'/></iq>`)
	b.Expect(attr("id", "di"), errCond("bad-request"))
	b.Send(`<iq type='get' id='ds' to='` + room + `/` + r.U("alice").ID + `'><query xmlns='` + nsItems + `'/></iq>`)
	b.Expect(attr("id", "ds"), errCond("bad-request"))
	b.Send(`<iq type='get' id='sp' to='` + room + `/` + r.U("bob").ID + `'><ping xmlns='urn:xmpp:ping'/></iq>`)
	b.Expect(attr("id", "sp"), errCond("not-acceptable"))
}

// XEP-0045 §7.12: the reserved nickname (the user id, nicks being locked
// down) is answered on the x-roomuser-item node, before and after joining;
// other nodes do not exist.
func TestReservedNick(t *testing.T) {
	_, r, _, room := aliceAndBob(t, "Lounge", false, "alice")
	for _, n := range []string{"alice", "bob"} {
		c := r.As(n)
		c.Send(`<iq type='get' id='nick' to='` + room + `'><query xmlns='` + nsInfo + `' node='x-roomuser-item'/></iq>`)
		res := c.Expect(attr("id", "nick"), attr("type", "result"))
		q := res.Child("query", nsInfo)
		id := q.Child("identity", nsInfo)
		if q.Attr("node") != "x-roomuser-item" || id == nil || id.Attr("name") != r.U(n).ID || id.Attr("category") != "conference" {
			t.Fatalf("%s's reserved nick: %s", n, res)
		}
		if len(q.Elements()) != 1 {
			t.Fatalf("reserved nick answer with more than the identity: %s", res)
		}
	}
	r.As("bob").Send(`<iq type='get' id='other' to='` + room + `'><query xmlns='` + nsInfo + `' node='http://example.org/caps#x'/></iq>`)
	r.As("bob").Expect(attr("id", "other"), errCond("item-not-found"))
}

// XEP-0045 §7.5: a private message carries one empty muc#user <x/>, the
// service's, whether or not the sender's client added one (Conversations
// does), and nothing the client put in it.
func TestPrivateMessageOneMUCUserX(t *testing.T) {
	_, r, _, room := aliceAndBob(t, "g", false, "alice", "bob")
	r.As("alice").Send(`<message type='chat' to='` + room + `/` + r.U("bob").ID + `' id='pm'><body>psst</body><x xmlns='` + nsMUCUser + `'><status code='307'/></x></message>`)
	pm := r.As("bob").Expect(body("psst"))
	n := 0
	for _, c := range pm.Elements() {
		if c.Name == "x" && c.Space == nsMUCUser && len(c.Elements()) == 0 {
			n++
		} else if c.Name == "x" {
			n = -1
			break
		}
	}
	if n != 1 {
		t.Fatalf("private message with %d empty muc#user elements (-1: another): %s", n, pm)
	}
}

// The room's answers to misdirected messages (XEP-0045 §7.4, §7.5, §8.1,
// §17.2): a groupchat message to an occupant JID is bad-request, a message
// of another type to the room bad-request, one to a room that does not
// exist item-not-found, one from a session that did not join a room that
// requires joining not-acceptable, a subject the dialog's name cannot be
// not-acceptable; each echoes the id.
func TestMisdirectedMessages(t *testing.T) {
	_, r, d, room := aliceAndBob(t, "g", true, "alice")
	a, b := r.As("alice"), r.As("bob")
	a.Send(`<message type='groupchat' id='gpm' to='` + room + `/` + r.U("alice").ID + `'><body>x</body></message>`)
	a.Expect(attr("id", "gpm"), errCond("bad-request"))
	a.Send(`<message type='chat' id='chat' to='` + room + `'><body>x</body></message>`)
	a.Expect(attr("id", "chat"), errCond("bad-request"))
	a.Send(`<message type='groupchat' id='none' to='` + strings.Replace(room, d.ID, "0123456789abcdef01234567", 1) + `'><body>x</body></message>`)
	a.Expect(attr("id", "none"), errCond("item-not-found"))
	b.Send(`<message type='groupchat' id='out' to='` + room + `'><body>x</body></message>`)
	b.Expect(attr("id", "out"), errCond("not-acceptable"))
	a.Send(`<message type='groupchat' id='long' to='` + room + `'><subject>` + strings.Repeat("s", 201) + `</subject></message>`)
	a.Expect(attr("id", "long"), errCond("not-acceptable"))
	a.None(body("x"))
}
