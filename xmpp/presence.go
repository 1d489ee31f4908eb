package xmpp

import (
	"context"
	"strconv"
	"time"

	"chatd/xmpp/stanza"
)

// presence handles a presence stanza (RFC 6121 §3-4): broadcasts without
// 'to', directed presence, and the subscription state machine, whose two
// ends are both on this server and are updated together.
func (srv *Server) presence(ctx context.Context, s *Session, el *stanza.Element, to JID) {
	typ := el.Attr("type")
	if !to.IsZero() && typ == "" && len(s.directed) >= maxDirected && !s.directed[to] {
		// Each entity sent directed presence is remembered for the
		// session's end; without a bound a client could grow that without
		// end (any user id and resource of its application, any room).
		srv.reply(s, el, errTooManyDirected)
		return
	}
	if !to.IsZero() {
		if svc := srv.service(to.Domain); svc != nil {
			// Directed presence to a service (a room join) is remembered, so
			// that an unavailable broadcast reaches it too (RFC 6121 §4.6).
			switch typ {
			case "":
				if s.directed == nil {
					s.directed = map[JID]bool{}
				}
				s.directed[to] = true
			case "unavailable":
				delete(s.directed, to)
			}
			svc.Route(ctx, s.sender(), el)
			return
		}
	}
	switch typ {
	case "", "unavailable":
		if to.IsZero() {
			srv.broadcast(ctx, s, el, typ == "")
			return
		}
		srv.directed(s, el, to, typ == "")
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		u, ok := srv.local(to)
		if !ok || u.App != s.user.App || u == s.user {
			return // RFC 6121 §3: subscription requests to nobody are ignored
		}
		var err error
		switch typ {
		case "subscribe":
			err = srv.subscribe(ctx, s, u, to.Bare(), el)
		case "subscribed":
			err = srv.subscribed(ctx, s, u, to.Bare())
		case "unsubscribe":
			err = srv.unsubscribe(ctx, s.user, u, to.Bare())
		case "unsubscribed":
			err = srv.unsubscribedOut(ctx, s.user, u, to.Bare())
		}
		if err != nil {
			s.log.Warn("subscription change failed", "type", typ, "to", to.String(), "err", err)
			srv.reply(s, el, stanzaErrorOf(err))
		}
	case "probe", "error":
		// Probes are the server's business; errors to presence are dropped.
	default:
		srv.reply(s, el, errBadRequest)
	}
}

// broadcast sends a session's available or unavailable presence to the
// user's presence subscribers and other resources (RFC 6121 §4.2, §4.4).
func (srv *Server) broadcast(ctx context.Context, s *Session, el *stanza.Element, available bool) {
	if available {
		prio, err := strconv.Atoi(el.ChildText("priority", stanza.NSClient))
		if err != nil {
			prio = 0
		}
		// Offline messages go to a resource when it becomes available
		// with a non-negative priority (XEP-0160): at initial presence,
		// or later, when it raises its priority from below 0 or comes
		// back from unavailable. A negative priority gets none.
		wasEligible := s.available.Load() && s.priority.Load() >= 0
		s.priority.Store(int32(max(-128, min(127, prio))))
		s.presence.Store(el)
		if prio >= 0 && !wasEligible {
			srv.flushOffline(ctx, s) // makes the session available
		} else {
			s.available.Store(true)
		}
	} else {
		if !s.available.Load() {
			return
		}
		s.available.Store(false)
	}
	srv.accounts.Touch(ctx, s.user.App, s.user.User)
	items, _, err := srv.store.Roster(ctx, s.user)
	if err != nil {
		s.log.Warn("reading the roster for a presence broadcast", "err", err)
	}
	it := NewItem(el)
	for _, item := range items {
		if item.Subscription != SubFrom && item.Subscription != SubBoth {
			continue
		}
		if u, ok := srv.contactRef(item.JID); ok {
			srv.presenceTo(ctx, s, u, it)
		}
	}
	for _, r := range srv.router.sessions(s.user) {
		if r != s && r.available.Load() {
			r.enqueue(it)
		}
	}
	if !available {
		for j := range s.directed {
			if svc := srv.service(j.Domain); svc != nil {
				out := el.ShallowCopy()
				out.SetAttr("to", j.String())
				svc.Route(ctx, s.sender(), out)
				continue
			}
			srv.directed(s, el, j, false)
		}
		s.directed = nil
		srv.lastSeen(ctx, s, el)
		return
	}
	if !s.initialSent {
		s.initialSent = true
		srv.initialPresence(ctx, s, items)
	}
}

