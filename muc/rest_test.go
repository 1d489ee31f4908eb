package muc_test

import (
	"context"
	"strings"
	"testing"

	"chatd/history"
	"chatd/xmpp/stanza"
)

// REST changes reach the room: pull_all kicks a joined occupant with 301
// and the actor (the others see a plain leave) and keeps them out; push_all
// lets a new occupant join; a forced delete destroys the room.
func TestRESTInterplay(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob", "carol", "dave")
	d := e.group(r.U("alice"), "g", false, r.U("bob"), r.U("carol"))
	room := e.roomJID(d)
	joinAll(r, room, "alice", "bob", "carol")
	ctx := context.Background()

	if _, err := e.History.UpdateDialog(ctx, e.App.ID, r.U("alice").Ref.User, d.ID, history.DialogUpdate{
		PullAll: []int64{r.U("bob").Ref.User}}); err != nil {
		t.Fatal(err)
	}
	kick := r.As("bob").Expect(append(presence(room+"/"+r.U("bob").ID), attr("type", "unavailable"))...)
	it := itemOf(kick)
	if strings.Join(statusCodes(kick), ",") != "301" || it == nil || it.Child("actor", nsMUCUser) == nil ||
		it.Child("actor", nsMUCUser).Attr("jid") != r.U("alice").JID || kick.Attr("id") == "" {
		t.Fatalf("kick %s", kick)
	}
	for _, n := range []string{"alice", "carol"} {
		p := r.As(n).Expect(append(presence(room+"/"+r.U("bob").ID), attr("type", "unavailable"))...)
		if len(statusCodes(p)) != 0 {
			t.Fatalf("%s saw the kick as %s", n, p)
		}
	}
	// Bob no longer gets the room's messages, and cannot come back.
	r.As("alice").Send(`<message type='groupchat' to='` + room + `'><body>after</body></message>`)
	r.As("carol").Expect(body("after"))
	r.As("alice").Sync()
	r.As("bob").None(body("after"))
	r.As("bob").Send(sdkJoin(room, "again", r.U("bob").ID))
	r.As("bob").Expect(attr("id", "again:join"), errCond("registration-required"))

	// push_all: dave may now join.
	r.As("dave").Send(sdkJoin(room, "d0", r.U("dave").ID))
	r.As("dave").Expect(errCond("registration-required"))
	if _, err := e.History.UpdateDialog(ctx, e.App.ID, r.U("carol").Ref.User, d.ID, history.DialogUpdate{
		PushAll: []int64{r.U("dave").Ref.User}}); err != nil {
		t.Fatal(err)
	}
	r.As("dave").Send(sdkJoin(room, "d1", r.U("dave").ID))
	r.As("dave").Expect(attr("id", "d1:join"), codes("110", "100"))
	r.As("alice").Expect(append(presence(room+"/"+r.U("dave").ID), codes())...)

	// A rename reaches standard clients as the subject, never the SDK's.
	r.As("carol").Send(`<presence type='unavailable' to='` + room + `/` + r.U("carol").ID + `'/>`)
	r.As("carol").Expect(codes("110"))
	r.As("carol").Send(plainJoin(room, "c2", r.U("carol").ID))
	r.As("carol").Expect(name("message"), hasChild("subject", ""))
	name2 := "renamed"
	if _, err := e.History.UpdateDialog(ctx, e.App.ID, r.U("alice").Ref.User, d.ID, history.DialogUpdate{Name: &name2}); err != nil {
		t.Fatal(err)
	}
	s := r.As("carol").Expect(name("message"), hasChild("subject", ""))
	if s.ChildText("subject", "") != "renamed" || s.Attr("from") != room+"/"+r.U("alice").ID {
		t.Fatalf("subject change %s", s)
	}
	r.As("alice").None(hasChild("subject", ""))

	// Delete with force: everyone in the room gets <destroy/>.
	res, err := e.History.DeleteDialogs(ctx, e.App.ID, r.U("alice").Ref.User, []string{d.ID}, true)
	if err != nil || len(res.Deleted) != 1 {
		t.Fatalf("delete %+v %v", res, err)
	}
	for _, n := range []string{"alice", "carol", "dave"} {
		p := r.As(n).Expect(append(presence(room+"/"+r.U(n).ID), attr("type", "unavailable"))...)
		if p.Child("x", nsMUCUser).Child("destroy", nsMUCUser) == nil || p.Attr("id") == "" {
			t.Fatalf("%s: destroy %s", n, p)
		}
	}
	if st := e.muc.Stats(); st.Rooms != 0 || st.Sessions != 0 {
		t.Fatalf("stats after destroy %+v", st)
	}
	r.As("alice").Send(sdkJoin(room, "gone", r.U("alice").ID))
	r.As("alice").Expect(attr("id", "gone:join"), errCond("item-not-found"))
	r.As("alice").Send(`<message type='groupchat' to='` + room + `' id='gm'><body>x</body></message>`)
	r.As("alice").Expect(attr("id", "gm"), errCond("item-not-found"))
}

