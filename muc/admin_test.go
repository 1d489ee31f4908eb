package muc_test

import (
	"context"
	"slices"
	"strconv"
	"testing"

	"chatd/history"
	"chatd/xmpp/stanza"
)

func iqItems(el *stanza.Element, ns string) []*stanza.Element {
	q := el.Child("query", ns)
	if q == nil {
		return nil
	}
	var out []*stanza.Element
	for _, c := range q.Elements() {
		if c.Name == "item" {
			out = append(out, c)
		}
	}
	return out
}

const (
	nsInfo  = "http://jabber.org/protocol/disco#info"
	nsItems = "http://jabber.org/protocol/disco#items"
	nsOwner = "http://jabber.org/protocol/muc#owner"
	nsAdmin = "http://jabber.org/protocol/muc#admin"
)

// Service discovery: the server lists the service, the service and rooms
// describe themselves, and a room's items are its online occupants, as the
// SDK's listOnlineUsers reads them.
func TestDisco(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob", "carol")
	d := e.group(r.U("alice"), "Lounge", false, r.U("bob"))
	room := e.roomJID(d)
	joinAll(r, room, "alice", "bob")
	a := r.As("alice")

	a.Send(`<iq type='get' id='s1' to='localhost'><query xmlns='` + nsItems + `'/></iq>`)
	res := a.Expect(attr("id", "s1"))
	if items := iqItems(res, nsItems); len(items) != 1 || items[0].Attr("jid") != "muc.localhost" {
		t.Fatalf("server items %s", res)
	}
	a.Send(`<iq type='get' id='s2' to='localhost'><query xmlns='` + nsInfo + `'/></iq>`)
	if res := a.Expect(attr("id", "s2")); !hasFeature(res, nsMUC) {
		t.Fatalf("server info lacks muc: %s", res)
	}
	a.Send(`<iq type='get' id='s3' to='muc.localhost'><query xmlns='` + nsInfo + `'/></iq>`)
	res = a.Expect(attr("id", "s3"), attr("type", "result"))
	if id := res.Child("query", nsInfo).Child("identity", ""); id.Attr("category") != "conference" || !hasFeature(res, nsMUC) {
		t.Fatalf("service info %s", res)
	}
	a.Send(`<iq type='get' id='s4' to='muc.localhost'><query xmlns='` + nsItems + `'/></iq>`)
	res = a.Expect(attr("id", "s4"), attr("type", "result"))
	if items := iqItems(res, nsItems); len(items) != 1 || items[0].Attr("jid") != room || items[0].Attr("name") != "Lounge" {
		t.Fatalf("service items %s", res)
	}

	a.Send(`<iq type='get' id='r1' to='` + room + `'><query xmlns='` + nsInfo + `'/></iq>`)
	res = a.Expect(attr("id", "r1"), attr("type", "result"), attr("from", room))
	if !hasFeature(res, "muc_membersonly") || !hasFeature(res, nsMUC) ||
		res.Child("query", nsInfo).Child("identity", "").Attr("name") != "Lounge" {
		t.Fatalf("room info %s", res)
	}
	a.Send(`<iq type='get' id='r2' to='` + room + `'><query xmlns='` + nsItems + `'/></iq>`)
	res = a.Expect(attr("id", "r2"), attr("type", "result"))
	var got []string
	for _, it := range iqItems(res, nsItems) {
		got = append(got, it.Attr("jid")+" "+it.Attr("name"))
	}
	want := []string{room + "/" + r.U("alice").ID + " " + r.U("alice").ID, room + "/" + r.U("bob").ID + " " + r.U("bob").ID}
	if !slices.Equal(got, want) {
		t.Fatalf("online occupants %v, want %v", got, want)
	}
	// Carol is no member: the room is hidden from her.
	r.As("carol").Send(`<iq type='get' id='r3' to='` + room + `'><query xmlns='` + nsItems + `'/></iq>`)
	r.As("carol").Expect(attr("id", "r3"), errCond("item-not-found"))
}

