package muc_test

import (
	"testing"
)

// QuickBlox's blocking list item muc.<domain>/<user_id> silences that user
// in every room for the blocker, while the others still hear them; private
// messages from the blocked occupant bounce.
func TestBlockedOccupantIsSilenced(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob", "carol")
	d := e.group(r.U("alice"), "g", false, r.U("bob"), r.U("carol"))
	room := e.roomJID(d)
	alice := r.As("alice")
	alice.Send(`<iq type='set' id='pl'><query xmlns='jabber:iq:privacy'><list name='block'>` +
		`<item type='jid' value='{bob}' action='deny' order='1'/>` +
		`<item type='jid' value='muc.localhost/{bob.id}' action='deny' order='2'/>` +
		`</list></query></iq>`)
	alice.Expect(attr("id", "pl"), attr("type", "result"))
	alice.Send(`<iq type='set' id='pd'><query xmlns='jabber:iq:privacy'><default name='block'/></query></iq>`)
	alice.Expect(attr("id", "pd"), attr("type", "result"))
	joinAll(r, room, "alice", "bob", "carol")

	r.As("bob").Send(`<message type='groupchat' to='` + room + `'><body>from bob</body></message>`)
	r.As("bob").Expect(name("message"), body("from bob")) // reflected to him
	r.As("carol").Expect(name("message"), body("from bob"))
	r.As("carol").Send(`<message type='groupchat' to='` + room + `'><body>from carol</body></message>`)
	// Alice hears carol but never bob.
	m := alice.Expect(name("message"))
	if m.ChildText("body", "") != "from carol" {
		t.Fatalf("alice got %s first", m)
	}
	alice.None(body("from bob"))
	// A private message from bob to alice in the room bounces.
	r.As("bob").Send(`<message type='chat' to='` + room + `/{alice.id}' id='pm'><body>psst</body></message>`)
	bounce := r.As("bob").Expect(attr("id", "pm"))
	if bounce.Attr("type") != "error" {
		t.Errorf("private message answered %s", bounce)
	}
	alice.None(body("psst"))
}

// An unavailable presence without 'to' takes the session out of its rooms
// (RFC 6121 §4.6: directed presence recipients are told).
func TestUnavailableLeavesRooms(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob")
	d := e.group(r.U("alice"), "g", true, r.U("bob"))
	room := e.roomJID(d)
	joinAll(r, room, "alice", "bob")
	r.As("bob").Send(`<presence type='unavailable'/>`)
	left := r.As("alice").Expect(name("presence"), attr("type", "unavailable"))
	if left.Attr("from") != room+"/"+r.U("bob").ID {
		t.Errorf("alice saw %s", left)
	}
	// Bob is no longer an occupant: a message to the room that requires
	// joining is refused.
	r.As("bob").Send(`<presence/>`)
	r.As("bob").Send(`<message type='groupchat' to='` + room + `' id='after'><body>x</body></message>`)
	if m := r.As("bob").Expect(attr("id", "after")); m.Attr("type") != "error" {
		t.Errorf("bob could still post: %s", m)
	}
}
