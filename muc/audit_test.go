package muc_test

import (
	"testing"
)

// Stanzas of type error sent to a room, an occupant or the service are
// never answered (no error loops), and every error reply goes to the
// sender's full JID with the original id.
func TestNoErrorLoops(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob")
	d := e.group(r.U("alice"), "g", false, r.U("bob"))
	room := e.roomJID(d)
	joinAll(r, room, "alice", "bob")
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
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob")
	d := e.group(r.U("alice"), "g", false, r.U("bob"))
	room := e.roomJID(d)
	joinAll(r, room, "alice", "bob")
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
