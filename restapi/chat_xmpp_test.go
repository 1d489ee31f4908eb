package restapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// send_to_chat=1 stores the message, then delivers it over XMPP as its
// sender would have sent it: id == _id, extraParams with the history fields
// and the custom parameters (compat §7.4).
func TestSendToChat(t *testing.T) {
	f := newChatFixture(t, chatOptions{xmpp: true})
	e, alice, bob := f.e, f.alice, f.bob
	app := e.app.ID
	c := dialXMPP(t, e.xmpp, app, bob.id, bob.password)

	res := e.callJSON(http.MethodPost, "/chat/Message.json", alice.token,
		`{"chat_dialog_id":"`+f.priv+`","message":"via rest","send_to_chat":1,"markable":1,"custom":"x","n":7,`+
			`"attachments":[{"type":"image","id":"47863"}]}`)
	res.want(t, http.StatusCreated, "")
	m := res.obj(t)
	id := m["_id"].(string)
	if m["custom"] != "x" || m["n"] != "7" || m["send_to_chat"] != nil {
		t.Errorf("answer %s", res.body)
	}

	el := nextMessage(c)
	if el.Attr("id") != id || el.Attr("type") != "chat" || !hasPrefixJID(el.Attr("from"), bareJID(app, alice.id)) ||
		!hasPrefixJID(el.Attr("to"), bareJID(app, bob.id)) || el.ChildText("body", "") != "via rest" {
		t.Fatalf("delivered %s", el)
	}
	if mk := el.Child("markable", ""); mk == nil || mk.Space != "urn:xmpp:chat-markers:0" {
		t.Errorf("no markable: %s", el)
	}
	x := el.Child("extraParams", "")
	if x == nil || x.Space != "jabber:client" {
		t.Fatalf("no extraParams: %s", el)
	}
	for k, want := range map[string]string{
		"save_to_history": "1", "dialog_id": f.priv, "message_id": id, "date_sent": fmt.Sprint(t0Unix),
		"custom": "x", "n": "7",
	} {
		if got := x.ChildText(k, ""); got != want {
			t.Errorf("extraParams %s = %q, want %q", k, got, want)
		}
	}
	if att := x.Child("attachment", ""); att == nil || att.Attr("type") != "image" || att.Attr("id") != "47863" {
		t.Errorf("attachment %s", att)
	}
	// It is in the history, unread for bob.
	if got := idsOf(e.messages(bob, f.priv, "mark_as_read", "0")); len(got) != 1 || got[0] != id {
		t.Errorf("history %v, want [%s]", got, id)
	}
	if total, _ := e.unread(bob); total != 1 {
		t.Errorf("bob's unread %d, want 1", total)
	}

	// Without send_to_chat nothing is delivered live: the next stanza bob
	// gets is the answer to his ping, not a message.
	e.sendText(alice, f.priv, "history only")
	noMessage(c)

	// A group without a room service: stored, the failed live delivery is
	// logged, the answer is still 201.
	res = e.callJSON(http.MethodPost, "/chat/Message.json", alice.token, `{"chat_dialog_id":"`+f.group+`","message":"g","send_to_chat":1}`)
	res.want(t, http.StatusCreated, "")
	if got := idsOf(e.messages(bob, f.group, "mark_as_read", "0")); len(got) != 1 {
		t.Errorf("group history %v", got)
	}
	if !strings.Contains(e.logs.String(), "send_to_chat delivery failed") {
		t.Error("the failed delivery was not logged")
	}
}

// system=1 delivers a system notification (a headline with
// moduleIdentifier=SystemNotifications) to the other user of a private
// dialog and stores nothing.
func TestSystemMessage(t *testing.T) {
	f := newChatFixture(t, chatOptions{xmpp: true})
	e, alice, bob, carol := f.e, f.alice, f.bob, f.carol
	app := e.app.ID
	c := dialXMPP(t, e.xmpp, app, bob.id, bob.password)

	res := e.callJSON(http.MethodPost, "/chat/Message.json", alice.token,
		`{"chat_dialog_id":"`+f.priv+`","message":"ring","system":1,"call_id":"c-1","duration":30}`)
	res.want(t, http.StatusCreated, "")
	m := res.obj(t)
	id := m["_id"].(string)
	if len(id) != 24 || m["chat_dialog_id"] != f.priv || num(t, m["sender_id"]) != alice.id ||
		num(t, m["recipient_id"]) != bob.id || num(t, m["date_sent"]) != t0Unix || m["call_id"] != "c-1" || m["duration"] != "30" {
		t.Errorf("answer %s", res.body)
	}
	el := nextMessage(c)
	if el.Attr("id") != id || el.Attr("type") != "headline" || !hasPrefixJID(el.Attr("from"), bareJID(app, alice.id)) ||
		el.ChildText("body", "") != "ring" {
		t.Fatalf("delivered %s", el)
	}
	x := el.Child("extraParams", "")
	if x == nil {
		t.Fatalf("no extraParams: %s", el)
	}
	for k, want := range map[string]string{"moduleIdentifier": "SystemNotifications", "dialog_id": f.priv, "call_id": "c-1", "duration": "30"} {
		if got := x.ChildText(k, ""); got != want {
			t.Errorf("extraParams %s = %q, want %q", k, got, want)
		}
	}
	if x.Child("save_to_history", "") != nil {
		t.Errorf("a system notification claims save_to_history: %s", x)
	}
	// Nothing stored: no message, no unread, the dialog unchanged.
	if got := e.messages(bob, f.priv, "mark_as_read", "0"); len(got) != 0 {
		t.Errorf("history %v", got)
	}
	if d := e.call(http.MethodGet, "/chat/Dialog/"+f.priv+".json", bob.token).obj(t); d["last_message"] != nil ||
		num(t, d["unread_messages_count"]) != 0 {
		t.Errorf("dialog after a system message: %v", d)
	}

	// By recipient_id: the pair's private dialog (created if needed).
	res = e.call(http.MethodPost, "/chat/Message.json", carol.token, "recipient_id", itoa(bob.id), "system", "1", "kind", "poke")
	res.want(t, http.StatusCreated, "")
	m = res.obj(t)
	el = nextMessage(c)
	if el.Attr("id") != m["_id"] || el.Attr("type") != "headline" || el.Child("extraParams", "").ChildText("kind", "") != "poke" ||
		el.Child("extraParams", "").ChildText("dialog_id", "") != m["chat_dialog_id"] {
		t.Errorf("by recipient_id: answer %v, delivered %s", m, el)
	}

	// Group dialogs: 422, nothing delivered.
	e.callJSON(http.MethodPost, "/chat/Message.json", alice.token, `{"chat_dialog_id":"`+f.group+`","message":"x","system":1}`).
		want(t, http.StatusUnprocessableEntity, `{"errors":{"system":["notifications go to private dialogs only"]}}`)
	e.callJSON(http.MethodPost, "/chat/Message.json", alice.token, `{"message":"x","system":1}`).
		want(t, http.StatusUnprocessableEntity, `{"errors":{"chat_dialog_id":["or recipient_id is required"]}}`)
	e.callJSON(http.MethodPost, "/chat/Message.json", alice.token, `{"recipient_id":`+itoa(alice.id)+`,"system":1}`).
		want(t, http.StatusUnprocessableEntity, `{"errors":{"recipient_id":["cannot be the sender"]}}`)
	e.callJSON(http.MethodPost, "/chat/Message.json", carol.token, `{"chat_dialog_id":"`+f.priv+`","system":1}`).
		want(t, http.StatusForbidden, "")
	noMessage(c)
}
