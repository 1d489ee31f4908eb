package xmpp

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync/atomic"

	"chatd/account"
	"chatd/xmpp/stanza"
)

// Privacy lists (XEP-0016) and the blocking command (XEP-0191) over the same
// stored lists. A session's effective list is its active list, or else the
// user's default list; both are loaded into the session (at bind, and again
// whenever the user changes a list), so checks in the delivery path read
// memory only, except for group and subscription items, which consult the
// roster.
//
// The blocking command edits the default list: blocking a JID puts a
// deny-everything item for it at the top of the default list (creating a
// list named "blocklist" and making it the default when the user has none);
// the block list is the set of such items.
//
// QuickBlox extension: an item whose value is muc.<domain>/<user_id> matches
// that user's occupant JID in every room (<room>@muc.<domain>/<user_id>), so
// blocking a user silences them in group chats too. Denied messages and IQs
// bounce to their sender with service-unavailable (code 503), in either
// direction (the QuickBlox SDK expects the error on both sides of a mutual
// block); denied presence is dropped.

const (
	nsPrivacy       = "jabber:iq:privacy"
	nsBlocking      = "urn:xmpp:blocking"
	nsBlockingError = "urn:xmpp:blocking:errors"
	blocklistName   = "blocklist"
)

// Stanza kinds of privacy items.
const (
	kindMessage     = "message"
	kindIQ          = "iq"
	kindPresenceIn  = "presence-in"
	kindPresenceOut = "presence-out"
)

// privacyState is what a session knows of its user's lists.
type privacyState struct {
	active *PrivacyList // chosen by this session; nil: the default applies
	def    *PrivacyList // the user's default list; nil: none
}

func (p *privacyState) effective() *PrivacyList {
	if p == nil {
		return nil
	}
	if p.active != nil {
		return p.active
	}
	return p.def
}

// sessionPrivacy holds a session's privacy state.
type sessionPrivacy struct {
	state atomic.Pointer[privacyState]
}

// loadPrivacy reads the user's default list into a session at bind.
func (srv *Server) loadPrivacy(ctx context.Context, s *Session) error {
	lists, def, err := srv.store.PrivacyLists(ctx, s.user)
	if err != nil {
		return err
	}
	st := &privacyState{}
	for i := range lists {
		if lists[i].Name == def {
			st.def = &lists[i]
		}
	}
	s.privacy.state.Store(st)
	return nil
}

// refreshPrivacy reloads the lists of every session of a user after a change:
// the default list, and an active list that was edited or removed.
func (srv *Server) refreshPrivacy(ctx context.Context, u UserRef) error {
	lists, def, err := srv.store.PrivacyLists(ctx, u)
	if err != nil {
		return err
	}
	byName := map[string]*PrivacyList{}
	for i := range lists {
		byName[lists[i].Name] = &lists[i]
	}
	for _, r := range srv.router.sessions(u) {
		old := r.privacy.state.Load()
		st := &privacyState{def: byName[def]}
		if old != nil && old.active != nil {
			st.active = byName[old.active.Name]
		}
		r.privacy.state.Store(st)
	}
	return nil
}

// jidMatches applies XEP-0016's JID matching, with the QuickBlox room
// extension.
func (srv *Server) jidMatches(value string, j JID) bool {
	v, err := ParseJID(value)
	if err != nil {
		return false
	}
	switch {
	case v.Local != "" && v.Resource != "":
		return v == j
	case v.Local != "":
		return v.Local == j.Local && v.Domain == j.Domain
	case v.Resource != "":
		if v.Domain == "muc."+srv.cfg.Domain {
			return j.Domain == v.Domain && j.Resource == v.Resource
		}
		return j.Local == "" && j.Domain == v.Domain && j.Resource == v.Resource
	}
	return j.Domain == v.Domain
}

