package history

import (
	"errors"
	"sync"
)

// pairCache remembers the private dialog of each pair of users that
// recently exchanged a message without naming the dialog, so that recording
// such a message does not look the dialog up each time.
//
// Only what never changes in a private dialog is relied on: its id, type,
// application and occupants. The dialog may still be deleted, here or by
// another chatd sharing the store; the store then refuses a message to it
// (ErrNotFound) and Record forgets the pair and looks again. Deletes through
// this Service also forget the pair at once.
type pairCache struct {
	mu sync.Mutex
	m  map[pairKey]*Dialog
}

type pairKey struct{ app, lo, hi int64 }

// maxPairs bounds the cache; past it an arbitrary entry makes room.
const maxPairs = 1 << 16

func keyOf(app, a, b int64) pairKey { return pairKey{app, min(a, b), max(a, b)} }

// get returns a copy of the cached dialog of the pair, or nil.
func (c *pairCache) get(app, a, b int64) *Dialog {
	c.mu.Lock()
	d := c.m[keyOf(app, a, b)]
	c.mu.Unlock()
	if d == nil {
		return nil
	}
	cp := *d
	return &cp
}

func (c *pairCache) put(d *Dialog) {
	if d.Type != Private || len(d.Occupants) != 2 {
		return
	}
	cp := *d
	cp.Occupants = []int64{d.Occupants[0], d.Occupants[1]}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[pairKey]*Dialog)
	}
	if len(c.m) >= maxPairs {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[keyOf(d.AppID, d.Occupants[0], d.Occupants[1])] = &cp
}

// forget drops the dialog's entry, if it is the one cached for its pair.
func (c *pairCache) forget(d *Dialog) {
	if d.Type != Private || len(d.Occupants) != 2 {
		return
	}
	k := keyOf(d.AppID, d.Occupants[0], d.Occupants[1])
	c.mu.Lock()
	if old := c.m[k]; old != nil && old.ID == d.ID {
		delete(c.m, k)
	}
	c.mu.Unlock()
}

// staleDialog reports whether recording failed because the dialog taken
// from the cache no longer exists.
func staleDialog(cached bool, err error) bool { return cached && errors.Is(err, ErrNotFound) }
