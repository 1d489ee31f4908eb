package xmpp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"

	"chatd/account"
	"chatd/xmpp/stanza"
)

// bind makes a session visible to the router under its resource, applying
// the conflict policy.
func (srv *Server) bind(ctx context.Context, s *Session) error {
	// SASL read the account moments ago; read it again only if some
	// account was deleted since (EndUserSessions), which a session not yet
	// bound would not otherwise hear of.
	if s.authGen != srv.usersEnded.Load() {
		if _, err := srv.accounts.User(ctx, s.user.App, s.user.User); err != nil {
			if errors.Is(err, account.ErrNotFound) {
				return streamErr("not-authorized", "the account no longer exists")
			}
			return err
		}
	}
	if err := srv.loadPrivacy(ctx, s); err != nil {
		return err
	}
	switch srv.cfg.ResourceConflict {
	case "rename":
		if srv.router.session(s.user, s.jid.Resource) != nil {
			var b [4]byte
			rand.Read(b[:])
			s.jid.Resource += "-" + hex.EncodeToString(b[:])
			s.full = s.jid.String()
		}
	case "reject":
		if _, err := srv.router.bind(s, false, srv.cfg.MaxSessionsPerUser); err != nil {
			return err
		}
		s.bound = true
		return nil
	}
	old, err := srv.router.bind(s, true, srv.cfg.MaxSessionsPerUser)
	if err != nil {
		return err
	}
	if old != nil {
		old.log.Info("resource taken over by a new session")
		old.closeWith(streamErr("conflict", "replaced by a new connection"), false)
	}
	s.bound = true
	return nil
}

// ended runs after a session left the router: its presence ends and the
// session-end hooks run.
func (srv *Server) ended(s *Session) {
	srv.endPresence(s)
	srv.mu.Lock()
	ends := srv.sessionEnd
	srv.mu.Unlock()
	for _, fn := range ends {
		fn(s)
	}
}

// handle processes a stanza from a bound session: the sender's full JID is
// stamped as 'from' (whatever the client put there: the QuickBlox SDK sends
// bare local parts), then it goes to the handler of its kind.
func (srv *Server) handle(ctx context.Context, s *Session, el *stanza.Element) error {
	if el.Space != stanza.NSClient {
		return streamErr("unsupported-stanza-type", el.Name+" in "+el.Space)
	}
	switch el.Name {
	case "message", "presence", "iq":
	default:
		return streamErr("unsupported-stanza-type", el.Name)
	}
	el.SetAttr("from", s.full)
	var to JID
	if raw := el.Attr("to"); raw != "" {
		j, err := ParseJID(raw)
		if err != nil {
			s.deliverPending(ctx) // answers go out in the order of the stanzas
			srv.reply(s, el, errJIDMalformed)
			return nil
		}
		to = j
	}
	switch el.Name {
	case "message":
		srv.message(ctx, s, el, to)
	case "presence":
		srv.presence(ctx, s, el, to)
	case "iq":
		srv.iq(ctx, s, el, to)
	}
	return nil
}

// reply sends the error answer to a stanza back to its sender, unless the
// stanza is itself an error (RFC 6120 §8.3.1).
func (srv *Server) reply(s *Session, el *stanza.Element, se *StanzaError) {
	if el.Attr("type") == "error" {
		return
	}
	r := errorReply(el, se)
	if r.Attr("from") == "" {
		r.SetAttr("from", srv.cfg.Domain)
	}
	s.send(r)
}

// local reports whether j is on this server's domain, and the user it
// names when its local part is one of chatd's.
func (srv *Server) local(j JID) (UserRef, bool) {
	if j.Domain != srv.cfg.Domain || j.Local == "" {
		return UserRef{}, false
	}
	return ParseUserLocal(j.Local)
}

// service returns the service for a domain, if any.
func (srv *Server) service(domain string) Service {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.services[domain]
}

// message routes a message (RFC 6121 §8.5).
func (srv *Server) message(ctx context.Context, s *Session, el *stanza.Element, to JID) {
	if to.IsZero() {
		to = s.bare
		el.SetAttr("to", to.String())
	}
	svc := srv.service(to.Domain)
	if svc != nil || !srv.records(el) || el.ChildNS(nsAMP) != nil {
		// Delivered, or acted on, now: the session's messages still being
		// stored go first.
		s.deliverPending(ctx)
	}
	if svc != nil {
		svc.Route(ctx, s.sender(), el)
		return
	}
	u, ok := srv.local(to)
	if !ok || u.App != s.user.App {
		// Not a user of this server and application: no federation, and no
		// stanza crosses applications.
		s.deliverPending(ctx)
		srv.reply(s, el, errServiceUnavailable)
		return
	}
	if srv.blockedOut(ctx, s, to, kindMessage) {
		s.deliverPending(ctx)
		srv.reply(s, el, blockedError(true))
		return
	}
	if srv.userBlocks(ctx, u, s.jid, kindMessage) {
		s.deliverPending(ctx)
		srv.reply(s, el, blockedError(false))
		return
	}
	if !srv.applyAMP(ctx, s, el, to, u) {
		return
	}
	if typ := el.Attr("type"); typ == "chat" || typ == "normal" || typ == "" {
		out, rec := srv.chatMessage(ctx, s, el, u)
		if rec != nil {
			s.deliverLater(ctx, pendingChat{rec: rec, el: el, to: to, u: u})
			return
		}
		el = out
	}
	srv.sentCarbons(s.user, s, el)
	srv.deliverMessage(ctx, u, to, el, s)
}

