package xmpp_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"chatd/history"
	"chatd/internal/oid"
	"chatd/internal/xmpptest"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

func extra(el *stanza.Element, name string) string {
	x := el.Child("extraParams", "jabber:client")
	if x == nil {
		return ""
	}
	return x.ChildText(name, "")
}

// A message with save_to_history is stored before delivery and arrives with
// its message_id, dialog_id and date_sent; the private dialog is created on
// the first message.
func TestSaveToHistory(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "a")
	b := e.Online(bob, "b")
	id := oid.New(time.Now())
	now := time.Now().Unix()
	a.Write(`<message to='` + bob.JID + `' type='chat' id='` + id + `'><body>stored hello</body>` +
		`<markable xmlns='urn:xmpp:chat-markers:0'/>` +
		`<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history><color>red</color>` +
		`<location><lat>52.5</lat><place>Caf&#233; &amp; Bar</place></location>` +
		`<date_sent>` + strconv.FormatInt(now-1, 10) + `.5</date_sent>` +
		`<attachment id='42' type='image' name='a.png' size='100'/></extraParams></message>`)
	got := b.Expect(isMessage("stored hello"))
	if got.Attr("id") != id || extra(got, "message_id") != id || extra(got, "save_to_history") != "1" || extra(got, "color") != "red" {
		t.Fatalf("delivered %s", got)
	}
	dialogID := extra(got, "dialog_id")
	if !oid.Valid(dialogID) {
		t.Fatalf("no dialog_id in %s", got)
	}
	if extra(got, "date_sent") != strconv.FormatInt(now-1, 10) {
		t.Errorf("date_sent %q, want the client's %d (within 5s, truncated)", extra(got, "date_sent"), now-1)
	}
	if got.Child("extraParams", "").Child("attachment", "").Attr("id") != "42" {
		t.Errorf("attachment lost: %s", got)
	}
	ctx := context.Background()
	msgs, err := e.History.Messages(ctx, e.App.ID, bob.Ref.User, dialogID, history.MessageQuery{}, false)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("stored messages: %v %v", msgs, err)
	}
	m := msgs[0]
	if m.ID != id || m.Text != "stored hello" || m.SenderID != alice.Ref.User || m.RecipientID != bob.Ref.User ||
		m.Custom["color"] != "red" || len(m.Attachments) != 1 || m.Attachments[0]["name"] != "a.png" || !m.Markable {
		t.Errorf("stored %+v", m)
	}
	// An object value (nested elements) is kept whole, as XML.
	if want := `<lat>52.5</lat><place>Café &amp; Bar</place>`; m.Custom["location"] != want {
		t.Errorf("custom location stored as %q, want %q", m.Custom["location"], want)
	}
	d, err := e.History.Dialog(ctx, e.App.ID, bob.Ref.User, dialogID)
	if err != nil || d.Type != history.Private || d.LastMessage != "stored hello" || d.UnreadCount != 1 {
		t.Fatalf("dialog %+v %v", d, err)
	}

	// The second message goes into the same dialog; a client id that is not
	// an ObjectId gets a new one, announced in message_id and as the
	// stanza's id; the client's id stays as its origin-id.
	a.Write(`<message to='` + bob.JID + `' type='chat' id='not-an-oid'><body>second</body>` +
		`<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>`)
	got = b.Expect(isMessage("second"))
	if extra(got, "dialog_id") != dialogID || !oid.Valid(extra(got, "message_id")) || got.Attr("id") != extra(got, "message_id") {
		t.Errorf("second message %s", got)
	}
	if o := got.Child("origin-id", "urn:xmpp:sid:0"); o == nil || o.Attr("id") != "not-an-oid" {
		t.Errorf("second message %s does not keep the client's id as its origin-id", got)
	}

	// Bob's displayed marker, naming the stanza id he got, reads both;
	// alice gets the marker.
	b.Write(`<message to='` + alice.JID + `' type='chat' id='mk1'><displayed xmlns='urn:xmpp:chat-markers:0' id='` +
		got.Attr("id") + `'/><extraParams xmlns='jabber:client'><dialog_id>` + dialogID + `</dialog_id></extraParams></message>`)
	a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "mk1" })
	counts, _, err := e.History.UnreadCounts(ctx, e.App.ID, bob.Ref.User, []string{dialogID})
	if err != nil || counts[dialogID] != 0 {
		t.Errorf("bob's unread after the marker: %v %v", counts, err)
	}
	first, _ := e.History.Message(ctx, e.App.ID, alice.Ref.User, id)
	if !slices.Contains(first.ReadIDs, bob.Ref.User) || !slices.Contains(first.DeliveredIDs, bob.Ref.User) {
		t.Errorf("marks of the first message: read %v delivered %v", first.ReadIDs, first.DeliveredIDs)
	}

	// A correction from the sender edits the stored text.
	a.Write(`<message to='` + bob.JID + `' type='chat' id='fix1'><body>stored hello, corrected</body>` +
		`<replace xmlns='urn:xmpp:message-correct:0' id='` + id + `'/></message>`)
	b.Expect(isMessage("stored hello, corrected"))
	if m, _ := e.History.Message(ctx, e.App.ID, bob.Ref.User, id); m.Text != "stored hello, corrected" {
		t.Errorf("after correction: %q", m.Text)
	}
	// Bob cannot correct alice's message.
	b.Write(`<message to='` + alice.JID + `' type='chat'><body>hacked</body><replace xmlns='urn:xmpp:message-correct:0' id='` + id + `'/></message>`)
	a.Expect(isMessage("hacked"))
	if m, _ := e.History.Message(ctx, e.App.ID, bob.Ref.User, id); m.Text != "stored hello, corrected" {
		t.Errorf("bob rewrote alice's message: %q", m.Text)
	}
}

