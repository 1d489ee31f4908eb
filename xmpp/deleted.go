package xmpp

import (
	"context"

	"chatd/history"
	"chatd/xmpp/stanza"
)

// nsRetract is XEP-0424 Message Retraction.
const nsRetract = "urn:xmpp:message-retract:1"

// DeletionNotice builds what an online occupant of a dialog gets when a
// stored message is deleted for everyone (REST DELETE with force=1): a
// headline from the user who deleted it that plain XMPP clients read as a
// XEP-0424 retraction of the message (its id is the stanza id recipients
// got, the history _id) and the QuickBlox SDKs as a system notification
// (onSystemMessageListener) whose extension holds
// notification_type=message_deleted, dialog_id and message_id. Headlines
// are never stored offline: who is offline sees the message gone from the
// history the next time it is read.
func DeletionNotice(d *history.Dialog, actor JID, messageID string) *stanza.Element {
	el := stanza.New("message", stanza.NSClient, "type", "headline", "from", actor.String())
	el.Append(stanza.New("retract", nsRetract, "id", messageID))
	x := stanza.New("extraParams", stanza.NSClient)
	x.Append(
		stanza.New("moduleIdentifier", stanza.NSClient).AppendText("SystemNotifications"),
		stanza.New("notification_type", stanza.NSClient).AppendText("message_deleted"),
		stanza.New("dialog_id", stanza.NSClient).AppendText(d.ID),
		stanza.New("message_id", stanza.NSClient).AppendText(messageID),
	)
	el.Append(x)
	return el
}

// historyChanged follows chat history: when messages of a private or group
// dialog are deleted for everyone, every occupant's available resources
// (the deleter's other ones too) get a DeletionNotice for each. Public
// groups have no occupant list; the MUC service tells their rooms' members.
// It runs on the goroutine that deleted and only enqueues.
func (srv *Server) historyChanged(ctx context.Context, ev history.Event) {
	d := ev.Dialog
	if ev.Kind != history.MessagesDeleted || d == nil || d.Type == history.PublicGroup {
		return
	}
	actor := UserJID(UserRef{App: d.AppID, User: ev.Actor}, srv.cfg.Domain)
	// Only occupants with a session: for the others a headline would be
	// dropped after a look at their privacy lists in the store, and a
	// group may have thousands of them.
	var online []UserRef
	for _, user := range d.Occupants {
		if u := (UserRef{App: d.AppID, User: user}); len(srv.router.sessions(u)) > 0 {
			online = append(online, u)
		}
	}
	for _, m := range ev.Messages {
		el := DeletionNotice(d, actor, m.ID)
		for _, u := range online {
			srv.deliverMessage(ctx, u, UserJID(u, srv.cfg.Domain), el, nil)
		}
	}
}