// deliverMessage delivers a message to a local user (RFC 6121 §8.5.2-3):
// a full JID to that resource when it is online, otherwise as to the bare
// JID: every available resource with non-negative priority. With none, chat
// and normal messages go to offline handling; sender may be nil.
func (srv *Server) deliverMessage(ctx context.Context, u UserRef, to JID, el *stanza.Element, sender *Session) {
	typ := el.Attr("type")
	if typ == "" {
		typ = "normal"
	}
	from, _ := ParseJID(el.Attr("from"))
	if !to.IsBare() {
		if r := srv.router.session(u, to.Resource); r != nil {
			if srv.blockedIn(ctx, r, from, kindMessage) {
				srv.replyFromServer(sender, el, blockedError(false))
				return
			}
			if r.flushing.Load() && srv.storedBehindBacklog(ctx, u, r, el) {
				srv.receivedCarbons(u, []*Session{r}, el) // as if delivered
				return
			}
			r.send(el)
			srv.receivedCarbons(u, []*Session{r}, el)
			return
		}
		if typ == "groupchat" {
			srv.replyFromServer(sender, el, errServiceUnavailable)
			return
		}
	}
	if typ == "groupchat" {
		srv.replyFromServer(sender, el, errServiceUnavailable)
		return
	}
	defer srv.deliveryLocks.lock(u).Unlock()
	var (
		it     *Item
		got    []*Session
		denied bool
	)
	for _, r := range srv.router.sessions(u) {
		if !r.available.Load() || r.priority.Load() < 0 || r.flushing.Load() {
			// A session getting its offline messages gets this one
			// after them, from storage.
			continue
		}
		if srv.blockedIn(ctx, r, from, kindMessage) {
			denied = true
			continue
		}
		if it == nil {
			it = NewItem(el)
		}
		if r.enqueue(it) {
			got = append(got, r)
		}
	}
	if len(got) > 0 {
		it.sentTo = got
		srv.receivedCarbons(u, got, el)
		return
	}
	if denied || srv.blockedInOffline(ctx, u, from, kindMessage) {
		srv.replyFromServer(sender, el, blockedError(false))
		return
	}
	srv.undeliverable(ctx, u, el, sender)
}

// storedBehindBacklog stores a message to r's full JID in offline storage
// while r is being delivered its offline messages, so that it comes after
// them; it reports false when r has become available meanwhile, or the
// message cannot be stored (it is then delivered at once).
func (srv *Server) storedBehindBacklog(ctx context.Context, u UserRef, r *Session, el *stanza.Element) bool {
	defer srv.deliveryLocks.lock(u).Unlock()
	if !r.flushing.Load() {
		return false // flushOffline ends under this lock
	}
	stored, _ := srv.storeOffline(ctx, u, el)
	return stored
}

// undeliverable handles a message to a user with no available resource
// (RFC 6121 §8.5.2.2.1): headlines are dropped, chat and normal messages are
// stored offline for an existing user; what cannot be stored bounces with
// service-unavailable, unless chat history already keeps it. Nothing is
// dropped silently. The caller holds the user's delivery lock.
func (srv *Server) undeliverable(ctx context.Context, u UserRef, el *stanza.Element, sender *Session) {
	typ := el.Attr("type")
	if typ == "headline" || typ == "error" {
		return
	}
	var failure *StanzaError = errServiceUnavailable
	if _, err := srv.accounts.User(ctx, u.App, u.User); err == nil {
		stored, err := srv.storeOffline(ctx, u, el)
		if stored {
			return
		}
		if err != nil {
			failure = offlineError(err)
		}
	}
	if x := extraParams(el); x != nil && x.Child("message_id", stanza.NSClient) != nil && wantsHistory(el) {
		return
	}
	srv.replyFromServer(sender, el, failure)
}

// replyFromServer bounces a stanza to its sender when there is one.
func (srv *Server) replyFromServer(sender *Session, el *stanza.Element, se *StanzaError) {
	if sender != nil {
		srv.reply(sender, el, se)
	}
}

// iq routes an IQ: to the server (no 'to', or the domain), on behalf of a
// user (to a bare JID), or to a resource (to a full JID).
func (srv *Server) iq(ctx context.Context, s *Session, el *stanza.Element, to JID) {
	typ := el.Attr("type")
	switch typ {
	case "get", "set", "result", "error":
	default:
		srv.reply(s, el, errBadRequest)
		return
	}
	if el.Attr("id") == "" && (typ == "get" || typ == "set") {
		srv.reply(s, el, stanzaErr(errModify, "bad-request", "an IQ needs an id"))
		return
	}
	if to.IsZero() || (to.Local == "" && to.Domain == srv.cfg.Domain && to.Resource == "") {
		srv.serverIQ(ctx, s, el, JID{Domain: srv.cfg.Domain})
		return
	}
	if svc := srv.service(to.Domain); svc != nil {
		svc.Route(ctx, s.sender(), el)
		return
	}
	u, ok := srv.local(to)
	if !ok || u.App != s.user.App {
		srv.reply(s, el, errServiceUnavailable)
		return
	}
	if to.IsBare() {
		// Answered on the user's behalf, but not to someone the user
		// blocks (XEP-0016: a blocked entity's IQ gets an error).
		if u != s.user && (typ == "get" || typ == "set") && srv.userBlocks(ctx, u, s.jid, kindIQ) {
			srv.reply(s, el, blockedError(false))
			return
		}
		srv.serverIQ(ctx, s, el, to)
		return
	}
	if r := srv.router.session(u, to.Resource); r != nil {
		if srv.blockedOut(ctx, s, to, kindIQ) {
			srv.reply(s, el, blockedError(true))
			return
		}
		if srv.blockedIn(ctx, r, s.jid, kindIQ) {
			srv.reply(s, el, blockedError(false))
			return
		}
		r.send(el)
		return
	}
	srv.reply(s, el, errServiceUnavailable)
}