// A stored message sent again with the same id (a client resending what it
// got no ack for) is stored once and delivered once, carbons included; the
// same id with another text is refused with conflict and reaches no one.
func TestRepeatedMessageDeliveredOnce(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "a")
	a2 := e.Online(alice, "a2")
	enableCarbons(t, a2)
	b := e.Online(bob, "b")
	id := oid.New(time.Now())
	send := func(text string) {
		a.Write(`<message to='` + bob.JID + `' type='chat' id='` + id + `'><body>` + text + `</body>` +
			`<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>`)
	}
	send("only once")
	send("only once")
	send("another text")
	r := a.Expect(func(el *stanza.Element) bool { return el.Attr("type") == "error" })
	if r.Attr("id") != id || xmpptest.ErrorCondition(r) != "conflict" {
		t.Errorf("the id reused for another text answered %s, want conflict", r)
	}
	a.RoundTrip()
	count := func(c *xmpptest.Client, who string) {
		n := 0
		for _, el := range c.RoundTrip() {
			if strings.Contains(el.String(), "another text") {
				t.Errorf("%s got the refused message: %s", who, el)
			}
			if strings.Contains(el.String(), "only once") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s got the message %d times, want once", who, n)
		}
	}
	count(b, "bob")
	count(a2, "alice's other resource (carbons)")
	ctx := context.Background()
	ds, _, err := e.History.FindDialogs(ctx, e.App.ID, bob.Ref.User, history.DialogQuery{})
	if err != nil || len(ds) != 1 {
		t.Fatalf("bob's dialogs: %v %v", ds, err)
	}
	msgs, err := e.History.Messages(ctx, e.App.ID, bob.Ref.User, ds[0].ID, history.MessageQuery{}, false)
	if err != nil || len(msgs) != 1 || msgs[0].ID != id || msgs[0].Text != "only once" {
		t.Errorf("stored: %+v %v, want the one message", msgs, err)
	}
}

// Without save_to_history, chat states, headlines: routed, never stored.
func TestNotStored(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "a")
	b := e.Online(bob, "b")
	a.Write(`<message to='` + bob.JID + `' type='chat'><body>ephemeral</body></message>`)
	b.Expect(isMessage("ephemeral"))
	a.Write(`<message to='` + bob.JID + `' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/>` +
		`<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>`)
	b.Expect(func(el *stanza.Element) bool { return el.Child("composing", "") != nil })
	a.Write(`<message to='` + bob.JID + `' type='headline' id='sys1'><body>system</body><extraParams xmlns='jabber:client'>` +
		`<moduleIdentifier>SystemNotifications</moduleIdentifier><save_to_history>1</save_to_history><a>1</a></extraParams></message>`)
	if got := b.Expect(isMessage("system")); got.Attr("type") != "headline" || extra(got, "message_id") != "" {
		t.Errorf("headline %s", got)
	}
	ds, total, err := e.History.FindDialogs(context.Background(), e.App.ID, bob.Ref.User, history.DialogQuery{})
	if err != nil || total != 0 {
		t.Errorf("dialogs after unstored messages: %v %d %v", ds, total, err)
	}
}

// A stored message to an offline user is kept in history and offline
// storage; when offline storage is full it is still not bounced (the history
// keeps it), while an unstored one is.
func TestStoredMessageToOfflineUser(t *testing.T) {
	e := startEnv(t, func(c *xmpp.Config) { c.OfflineLimit = 1 })
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "a")
	a.Write(`<message to='` + bob.JID + `' type='chat' id='off0'><body>fills the store</body></message>`)
	a.Write(`<message to='` + bob.JID + `' type='chat' id='off1'><body>while you were out</body>` +
		`<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>`)
	a.Write(`<message to='` + bob.JID + `' type='chat' id='off2'><body>not stored</body></message>`)
	r := a.Expect(func(el *stanza.Element) bool { return el.Attr("type") == "error" })
	if r.Attr("id") != "off2" || xmpptest.ErrorCondition(r) != "service-unavailable" {
		t.Errorf("first error %s, want the bounce of the unstored message only", r)
	}
	counts, total, err := e.History.UnreadCounts(context.Background(), e.App.ID, bob.Ref.User, nil)
	if err != nil || total != 1 {
		t.Errorf("bob's unread: %v %d %v", counts, total, err)
	}
}

