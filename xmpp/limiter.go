package xmpp

import (
	"context"
	"time"

	"chatd/internal/throttle"
)

// authLimiter slows down password guessing (internal/throttle does the
// counting). Each failure is answered only after a wait that doubles with
// the recent failures of the address or of the user, whichever has more,
// so a client retrying once answered is slowed down; and a user's attempt
// made before its wait is over is refused unchecked (admit), so clients
// guessing in parallel, from any number of connections or addresses, are
// too. A success clears the user's count, never the address's, so one
// valid account cannot be used to reset an attack on others.
type authLimiter struct {
	byIP   *throttle.Throttle[string]
	byUser *throttle.Throttle[UserRef]
}

func newAuthLimiter(base time.Duration) *authLimiter {
	return &authLimiter{byIP: throttle.New[string](base), byUser: throttle.New[UserRef](base)}
}

// admit returns how long until user's next attempt may be checked (0: now).
func (l *authLimiter) admit(user UserRef) time.Duration { return l.byUser.Admit(user, time.Now()) }

// allow records an outcome and, after a failure, waits the penalty. It
// returns ctx's error if ctx ends first.
func (l *authLimiter) allow(ctx context.Context, ip string, user UserRef, ok bool) error {
	if ok {
		l.byUser.Succeed(user)
		return nil
	}
	now := time.Now()
	delay := l.byIP.Fail(ip, now)
	if user != (UserRef{}) {
		delay = max(delay, l.byUser.Fail(user, now))
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
