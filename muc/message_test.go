package muc_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"chatd/history"
	"chatd/internal/oid"
	"chatd/internal/xmpptest"
)

// joinAll joins users to a room SDK-style and waits for their
// self-presences.
func joinAll(r *runner, room string, names ...string) {
	for _, n := range names {
		a := r.As(n)
		a.Send(sdkJoin(room, "j-"+strings.ReplaceAll(n, "/", "-"), r.U(strings.Split(n, "/")[0]).ID))
		a.Expect(codes("110", "100"))
	}
	// Twice: a joiner's sync proves its join was processed to the end
	// (broadcasts included, on its reader goroutine); the second round then
	// drains what those broadcasts brought everyone.
	for range 2 {
		for _, n := range names {
			r.As(n).Sync()
		}
	}
}

// A message with save_to_history is stored once and delivered to everyone,
// the sender included, from room/<sender id> with the history fields and a
// <delay/>; an occupant who did not join gets it at its bare JID when the
// dialog does not require joining.
func TestGroupMessageStoredAndFannedOut(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob", "carol")
	d := e.group(r.U("alice"), "g", false, r.U("bob"), r.U("carol"))
	room := e.roomJID(d)
	joinAll(r, room, "alice", "bob")
	carol := r.As("carol") // online, not joined
	id := oid.New(time.Now())
	r.As("alice").Send(`<message type='groupchat' to='` + room + `' id='` + id + `'><body>hello room</body>` +
		`<delay xmlns='urn:xmpp:delay' stamp='2001-01-01T00:00:00Z'/>` +
		`<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history><color>red</color></extraParams></message>`)
	for _, n := range []string{"alice", "bob", "carol"} {
		a := r.As(n)
		if n == "carol" {
			a = carol
		}
		m := a.Expect(name("message"), body("hello room"))
		if m.Attr("from") != room+"/"+r.U("alice").ID || m.Attr("type") != "groupchat" || m.Attr("id") != id ||
			m.Attr("to") != a.c.JID {
			t.Fatalf("%s got %s", n, m)
		}
		if extra(m, "message_id") != id || extra(m, "dialog_id") != d.ID || extra(m, "color") != "red" ||
			extra(m, "save_to_history") != "1" {
			t.Fatalf("%s got no history fields: %s", n, m)
		}
		sent, err := strconv.ParseInt(extra(m, "date_sent"), 10, 64)
		if err != nil || time.Since(time.Unix(sent, 0)) > time.Minute {
			t.Fatalf("%s: date_sent %q", n, extra(m, "date_sent"))
		}
		delays := 0
		for _, c := range m.Elements() {
			if c.Name == "delay" {
				delays++
				if c.Attr("from") != room || c.Attr("stamp") != time.Unix(sent, 0).UTC().Format(time.RFC3339) {
					t.Fatalf("%s: delay %s", n, c)
				}
			}
		}
		if delays != 1 {
			t.Fatalf("%s: %d delays in %s", n, delays, m)
		}
	}
	ctx := context.Background()
	msgs, err := e.History.Messages(ctx, e.App.ID, r.U("bob").Ref.User, d.ID, history.MessageQuery{}, false)
	if err != nil || len(msgs) != 1 || msgs[0].ID != id || msgs[0].SenderID != r.U("alice").Ref.User || msgs[0].Custom["color"] != "red" {
		t.Fatalf("stored %v %v", msgs, err)
	}
	for _, n := range []string{"bob", "carol"} {
		counts, _, err := e.History.UnreadCounts(ctx, e.App.ID, r.U(n).Ref.User, []string{d.ID})
		if err != nil || counts[d.ID] != 1 {
			t.Fatalf("%s unread %v %v", n, counts, err)
		}
	}
	// Carol may send without joining; she gets her message back.
	carol.Send(`<message type='groupchat' to='` + room + `' id='c1'><body>from outside</body></message>`)
	for _, n := range []string{"alice", "bob", "carol"} {
		r.As(n).Expect(body("from outside"), attr("from", room+"/"+r.U("carol").ID))
	}
	// Without save_to_history nothing more is stored.
	if msgs, _ := e.History.Messages(ctx, e.App.ID, r.U("bob").Ref.User, d.ID, history.MessageQuery{}, false); len(msgs) != 1 {
		t.Fatalf("stored %d messages", len(msgs))
	}
}

