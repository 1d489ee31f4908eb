package muc

import (
	"context"
	"errors"
	"strings"
	"unicode/utf8"

	"chatd/history"
	"chatd/internal/oid"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

// presence handles presence to a room or an occupant JID.
func (svc *Service) presence(ctx context.Context, from xmpp.Sender, el *stanza.Element, k roomKey, to xmpp.JID) {
	s := from.Session
	if s == nil {
		return
	}
	switch el.Attr("type") {
	case "":
		if to.Resource == "" {
			svc.presenceError(from, el, to, errJIDMalformed)
			return
		}
		svc.join(ctx, from, el, k, to)
	case "unavailable":
		svc.leave(s, el, k)
	}
	// Errors (ghost sessions) and subscription requests to rooms are
	// ignored.
}

// maxJoinAttempts bounds the retries of a join that raced with the room
// closing (its last occupant leaving, or the dialog being deleted).
const maxJoinAttempts = 5

// join enters a session into a room (XEP-0045 §7.2), creating the room's
// dialog when a user of the application joins a room that does not exist
// (§10.1.1).
func (svc *Service) join(ctx context.Context, from xmpp.Sender, el *stanza.Element, k roomKey, to xmpp.JID) {
	s := from.Session
	created := false
	for range maxJoinAttempts {
		// The room is registered before the dialog is read, so a change
		// of the dialog from now on reaches it (see observe).
		r := svc.room(k, true)
		d, made, err := svc.loadOrCreate(ctx, from.User.User, k, el.Child("x", nsMUC) != nil)
		if err != nil {
			svc.releaseIfEmpty(r)
			svc.presenceError(from, el, to, stanzaError(err))
			return
		}
		created = created || made
		d, how, err := svc.enter(r, s, el, d, created, to.Resource)
		if err != nil {
			svc.releaseIfEmpty(r)
			svc.presenceError(from, el, to, stanzaError(err))
			return
		}
		switch how {
		case retry:
			continue // the room closed meanwhile: start again
		case updated:
			return
		}
		svc.track(s, r)
		svc.replay(ctx, s, r, d, el)
		if !isSDKJoin(el) {
			s.Send(svc.subject(r, d, ""))
		}
		return
	}
	svc.presenceError(from, el, to, xmpp.NewStanzaError("wait", "resource-constraint", "the room is changing; try again"))
}

// isSDKJoin recognizes the QuickBlox SDK's joins by their ids, which end in
// ":join". The SDK must not get a subject message (it would surface as an
// empty chat message); standard clients need one to know the join is over.
func isSDKJoin(el *stanza.Element) bool { return strings.HasSuffix(el.Attr("id"), ":join") }

// loadOrCreate returns the dialog of a room; when there is none and the
// join may create it, it creates a group dialog owned by the joiner.
func (svc *Service) loadOrCreate(ctx context.Context, user int64, k roomKey, mayCreate bool) (*history.Dialog, bool, error) {
	d, err := svc.hist.RoomDialog(ctx, k.app, k.name)
	if err == nil || !errors.Is(err, history.ErrNotFound) {
		return d, false, err
	}
	if !mayCreate || oid.Valid(k.name) {
		// Names shaped like dialog ids are reserved for dialogs made over
		// REST: joining the room of a deleted dialog must not bring it back
		// as a new one.
		return nil, false, errItemNotFound
	}
	if svc.cfg.NoCreateByJoin {
		return nil, false, errCreateRestricted
	}
	if utf8.RuneCountInString(k.name) > maxRoomName {
		return nil, false, errCreateNotAllowed
	}
	d, _, err = svc.hist.CreateDialog(ctx, k.app, user, history.DialogInput{
		Type: history.Group, Name: k.name, RoomName: k.name,
	})
	if errors.Is(err, history.ErrDuplicate) {
		// Created by a concurrent join: join that one.
		d, err = svc.hist.RoomDialog(ctx, k.app, k.name)
		return d, false, err
	}
	return d, err == nil, err
}

// entry is what enter did.
type entry int

const (
	retry   entry = iota // the room closed meanwhile
	joined               // the session joined (or joined again)
	updated              // a joined session changed its presence
)

// enter adds the session under the room's lock and sends it the room's
// presences and its own. A presence without <x/> from a session already in
// the room only changes its availability (XEP-0045 §7.7). It returns the
// room's dialog and what it did.
//
// The joiner's own initial presences are the one thing enqueued while the
// room's lock is held: one session, enqueues that never block, and it keeps
// the self-presence ahead of any message fanned out to the new member.
func (svc *Service) enter(r *room, s *xmpp.Session, el *stanza.Element, d *history.Dialog, created bool, reqNick string) (*history.Dialog, entry, error) {
	user := s.User().User
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, retry, nil
	}
	if r.dialog == nil {
		r.dialog = d
	}
	d = r.dialog // events may have brought a newer state than the one read
	if !admitted(d, user) {
		r.mu.Unlock()
		return nil, retry, errRegistration
	}
	how := joined
	if r.members[s] != nil && el.Child("x", nsMUC) == nil {
		how = updated
	}
	o := r.occupants[user]
	first := o == nil
	if first {
		o = &occupant{user: user}
		r.occupants[user] = o
	}
	m := r.members[s]
	if m == nil {
		m = &member{s: s, occ: o}
		o.members = append(o.members, m)
		r.members[s] = m
		r.snap = nil
	}
	m.sdk = isSDKJoin(el)
	extras := presenceExtras(el)
	changed := first || !sameExtras(o.extras, extras)
	if changed {
		o.extras = extras
		o.item = nil
	}
	quiet := len(r.occupants) > svc.cfg.MaxBroadcastOccupants
	if !quiet && how == joined {
		for _, other := range r.occupants {
			if other != o {
				s.Enqueue(svc.itemOf(r, d, other))
			}
		}
	}
	s.Send(svc.selfPresence(r, d, o, el, created, reqNick != nick(user)))
	var others []*xmpp.Session
	var it *xmpp.Item
	if changed && !quiet {
		others = r.othersLocked(o)
		it = svc.itemOf(r, d, o)
	}
	r.mu.Unlock()
	for _, x := range others {
		x.Enqueue(it)
	}
	return d, how, nil
}

