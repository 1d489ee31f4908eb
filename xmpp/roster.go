package xmpp

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"

	"chatd/account"
	"chatd/xmpp/stanza"
)

// rosterLocks serialise read-modify-write changes of rosters. A change that
// touches two rosters (a subscription state change updates both ends) locks
// both stripes in index order.
type rosterLocks struct {
	stripes [256]sync.Mutex
}

func (l *rosterLocks) index(u UserRef) int {
	return int(u.hash() % uint64(len(l.stripes)))
}

func (l *rosterLocks) lock(users ...UserRef) func() {
	idx := make([]int, 0, len(users))
	for _, u := range users {
		idx = append(idx, l.index(u))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		l.stripes[i].Lock()
	}
	return func() {
		for i := len(idx) - 1; i >= 0; i-- {
			l.stripes[idx[i]].Unlock()
		}
	}
}

// itemElement renders a roster item for a roster result or push.
func itemElement(it RosterItem) *stanza.Element {
	e := stanza.New("item", nsRoster, "jid", it.JID, "subscription", it.Subscription)
	if it.Name != "" {
		e.SetAttr("name", it.Name)
	}
	if it.Ask {
		e.SetAttr("ask", "subscribe")
	}
	for _, g := range it.Groups {
		e.Append(stanza.New("group", nsRoster).AppendText(g))
	}
	return e
}

// rosterIQ answers roster get and set (RFC 6121 §2) with versioning
// (XEP-0237): a get whose ver is current is answered with an empty result.
func (srv *Server) rosterIQ(ctx context.Context, s *Session, iq, q *stanza.Element) error {
	switch iq.Attr("type") {
	case "get":
		items, ver, err := srv.store.Roster(ctx, s.user)
		if err != nil {
			return err
		}
		verStr := strconv.FormatInt(ver, 10)
		if q.HasAttr("ver") && q.Attr("ver") == verStr {
			s.send(result(iq, s.bare.String(), nil))
			return nil
		}
		out := stanza.New("query", nsRoster, "ver", verStr)
		for _, it := range items {
			if it.Listed {
				out.Append(itemElement(it))
			}
		}
		s.send(result(iq, s.bare.String(), out))
		return nil
	case "set":
		items := q.Elements()
		if len(items) != 1 || items[0].Name != "item" {
			return stanzaErr(errModify, "bad-request", "a roster set carries exactly one item")
		}
		if err := srv.rosterSet(ctx, s, items[0]); err != nil {
			return err
		}
		s.send(result(iq, s.bare.String(), nil))
		return nil
	}
	return errBadRequest
}

// contact parses a roster item's JID: a bare JID of a user of the same
// application, other than the owner.
func (srv *Server) contact(owner UserRef, raw string) (UserRef, JID, error) {
	j, err := ParseJID(raw)
	if err != nil || raw == "" {
		return UserRef{}, JID{}, errJIDMalformed
	}
	j = j.Bare()
	u, ok := srv.local(j)
	if !ok || u.App != owner.App {
		return UserRef{}, JID{}, stanzaErr(errModify, "not-acceptable", "contacts must be users of this application")
	}
	if u == owner {
		return UserRef{}, JID{}, stanzaErr(errModify, "not-acceptable", "a roster cannot hold its owner")
	}
	return u, j, nil
}

