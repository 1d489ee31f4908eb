package account_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"chatd/account"
)

// Password guesses for one user are slowed down: after a failure the
// user's next attempt is refused unchecked until a wait that doubles with
// each failure (up to 5 s) has passed, whichever login path is used, while
// other users log in as before.
func TestPasswordGuessesThrottled(t *testing.T) {
	ctx := context.Background()
	e := newSessionEnv(t)
	if _, err := e.svc.CreateUserAdmin(ctx, e.app.ID, "bob", "password2"); err != nil {
		t.Fatal(err)
	}
	try := func(login, password string) error {
		e.nonce++
		_, err := e.svc.StartSession(ctx, e.request(e.nonce, fmt.Sprintf("signed %d", e.nonce), login, password))
		return err
	}
	refusedFor := func(err error) time.Duration {
		t.Helper()
		var tm *account.TooManyAttemptsError
		if !errors.As(err, &tm) || !errors.Is(err, account.ErrTooManyAttempts) {
			t.Fatalf("got %v, want a TooManyAttemptsError", err)
		}
		return tm.RetryAfter
	}

	if err := try("alice", "wrong"); !errors.Is(err, account.ErrBadCredentials) {
		t.Fatalf("first wrong password: %v, want ErrBadCredentials", err)
	}
	// Refused unchecked: the right password does not get in either.
	if got := refusedFor(try("alice", "password1")); got != account.DefaultLoginFailureDelay {
		t.Errorf("retry after %v, want %v", got, account.DefaultLoginFailureDelay)
	}
	if err := try("bob", "password2"); err != nil {
		t.Fatalf("another user was slowed down: %v", err)
	}
	// POST /login.json counts for the same user.
	app := e.start(t, "", "")
	if _, err := e.svc.Login(ctx, app, "alice", "", "password1"); !errors.Is(err, account.ErrTooManyAttempts) {
		t.Errorf("POST /login.json during the wait: %v, want ErrTooManyAttempts", err)
	}

	// Each failure doubles the wait, up to 5 s.
	wait := account.DefaultLoginFailureDelay
	for n := 2; n <= 9; n++ {
		e.advance(wait)
		if err := try("alice", "wrong"); !errors.Is(err, account.ErrBadCredentials) {
			t.Fatalf("failure %d after the wait: %v, want ErrBadCredentials", n, err)
		}
		wait = min(2*wait, 5*time.Second)
		if got := refusedFor(try("alice", "wrong")); got != wait {
			t.Errorf("after %d failures: retry after %v, want %v", n, got, wait)
		}
	}
	// Once the wait is over the right password logs in, which forgets the
	// failures: the next wrong one waits the first delay again.
	e.advance(wait)
	if err := try("alice", "password1"); err != nil {
		t.Fatalf("the right password after the wait: %v", err)
	}
	try("alice", "wrong")
	if got := refusedFor(try("alice", "wrong")); got != account.DefaultLoginFailureDelay {
		t.Errorf("after a success, a failure made the next wait %v, want %v", got, account.DefaultLoginFailureDelay)
	}

	// A login no user has is slowed down the same way (refusing only known
	// ones would tell them apart); emails are counted as looked up.
	if err := try("nobody", "x"); !errors.Is(err, account.ErrBadCredentials) {
		t.Fatalf("unknown login: %v", err)
	}
	refusedFor(try("nobody", "x"))
	if err := try("  nobody ", "x"); !errors.Is(err, account.ErrTooManyAttempts) {
		t.Errorf("the same login with spaces around: %v, want ErrTooManyAttempts", err)
	}

	// A quiet minute forgets: one failure then waits the first delay.
	e.advance(time.Minute)
	try("nobody", "x")
	if got := refusedFor(try("nobody", "x")); got != account.DefaultLoginFailureDelay {
		t.Errorf("after a quiet minute: retry after %v, want %v", got, account.DefaultLoginFailureDelay)
	}
}
