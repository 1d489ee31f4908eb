package xmpp

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"chatd/history"
	"chatd/xmpp/stanza"
)

// Namespaces of the chat extensions the server acts on.
const (
	nsMarkers    = "urn:xmpp:chat-markers:0"
	nsChatStates = "http://jabber.org/protocol/chatstates"
	nsCorrect    = "urn:xmpp:message-correct:0"
	nsDelay      = "urn:xmpp:delay"
)

// History is what the XMPP side needs from chat history.
type History interface {
	// Begin starts storing a message; the Recording's Wait waits until it is
	// stored.
	Begin(ctx context.Context, in history.NewMessage) *history.Recording
	MarkUpTo(ctx context.Context, app, user int64, dialogID, messageID string, mark history.Mark) (int, error)
	Edit(ctx context.Context, app, user int64, id, text string, in history.Conversation) (*history.Message, error)
	DialogAny(ctx context.Context, app int64, id string) (*history.Dialog, error)
}

// SetHistory connects chat history; without it messages are only routed.
// A history that can be observed (history.Service) also tells the server
// about messages deleted for everyone, which online occupants are told of.
func (srv *Server) SetHistory(h History) {
	srv.history = h
	if o, ok := h.(interface {
		Observe(func(context.Context, history.Event))
	}); ok {
		o.Observe(srv.historyChanged)
	}
}

// extraParams returns the QuickBlox <extraParams/> child, if any.
func extraParams(el *stanza.Element) *stanza.Element {
	return el.Child("extraParams", stanza.NSClient)
}

// wantsHistory reports whether a message asks to be stored: QuickBlox
// checks only for the presence of save_to_history, whatever its value.
func wantsHistory(el *stanza.Element) bool {
	x := extraParams(el)
	return x != nil && x.Child("save_to_history", "") != nil
}

// nsStanzaID is XEP-0359 Unique and Stable Stanza IDs.
const nsStanzaID = "urn:xmpp:sid:0"

// isHeadline reports QuickBlox system notifications and other headlines,
// which are routed and never stored.
func isHeadline(el *stanza.Element) bool { return el.Attr("type") == "headline" }

// StanzaMessage reads the history fields of a message stanza: its text,
// attachments, custom parameters and client date_sent.
func StanzaMessage(el *stanza.Element) history.NewMessage {
	in := history.NewMessage{
		ID:       el.Attr("id"),
		Text:     el.ChildText("body", stanza.NSClient),
		Markable: el.Child("markable", nsMarkers) != nil,
	}
	x := extraParams(el)
	if x == nil {
		return in
	}
	for _, c := range x.Elements() {
		switch c.Name {
		case "save_to_history", "moduleIdentifier", "message_id":
		case "dialog_id":
			in.DialogID = strings.TrimSpace(c.Content())
		case "date_sent":
			if f, err := strconv.ParseFloat(strings.TrimSpace(c.Content()), 64); err == nil && f > 0 {
				in.DateSent = f
			}
		case "attachment":
			a := history.Attachment{}
			for _, attr := range c.Attrs {
				a[attr.Name] = attr.Value
			}
			if txt := c.Content(); txt != "" {
				a["data"] = txt
			}
			in.Attachments = append(in.Attachments, a)
		default:
			if in.Custom == nil {
				in.Custom = map[string]string{}
			}
			in.Custom[c.Name] = customValue(c)
		}
	}
	return in
}

// customValue is what history keeps of a custom parameter, as a string: its
// text, or, when it holds elements (the QuickBlox SDK writes an object value
// as nested elements), its content as XML, so that nothing of it is lost.
func customValue(c *stanza.Element) string {
	if c.FirstElement() == nil {
		return c.Content()
	}
	var b []byte
	for _, ch := range c.Children {
		b = ch.AppendXML(b, c.Space)
	}
	return string(b)
}

// annotate returns a copy of a stored message's stanza whose extraParams
// carry message_id, dialog_id and date_sent, as QuickBlox delivers them.
// Its id is the history _id, so the XEP-0333 markers and XEP-0308
// corrections that recipients send about it name a stored message. A client
// id that differs (not an ObjectId, or one in upper case) stays with the
// message as a XEP-0359 origin-id, unless the client set one itself, so the
// sender can still tell its message (a MUC reflection) apart.
func annotate(el *stanza.Element, m *history.Message) *stanza.Element {
	out := el.ShallowCopy()
	out.Children = make([]*stanza.Element, 0, len(el.Children)+1)
	if id := el.Attr("id"); id != m.ID {
		out.SetAttr("id", m.ID)
		if id != "" && el.Child("origin-id", nsStanzaID) == nil {
			out.Children = append(out.Children, stanza.New("origin-id", nsStanzaID, "id", id))
		}
	}
	var x *stanza.Element
	for _, c := range el.Children {
		if c.Name == "extraParams" && c.Space == stanza.NSClient && x == nil {
			x = c.ShallowCopy()
			x.Children = nil
			for _, p := range c.Children {
				switch p.Name {
				case "message_id", "dialog_id", "date_sent":
					continue
				}
				x.Children = append(x.Children, p)
			}
			out.Children = append(out.Children, x)
			continue
		}
		out.Children = append(out.Children, c)
	}
	if x == nil {
		x = stanza.New("extraParams", stanza.NSClient)
		out.Children = append(out.Children, x)
	}
	x.Append(
		stanza.New("message_id", stanza.NSClient).AppendText(m.ID),
		stanza.New("dialog_id", stanza.NSClient).AppendText(m.DialogID),
		stanza.New("date_sent", stanza.NSClient).AppendText(strconv.FormatInt(m.DateSent, 10)),
	)
	return out
}

