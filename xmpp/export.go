package xmpp

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"chatd/history"
	"chatd/xmpp/stanza"
)

// This file is what other parts (the MUC service, the REST API) use of the
// XMPP server. All of it is safe from any goroutine.

// User returns the session's user (set at bind).
func (s *Session) User() UserRef { return s.user }

// JID returns the session's full JID (set at bind).
func (s *Session) JID() JID { return s.jid }

// Available reports whether the session has sent available presence.
func (s *Session) Available() bool { return s.available.Load() }

// RefuseDirected tells the session that the directed presence it just sent
// to a service (a room join) was refused, so that its unavailable
// presence later does not go there (RFC 6121 §4.6 keeps the entities a
// session sent presence to). Unlike the rest of this file, it is for a
// Service's Route handling a stanza of that session, on its reader
// goroutine.
func (s *Session) RefuseDirected(to JID) { delete(s.directed, to) }

// Sessions returns the bound sessions of a user; the slice must not be
// modified.
func (srv *Server) Sessions(u UserRef) []*Session { return srv.router.sessions(u) }

// EndUserSessions ends every session of a user, those waiting for stream
// management resumption too, with a <not-authorized/> stream error carrying
// text (chatd calls it when the user's account is deleted). What is queued
// for the sessions is dropped.
func (srv *Server) EndUserSessions(u UserRef, text string) {
	srv.usersEnded.Add(1)
	for _, s := range slices.Clone(srv.router.sessions(u)) {
		s.log.Info("ending the session", "reason", text)
		s.closeWith(streamErr("not-authorized", text), true)
	}
}

// OnSessionEnd registers fn to run when a bound session ends, on that
// session's reader goroutine, after its presence was made unavailable. Call
// before Start.
func (srv *Server) OnSessionEnd(fn func(*Session)) {
	srv.mu.Lock()
	srv.sessionEnd = append(srv.sessionEnd, fn)
	srv.mu.Unlock()
}

// NewStanzaError returns a stanza error of a type (cancel, continue, modify,
// auth, wait) and a defined condition, with an optional text.
func NewStanzaError(typ, condition, text string) *StanzaError { return stanzaErr(typ, condition, text) }

// Bounce answers a stanza from a sender with an error, when the sender has a
// session to answer to and the stanza is not itself an error.
func (srv *Server) Bounce(from Sender, el *stanza.Element, e *StanzaError) {
	if from.Session != nil {
		srv.reply(from.Session, el, e)
	}
}

// ErrorReply builds the error answer to a stanza (for services that answer
// with a 'from' of their own).
func ErrorReply(el *stanza.Element, e *StanzaError) *stanza.Element { return errorReply(el, e) }

// Annotate returns a copy of a stored message's stanza carrying the history
// fields in its extraParams.
var Annotate = annotate

// SendAs routes a message as if user had sent it from no particular
// resource: the REST API's send_to_chat. The message must already be stored
// and annotated; its 'from' becomes the user's bare JID.
func (srv *Server) SendAs(ctx context.Context, user UserRef, el *stanza.Element) error {
	from := UserJID(user, srv.cfg.Domain)
	el.SetAttr("from", from.String())
	to, err := ParseJID(el.Attr("to"))
	if err != nil {
		return errJIDMalformed
	}
	if svc := srv.service(to.Domain); svc != nil {
		svc.Route(ctx, Sender{User: user, JID: from}, el)
		return nil
	}
	u, ok := srv.local(to)
	if !ok || u.App != user.App {
		return errServiceUnavailable
	}
	srv.sentCarbons(user, nil, el)
	srv.deliverMessage(ctx, u, to, el, nil)
	return nil
}

// StoredStanza builds the stanza of a message stored through the REST API,
// as its sender's client would have sent it: id is the history _id, and
// extraParams carry save_to_history, the custom parameters, the attachments
// and the history fields.
func (srv *Server) StoredStanza(m *history.Message, d *history.Dialog) *stanza.Element {
	el := stanza.New("message", stanza.NSClient, "id", m.ID)
	if d.Type == history.Private {
		el.SetAttr("type", "chat")
		el.SetAttr("to", UserJID(UserRef{App: d.AppID, User: m.RecipientID}, srv.cfg.Domain).String())
	} else {
		el.SetAttr("type", "groupchat")
		el.SetAttr("to", RoomJID(d, srv.cfg.Domain).String())
	}
	if m.Text != "" {
		el.Append(stanza.New("body", stanza.NSClient).AppendText(m.Text))
	}
	if m.Markable {
		el.Append(stanza.New("markable", nsMarkers))
	}
	x := stanza.New("extraParams", stanza.NSClient)
	x.Append(stanza.New("save_to_history", stanza.NSClient).AppendText("1"))
	appendCustom(x, m)
	el.Append(x)
	return annotate(el, m)
}

// appendCustom adds a message's custom parameters (in a stable order) and
// attachments to extraParams.
func appendCustom(x *stanza.Element, m *history.Message) {
	keys := slices.Sorted(maps.Keys(m.Custom))
	for _, k := range keys {
		if validElementName(k) {
			x.Append(stanza.New(k, stanza.NSClient).AppendText(m.Custom[k]))
		}
	}
	for _, a := range m.Attachments {
		att := stanza.New("attachment", stanza.NSClient)
		for _, k := range slices.Sorted(maps.Keys(a)) {
			if k == "data" {
				att.AppendText(a[k])
			} else if validElementName(k) {
				att.SetAttr(k, a[k])
			}
		}
		x.Append(att)
	}
}

// validElementName accepts the names custom parameters may have as XML
// element and attribute names.
func validElementName(s string) bool {
	if s == "" || strings.ContainsAny(s[:1], "0123456789-.") {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r == '.' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return false
		}
	}
	return !strings.HasPrefix(strings.ToLower(s), "xml")
}

// DeliverStored delivers a message stored through the REST API
// (send_to_chat=1) as if its sender had sent it over XMPP.
func (srv *Server) DeliverStored(ctx context.Context, m *history.Message, d *history.Dialog) error {
	return srv.SendAs(ctx, UserRef{App: d.AppID, User: m.SenderID}, srv.StoredStanza(m, d))
}

// DeliverSystem delivers a QuickBlox system notification (REST system=1) to
// the other user of a private dialog: a headline with
// moduleIdentifier=SystemNotifications and the custom parameters.
func (srv *Server) DeliverSystem(ctx context.Context, m *history.Message, d *history.Dialog) error {
	if d.Type != history.Private {
		return errors.New("xmpp: system notifications go to private dialogs only")
	}
	el := stanza.New("message", stanza.NSClient, "type", "headline", "id", m.ID,
		"to", UserJID(UserRef{App: d.AppID, User: m.RecipientID}, srv.cfg.Domain).String())
	if m.Text != "" {
		el.Append(stanza.New("body", stanza.NSClient).AppendText(m.Text))
	}
	x := stanza.New("extraParams", stanza.NSClient)
	x.Append(stanza.New("moduleIdentifier", stanza.NSClient).AppendText("SystemNotifications"),
		stanza.New("dialog_id", stanza.NSClient).AppendText(d.ID))
	appendCustom(x, m)
	el.Append(x)
	return srv.SendAs(ctx, UserRef{App: d.AppID, User: m.SenderID}, el)
}

// RoomJID returns the XMPP room of a group dialog:
// <app_id>_<room name>@muc.<domain>.
func RoomJID(d *history.Dialog, domain string) JID {
	return JID{Local: strconv.FormatInt(d.AppID, 10) + "_" + d.RoomName, Domain: "muc." + domain}
}