// denies evaluates a list for a stanza of kind exchanged with peer; owner is
// the list's user (for group and subscription items).
func (srv *Server) denies(ctx context.Context, list *PrivacyList, owner UserRef, peer JID, kind string) bool {
	if list == nil || len(list.Items) == 0 {
		return false
	}
	var roster *RosterItem
	rosterLoaded := false
	for _, it := range list.Items {
		if len(it.Kinds) > 0 && !slices.Contains(it.Kinds, kind) {
			continue
		}
		match := false
		switch it.Type {
		case "":
			match = true
		case "jid":
			match = srv.jidMatches(it.Value, peer)
		case "group", "subscription":
			if peer.Domain != srv.cfg.Domain {
				break // occupants of rooms and other services are in no roster
			}
			if !rosterLoaded {
				rosterLoaded = true
				roster, _ = srv.store.RosterItem(ctx, owner, peer.Bare().String())
			}
			if it.Type == "group" {
				match = roster != nil && slices.Contains(roster.Groups, it.Value)
			} else {
				sub := SubNone
				if roster != nil {
					sub = roster.Subscription
				}
				match = sub == it.Value
			}
		}
		if match {
			return !it.Allow
		}
	}
	return false
}

// blockedOut reports whether a session's own list forbids sending.
func (srv *Server) blockedOut(ctx context.Context, s *Session, to JID, kind string) bool {
	return srv.denies(ctx, s.privacy.state.Load().effective(), s.user, to, kind)
}

// blockedIn reports whether a recipient session's list forbids receiving.
func (srv *Server) blockedIn(ctx context.Context, r *Session, from JID, kind string) bool {
	return srv.denies(ctx, r.privacy.state.Load().effective(), r.user, from, kind)
}

// blockedInOffline checks the default list of a user with no session.
func (srv *Server) blockedInOffline(ctx context.Context, u UserRef, from JID, kind string) bool {
	lists, def, err := srv.store.PrivacyLists(ctx, u)
	if err != nil || def == "" {
		return false
	}
	for i := range lists {
		if lists[i].Name == def {
			return srv.denies(ctx, &lists[i], u, from, kind)
		}
	}
	return false
}

// Accepts reports whether the session's privacy list lets a stanza of kind
// ("message", "iq", "presence-in") from the JID through. The MUC service
// checks it for each occupant it fans out to.
func (s *Session) Accepts(from JID, kind string) bool {
	st := s.privacy.state.Load()
	if st.effective() == nil {
		return true
	}
	return !s.srv.denies(context.Background(), st.effective(), s.user, from, kind)
}

// blockedError is what a sender gets for a message or IQ a privacy list
// refused: service-unavailable (503, what the QuickBlox SDK expects) with
// XEP-0191's <blocked/> when the sender's own list refused it.
func blockedError(outbound bool) *StanzaError {
	if outbound {
		e := stanzaErr(errCancel, "service-unavailable", "you block the recipient")
		e.Extra = stanza.New("blocked", nsBlockingError)
		return e
	}
	return stanzaErr(errCancel, "service-unavailable", "blocked by the recipient's privacy list")
}

// privacyIQ answers jabber:iq:privacy.
// Bounds of what one user keeps in privacy lists (XEP-0016) and its
// blocklist (XEP-0191, the default list): every stanza to or from the user
// is checked against its lists, and a client could otherwise store them
// without end. Past them a set is refused with <policy-violation/>.
const (
	maxPrivacyLists = 50
	maxPrivacyItems = 10_000
)

var (
	errTooManyLists = stanzaErr(errModify, "policy-violation", "at most "+strconv.Itoa(maxPrivacyLists)+" privacy lists")
	errTooManyItems = stanzaErr(errModify, "policy-violation",
		"at most "+strconv.Itoa(maxPrivacyItems)+" items in a privacy list or the blocklist")
)

