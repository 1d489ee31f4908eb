// Package throttle spaces out attempts after failures, per key (a user, an
// address): after n recent failures of a key its next attempt waits
// base·2^(n-1), at most Max. Failures are forgotten after a quiet minute,
// and a success forgets the key's at once.
//
// Callers use it two ways: Fail's answer is how long to delay the failure's
// answer (a client that retries only once answered is slowed down), and
// Admit refuses attempts made before that wait is over (clients making
// attempts in parallel are too).
package throttle

import (
	"sync"
	"time"
)

const (
	// Max is the longest wait.
	Max = 5 * time.Second
	// Quiet is how long a key's failures are remembered without a new one.
	Quiet = time.Minute
	// maxKeys bounds the keys tracked; past it, quiet keys are forgotten
	// and, if none is, new ones are not tracked, so memory stays bounded.
	maxKeys = 1 << 17
)

// Throttle counts failures per key. It is safe for concurrent use.
type Throttle[K comparable] struct {
	base time.Duration
	mu   sync.Mutex
	keys map[K]*failures
}

type failures struct {
	n    int
	last time.Time // the last failure, or the last attempt Admit let through since
}

// New returns a Throttle whose first wait is base.
func New[K comparable](base time.Duration) *Throttle[K] {
	return &Throttle[K]{base: base, keys: map[K]*failures{}}
}

// Delay is the wait after n failures.
func (t *Throttle[K]) Delay(n int) time.Duration {
	d := t.base << min(n-1, 16)
	if d <= 0 || d > Max {
		d = Max
	}
	return d
}

// Admit returns how long until k's next attempt may be checked; 0 lets it
// be checked now. An attempt let through while k has failures holds k's
// turn until the wait passes again, so concurrent attempts are not all
// checked at once.
func (t *Throttle[K]) Admit(k K, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.keys[k]
	if f == nil || now.Sub(f.last) >= Quiet {
		return 0
	}
	if wait := f.last.Add(t.Delay(f.n)).Sub(now); wait > 0 {
		return wait
	}
	f.last = now
	return 0
}

// Fail records a failure of k and returns the wait it sets.
func (t *Throttle[K]) Fail(k K, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.keys[k]
	if f == nil {
		if len(t.keys) >= maxKeys {
			t.sweep(now)
			if len(t.keys) >= maxKeys {
				return t.Delay(1)
			}
		}
		f = &failures{}
		t.keys[k] = f
	}
	if now.Sub(f.last) >= Quiet {
		f.n = 0
	}
	f.n++
	f.last = now
	return t.Delay(f.n)
}

// Seconds is a wait in whole seconds, rounded up, as told to clients (a
// Retry-After, a SASL failure's text): 0 would invite an immediate retry.
func Seconds(wait time.Duration) int { return int((wait + time.Second - 1) / time.Second) }

// Succeed forgets k's failures.
func (t *Throttle[K]) Succeed(k K) {
	t.mu.Lock()
	delete(t.keys, k)
	t.mu.Unlock()
}

// Len is the number of keys tracked.
func (t *Throttle[K]) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.keys)
}

// sweep forgets quiet keys. The caller holds t.mu.
func (t *Throttle[K]) sweep(now time.Time) {
	for k, f := range t.keys {
		if now.Sub(f.last) >= Quiet {
			delete(t.keys, k)
		}
	}
}
