package muc

import (
	"maps"
	"slices"
	"sync"

	"chatd/history"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

// room is a live room: the sessions joined to a group dialog's room. It
// exists while someone is in it (or is joining it).
type room struct {
	key roomKey
	jid string // the room's bare JID

	mu        sync.Mutex
	dialog    *history.Dialog // latest known state; nil until a joiner loads it
	occupants map[int64]*occupant
	members   map[*xmpp.Session]*member
	closed    bool      // no longer in the registry: whoever holds it retries
	snap      *snapshot // fan-out targets; nil when membership changed
}

// occupant is one user in the room, under the nick that is its user id,
// whatever number of its sessions joined.
type occupant struct {
	user    int64
	members []*member
	extras  []*stanza.Element // <show/> and <status/> of its latest presence
	item    *xmpp.Item        // its available presence as the others see it; nil until needed
}

// member is one joined session.
type member struct {
	s   *xmpp.Session
	occ *occupant
	// sdk: the session joined with an id ending in ":join", as the
	// QuickBlox SDK does; it never gets subject messages.
	sdk bool
}

// snapshot is an immutable copy of a room's joined sessions, shared by the
// messages fanned out until the membership changes.
type snapshot struct {
	sessions []*xmpp.Session
	once     sync.Once
	set      map[*xmpp.Session]struct{}
}

// has reports whether s is in the snapshot (the set is built on first use:
// only rooms whose dialog does not require joining need it).
func (sn *snapshot) has(s *xmpp.Session) bool {
	if sn == nil {
		return false
	}
	sn.once.Do(func() {
		sn.set = make(map[*xmpp.Session]struct{}, len(sn.sessions))
		for _, x := range sn.sessions {
			sn.set[x] = struct{}{}
		}
	})
	_, ok := sn.set[s]
	return ok
}

func newRoom(k roomKey, jid string) *room {
	return &room{key: k, jid: jid, occupants: map[int64]*occupant{}, members: map[*xmpp.Session]*member{}}
}

// targets returns the current fan-out snapshot and dialog.
func (r *room) targets() (*snapshot, *history.Dialog) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.snap == nil {
		ss := make([]*xmpp.Session, 0, len(r.members))
		for s := range r.members {
			ss = append(ss, s)
		}
		r.snap = &snapshot{sessions: ss}
	}
	return r.snap, r.dialog
}

// state returns the room's dialog and whether s joined it.
func (r *room) state(s *xmpp.Session) (*history.Dialog, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, joined := r.members[s]
	return r.dialog, joined
}

// occupantIDs returns the users in the room, in order.
func (r *room) occupantIDs() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.occupants))
}

// closeIfEmpty closes a room nobody is in; it reports whether it did.
func (r *room) closeIfEmpty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.members) > 0 || r.closed {
		return false
	}
	r.closed = true
	return true
}

// sessionsOf returns a copy of a user's joined sessions.
func (r *room) sessionsOf(user int64) []*xmpp.Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.occupants[user]
	if o == nil {
		return nil
	}
	out := make([]*xmpp.Session, len(o.members))
	for i, m := range o.members {
		out[i] = m.s
	}
	return out
}

// others returns the joined sessions of every occupant but one; r.mu is
// held.
func (r *room) othersLocked(except *occupant) []*xmpp.Session {
	out := make([]*xmpp.Session, 0, len(r.members))
	for s, m := range r.members {
		if m.occ != except {
			out = append(out, s)
		}
	}
	return out
}

// departure is what removing a session from a room changed.
type departure struct {
	occ         *occupant
	affiliation string
	last        bool            // the user's last session left: the user left
	others      []*xmpp.Session // whom to tell (nil above the broadcast bound)
	empty       bool            // the room closed
	dialog      *history.Dialog
}

// remove takes a session out of the room.
func (r *room) remove(s *xmpp.Session, maxBroadcast int) departure {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.members[s]
	if m == nil {
		return departure{dialog: r.dialog}
	}
	delete(r.members, s)
	r.snap = nil
	o := m.occ
	o.members = slices.DeleteFunc(o.members, func(x *member) bool { return x == m })
	dep := departure{occ: o, affiliation: affiliation(r.dialog, o.user), dialog: r.dialog}
	if len(o.members) == 0 {
		dep.last = true
		quiet := len(r.occupants) > maxBroadcast
		delete(r.occupants, o.user)
		if !quiet {
			dep.others = r.othersLocked(o)
		}
	}
	if len(r.members) == 0 {
		r.closed = true
		dep.empty = true
	}
	return dep
}

// affiliation is a user's XEP-0045 affiliation, read from the dialog: the
// owner is its creator, occupants of a group are members, and everyone
// else has none (a public group has no member list).
func affiliation(d *history.Dialog, user int64) string {
	if d == nil {
		return "none"
	}
	if d.Type == history.Group && !d.HasOccupant(user) {
		return "none"
	}
	switch {
	case user == d.OwnerID:
		return "owner"
	case slices.Contains(d.AdminIDs, user):
		return "admin"
	case d.Type == history.Group:
		return "member"
	}
	return "none"
}

// role is the role that goes with an affiliation: owners and admins
// moderate, everyone else participates.
func role(aff string) string {
	if aff == "owner" || aff == "admin" {
		return "moderator"
	}
	return "participant"
}

// admitted reports whether a user may be in a dialog's room: occupants of a
// group, anybody of the application in a public group.
func admitted(d *history.Dialog, user int64) bool {
	return d.Type == history.PublicGroup || (d.Type == history.Group && d.HasOccupant(user))
}

// requiresJoin reports whether only joined sessions send and receive.
func requiresJoin(d *history.Dialog) bool { return d.Type == history.PublicGroup || d.JoinRequired }

// mucItem builds <item affiliation role jid/>.
func mucItem(aff, rl, jid string) *stanza.Element {
	it := stanza.New("item", nsMUCUser, "affiliation", aff, "role", rl)
	if jid != "" {
		it.SetAttr("jid", jid)
	}
	return it
}

func status(code string) *stanza.Element { return stanza.New("status", nsMUCUser, "code", code) }
