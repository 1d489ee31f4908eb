package xmpp

import (
	"context"

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

// Sessions returns the bound sessions of a user; the slice must not be
// modified.
func (srv *Server) Sessions(u UserRef) []*Session { return srv.router.sessions(u) }

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
	srv.deliverMessage(ctx, u, to, el, nil)
	return nil
}