// A stored group message sent again with the same id is stored once: the
// room gets it once and the sender gets its reflection again; the id with
// another text is refused with conflict.
func TestRepeatedGroupMessage(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob")
	d := e.group(r.U("alice"), "g", false, r.U("bob"))
	room := e.roomJID(d)
	joinAll(r, room, "alice", "bob")
	id := oid.New(time.Now())
	send := func(text string) {
		r.As("alice").Send(`<message type='groupchat' to='` + room + `' id='` + id + `'><body>` + text + `</body>` +
			`<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>`)
	}
	send("once")
	send("once")
	send("other")
	// Alice's sync first: her messages are handled before her ping, so bob's
	// copies are on their way before his.
	for _, n := range []string{"alice", "bob"} {
		got, conflicts := 0, 0
		for _, el := range r.As(n).Sync() {
			switch {
			case el.Attr("type") == "error" && el.Attr("id") == id && xmpptest.ErrorCondition(el) == "conflict":
				conflicts++
			case el.Name == "message" && el.ChildText("body", "jabber:client") == "once":
				got++
			case el.ChildText("body", "jabber:client") == "other":
				t.Errorf("%s got the refused message: %s", n, el)
			}
		}
		if want := map[string]int{"alice": 2, "bob": 1}[n]; got != want {
			t.Errorf("%s got the message %d times, want %d", n, got, want)
		}
		if want := map[string]int{"alice": 1, "bob": 0}[n]; conflicts != want {
			t.Errorf("%s got %d conflict errors, want %d", n, conflicts, want)
		}
	}
	msgs, err := e.History.Messages(context.Background(), e.App.ID, r.U("bob").Ref.User, d.ID, history.MessageQuery{}, false)
	if err != nil || len(msgs) != 1 || msgs[0].Text != "once" {
		t.Errorf("stored %v %v", msgs, err)
	}
}

// When the dialog requires joining, a session that did not join can
// neither send nor receive.
func TestJoinRequired(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob", "carol", "dave")
	d := e.group(r.U("alice"), "strict", true, r.U("bob"), r.U("carol"))
	room := e.roomJID(d)
	joinAll(r, room, "alice", "bob")
	carol := r.As("carol")
	carol.Send(`<message type='groupchat' to='` + room + `' id='x1'><body>let me in</body>` +
		`<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>`)
	el := carol.Expect(name("message"), attr("id", "x1"))
	if xmpptest.ErrorCondition(el) != "not-acceptable" || el.Attr("from") != room || el.Child("error", "").Attr("code") != "406" {
		t.Fatalf("carol got %s", el)
	}
	r.As("alice").Send(`<message type='groupchat' to='` + room + `'><body>members only</body></message>`)
	r.As("bob").Expect(body("members only"))
	r.As("alice").Sync()
	carol.None(name("message"))
	if msgs, _ := e.History.Messages(context.Background(), e.App.ID, r.U("bob").Ref.User, d.ID, history.MessageQuery{}, false); len(msgs) != 0 {
		t.Fatalf("refused message stored: %v", msgs)
	}
	// Dave is not an occupant at all: the room stays closed to him, and
	// an unknown room answers item-not-found.
	r.As("dave").Send(`<message type='groupchat' to='` + room + `' id='d1'><body>x</body></message>`)
	r.As("dave").Expect(attr("id", "d1"), errCond("not-acceptable"))
	r.As("dave").Send(`<message type='groupchat' to='` + strconv.FormatInt(e.App.ID, 10) + `_nosuchroom@muc.localhost' id='d2'><body>x</body></message>`)
	r.As("dave").Expect(attr("id", "d2"), errCond("item-not-found"))
}