// A public group (type 1) is open to every user of the application, and
// its messages reach only those who joined.
func TestPublicGroup(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob", "carol")
	d, _, err := e.History.CreateDialog(context.Background(), e.App.ID, r.U("alice").Ref.User,
		history.DialogInput{Type: history.PublicGroup, Name: "lobby"})
	if err != nil {
		t.Fatal(err)
	}
	room := e.roomJID(d)
	joinAll(r, room, "alice", "bob")
	carol := r.As("carol")
	carol.Send(`<message type='groupchat' to='` + room + `' id='c'><body>x</body></message>`)
	carol.Expect(attr("id", "c"), errCond("not-acceptable"))
	r.As("bob").Send(`<message type='groupchat' to='` + room + `'><body>pub</body>` +
		`<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>`)
	r.As("alice").Expect(body("pub"))
	r.As("bob").Expect(body("pub"))
	r.As("bob").Sync()
	carol.None(body("pub"))
	msgs, err := e.History.Messages(context.Background(), e.App.ID, r.U("carol").Ref.User, d.ID, history.MessageQuery{}, false)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("public messages %v %v", msgs, err)
	}
}

// A message of a public group deleted for everyone is announced to the
// room's members (a XEP-0424 retraction in a QuickBlox system
// notification); users who did not join hear nothing.
func TestPublicGroupDeletionAnnounced(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob", "carol")
	ctx := context.Background()
	d, _, err := e.History.CreateDialog(ctx, e.App.ID, r.U("alice").Ref.User,
		history.DialogInput{Type: history.PublicGroup, Name: "lobby"})
	if err != nil {
		t.Fatal(err)
	}
	room := e.roomJID(d)
	joinAll(r, room, "alice", "bob")
	carol := r.As("carol")
	r.As("bob").Send(`<message type='groupchat' to='` + room + `'><body>pub</body>` +
		`<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>`)
	id := extra(r.As("alice").Expect(body("pub")), "message_id")
	r.As("bob").Expect(body("pub"))
	res, err := e.History.DeleteMessages(ctx, e.App.ID, r.U("bob").Ref.User, []string{id}, true)
	if err != nil || len(res.Deleted) != 1 {
		t.Fatalf("delete %s: %+v %v", id, res, err)
	}
	retracts := cond{"retraction of " + id, func(el *stanza.Element) bool {
		rt := el.Child("retract", "urn:xmpp:message-retract:1")
		return rt != nil && rt.Attr("id") == id && extra(el, "notification_type") == "message_deleted" &&
			extra(el, "dialog_id") == d.ID && extra(el, "message_id") == id
	}}
	for _, who := range []string{"alice", "bob"} {
		r.As(who).Expect(name("message"), attr("type", "headline"), attr("from", r.U("bob").JID), retracts)
	}
	carol.None(name("message"))
}