// A message naming a dialog the sender is not in is refused, not delivered.
func TestSaveToForeignDialogRefused(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob, carol := e.NewUser("alice"), e.NewUser("bob"), e.NewUser("carol")
	ctx := context.Background()
	d, _, err := e.History.CreateDialog(ctx, e.App.ID, bob.Ref.User, history.DialogInput{Type: history.Private, Occupants: []int64{carol.Ref.User}})
	if err != nil {
		t.Fatal(err)
	}
	a := e.Online(alice, "a")
	b := e.Online(bob, "b")
	a.Write(`<message to='` + bob.JID + `' type='chat' id='f1'><body>intruder</body><extraParams xmlns='jabber:client'>` +
		`<save_to_history>1</save_to_history><dialog_id>` + d.ID + `</dialog_id></extraParams></message>`)
	r := a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "f1" })
	if xmpptest.ErrorCondition(r) != "forbidden" {
		t.Errorf("answered %s", r)
	}
	b.RoundTrip()
	msgs, _ := e.History.Messages(ctx, e.App.ID, bob.Ref.User, d.ID, history.MessageQuery{}, false)
	if len(msgs) != 0 {
		t.Errorf("stored into a foreign dialog: %v", msgs)
	}
}

// A message naming a dialog of the sender's that its addressee is not in
// (her private dialog with someone else, a group the addressee is not in)
// is refused before it is stored: no one's history or unread count gets it,
// and the addressee does not get it.
func TestSaveToDialogWithoutAddresseeRefused(t *testing.T) {
	for _, typ := range []history.DialogType{history.Private, history.Group} {
		t.Run(fmt.Sprint("type ", typ), func(t *testing.T) {
			e := startEnv(t, nil)
			alice, bob, carol := e.NewUser("alice"), e.NewUser("bob"), e.NewUser("carol")
			ctx := context.Background()
			d, _, err := e.History.CreateDialog(ctx, e.App.ID, alice.Ref.User, history.DialogInput{Type: typ, Name: "g", Occupants: []int64{carol.Ref.User}})
			if err != nil {
				t.Fatal(err)
			}
			a := e.Online(alice, "a")
			b := e.Online(bob, "b")
			a.Write(`<message to='` + bob.JID + `' type='chat' id='w1'><body>meant for bob</body><extraParams xmlns='jabber:client'>` +
				`<save_to_history>1</save_to_history><dialog_id>` + d.ID + `</dialog_id></extraParams></message>`)
			r := a.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "w1" })
			if xmpptest.ErrorCondition(r) != "bad-request" {
				t.Errorf("answered %s", r)
			}
			for _, el := range b.RoundTrip() {
				if isMessage("meant for bob")(el) {
					t.Errorf("bob, not in the dialog, got %s", el)
				}
			}
			msgs, err := e.History.Messages(ctx, e.App.ID, carol.Ref.User, d.ID, history.MessageQuery{}, false)
			counts, _, err2 := e.History.UnreadCounts(ctx, e.App.ID, carol.Ref.User, []string{d.ID})
			if err != nil || err2 != nil || len(msgs) != 0 || counts[d.ID] != 0 {
				t.Errorf("the dialog holds %d messages, carol's unread %d (%v, %v)", len(msgs), counts[d.ID], err, err2)
			}
		})
	}
}

// A correction (XEP-0308) edits only a message its addressee got: one sent
// to bob does not rewrite what alice sent carol, who would never hear of it.
func TestCorrectionOnlyToItsRecipient(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob, carol := e.NewUser("alice"), e.NewUser("bob"), e.NewUser("carol")
	ctx := context.Background()
	a := e.Online(alice, "a")
	b := e.Online(bob, "b")
	c := e.Online(carol, "c")
	id := oid.New(time.Now())
	a.Write(`<message to='` + carol.JID + `' type='chat' id='` + id + `'><body>for carol</body>` +
		`<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>`)
	c.Expect(isMessage("for carol"))
	for _, to := range []struct {
		c         *client
		jid, text string
		want      string
	}{{b, bob.JID, "rewritten via bob", "for carol"}, {c, carol.JID, "corrected for carol", "corrected for carol"}} {
		a.Write(`<message to='` + to.jid + `' type='chat'><body>` + to.text + `</body><replace xmlns='urn:xmpp:message-correct:0' id='` + id + `'/></message>`)
		to.c.Expect(isMessage(to.text)) // applied before it is routed
		m, err := e.History.Message(ctx, e.App.ID, carol.Ref.User, id)
		if err != nil || m.Text != to.want {
			t.Errorf("after the correction sent to %s, carol's message holds %q (%v), want %q", to.jid, m.Text, err, to.want)
		}
	}
}

