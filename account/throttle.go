package account

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrTooManyAttempts: the login was refused without checking the password,
// as its user failed too recently (see loginThrottle). errors.As with a
// *TooManyAttemptsError gives the wait.
var ErrTooManyAttempts = errors.New("account: too many failed login attempts")

// TooManyAttemptsError says when the next attempt will be checked.
type TooManyAttemptsError struct{ RetryAfter time.Duration }

func (e *TooManyAttemptsError) Error() string {
	return fmt.Sprintf("%v: retry in %v", ErrTooManyAttempts, e.RetryAfter)
}

func (e *TooManyAttemptsError) Is(target error) bool { return target == ErrTooManyAttempts }

// Login throttling bounds.
const (
	// DefaultLoginFailureDelay is Config.LoginFailureDelay's default.
	DefaultLoginFailureDelay = 100 * time.Millisecond
	// maxLoginDelay caps the wait between a user's attempts.
	maxLoginDelay = 5 * time.Second
	// loginQuiet: a user's failures are forgotten after this long without one.
	loginQuiet = time.Minute
	// maxThrottled bounds the users tracked; past it, new ones are not
	// (after forgetting the quiet ones), so memory stays bounded.
	maxThrottled = 1 << 17
)

// loginThrottle slows down guessing one user's password with a password
// login (POST /session.json, POST /login.json). After n recent failures for
// a user, its next attempt is checked only once base·2^(n-1) (at most 5 s)
// has passed since the last; earlier ones are refused without a check, so
// the guessing rate is bounded however many connections or addresses make
// them. A user is an application and a login or an email, whether or not
// such a user exists (refusing only existing ones would tell which exist).
// A success forgets the user's failures, and a quiet minute too.
//
// It counts per user, not per address: behind a proxy or a carrier's NAT
// many users share one, and chatd does not trust forwarding headers. The
// price is that someone failing on purpose makes the user's own logins wait
// up to 5 s between attempts, never more.
type loginThrottle struct {
	base  time.Duration
	mu    sync.Mutex
	byKey map[loginKey]*loginFailures
}

type loginKey struct {
	app   int64
	field UserField // FieldLogin or FieldEmail
	value string    // normalised as looked up
}

type loginFailures struct {
	n    int
	last time.Time
}

func newLoginThrottle(base time.Duration) *loginThrottle {
	return &loginThrottle{base: base, byKey: map[loginKey]*loginFailures{}}
}

// delay is the wait after n failures.
func (t *loginThrottle) delay(n int) time.Duration {
	d := t.base << min(n-1, 16)
	if d <= 0 || d > maxLoginDelay {
		d = maxLoginDelay
	}
	return d
}

// admit returns how long until k's next attempt is checked: 0 lets it be
// checked now.
func (t *loginThrottle) admit(k loginKey, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.byKey[k]
	if f == nil || now.Sub(f.last) >= loginQuiet {
		return 0
	}
	if wait := f.last.Add(t.delay(f.n)).Sub(now); wait > 0 {
		return wait
	}
	// Checked now: until its outcome, further attempts wait as after a
	// failure, so concurrent attempts cannot all slip through at once.
	f.last = now
	return 0
}

// done records the outcome of a checked attempt.
func (t *loginThrottle) done(k loginKey, now time.Time, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ok {
		delete(t.byKey, k)
		return
	}
	f := t.byKey[k]
	if f == nil {
		if len(t.byKey) >= maxThrottled {
			t.sweep(now)
			if len(t.byKey) >= maxThrottled {
				return
			}
		}
		f = &loginFailures{}
		t.byKey[k] = f
	}
	if now.Sub(f.last) >= loginQuiet {
		f.n = 0
	}
	f.n++
	f.last = now
}

// sweep forgets users quiet for loginQuiet. The caller holds t.mu.
func (t *loginThrottle) sweep(now time.Time) {
	for k, f := range t.byKey {
		if now.Sub(f.last) >= loginQuiet {
			delete(t.byKey, k)
		}
	}
}
