package xmpp

import (
	"slices"
	"sync"
)

// router is the registry of bound sessions by user. It only answers "which
// sessions does this user have"; the delivery rules built on it are in
// deliver.go. Lookups return the registry's own slice, which is never
// modified in place (copy on write), so callers iterate it without a lock and
// enqueue to the sessions after the lock is released.
type router struct {
	shards [64]routerShard
}

type routerShard struct {
	mu    sync.RWMutex
	users map[UserRef][]*Session
}

func newRouter() *router {
	r := &router{}
	for i := range r.shards {
		r.shards[i].users = make(map[UserRef][]*Session)
	}
	return r
}

func (r *router) shard(u UserRef) *routerShard {
	return &r.shards[u.hash()%uint64(len(r.shards))]
}

// sessions returns the bound sessions of a user; the slice must not be
// modified.
func (r *router) sessions(u UserRef) []*Session {
	sh := r.shard(u)
	sh.mu.RLock()
	ss := sh.users[u]
	sh.mu.RUnlock()
	return ss
}

// session returns the user's session bound to resource, or nil.
func (r *router) session(u UserRef, resource string) *Session {
	for _, s := range r.sessions(u) {
		if s.jid.Resource == resource {
			return s
		}
	}
	return nil
}

// bind registers s under its resource. When the resource is taken, policy
// decides: "replace" returns the old session (which the caller closes),
// "reject" fails, and "rename" is handled by the caller before binding.
// bind adds s under its resource. A session bound to that resource is
// replaced and returned when replace is set, and otherwise makes bind fail
// with errResourceInUse; a user with max sessions (max > 0), not counting
// the one replaced, cannot bind another (errTooManyResources).
func (r *router) bind(s *Session, replace bool, max int) (old *Session, err error) {
	sh := r.shard(s.user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	cur := sh.users[s.user]
	next := make([]*Session, 0, len(cur)+1)
	for _, x := range cur {
		if x.jid.Resource == s.jid.Resource {
			if !replace {
				return nil, errResourceInUse
			}
			old = x
			continue
		}
		next = append(next, x)
	}
	if max > 0 && len(next) >= max {
		return nil, errTooManyResources
	}
	sh.users[s.user] = append(next, s)
	return old, nil
}

// unbind removes s; it reports whether s was bound.
func (r *router) unbind(s *Session) bool {
	sh := r.shard(s.user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	cur := sh.users[s.user]
	i := slices.Index(cur, s)
	if i < 0 {
		return false
	}
	if len(cur) == 1 {
		delete(sh.users, s.user)
		return true
	}
	next := make([]*Session, 0, len(cur)-1)
	next = append(next, cur[:i]...)
	sh.users[s.user] = append(next, cur[i+1:]...)
	return true
}

// count returns the number of bound sessions.
func (r *router) count() int {
	n := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		for _, ss := range sh.users {
			n += len(ss)
		}
		sh.mu.RUnlock()
	}
	return n
}

// each calls fn for every bound session (outside the shard locks).
func (r *router) each(fn func(*Session)) {
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		var all []*Session
		for _, ss := range sh.users {
			all = append(all, ss...)
		}
		sh.mu.RUnlock()
		for _, s := range all {
			fn(s)
		}
	}
}
