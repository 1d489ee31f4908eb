package throttle

import (
	"strconv"
	"testing"
	"time"
)

func TestWaitsDouble(t *testing.T) {
	th := New[string](100 * time.Millisecond)
	now := time.Unix(1000, 0)
	want := 100 * time.Millisecond
	for n := 1; n <= 10; n++ {
		if got := th.Fail("k", now); got != want {
			t.Fatalf("after %d failures: wait %v, want %v", n, got, want)
		}
		if got := th.Admit("k", now.Add(want-time.Millisecond)); got != time.Millisecond {
			t.Fatalf("after %d failures, 1 ms before the end of the wait: Admit says %v", n, got)
		}
		now = now.Add(want)
		want = min(2*want, Max)
	}
	th.Succeed("k")
	if got := th.Fail("k", now); got != 100*time.Millisecond {
		t.Errorf("after a success the first failure set %v, want the first wait", got)
	}
	if got := th.Fail("k", now.Add(Quiet+100*time.Millisecond)); got != 100*time.Millisecond {
		t.Errorf("after a quiet minute a failure set %v, want the first wait", got)
	}
}

// An attempt let through holds the key's turn: attempts made before its
// outcome is known are refused, so concurrent guesses cannot all be checked.
func TestOneCheckAtATime(t *testing.T) {
	th := New[string](100 * time.Millisecond)
	now := time.Unix(1000, 0)
	for range 2 {
		if th.Admit("k", now) != 0 {
			t.Fatal("attempts for a key without failures were refused")
		}
	}
	th.Fail("k", now)
	now = now.Add(100 * time.Millisecond)
	if th.Admit("k", now) != 0 {
		t.Fatal("the attempt after the wait was refused")
	}
	if wait := th.Admit("k", now); wait != 100*time.Millisecond {
		t.Fatalf("a concurrent attempt while one is checked: wait %v, want 100ms", wait)
	}
	if th.Admit("other", now) != 0 {
		t.Fatal("another key was refused")
	}
}

// The keys tracked are bounded: past the bound, quiet ones are forgotten
// and, if none is, new ones are not tracked.
func TestBounded(t *testing.T) {
	th := New[string](time.Millisecond)
	now := time.Unix(1000, 0)
	for i := range maxKeys + 10 {
		th.Fail(strconv.Itoa(i), now)
	}
	if n := th.Len(); n != maxKeys {
		t.Fatalf("%d keys tracked, want %d", n, maxKeys)
	}
	th.Fail("late", now.Add(Quiet))
	if n := th.Len(); n != 1 {
		t.Fatalf("after a quiet minute a new failure left %d keys tracked, want 1", n)
	}
}