// contactExists reports whether a contact has an account. Roster items
// and subscriptions are written only for contacts that do: rows for user
// ids nobody has could never be read, and a client could write them
// without end. Items of a contact whose account was deleted can still be
// removed.
func (srv *Server) contactExists(ctx context.Context, cu UserRef) (bool, error) {
	_, err := srv.accounts.User(ctx, cu.App, cu.User)
	if errors.Is(err, account.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// maxRosterGroups bounds the groups of one roster item: privacy lists
// match stanzas against them (XEP-0016 group items), and names are up to
// 1 KiB each.
const maxRosterGroups = 100

func (srv *Server) rosterSet(ctx context.Context, s *Session, item *stanza.Element) error {
	cu, cj, err := srv.contact(s.user, item.Attr("jid"))
	if err != nil {
		return err
	}
	if item.Attr("subscription") == "remove" {
		return srv.rosterRemove(ctx, s.user, cu, cj)
	}
	if ok, err := srv.contactExists(ctx, cu); err != nil {
		return err
	} else if !ok {
		return stanzaErr(errCancel, "item-not-found", "no such user")
	}
	var groups []string
	seen := map[string]bool{}
	for _, g := range item.Elements() {
		if g.Name != "group" {
			continue
		}
		name := g.Content()
		if name == "" || len(name) > 1024 {
			return stanzaErr(errModify, "not-acceptable", "bad group name")
		}
		if seen[name] {
			return stanzaErr(errModify, "bad-request", "duplicate group")
		}
		if len(groups) == maxRosterGroups {
			return stanzaErr(errModify, "not-acceptable", "at most "+strconv.Itoa(maxRosterGroups)+" groups per contact")
		}
		seen[name] = true
		groups = append(groups, name)
	}
	name := item.Attr("name")
	if len(name) > 1024 {
		return stanzaErr(errModify, "not-acceptable", "name too long")
	}
	unlock := srv.rosterLocks.lock(s.user)
	defer unlock()
	cur, err := srv.rosterItem(ctx, s.user, cj.String())
	if err != nil {
		return err
	}
	cur.Name, cur.Groups, cur.Listed = name, groups, true
	return srv.putItem(ctx, s.user, *cur)
}

// rosterItem returns the owner's item for jid, or a new item with no
// subscription.
func (srv *Server) rosterItem(ctx context.Context, owner UserRef, jid string) (*RosterItem, error) {
	it, err := srv.store.RosterItem(ctx, owner, jid)
	if errors.Is(err, account.ErrNotFound) {
		return &RosterItem{JID: jid, Subscription: SubNone}, nil
	}
	return it, err
}

// putItem stores an item and pushes it to the owner's sessions when it is
// listed.
func (srv *Server) putItem(ctx context.Context, owner UserRef, it RosterItem) error {
	ver, err := srv.store.PutRosterItem(ctx, owner, it)
	if err != nil {
		return err
	}
	if it.Listed {
		srv.push(owner, itemElement(it), ver)
	}
	return nil
}

// push sends a roster push to every session of the owner.
func (srv *Server) push(owner UserRef, item *stanza.Element, ver int64) {
	q := stanza.New("query", nsRoster, "ver", strconv.FormatInt(ver, 10)).Append(item)
	iq := stanza.New("iq", stanza.NSClient, "type", "set", "id", "push-"+newStreamID()[:12])
	iq.Append(q)
	var it *Item
	for _, r := range srv.router.sessions(owner) {
		if it == nil {
			it = NewItem(iq)
		}
		r.enqueue(it)
	}
}

// rosterRemove removes a contact: subscriptions both ways are cancelled
// first (RFC 6121 §2.5.2).
func (srv *Server) rosterRemove(ctx context.Context, owner, cu UserRef, cj JID) error {
	unlock := srv.rosterLocks.lock(owner, cu)
	defer unlock()
	it, err := srv.store.RosterItem(ctx, owner, cj.String())
	if errors.Is(err, account.ErrNotFound) {
		return errItemNotFound
	} else if err != nil {
		return err
	}
	ownerJID := UserJID(owner, srv.cfg.Domain)
	if it.Subscription == SubTo || it.Subscription == SubBoth || it.Ask {
		if err := srv.inboundUnsubscribe(ctx, cu, ownerJID); err != nil {
			return err
		}
	}
	if it.Subscription == SubFrom || it.Subscription == SubBoth || it.PendingIn {
		srv.sendUnavailableTo(owner, cu)
		if err := srv.inboundUnsubscribed(ctx, cu, ownerJID); err != nil {
			return err
		}
	}
	ver, err := srv.store.DeleteRosterItem(ctx, owner, cj.String())
	if err != nil {
		return err
	}
	if it.Listed {
		srv.push(owner, stanza.New("item", nsRoster, "jid", cj.String(), "subscription", "remove"), ver)
	}
	return nil
}
