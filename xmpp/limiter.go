package xmpp

import (
	"context"
	"sync"
	"time"
)

// authLimiter slows down repeated authentication failures from one address
// and for one user: each failure waits base·2^(n-1), at most maxAuthDelay,
// where n counts the recent failures of the address or the user, whichever
// is more. Counts are forgotten after a quiet minute; a success clears the
// user's count (never the address's, so one valid account cannot be used to
// reset an attack on others).
type authLimiter struct {
	mu     sync.Mutex
	byIP   map[string]*failures
	byUser map[UserRef]*failures
}

type failures struct {
	n    int
	last time.Time
}

const (
	maxAuthDelay     = 5 * time.Second
	authFailureQuiet = time.Minute
)

func newAuthLimiter() *authLimiter {
	return &authLimiter{byIP: map[string]*failures{}, byUser: map[UserRef]*failures{}}
}

// allow records an outcome and, after a failure, waits the penalty. It
// returns ctx's error if ctx ends first.
func (l *authLimiter) allow(ctx context.Context, ip string, user UserRef, ok bool, base time.Duration) error {
	now := time.Now()
	l.mu.Lock()
	if ok {
		delete(l.byUser, user)
		l.mu.Unlock()
		return nil
	}
	bump := func(f *failures) int {
		if now.Sub(f.last) > authFailureQuiet {
			f.n = 0
		}
		f.n++
		f.last = now
		return f.n
	}
	fi := l.byIP[ip]
	if fi == nil {
		fi = &failures{}
		l.byIP[ip] = fi
	}
	n := bump(fi)
	if user != (UserRef{}) {
		fu := l.byUser[user]
		if fu == nil {
			fu = &failures{}
			l.byUser[user] = fu
		}
		n = max(n, bump(fu))
	}
	if len(l.byIP)+len(l.byUser) > 10000 {
		l.sweep(now)
	}
	l.mu.Unlock()
	delay := base << min(n-1, 16)
	if delay > maxAuthDelay || delay <= 0 {
		delay = maxAuthDelay
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sweep drops quiet entries; l.mu is held.
func (l *authLimiter) sweep(now time.Time) {
	for k, f := range l.byIP {
		if now.Sub(f.last) > authFailureQuiet {
			delete(l.byIP, k)
		}
	}
	for k, f := range l.byUser {
		if now.Sub(f.last) > authFailureQuiet {
			delete(l.byUser, k)
		}
	}
}
