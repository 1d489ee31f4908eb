package muc_test

import (
	"context"
	"testing"

	"chatd/history"
)

// A day in a team room, as a script: a dialog made over REST, QuickBlox SDK
// clients and a standard client in it together, typing, stored messages,
// someone leaving the dialog over REST, a newcomer, and no stanza crossing
// into another application's room of the same name.
func TestScenarioTeamRoom(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "ann", "ben", "cat", "dan")
	d := e.group(r.U("ann"), "Team", false, r.U("ben"), r.U("cat"))
	room := e.roomJID(d)
	occ := func(n string) string { return room + "/" + r.U(n).ID }

	// Ann and Ben use the SDK, Cat a standard client.
	r.As("ann").Send(sdkJoin(room, "a", "{ann.id}"))
	r.As("ann").Next(attr("id", "a:join"), codes("110", "100"))
	r.As("ben").Send(sdkJoin(room, "b", "{ben.id}"))
	r.As("ben").Next(presence(occ("ann"))...)
	r.As("ben").Next(attr("id", "b:join"), codes("110", "100"))
	r.As("cat").Send(plainJoin(room, "c", "{cat.id}"))
	r.As("cat").Expect(attr("id", "c"), codes("110", "100"))
	r.As("cat").Next(hasChild("subject", ""))
	r.As("ann").Expect(presence(occ("cat"))...)

	// Ben types, then says something the room keeps.
	r.As("ben").Send(`<message type='groupchat' to='` + room + `'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	r.As("ann").Expect(attr("from", occ("ben")), hasChild("composing", "http://jabber.org/protocol/chatstates"))
	r.As("ben").Send(`<message type='groupchat' to='` + room + `' id='b1'><body>standup in 5</body>` +
		`<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history><dialog_id>` + d.ID + `</dialog_id></extraParams></message>`)
	for _, n := range []string{"ann", "ben", "cat"} {
		m := r.As(n).Expect(body("standup in 5"))
		if m.Attr("from") != occ("ben") || extra(m, "dialog_id") != d.ID || extra(m, "message_id") == "" {
			t.Fatalf("%s got %s", n, m)
		}
	}

	// Cat leaves the dialog over REST (deleting it for herself): she is
	// out of the room (301), the others see her go.
	if _, err := e.History.DeleteDialogs(context.Background(), e.App.ID, r.U("cat").Ref.User, []string{d.ID}, false); err != nil {
		t.Fatal(err)
	}
	r.As("cat").Expect(append(presence(occ("cat")), attr("type", "unavailable"), codes("301"))...)
	r.As("ann").Expect(append(presence(occ("cat")), attr("type", "unavailable"), codes())...)

	// Dan is added by Ben and joins; he reads the last message on join.
	if _, err := e.History.UpdateDialog(context.Background(), e.App.ID, r.U("ben").Ref.User, d.ID,
		history.DialogUpdate{PushAll: []int64{r.U("dan").Ref.User}}); err != nil {
		t.Fatal(err)
	}
	r.As("dan").Send(`<presence id='d' to='` + occ("dan") + `'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='1'/></x></presence>`)
	r.As("dan").Expect(attr("id", "d"), codes("110", "100"))
	r.As("dan").Next(body("standup in 5"), hasChild("delay", "urn:xmpp:delay"))
	r.As("dan").Next(hasChild("subject", ""))

	// Another application has a user whose room would have the same
	// local part after its own application id: it is a different room.
	other := mustApp(t, e)
	r.users["eve"] = e.NewUserIn(other, "eve")
	r.As("eve").Send(`<message type='groupchat' to='` + room + `' id='e1'><body>hello?</body></message>`)
	r.As("eve").Expect(attr("id", "e1"), errCond("item-not-found"))
	r.As("eve").Send(`<iq type='get' id='e2' to='` + room + `'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	r.As("eve").Expect(attr("id", "e2"), errCond("item-not-found"))
	r.As("ann").None(body("hello?"))
}