// initialPresence answers a session's first available presence with the
// presence of its contacts and other resources (the probes of RFC 6121
// §4.3, answered locally) and redelivers pending subscription requests.
func (srv *Server) initialPresence(ctx context.Context, s *Session, items []RosterItem) {
	for _, item := range items {
		if item.PendingIn {
			s.send(stanza.New("presence", stanza.NSClient, "type", "subscribe", "from", item.JID))
		}
		if item.Subscription != SubTo && item.Subscription != SubBoth {
			continue
		}
		if u, ok := srv.contactRef(item.JID); ok {
			for _, r := range srv.router.sessions(u) {
				if p := r.presence.Load(); p != nil && r.available.Load() &&
					!srv.blockedOut(ctx, r, s.jid, kindPresenceOut) && !srv.blockedIn(ctx, s, r.jid, kindPresenceIn) {
					s.send(p)
				}
			}
		}
	}
	for _, r := range srv.router.sessions(s.user) {
		if r != s && r.available.Load() {
			if p := r.presence.Load(); p != nil {
				s.send(p)
			}
		}
	}
}

// maxDirected bounds the entities (users' JIDs and rooms) one session has
// sent directed available presence to and not yet unavailable; past it
// such presence is answered with <policy-violation/>.
const maxDirected = 1000

var errTooManyDirected = stanzaErr(errModify, "policy-violation",
	"directed presence to at most "+strconv.Itoa(maxDirected)+" entities (rooms included) at once")

// directed delivers presence to one entity outside the subscription
// mechanism and remembers it, so that entity learns of the session's end.
func (srv *Server) directed(s *Session, el *stanza.Element, to JID, available bool) {
	u, ok := srv.local(to)
	if !ok || u.App != s.user.App {
		return
	}
	if available {
		if s.directed == nil {
			s.directed = map[JID]bool{}
		}
		s.directed[to] = true
	} else if s.directed != nil {
		delete(s.directed, to)
	}
	it := NewItem(el)
	if !to.IsBare() {
		if r := srv.router.session(u, to.Resource); r != nil && r.Accepts(s.jid, kindPresenceIn) {
			r.enqueue(it)
		}
		return
	}
	srv.toAvailable(u, it)
}

// endPresence runs when a bound session ends: if it was available, its
// unavailable presence is broadcast as if the client had sent it.
func (srv *Server) endPresence(s *Session) {
	if !s.available.Load() {
		return
	}
	el := stanza.New("presence", stanza.NSClient, "type", "unavailable", "from", s.full)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.broadcast(ctx, s, el, false)
}

// lastSeen records the user's last activity when its last available
// resource goes away.
func (srv *Server) lastSeen(ctx context.Context, s *Session, el *stanza.Element) {
	for _, r := range srv.router.sessions(s.user) {
		if r != s && r.available.Load() {
			return
		}
	}
	if err := srv.store.SetLastActivity(ctx, s.user, time.Now(), el.ChildText("status", stanza.NSClient)); err != nil {
		s.log.Warn("recording last activity", "err", err)
	}
}

// contactRef reads a roster JID (always bare and local).
func (srv *Server) contactRef(jid string) (UserRef, bool) {
	j, err := ParseJID(jid)
	if err != nil {
		return UserRef{}, false
	}
	return srv.local(j)
}

// presenceTo sends a session's presence item to a contact's available
// sessions, as both sides' privacy lists allow.
func (srv *Server) presenceTo(ctx context.Context, s *Session, u UserRef, it *Item) {
	if srv.blockedOut(ctx, s, UserJID(u, srv.cfg.Domain), kindPresenceOut) {
		return
	}
	for _, r := range srv.router.sessions(u) {
		if r.available.Load() && !srv.blockedIn(ctx, r, s.jid, kindPresenceIn) {
			r.enqueue(it)
		}
	}
}