func (srv *Server) privacyIQ(ctx context.Context, s *Session, iq *stanza.Element) error {
	q := iq.Child("query", nsPrivacy)
	if q == nil {
		return stanzaErr(errModify, "bad-request", "jabber:iq:privacy requests are a <query/>")
	}
	children := q.Elements()
	if iq.Attr("type") == "get" {
		lists, def, err := srv.store.PrivacyLists(ctx, s.user)
		if err != nil {
			return err
		}
		out := stanza.New("query", nsPrivacy)
		switch len(children) {
		case 0:
			if st := s.privacy.state.Load(); st != nil && st.active != nil {
				out.Append(stanza.New("active", nsPrivacy, "name", st.active.Name))
			}
			if def != "" {
				out.Append(stanza.New("default", nsPrivacy, "name", def))
			}
			for _, l := range lists {
				out.Append(stanza.New("list", nsPrivacy, "name", l.Name))
			}
		case 1:
			name := children[0].Attr("name")
			i := slices.IndexFunc(lists, func(l PrivacyList) bool { return l.Name == name })
			if children[0].Name != "list" || i < 0 {
				return errItemNotFound
			}
			out.Append(listElement(lists[i]))
		default:
			return stanzaErr(errModify, "bad-request", "ask for one list at a time")
		}
		s.send(result(iq, s.bare.String(), out))
		return nil
	}
	if len(children) != 1 {
		return stanzaErr(errModify, "bad-request", "set one thing at a time")
	}
	c := children[0]
	name := c.Attr("name")
	before := srv.effectiveLists(s.user)
	switch c.Name {
	case "active":
		st := *s.privacy.state.Load()
		st.active = nil
		if name != "" {
			lists, _, err := srv.store.PrivacyLists(ctx, s.user)
			if err != nil {
				return err
			}
			i := slices.IndexFunc(lists, func(l PrivacyList) bool { return l.Name == name })
			if i < 0 {
				return errItemNotFound
			}
			st.active = &lists[i]
		}
		s.privacy.state.Store(&st)
	case "default":
		if err := srv.store.SetDefaultPrivacyList(ctx, s.user, name); err != nil {
			if errors.Is(err, account.ErrNotFound) {
				return errItemNotFound
			}
			return err
		}
		if err := srv.refreshPrivacy(ctx, s.user); err != nil {
			return err
		}
	case "list":
		if name == "" {
			return stanzaErr(errModify, "bad-request", "a list needs a name")
		}
		items := c.Elements()
		if len(items) == 0 {
			if err := srv.store.DeletePrivacyList(ctx, s.user, name); err != nil {
				if errors.Is(err, account.ErrNotFound) {
					return errItemNotFound
				}
				return err
			}
		} else {
			list, err := parseList(name, items)
			if err != nil {
				return err
			}
			lists, _, err := srv.store.PrivacyLists(ctx, s.user)
			if err != nil {
				return err
			}
			if len(lists) >= maxPrivacyLists && !slices.ContainsFunc(lists, func(l PrivacyList) bool { return l.Name == name }) {
				return errTooManyLists
			}
			if err := srv.store.PutPrivacyList(ctx, s.user, list); err != nil {
				return err
			}
		}
		if err := srv.refreshPrivacy(ctx, s.user); err != nil {
			return err
		}
		srv.pushAll(s.user, stanza.New("query", nsPrivacy).Append(stanza.New("list", nsPrivacy, "name", name)))
	default:
		return errBadRequest
	}
	s.send(result(iq, s.bare.String(), nil))
	srv.cutOffPresence(ctx, s.user, before)
	return nil
}

// effectiveLists returns the privacy list in force at each of the user's
// sessions.
func (srv *Server) effectiveLists(u UserRef) map[*Session]*PrivacyList {
	out := map[*Session]*PrivacyList{}
	for _, r := range srv.router.sessions(u) {
		out[r] = r.privacy.state.Load().effective()
	}
	return out
}

// cutOffPresence applies XEP-0016's "Blocking Outbound Presence
// Notifications" after a privacy change: a contact that was sent a
// resource's presence (a subscriber) and that the list now in force there
// refuses outbound presence, as the one before did not, is sent that
// resource's unavailable presence, so it does not see it online forever.
// (The QuickBlox SDK blocks users only this way.)
func (srv *Server) cutOffPresence(ctx context.Context, u UserRef, before map[*Session]*PrivacyList) {
	var subscribers []JID
	loaded := false
	for _, r := range srv.router.sessions(u) {
		now := r.privacy.state.Load().effective()
		if now == nil || !r.available.Load() {
			continue
		}
		if !loaded {
			loaded = true
			items, _, err := srv.store.Roster(ctx, u)
			if err != nil {
				r.log.Warn("reading the roster after a privacy change", "err", err)
				return
			}
			for _, it := range items {
				if it.Subscription != SubFrom && it.Subscription != SubBoth {
					continue
				}
				if j, err := ParseJID(it.JID); err == nil {
					subscribers = append(subscribers, j)
				}
			}
		}
		for _, j := range subscribers {
			cu, ok := srv.local(j)
			if !ok || cu.App != u.App {
				continue
			}
			if srv.denies(ctx, now, u, j, kindPresenceOut) && !srv.denies(ctx, before[r], u, j, kindPresenceOut) {
				srv.toAvailable(cu, NewItem(stanza.New("presence", stanza.NSClient, "type", "unavailable", "from", r.full)))
			}
		}
	}
}