// chatMessage applies what chat history does to a 1:1 message before it is
// routed: markers update read and delivered marks and corrections edit the
// stored text; it returns the stanza to route. A message with
// save_to_history is not routed from here: chatMessage begins recording it
// and returns nil with the recording, which pendingChat.deliver completes.
func (srv *Server) chatMessage(ctx context.Context, s *Session, el *stanza.Element, to UserRef) (*stanza.Element, *history.Recording) {
	if srv.history == nil || isHeadline(el) || el.Attr("type") == "error" {
		return el, nil
	}
	if m := markerOf(el); m != nil {
		srv.applyMarker(ctx, s.user, to, el, m)
		return el, nil
	}
	if r := el.Child("replace", nsCorrect); r != nil && el.ChildText("body", stanza.NSClient) != "" {
		if _, err := srv.history.Edit(ctx, s.user.App, s.user.User, r.Attr("id"), el.ChildText("body", stanza.NSClient),
			history.Conversation{RecipientID: to.User}); err != nil &&
			!errors.Is(err, history.ErrNotFound) {
			s.log.Debug("correction not stored", "id", r.Attr("id"), "err", err)
		}
		return el, nil
	}
	if !wantsHistory(el) || chatStateOnly(el) {
		return el, nil
	}
	in := StanzaMessage(el)
	// The addressee must be in the dialog the message names (a dialog of
	// others is refused before anything is stored).
	in.App, in.SenderID, in.RecipientID = s.user.App, s.user.User, to.User
	return nil, srv.history.Begin(ctx, in)
}

// records reports whether chatMessage records el (a message to a user of
// the sender's application) rather than routing it at once.
func (srv *Server) records(el *stanza.Element) bool {
	switch el.Attr("type") {
	case "chat", "normal", "":
	default:
		return false
	}
	if srv.history == nil || !wantsHistory(el) || chatStateOnly(el) || markerOf(el) != nil {
		return false
	}
	r := el.Child("replace", nsCorrect)
	return r == nil || el.ChildText("body", stanza.NSClient) == ""
}

// pendingChat is a 1:1 message of a session being stored, delivered once it
// is (see Session.pending).
type pendingChat struct {
	rec *history.Recording
	el  *stanza.Element // as the sender sent it, from stamped
	to  JID
	u   UserRef
}

// deliver waits until the message is stored, then delivers it annotated
// with its history fields, or tells the sender why it was refused.
func (p pendingChat) deliver(ctx context.Context, s *Session) {
	srv := s.srv
	m, _, err := p.rec.Wait()
	if err != nil {
		srv.reply(s, p.el, historyError(err))
		return
	}
	if p.rec.Repeated() {
		// Sent again (a client resending what it had no ack for): it was
		// delivered, or stored offline, the first time.
		s.log.Debug("repeated message not delivered again", "id", m.ID)
		return
	}
	el := annotate(p.el, m)
	srv.sentCarbons(s.user, s, el)
	srv.deliverMessage(ctx, p.u, p.to, el, s)
}

// chatStateOnly reports a XEP-0085 notification that carries nothing else
// (XEP-0160: "messages that contain only Chat State Notifications"), which
// is routed and never stored, and held while the recipient is inactive
// (CSI). Beside the chat state it may have a thread, hints, stanza ids and
// the QuickBlox SDK's extraParams (its typing notifications name their
// dialog there); a body, a marker, a receipt or anything else makes it a
// message like others.
func chatStateOnly(el *stanza.Element) bool {
	state := false
	for _, c := range el.Elements() {
		switch {
		case c.Space == nsChatStates:
			state = true
		case c.Space == nsHints, c.Space == nsStanzaID,
			c.Space == stanza.NSClient && (c.Name == "thread" || c.Name == "extraParams"):
		default:
			return false
		}
	}
	return state
}

// markerOf returns a XEP-0333 received or displayed element.
func markerOf(el *stanza.Element) *stanza.Element {
	for _, c := range el.Children {
		if c.Space == nsMarkers && (c.Name == "received" || c.Name == "displayed") && c.Attr("id") != "" {
			return c
		}
	}
	return nil
}

// applyMarker records a chat marker sent by user about a message of the
// marker's recipient: the message and every earlier one of the dialog become
// delivered or read for the user.
func (srv *Server) applyMarker(ctx context.Context, user, to UserRef, el, marker *stanza.Element) {
	mark := history.Delivered
	if marker.Name == "displayed" {
		mark = history.Read
	}
	dialogID := ""
	if x := extraParams(el); x != nil {
		dialogID = strings.TrimSpace(x.ChildText("dialog_id", ""))
	}
	if dialogID == "" {
		return // without a dialog the marker is only routed
	}
	if _, err := srv.history.MarkUpTo(ctx, user.App, user.User, dialogID, marker.Attr("id"), mark); err != nil &&
		!errors.Is(err, history.ErrNotFound) && !errors.Is(err, history.ErrForbidden) {
		srv.log.Warn("recording a chat marker", "user", user.User, "dialog", dialogID, "err", err)
	}
}

// historyError maps history errors to stanza errors.
func historyError(err error) *StanzaError {
	var ve *history.ValidationError
	switch {
	case errors.Is(err, history.ErrNotFound):
		return stanzaErr(errCancel, "item-not-found", "no such dialog")
	case errors.Is(err, history.ErrForbidden):
		return stanzaErr(errAuth, "forbidden", "not an occupant of the dialog")
	case errors.As(err, &ve):
		return stanzaErr(errModify, "bad-request", ve.Error())
	case errors.Is(err, history.ErrDuplicate):
		return stanzaErr(errCancel, "conflict", "the message id is taken by another message")
	}
	return stanzaErrorOf(err)
}