// toAvailable enqueues an item to every available session of a user.
//
// A resource whose privacy list refuses the sender's inbound presence
// (XEP-0016 presence-in, which XEP-0191 blocking sets too) gets nothing:
// no directed presence, no subscription request.
func (srv *Server) toAvailable(u UserRef, it *Item) {
	from, _ := ParseJID(it.el.Attr("from"))
	for _, r := range srv.router.sessions(u) {
		if r.available.Load() && r.Accepts(from, kindPresenceIn) {
			r.enqueue(it)
		}
	}
}

// subscriptionStanza builds a subscription presence from a bare JID.
func subscriptionStanza(typ string, from JID) *stanza.Element {
	return stanza.New("presence", stanza.NSClient, "type", typ, "from", from.String())
}

// subscribe: the user asks to see the contact's presence (RFC 6121 §3.1).
func (srv *Server) subscribe(ctx context.Context, s *Session, cu UserRef, cj JID, el *stanza.Element) error {
	if ok, err := srv.contactExists(ctx, cu); err != nil {
		return err
	} else if !ok {
		// No such user: refused for it, as RFC 6121 §3.1.3 has the
		// contact's server do, and nothing is stored.
		s.send(subscriptionStanza("unsubscribed", cj))
		return nil
	}
	unlock := srv.rosterLocks.lock(s.user, cu)
	defer unlock()
	mine, err := srv.rosterItem(ctx, s.user, cj.String())
	if err != nil {
		return err
	}
	if mine.Subscription == SubTo || mine.Subscription == SubBoth {
		// Already subscribed: answer for the contact (RFC 6121 §3.1.3).
		s.send(subscriptionStanza("subscribed", cj))
		return nil
	}
	theirs, err := srv.rosterItem(ctx, cu, s.bare.String())
	if err != nil {
		return err
	}
	if theirs.Subscription == SubFrom || theirs.Subscription == SubBoth {
		// The contact already approved: fix our side and answer for them.
		mine.Subscription = addTo(mine.Subscription)
		mine.Ask, mine.Listed = false, true
		if err := srv.putItem(ctx, s.user, *mine); err != nil {
			return err
		}
		s.send(subscriptionStanza("subscribed", cj))
		return nil
	}
	mine.Ask, mine.Listed = true, true
	if err := srv.putItem(ctx, s.user, *mine); err != nil {
		return err
	}
	theirs.PendingIn = true
	if err := srv.putItem(ctx, cu, *theirs); err != nil {
		return err
	}
	req := subscriptionStanza("subscribe", s.bare)
	for _, c := range el.Children {
		if c.Name == "status" || c.Name == "nick" {
			req.Append(c)
		}
	}
	srv.toAvailable(cu, NewItem(req))
	return nil
}

// subscribed: the user approves the contact's request (RFC 6121 §3.1.5).
func (srv *Server) subscribed(ctx context.Context, s *Session, cu UserRef, cj JID) error {
	unlock := srv.rosterLocks.lock(s.user, cu)
	defer unlock()
	mine, err := srv.rosterItem(ctx, s.user, cj.String())
	if err != nil {
		return err
	}
	if !mine.PendingIn {
		// No request to approve (pre-approval is not offered): ignored.
		return nil
	}
	mine.PendingIn, mine.Listed = false, true
	mine.Subscription = addFrom(mine.Subscription)
	if err := srv.putItem(ctx, s.user, *mine); err != nil {
		return err
	}
	theirs, err := srv.rosterItem(ctx, cu, s.bare.String())
	if err != nil {
		return err
	}
	if theirs.Ask {
		theirs.Ask = false
		theirs.Subscription = addTo(theirs.Subscription)
		if err := srv.putItem(ctx, cu, *theirs); err != nil {
			return err
		}
	}
	srv.toAvailable(cu, NewItem(subscriptionStanza("subscribed", s.bare)))
	// The contact now sees the user's presence.
	for _, r := range srv.router.sessions(s.user) {
		if p := r.presence.Load(); p != nil && r.available.Load() {
			srv.toAvailable(cu, NewItem(p))
		}
	}
	return nil
}