// listElement renders a list.
func listElement(l PrivacyList) *stanza.Element {
	out := stanza.New("list", nsPrivacy, "name", l.Name)
	for _, it := range l.Items {
		item := stanza.New("item", nsPrivacy)
		if it.Type != "" {
			item.SetAttr("type", it.Type).SetAttr("value", it.Value)
		}
		action := "deny"
		if it.Allow {
			action = "allow"
		}
		item.SetAttr("action", action).SetAttr("order", strconv.FormatInt(it.Order, 10))
		for _, k := range it.Kinds {
			item.Append(stanza.New(k, nsPrivacy))
		}
		out.Append(item)
	}
	return out
}

// parseList reads a list from a privacy set, sorted by order.
func parseList(name string, items []*stanza.Element) (PrivacyList, error) {
	bad := func(msg string) error { return stanzaErr(errModify, "bad-request", msg) }
	l := PrivacyList{Name: name}
	if len(items) > maxPrivacyItems {
		return l, errTooManyItems
	}
	orders := map[int64]bool{}
	for _, e := range items {
		if e.Name != "item" {
			return l, bad("unexpected " + e.Name)
		}
		var it PrivacyItem
		switch e.Attr("action") {
		case "allow":
			it.Allow = true
		case "deny":
		default:
			return l, bad("action must be allow or deny")
		}
		order, err := strconv.ParseUint(e.Attr("order"), 10, 32)
		if err != nil || orders[int64(order)] {
			return l, bad("each item needs a distinct order")
		}
		it.Order = int64(order)
		orders[it.Order] = true
		it.Type, it.Value = e.Attr("type"), e.Attr("value")
		switch it.Type {
		case "":
			if it.Value != "" {
				return l, bad("a value needs a type")
			}
		case "jid":
			if _, err := ParseJID(it.Value); err != nil || it.Value == "" {
				return l, stanzaErr(errModify, "jid-malformed", "bad JID "+it.Value)
			}
		case "group":
			if it.Value == "" {
				return l, bad("a group item needs a value")
			}
		case "subscription":
			if !slices.Contains([]string{SubNone, SubTo, SubFrom, SubBoth}, it.Value) {
				return l, bad("bad subscription value")
			}
		default:
			return l, bad("bad item type")
		}
		for _, k := range e.Elements() {
			switch k.Name {
			case kindMessage, kindIQ, kindPresenceIn, kindPresenceOut:
				it.Kinds = append(it.Kinds, k.Name)
			default:
				return l, bad("unknown stanza kind " + k.Name)
			}
		}
		l.Items = append(l.Items, it)
	}
	slices.SortFunc(l.Items, func(a, b PrivacyItem) int { return int(a.Order - b.Order) })
	return l, nil
}

// pushAll sends an IQ set with payload to every session of a user.
func (srv *Server) pushAll(u UserRef, payload *stanza.Element) {
	iq := stanza.New("iq", stanza.NSClient, "type", "set", "id", "push-"+newStreamID()[:12])
	iq.Append(payload)
	it := NewItem(iq)
	for _, r := range srv.router.sessions(u) {
		r.enqueue(it)
	}
}