// A join replays stored history as asked (maxstanzas, maxchars, since),
// oldest first, each message with a <delay/> from the room; without a
// <history/> element the last 20 come; QuickBlox's maxstanzas='0' gets
// none.
func TestHistoryOnJoin(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob")
	d := e.group(r.U("alice"), "g", false, r.U("bob"))
	room := e.roomJID(d)
	joinAll(r, room, "alice")
	for i := 1; i <= 25; i++ {
		r.As("alice").Send(`<message type='groupchat' to='` + room + `'><body>m` + strconv.Itoa(i) + `</body>` +
			`<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>`)
	}
	r.As("alice").Expect(body("m25"))

	bob := r.As("bob")
	bob.Send(`<presence id='h1' to='` + room + `/` + r.U("bob").ID + `'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='3'/></x></presence>`)
	bob.Next(presence(room + "/" + r.U("alice").ID)...)
	bob.Next(attr("id", "h1"), codes("110", "100"))
	for _, want := range []string{"m23", "m24", "m25"} {
		m := bob.Next(name("message"), body(want), attr("from", room+"/"+r.U("alice").ID), attr("type", "groupchat"))
		dl := m.Child("delay", "urn:xmpp:delay")
		if dl == nil || dl.Attr("from") != room || dl.Attr("stamp") == "" || extra(m, "message_id") != m.Attr("id") ||
			extra(m, "dialog_id") != d.ID {
			t.Fatalf("history message %s", m)
		}
	}
	bob.Next(name("message"), hasChild("subject", ""))
	bob.Send(`<presence type='unavailable' to='` + room + `/` + r.U("bob").ID + `'/>`)
	bob.Expect(codes("110"))

	// No <history/>: the default 20.
	bob.Send(plainJoin(room, "h2", r.U("bob").ID))
	bob.Expect(attr("id", "h2"), codes("110", "100"))
	var got []string
	for {
		m := bob.Next(name("message"))
		if m.Child("subject", "") != nil {
			break
		}
		got = append(got, m.ChildText("body", ""))
	}
	if len(got) != 20 || got[0] != "m6" || got[19] != "m25" {
		t.Fatalf("default history %v", got)
	}
	bob.Send(`<presence type='unavailable' to='` + room + `/` + r.U("bob").ID + `'/>`)
	bob.Expect(codes("110"))

	// maxchars lets whole stanzas in, newest first, up to the bound.
	bob.Send(`<presence id='h3' to='` + room + `/` + r.U("bob").ID + `'><x xmlns='http://jabber.org/protocol/muc'><history maxchars='1000'/></x></presence>`)
	bob.Expect(attr("id", "h3"), codes("110", "100"))
	got = got[:0]
	for {
		m := bob.Next(name("message"))
		if m.Child("subject", "") != nil {
			break
		}
		got = append(got, m.ChildText("body", ""))
	}
	if len(got) == 0 || len(got) >= 20 || got[len(got)-1] != "m25" {
		t.Fatalf("maxchars history %v", got)
	}
	bob.Send(`<presence type='unavailable' to='` + room + `/` + r.U("bob").ID + `'/>`)
	bob.Expect(codes("110"))

	// The SDK's join: nothing.
	bob.Send(sdkJoin(room, "h4", r.U("bob").ID))
	bob.Expect(attr("id", "h4:join"), codes("110", "100"))
	bob.None(name("message"))

	// since in the future leaves out everything.
	bob.Send(`<presence type='unavailable' to='` + room + `/` + r.U("bob").ID + `'/>`)
	bob.Expect(codes("110"))
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	bob.Send(`<presence id='h5' to='` + room + `/` + r.U("bob").ID + `'><x xmlns='http://jabber.org/protocol/muc'><history since='` + future + `'/></x></presence>`)
	bob.Expect(attr("id", "h5"), codes("110", "100"))
	bob.Next(name("message"), hasChild("subject", ""))
}

// Chat states are routed to the room, never stored, without <delay/>.
func TestChatStatesRouted(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob")
	d := e.group(r.U("alice"), "g", false, r.U("bob"))
	room := e.roomJID(d)
	joinAll(r, room, "alice", "bob")
	r.As("alice").Send(`<message type='groupchat' to='` + room + `'><composing xmlns='http://jabber.org/protocol/chatstates'/>` +
		`<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>`)
	m := r.As("bob").Expect(name("message"), hasChild("composing", "http://jabber.org/protocol/chatstates"))
	if m.Child("delay", "") != nil || m.Attr("from") != room+"/"+r.U("alice").ID {
		t.Fatalf("chat state %s", m)
	}
	if msgs, _ := e.History.Messages(context.Background(), e.App.ID, r.U("bob").Ref.User, d.ID, history.MessageQuery{}, false); len(msgs) != 0 {
		t.Fatalf("chat state stored: %v", msgs)
	}
}