func hasFeature(res *stanza.Element, f string) bool {
	q := res.Child("query", nsInfo)
	if q == nil {
		return false
	}
	for _, c := range q.Elements() {
		if c.Name == "feature" && c.Attr("var") == f {
			return true
		}
	}
	return false
}

func formValue(x *stanza.Element, v string) (string, bool) {
	for _, f := range x.Elements() {
		if f.Name == "field" && f.Attr("var") == v {
			return f.ChildText("value", ""), true
		}
	}
	return "", false
}

// A standard client creates a room by joining it (an instant room, status
// 201): a group dialog owned by the joiner. The owner reads and submits the
// configuration form, which renames the dialog; others may not.
func TestCreateByJoinAndConfigure(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob")
	room := strconv.FormatInt(e.App.ID, 10) + "_team@muc.localhost"
	a := r.As("alice")
	a.Send(plainJoin(room, "c1", r.U("alice").ID))
	self := a.Next(append(presence(room+"/"+r.U("alice").ID), attr("id", "c1"), codes("110", "100", "201"))...)
	if itemOf(self).Attr("affiliation") != "owner" {
		t.Fatalf("creator %s", self)
	}
	a.Next(name("message"), hasChild("subject", ""))
	ctx := context.Background()
	d, err := e.History.RoomDialog(ctx, e.App.ID, "team")
	if err != nil || d.Type != history.Group || d.OwnerID != r.U("alice").Ref.User || d.Name != "team" ||
		e.roomJID(d) != room {
		t.Fatalf("dialog %+v %v", d, err)
	}
	// Instant room: an empty submitted form.
	a.Send(`<iq type='set' id='i1' to='` + room + `'><query xmlns='` + nsOwner + `'><x xmlns='jabber:x:data' type='submit'/></query></iq>`)
	a.Expect(attr("id", "i1"), attr("type", "result"))

	a.Send(`<iq type='get' id='f1' to='` + room + `'><query xmlns='` + nsOwner + `'/></iq>`)
	res := a.Expect(attr("id", "f1"), attr("type", "result"))
	form := res.Child("query", nsOwner).Child("x", "jabber:x:data")
	if v, ok := formValue(form, "muc#roomconfig_roomname"); !ok || v != "team" {
		t.Fatalf("form %s", res)
	}
	if v, _ := formValue(form, "muc#roomconfig_membersonly"); v != "1" {
		t.Fatalf("form %s", res)
	}
	a.Send(`<iq type='set' id='f2' to='` + room + `'><query xmlns='` + nsOwner + `'><x xmlns='jabber:x:data' type='submit'>` +
		`<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>` +
		`<field var='muc#roomconfig_roomname'><value>The Team</value></field>` +
		`<field var='chatd#is_join_required'><value>1</value></field></x></query></iq>`)
	// The rename is announced (as the dialog changes), then the form
	// submission answered.
	if s := a.Expect(name("message"), hasChild("subject", "")); s.ChildText("subject", "") != "The Team" {
		t.Fatalf("subject %s", s)
	}
	a.Next(attr("id", "f2"), attr("type", "result"))
	d, _ = e.History.RoomDialog(ctx, e.App.ID, "team")
	if d.Name != "The Team" || !d.JoinRequired {
		t.Fatalf("dialog after config %+v", d)
	}
	// Bob is not the owner (and not a member yet).
	r.As("bob").Send(plainJoin(room, "b1", r.U("bob").ID))
	r.As("bob").Expect(attr("id", "b1"), errCond("registration-required"))
	if _, err := e.History.UpdateDialog(ctx, e.App.ID, r.U("alice").Ref.User, d.ID, history.DialogUpdate{PushAll: []int64{r.U("bob").Ref.User}}); err != nil {
		t.Fatal(err)
	}
	r.As("bob").Send(`<iq type='get' id='b2' to='` + room + `'><query xmlns='` + nsOwner + `'/></iq>`)
	r.As("bob").Expect(attr("id", "b2"), errCond("forbidden"))
	// The same room over the history side: one dialog, one history.
	r.As("bob").Send(plainJoin(room, "b3", r.U("bob").ID))
	r.As("bob").Expect(attr("id", "b3"), codes("110", "100"))
	r.As("bob").Send(`<message type='groupchat' to='` + room + `'><body>same room</body><extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>`)
	got := a.Expect(body("same room"))
	if extra(got, "dialog_id") != d.ID {
		t.Fatalf("message %s", got)
	}
	// The owner destroys the room: the dialog is gone.
	a.Send(`<iq type='set' id='x1' to='` + room + `'><query xmlns='` + nsOwner + `'><destroy><reason>done</reason></destroy></query></iq>`)
	a.Expect(attr("id", "x1"), attr("type", "result"))
	r.As("bob").Expect(append(presence(room+"/"+r.U("bob").ID), attr("type", "unavailable"))...)
	if _, err := e.History.RoomDialog(ctx, e.App.ID, "team"); err == nil {
		t.Fatal("dialog survived its room's destruction")
	}
}