// Stanzas a client sends together take effect in the order sent, though the
// server stores the messages among them together (pipeline.go): the
// recipient gets the stored and the unstored messages in order, each stored
// one annotated, the carbon copies follow the same order, and a refused one
// is answered without holding up the rest.
func TestPipelinedMessagesKeepOrder(t *testing.T) {
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a := e.Online(alice, "a")
	a2 := e.Online(alice, "a2")
	a2.Write(`<iq type='set' id='carbons'><enable xmlns='urn:xmpp:carbons:2'/></iq>`)
	a2.Expect(func(el *stanza.Element) bool { return el.Attr("id") == "carbons" })
	b := e.Online(bob, "b")
	var all strings.Builder
	for _, body := range []string{"s1", "s2", "p3", "s4", "ping", "s5", "presence", "s6", "s7", "bad", "ping2", "s8"} {
		switch {
		case body == "ping2":
			all.WriteString(`<iq type='get' id='ping2'><ping xmlns='urn:xmpp:ping'/></iq>`)
		case body == "presence": // directed, so bob sees where it falls among the messages
			all.WriteString(`<presence to='` + bob.JID + `/b'><status>presence</status></presence>`)
		case body == "ping":
			all.WriteString(`<iq type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>`)
		case body == "bad": // names a dialog that does not exist
			all.WriteString(`<message to='` + bob.JID + `' type='chat' id='bad'><body>bad</body><extraParams xmlns='jabber:client'>` +
				`<save_to_history>1</save_to_history><dialog_id>` + oid.New(time.Now()) + `</dialog_id></extraParams></message>`)
		case body[0] == 's':
			all.WriteString(`<message to='` + bob.JID + `' type='chat'><body>` + body + `</body>` +
				`<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>`)
		default:
			all.WriteString(`<message to='` + bob.JID + `' type='chat'><body>` + body + `</body></message>`)
		}
	}
	a.Write(all.String())

	want := []string{"s1", "s2", "p3", "s4", "s5", "presence", "s6", "s7", "s8"}
	var got, ids []string
	var dialog string
	for len(got) < len(want) {
		el := b.Next()
		if el.Name == "presence" && el.ChildText("status", "") == "presence" {
			got = append(got, "presence")
		}
		if el.Name != "message" {
			continue
		}
		got = append(got, el.ChildText("body", ""))
		if body := got[len(got)-1]; body[0] == 's' {
			if !oid.Valid(extra(el, "message_id")) {
				t.Errorf("%s delivered without its message_id: %s", body, el)
			}
			ids = append(ids, extra(el, "message_id"))
			dialog = extra(el, "dialog_id")
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("bob got %v, want %v", got, want)
	}
	want = slices.DeleteFunc(want, func(s string) bool { return s == "presence" })
	var carbons []string
	for len(carbons) < len(want) {
		el := a2.Next()
		if sent := el.Child("sent", "urn:xmpp:carbons:2"); sent != nil {
			carbons = append(carbons, sent.Child("forwarded", "urn:xmpp:forward:0").Child("message", "jabber:client").ChildText("body", ""))
		}
	}
	if !slices.Equal(carbons, want) {
		t.Errorf("alice's other resource got carbons of %v, want %v", carbons, want)
	}
	var answers []string
	for len(answers) < 3 {
		if el := a.Next(); el.Attr("id") == "ping" || el.Attr("id") == "bad" || el.Attr("id") == "ping2" {
			answers = append(answers, el.Attr("id")+" "+el.Attr("type"))
		}
	}
	if want := []string{"ping result", "bad error", "ping2 result"}; !slices.Equal(answers, want) {
		t.Errorf("alice got answers %v, want %v", answers, want)
	}

	var stored []string
	msgs, err := e.History.Messages(context.Background(), e.App.ID, bob.Ref.User, dialog, history.MessageQuery{}, false)
	for _, m := range msgs {
		stored = append(stored, m.ID)
	}
	if err != nil || !slices.Equal(stored, ids) {
		t.Errorf("stored %v (%v), want %v", stored, err, ids)
	}
	// They were stored together: s1 and s2 at least came in one TLS record.
	if n := e.Server.Stats().HistoryPipelined; n == 0 {
		t.Errorf("no message was stored while the one before it was")
	}
}
