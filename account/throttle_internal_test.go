package account

import (
	"strconv"
	"testing"
	"time"
)

// An attempt being checked holds the user's turn: attempts made before its
// outcome is known are refused, so concurrent guesses cannot all be checked.
func TestLoginThrottleOneCheckAtATime(t *testing.T) {
	th := newLoginThrottle(100 * time.Millisecond)
	k := loginKey{app: 1, field: FieldLogin, value: "alice"}
	now := time.Unix(1000, 0)
	if th.admit(k, now) != 0 || th.admit(k, now) != 0 {
		t.Fatal("attempts for a user without failures were refused")
	}
	th.done(k, now, false)
	now = now.Add(100 * time.Millisecond)
	if th.admit(k, now) != 0 {
		t.Fatal("the attempt after the wait was refused")
	}
	if wait := th.admit(k, now); wait != 100*time.Millisecond {
		t.Fatalf("a concurrent attempt while one is checked: wait %v, want 100ms", wait)
	}
}

// The users tracked are bounded: past the bound, quiet ones are forgotten
// and, if none is, new ones are not tracked.
func TestLoginThrottleBounded(t *testing.T) {
	th := newLoginThrottle(time.Millisecond)
	now := time.Unix(1000, 0)
	for i := range maxThrottled + 10 {
		th.done(loginKey{app: 1, field: FieldLogin, value: strconv.Itoa(i)}, now, false)
	}
	if n := len(th.byKey); n != maxThrottled {
		t.Fatalf("%d users tracked, want at most %d", n, maxThrottled)
	}
	th.done(loginKey{app: 2, field: FieldLogin, value: "late"}, now.Add(loginQuiet), false)
	if n := len(th.byKey); n != 1 {
		t.Fatalf("after a quiet period a new failure left %d users tracked, want 1", n)
	}
}