// unsubscribe: the user stops seeing the contact's presence (RFC 6121 §3.3).
func (srv *Server) unsubscribe(ctx context.Context, owner, cu UserRef, cj JID) error {
	unlock := srv.rosterLocks.lock(owner, cu)
	defer unlock()
	mine, err := srv.rosterItem(ctx, owner, cj.String())
	if err != nil {
		return err
	}
	if mine.Subscription == SubTo || mine.Subscription == SubBoth || mine.Ask {
		mine.Subscription = dropTo(mine.Subscription)
		mine.Ask = false
		if err := srv.putItem(ctx, owner, *mine); err != nil {
			return err
		}
	}
	return srv.inboundUnsubscribe(ctx, cu, UserJID(owner, srv.cfg.Domain))
}

// inboundUnsubscribe applies an unsubscribe from user (bare JID) at the
// contact cu: the contact no longer sends presence to the user. The roster
// locks of both are held.
func (srv *Server) inboundUnsubscribe(ctx context.Context, cu UserRef, user JID) error {
	theirs, err := srv.rosterItem(ctx, cu, user.String())
	if err != nil {
		return err
	}
	if theirs.Subscription != SubFrom && theirs.Subscription != SubBoth && !theirs.PendingIn {
		return nil
	}
	theirs.Subscription = dropFrom(theirs.Subscription)
	theirs.PendingIn = false
	if err := srv.putItem(ctx, cu, *theirs); err != nil {
		return err
	}
	srv.toAvailable(cu, NewItem(subscriptionStanza("unsubscribe", user)))
	if uu, ok := srv.local(user); ok {
		srv.sendUnavailableTo(cu, uu)
	}
	return nil
}

// unsubscribedOut: the user cancels or refuses the contact's subscription
// (RFC 6121 §3.2).
func (srv *Server) unsubscribedOut(ctx context.Context, owner, cu UserRef, cj JID) error {
	unlock := srv.rosterLocks.lock(owner, cu)
	defer unlock()
	mine, err := srv.rosterItem(ctx, owner, cj.String())
	if err != nil {
		return err
	}
	if mine.Subscription == SubFrom || mine.Subscription == SubBoth || mine.PendingIn {
		mine.Subscription = dropFrom(mine.Subscription)
		mine.PendingIn = false
		if mine.Listed || mine.Subscription != SubNone || mine.Ask {
			if err := srv.putItem(ctx, owner, *mine); err != nil {
				return err
			}
		} else if _, err := srv.store.DeleteRosterItem(ctx, owner, cj.String()); err != nil {
			return err
		}
		srv.sendUnavailableTo(owner, cu)
	}
	return srv.inboundUnsubscribed(ctx, cu, UserJID(owner, srv.cfg.Domain))
}

// inboundUnsubscribed applies an unsubscribed from user at the contact cu:
// the contact no longer sees the user's presence.
func (srv *Server) inboundUnsubscribed(ctx context.Context, cu UserRef, user JID) error {
	theirs, err := srv.rosterItem(ctx, cu, user.String())
	if err != nil {
		return err
	}
	if theirs.Subscription != SubTo && theirs.Subscription != SubBoth && !theirs.Ask {
		return nil
	}
	theirs.Subscription = dropTo(theirs.Subscription)
	theirs.Ask = false
	if err := srv.putItem(ctx, cu, *theirs); err != nil {
		return err
	}
	srv.toAvailable(cu, NewItem(subscriptionStanza("unsubscribed", user)))
	return nil
}

// sendUnavailableTo tells the contact that each available resource of owner
// is gone (after a subscription ends).
func (srv *Server) sendUnavailableTo(owner, contact UserRef) {
	for _, r := range srv.router.sessions(owner) {
		if r.available.Load() {
			srv.toAvailable(contact, NewItem(stanza.New("presence", stanza.NSClient, "type", "unavailable", "from", r.full)))
		}
	}
}

func addTo(sub string) string {
	if sub == SubFrom || sub == SubBoth {
		return SubBoth
	}
	return SubTo
}

func addFrom(sub string) string {
	if sub == SubTo || sub == SubBoth {
		return SubBoth
	}
	return SubFrom
}

func dropTo(sub string) string {
	if sub == SubBoth || sub == SubFrom {
		return SubFrom
	}
	return SubNone
}

func dropFrom(sub string) string {
	if sub == SubBoth || sub == SubTo {
		return SubTo
	}
	return SubNone
}