// presenceExtras keeps the parts of a join presence the others see.
func presenceExtras(el *stanza.Element) []*stanza.Element {
	var out []*stanza.Element
	for _, c := range el.Children {
		if c.Space == stanza.NSClient && (c.Name == "show" || c.Name == "status") {
			out = append(out, c)
		}
	}
	return out
}

func sameExtras(a, b []*stanza.Element) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].String() != b[i].String() {
			return false
		}
	}
	return true
}

// itemOf returns an occupant's available presence as the others see it:
// no status codes (the QuickBlox SDK takes a muc#user presence without them
// for a join), an id (the SDK needs one on every presence). It is encoded
// once and shared by every recipient, and only made when someone needs it:
// above the broadcast bound nobody does, which keeps large rooms small.
// r.mu is held.
func (svc *Service) itemOf(r *room, d *history.Dialog, o *occupant) *xmpp.Item {
	if o.item != nil {
		return o.item
	}
	aff := affiliation(d, o.user)
	p := stanza.New("presence", stanza.NSClient, "from", r.jid+"/"+nick(o.user), "id", svc.ids.next())
	p.Append(o.extras...)
	p.Append(stanza.New("x", nsMUCUser).Append(mucItem(aff, role(aff), svc.userJID(d.AppID, o.user))))
	o.item = xmpp.NewItem(p)
	return o.item
}

// selfPresence builds the joiner's own presence: the join's id echoed,
// status 110 (self), 100 (the room shows real JIDs), 201 (the join created
// the room) and 210 (the nick was changed to the user id). 110 comes first:
// the QuickBlox SDK reads only the first <status> of a muc#user presence
// (chatUtils.getElement, in its join handler and in _onPresence) and
// reports a join only when that one is 110.
func (svc *Service) selfPresence(r *room, d *history.Dialog, o *occupant, join *stanza.Element, created, renamed bool) *stanza.Element {
	id := join.Attr("id")
	if id == "" {
		id = svc.ids.next()
	}
	aff := affiliation(d, o.user)
	p := stanza.New("presence", stanza.NSClient, "from", r.jid+"/"+nick(o.user), "id", id)
	p.Append(o.extras...)
	x := stanza.New("x", nsMUCUser).Append(mucItem(aff, role(aff), svc.userJID(d.AppID, o.user)),
		status("110"), status("100"))
	if created {
		x.Append(status("201"))
	}
	if renamed {
		x.Append(status("210"))
	}
	return p.Append(x)
}

// unavailable builds an occupant's unavailable presence with the given
// children in its muc#user element.
func (svc *Service) unavailable(roomJID string, user int64, id string, xs ...*stanza.Element) *stanza.Element {
	if id == "" {
		id = svc.ids.next()
	}
	return stanza.New("presence", stanza.NSClient, "type", "unavailable", "from", roomJID+"/"+nick(user), "id", id).
		Append(stanza.New("x", nsMUCUser).Append(xs...))
}

// leave handles an unavailable presence to a room: the session gets its own
// unavailable presence (status 110, the request's id), the others learn of
// the user's departure when it was the user's last session in the room.
func (svc *Service) leave(s *xmpp.Session, el *stanza.Element, k roomKey) {
	r := svc.room(k, false)
	if r == nil {
		// Not in the room: answer anyway, so a client waiting for its
		// leave to complete is not left waiting.
		s.Send(svc.unavailable(svc.roomJID(k), s.User().User, el.Attr("id"), mucItem("none", "none", ""), status("110")))
		return
	}
	svc.depart(r, s, el)
}