// blockingIQ answers XEP-0191.
func (srv *Server) blockingIQ(ctx context.Context, s *Session, iq *stanza.Element) error {
	c := iq.FirstElement()
	lists, def, err := srv.store.PrivacyLists(ctx, s.user)
	if err != nil {
		return err
	}
	var list PrivacyList
	if i := slices.IndexFunc(lists, func(l PrivacyList) bool { return l.Name == def }); i >= 0 {
		list = lists[i]
	}
	switch {
	case iq.Attr("type") == "get" && c.Name == "blocklist":
		out := stanza.New("blocklist", nsBlocking)
		for _, j := range blocked(list) {
			out.Append(stanza.New("item", nsBlocking, "jid", j))
		}
		s.send(result(iq, s.bare.String(), out))
		return nil
	case iq.Attr("type") == "set" && (c.Name == "block" || c.Name == "unblock"):
	default:
		return errBadRequest
	}
	var jids []string
	for _, it := range c.Elements() {
		j, err := ParseJID(it.Attr("jid"))
		if it.Name != "item" || err != nil || it.Attr("jid") == "" {
			return stanzaErr(errModify, "jid-malformed", "bad item")
		}
		jids = append(jids, j.String())
	}
	if c.Name == "block" && len(jids) == 0 {
		return stanzaErr(errModify, "bad-request", "nothing to block")
	}
	if list.Name == "" {
		list.Name = blocklistName
	}
	// Sets, not list scans: a block of thousands of JIDs against a
	// blocklist of thousands is linear.
	if c.Name == "block" {
		have := map[string]bool{}
		for _, j := range blocked(list) {
			have[j] = true
		}
		var head []PrivacyItem
		for _, j := range jids {
			if !have[j] {
				have[j] = true
				head = append(head, PrivacyItem{Type: "jid", Value: j})
			}
		}
		list.Items = append(head, list.Items...)
		if len(list.Items) > maxPrivacyItems {
			return errTooManyItems
		}
	} else {
		unblock := map[string]bool{}
		for _, j := range jids {
			unblock[j] = true
		}
		list.Items = slices.DeleteFunc(list.Items, func(it PrivacyItem) bool {
			return blocksAll(it) && (len(jids) == 0 || unblock[it.Value])
		})
	}
	for i := range list.Items {
		list.Items[i].Order = int64(i + 1)
	}
	if err := srv.store.PutPrivacyList(ctx, s.user, list); err != nil {
		return err
	}
	if def != list.Name {
		if err := srv.store.SetDefaultPrivacyList(ctx, s.user, list.Name); err != nil {
			return err
		}
	}
	if err := srv.refreshPrivacy(ctx, s.user); err != nil {
		return err
	}
	s.send(result(iq, s.bare.String(), nil))
	push := stanza.New(c.Name, nsBlocking)
	for _, j := range jids {
		push.Append(stanza.New("item", nsBlocking, "jid", j))
	}
	srv.pushAll(s.user, push)
	if c.Name == "block" {
		// The blocked stop seeing the user (XEP-0191 §3.3).
		for _, j := range jids {
			if pj, err := ParseJID(j); err == nil {
				if u, ok := srv.local(pj); ok && u.App == s.user.App {
					srv.sendUnavailableTo(s.user, u)
				}
			}
		}
	}
	return nil
}

// blocksAll reports a deny-everything JID item (what blocking adds).
func blocksAll(it PrivacyItem) bool { return it.Type == "jid" && !it.Allow && len(it.Kinds) == 0 }

// blocked returns the JIDs a list blocks outright.
func blocked(l PrivacyList) []string {
	var out []string
	seen := map[string]bool{}
	for _, it := range l.Items {
		if blocksAll(it) && !seen[it.Value] {
			seen[it.Value] = true
			out = append(out, it.Value)
		}
	}
	return out
}

// userBlocks reports whether a user's default list refuses a stanza from the
// JID (checked before a message is stored or delivered; per-session active
// lists are applied at delivery).
func (srv *Server) userBlocks(ctx context.Context, u UserRef, from JID, kind string) bool {
	if ss := srv.router.sessions(u); len(ss) > 0 {
		st := ss[0].privacy.state.Load()
		if st == nil {
			return false
		}
		return srv.denies(ctx, st.def, u, from, kind)
	}
	return srv.blockedInOffline(ctx, u, from, kind)
}