// A message stored through the REST API with send_to_chat is delivered to
// the room as its sender's, not stored again.
func TestRESTSendToChat(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob")
	d := e.group(r.U("alice"), "g", false, r.U("bob"))
	room := e.roomJID(d)
	joinAll(r, room, "bob")
	ctx := context.Background()
	m, dd, err := e.History.Record(ctx, history.NewMessage{App: e.App.ID, SenderID: r.U("alice").Ref.User, DialogID: d.ID, Text: "via rest"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Server.DeliverStored(ctx, m, dd); err != nil {
		t.Fatal(err)
	}
	got := r.As("bob").Expect(body("via rest"))
	if got.Attr("from") != room+"/"+r.U("alice").ID || got.Attr("id") != m.ID || extra(got, "message_id") != m.ID ||
		got.Child("delay", "").Attr("stamp") != time.Unix(m.DateSent, 0).UTC().Format(time.RFC3339) {
		t.Fatalf("bob got %s", got)
	}
	if msgs, _ := e.History.Messages(ctx, e.App.ID, r.U("bob").Ref.User, d.ID, history.MessageQuery{}, false); len(msgs) != 1 {
		t.Fatalf("%d stored", len(msgs))
	}
}

// Private messages go between occupants, from room/<id>, marked with
// muc#user; direct (XEP-0249) invitations are routed as 1:1 messages, and
// mediated ones add the invitee to the group.
func TestPrivateMessagesAndInvitations(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob", "dave")
	d := e.group(r.U("alice"), "g", false, r.U("bob"))
	room := e.roomJID(d)
	joinAll(r, room, "alice", "bob")
	r.As("alice").Send(`<message type='chat' to='` + room + `/` + r.U("bob").ID + `' id='pm1'><body>psst</body></message>`)
	pm := r.As("bob").Expect(body("psst"))
	if pm.Attr("from") != room+"/"+r.U("alice").ID || pm.Attr("type") != "chat" || pm.Child("x", nsMUCUser) == nil {
		t.Fatalf("pm %s", pm)
	}
	r.As("alice").Send(`<message type='chat' to='` + room + `/999999' id='pm2'><body>?</body></message>`)
	r.As("alice").Expect(attr("id", "pm2"), errCond("item-not-found"))
	r.As("dave").Send(`<message type='chat' to='` + room + `/` + r.U("bob").ID + `' id='pm3'><body>?</body></message>`)
	r.As("dave").Expect(attr("id", "pm3"), errCond("not-acceptable"))

	// XEP-0249: a direct invitation goes straight to the invitee.
	r.As("alice").Send(`<message to='{dave}' id='inv1'><x xmlns='jabber:x:conference' jid='` + room + `' reason='join us'/></message>`)
	inv := r.As("dave").Expect(attr("id", "inv1"))
	if x := inv.Child("x", "jabber:x:conference"); x == nil || x.Attr("jid") != room || inv.Attr("from") != r.As("alice").c.JID {
		t.Fatalf("direct invitation %s", inv)
	}
	r.As("dave").Send(sdkJoin(room, "d", r.U("dave").ID))
	r.As("dave").Expect(errCond("registration-required"))

	// A mediated invitation makes dave an occupant of the dialog.
	r.As("bob").Send(`<message to='` + room + `' id='inv2'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='{dave}'><reason>come</reason></invite></x></message>`)
	inv = r.As("dave").Expect(name("message"), attr("from", room))
	i := inv.Child("x", nsMUCUser).Child("invite", nsMUCUser)
	if i == nil || i.Attr("from") != r.U("bob").JID || i.ChildText("reason", "") != "come" {
		t.Fatalf("mediated invitation %s", inv)
	}
	dd, err := e.History.DialogAny(context.Background(), e.App.ID, d.ID)
	if err != nil || !dd.HasOccupant(r.U("dave").Ref.User) {
		t.Fatalf("dave not added: %+v %v", dd, err)
	}
	r.As("dave").Send(sdkJoin(room, "d2", r.U("dave").ID))
	r.As("dave").Expect(attr("id", "d2:join"), codes("110", "100"))
	// Dave declines anyway.
	r.As("dave").Send(`<message to='` + room + `'><x xmlns='http://jabber.org/protocol/muc#user'><decline to='{bob}'/></x></message>`)
	dec := r.As("bob").Expect(name("message"), attr("from", room), hasChild("x", nsMUCUser))
	if dec.Child("x", nsMUCUser).Child("decline", nsMUCUser).Attr("from") != r.U("dave").JID {
		t.Fatalf("decline %s", dec)
	}
}

// A correction sent to one room does not edit a message of another room:
// those who got the message would never hear of the edit.
func TestCorrectionOnlyInItsRoom(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := newRunner(t, e, "alice", "bob", "carol")
	d1 := e.group(r.U("alice"), "g1", false, r.U("bob"))
	d2 := e.group(r.U("alice"), "g2", false, r.U("carol"))
	room1, room2 := e.roomJID(d1), e.roomJID(d2)
	joinAll(r, room1, "alice", "bob")
	joinAll(r, room2, "alice")
	id := oid.New(time.Now())
	stored := `<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams>`
	r.As("alice").Send(`<message type='groupchat' to='` + room1 + `' id='` + id + `'><body>orig</body>` + stored + `</message>`)
	r.As("bob").Expect(name("message"), body("orig"))
	r.As("alice").Send(`<message type='groupchat' to='` + room2 + `' id='x2'><body>edited elsewhere</body><replace xmlns='urn:xmpp:message-correct:0' id='` + id + `'/></message>`)
	r.As("alice").Expect(attr("id", "x2"))
	if m, err := e.History.Message(context.Background(), e.App.ID, r.U("bob").Ref.User, id); err != nil || m.Text != "orig" {
		t.Errorf("after a correction sent to another room, the message holds %q (%v)", m.Text, err)
	}
	r.As("alice").Send(`<message type='groupchat' to='` + room1 + `' id='x1'><body>edited here</body><replace xmlns='urn:xmpp:message-correct:0' id='` + id + `'/></message>`)
	r.As("bob").Expect(name("message"), body("edited here"))
	r.As("alice").Expect(attr("id", "x1"))
	m, err := e.History.Message(context.Background(), e.App.ID, r.U("bob").Ref.User, id)
	if err != nil || m.Text != "edited here" {
		t.Errorf("the message holds %q (%v), want the correction sent to its own room", m.Text, err)
	}
}