// Affiliation lists and changes map onto the dialog's occupants; kicks
// (role none) only leave the room.
func TestAdminAffiliations(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob", "carol", "dave")
	d := e.group(r.U("alice"), "g", false, r.U("bob"), r.U("carol"))
	room := e.roomJID(d)
	joinAll(r, room, "alice", "bob", "carol")
	a := r.As("alice")
	list := func(aff string) []string {
		t.Helper()
		a.Send(`<iq type='get' id='l-` + aff + `' to='` + room + `'><query xmlns='` + nsAdmin + `'><item affiliation='` + aff + `'/></query></iq>`)
		res := a.Expect(attr("id", "l-"+aff), attr("type", "result"))
		var out []string
		for _, it := range iqItems(res, nsAdmin) {
			out = append(out, it.Attr("jid"))
		}
		return out
	}
	if got := list("member"); !slices.Equal(got, []string{r.U("bob").JID, r.U("carol").JID}) {
		t.Fatalf("members %v", got)
	}
	if got := list("owner"); !slices.Equal(got, []string{r.U("alice").JID}) {
		t.Fatalf("owners %v", got)
	}
	// Add dave, remove carol in one request.
	a.Send(`<iq type='set' id='s1' to='` + room + `'><query xmlns='` + nsAdmin + `'>` +
		`<item affiliation='member' jid='{dave}'/><item affiliation='none' nick='{carol.id}'/></query></iq>`)
	a.Expect(attr("id", "s1"), attr("type", "result"))
	k := r.As("carol").Expect(append(presence(room+"/"+r.U("carol").ID), attr("type", "unavailable"))...)
	if codes("301").fn(k) == false {
		t.Fatalf("carol removed with %s", k)
	}
	if got := list("member"); !slices.Equal(got, []string{r.U("bob").JID, r.U("dave").JID}) {
		t.Fatalf("members after change %v", got)
	}
	dd, _ := e.History.DialogAny(context.Background(), e.App.ID, d.ID)
	if !slices.Equal(dd.Occupants, []int64{r.U("alice").Ref.User, r.U("bob").Ref.User, r.U("dave").Ref.User}) {
		t.Fatalf("occupants %v", dd.Occupants)
	}
	// Bob is no owner: he cannot remove others (the dialog's rule).
	r.As("bob").Send(`<iq type='set' id='s2' to='` + room + `'><query xmlns='` + nsAdmin + `'><item affiliation='none' jid='{dave}'/></query></iq>`)
	r.As("bob").Expect(attr("id", "s2"), errCond("forbidden"))
	// Kick: bob leaves the room with 307 (and 110, his own presence) but
	// stays a member. Alice's standard client (she is in the room from the
	// SDK too) is told of the kick (307); her SDK session, which reads a
	// leave only without a status, gets a plain leave.
	std := r.As("alice/std")
	std.Send(plainJoin(room, "std1", r.U("alice").ID))
	std.Expect(attr("id", "std1"), codes("110", "100"))
	std.Send(`<iq type='set' id='s3' to='` + room + `'><query xmlns='` + nsAdmin + `'><item role='none' nick='{bob.id}'><reason>out</reason></item></query></iq>`)
	k = r.As("bob").Expect(append(presence(room+"/"+r.U("bob").ID), attr("type", "unavailable"))...)
	if !codes("307", "110").fn(k) || itemOf(k).Child("actor", nsMUCUser).Attr("nick") != r.U("alice").ID {
		t.Fatalf("kick %s", k)
	}
	bobLeft := append(presence(room+"/"+r.U("bob").ID), attr("type", "unavailable"))
	a.Expect(append(bobLeft, codes())...)
	// The standard client sent the kick: its answer and the leave may come
	// in either order.
	var sawResult, sawLeave bool
	for !sawResult || !sawLeave {
		el := std.c.Next()
		switch {
		case el.Attr("id") == "s3":
			sawResult = el.Attr("type") == "result"
			if !sawResult {
				t.Fatalf("kick answered %s", el)
			}
		case matches(el, bobLeft):
			if !codes("307").fn(el) {
				t.Fatalf("a standard client was told of the kick with %s", el)
			}
			sawLeave = true
		}
	}
	r.As("bob").Send(sdkJoin(room, "back", r.U("bob").ID))
	r.As("bob").Expect(attr("id", "back:join"), codes("110", "100"))
	// Moderators only kick; owner and admin affiliations are not given.
	r.As("bob").Send(`<iq type='set' id='s4' to='` + room + `'><query xmlns='` + nsAdmin + `'><item role='none' nick='{alice.id}'/></query></iq>`)
	r.As("bob").Expect(attr("id", "s4"), errCond("forbidden"))
	a.Send(`<iq type='set' id='s5' to='` + room + `'><query xmlns='` + nsAdmin + `'><item affiliation='owner' jid='{bob}'/></query></iq>`)
	a.Expect(attr("id", "s5"), errCond("not-allowed"))
	// Role list: online moderators and participants.
	a.Send(`<iq type='get' id='l2' to='` + room + `'><query xmlns='` + nsAdmin + `'><item role='participant'/></query></iq>`)
	res := a.Expect(attr("id", "l2"), attr("type", "result"))
	if items := iqItems(res, nsAdmin); len(items) != 1 || items[0].Attr("nick") != r.U("bob").ID {
		t.Fatalf("participants %s", res)
	}
}

// A subject change by message renames the dialog (any occupant of a
// group may, as over REST).
func TestSubjectChange(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob")
	d := e.group(r.U("alice"), "old", false, r.U("bob"))
	room := e.roomJID(d)
	r.As("alice").Send(plainJoin(room, "a", r.U("alice").ID))
	r.As("alice").Expect(hasChild("subject", ""))
	joinAll(r, room, "bob")
	r.As("bob").Send(`<message type='groupchat' to='` + room + `'><subject>new name</subject></message>`)
	s := r.As("alice").Expect(name("message"), hasChild("subject", ""))
	if s.ChildText("subject", "") != "new name" || s.Attr("from") != room+"/"+r.U("bob").ID {
		t.Fatalf("subject %s", s)
	}
	r.As("bob").None(hasChild("subject", ""))
	dd, _ := e.History.DialogAny(context.Background(), e.App.ID, d.ID)
	if dd.Name != "new name" {
		t.Fatalf("name %q", dd.Name)
	}
	r.As("bob").Send(`<message type='groupchat' to='` + room + `' id='blank'><subject></subject></message>`)
	r.As("bob").Expect(attr("id", "blank"), errCond("not-acceptable"))
}