// depart removes a session from a room; leave (el not nil) answers it.
func (svc *Service) depart(r *room, s *xmpp.Session, el *stanza.Element) {
	user := s.User().User
	dep := r.remove(s, svc.cfg.MaxBroadcastOccupants)
	svc.untrack(s, r)
	if el != nil {
		aff := "none"
		if dep.occ != nil {
			aff = dep.affiliation
		}
		s.Send(svc.unavailable(r.jid, user, el.Attr("id"), mucItem(aff, "none", ""), status("110")))
	}
	if dep.last && len(dep.others) > 0 {
		it := xmpp.NewItem(svc.unavailable(r.jid, user, "", mucItem(dep.affiliation, "none", "")))
		for _, x := range dep.others {
			x.Enqueue(it)
		}
	}
	if dep.empty {
		svc.drop(r)
	}
}

// kicked is an occupant removed from a room by someone else.
type kicked struct {
	user     int64
	sessions []*xmpp.Session
}

// dialogUpdated applies a dialog change to its live room: occupants removed
// from the dialog are kicked (status 301 with the actor, as the QuickBlox
// SDK expects; the others see a plain leave), and a new name is announced
// as the subject to standard clients.
func (svc *Service) dialogUpdated(k roomKey, ev history.Event) {
	r := svc.room(k, false)
	if r == nil {
		return
	}
	d := ev.Dialog
	r.mu.Lock()
	old := r.dialog
	r.dialog = d
	quiet := len(r.occupants) > svc.cfg.MaxBroadcastOccupants
	var out []kicked
	for _, u := range ev.Removed {
		o := r.occupants[u]
		if o == nil || admitted(d, u) {
			continue
		}
		k := kicked{user: u}
		for _, m := range o.members {
			k.sessions = append(k.sessions, m.s)
			delete(r.members, m.s)
		}
		delete(r.occupants, u)
		out = append(out, k)
	}
	var others []*xmpp.Session
	if len(out) > 0 {
		r.snap = nil
		if !quiet {
			others = r.othersLocked(nil)
		}
	}
	var standard []*xmpp.Session
	if old != nil && old.Name != d.Name {
		for s, m := range r.members {
			if !m.sdk {
				standard = append(standard, s)
			}
		}
	}
	empty := false
	if len(r.members) == 0 && !r.closed && old != nil {
		r.closed, empty = true, true
	}
	r.mu.Unlock()

	actor := svc.userJID(d.AppID, ev.Actor)
	for _, k := range out {
		kick := stanza.New("item", nsMUCUser, "affiliation", "none", "role", "none").
			Append(stanza.New("actor", nsMUCUser, "jid", actor, "nick", nick(ev.Actor)))
		it := xmpp.NewItem(svc.unavailable(r.jid, k.user, "", kick, status("301")))
		for _, s := range k.sessions {
			s.Enqueue(it)
			svc.untrack(s, r)
		}
		if len(others) > 0 {
			left := xmpp.NewItem(svc.unavailable(r.jid, k.user, "", mucItem("none", "none", "")))
			for _, s := range others {
				s.Enqueue(left)
			}
		}
	}
	if len(standard) > 0 {
		by := ""
		if ev.Actor != 0 {
			by = nick(ev.Actor)
		}
		it := xmpp.NewItem(svc.subject(r, d, by))
		for _, s := range standard {
			s.Enqueue(it)
		}
	}
	if empty {
		svc.drop(r)
	}
}

// destroy ends the room of a deleted dialog: every session in it gets an
// unavailable presence with <destroy/>, carrying the alternate venue and
// the reason when the owner destroyed the room and gave them (XEP-0045
// §10.9).
func (svc *Service) destroy(k roomKey) {
	svc.mu.Lock()
	note := svc.destroying[k]
	delete(svc.destroying, k)
	svc.mu.Unlock()
	if note == nil {
		note = stanza.New("destroy", nsMUCUser)
	}
	r := svc.room(k, false)
	if r == nil {
		return
	}
	r.mu.Lock()
	r.closed = true
	occs := make([]kicked, 0, len(r.occupants))
	for u, o := range r.occupants {
		kk := kicked{user: u}
		for _, m := range o.members {
			kk.sessions = append(kk.sessions, m.s)
		}
		occs = append(occs, kk)
	}
	r.occupants = map[int64]*occupant{}
	r.members = map[*xmpp.Session]*member{}
	r.snap = nil
	r.mu.Unlock()
	svc.drop(r)
	for _, o := range occs {
		it := xmpp.NewItem(svc.unavailable(r.jid, o.user, "", mucItem("none", "none", ""), note))
		for _, s := range o.sessions {
			s.Enqueue(it)
			svc.untrack(s, r)
		}
	}
}

// subject builds the room's subject message: the dialog's name, from the
// room (or from the occupant who changed it).
func (svc *Service) subject(r *room, d *history.Dialog, by string) *stanza.Element {
	from := r.jid
	if by != "" {
		from += "/" + by
	}
	return stanza.New("message", stanza.NSClient, "type", "groupchat", "from", from, "id", svc.ids.next()).
		Append(stanza.New("subject", stanza.NSClient).AppendText(d.Name))
}
