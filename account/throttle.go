package account

import (
	"errors"
	"fmt"
	"time"
)

// ErrTooManyAttempts: the login was refused without checking the password,
// as its user failed too recently. errors.As with a *TooManyAttemptsError
// gives the wait.
var ErrTooManyAttempts = errors.New("account: too many failed login attempts")

// TooManyAttemptsError says when the next attempt will be checked.
type TooManyAttemptsError struct{ RetryAfter time.Duration }

func (e *TooManyAttemptsError) Error() string {
	return fmt.Sprintf("%v: retry in %v", ErrTooManyAttempts, e.RetryAfter)
}

func (e *TooManyAttemptsError) Is(target error) bool { return target == ErrTooManyAttempts }

// DefaultLoginFailureDelay is Config.LoginFailureDelay's default.
const DefaultLoginFailureDelay = 100 * time.Millisecond

// loginKey is whom a password login is for, as Service.logins counts it:
// an application and a login or an email, normalised as looked up, whether
// or not such a user exists (refusing only existing ones would tell which
// exist).
//
// Password logins (POST /session.json, POST /login.json) are throttled per
// user: after n recent failures, the user's next attempt is checked only
// once the wait (internal/throttle: LoginFailureDelay·2^(n-1), at most 5 s)
// has passed; earlier ones are refused unchecked, so the guessing rate is
// bounded however many connections or addresses make them. Not per
// address: behind a proxy or a carrier's NAT many users share one, and
// chatd does not trust forwarding headers. The price is that someone
// failing on purpose makes the user's own logins wait up to 5 s between
// attempts, never more.
type loginKey struct {
	app   int64
	field UserField // FieldLogin or FieldEmail
	value string
}
