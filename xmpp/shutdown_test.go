package xmpp

import (
	"testing"
	"time"
)

// Shutdown's spread of <system-shutdown/> over the window keeps to the
// window with many sessions, on a clock whose timers fire up to a
// millisecond late (as real ones do) and where telling each session takes
// time. With a fixed step per session, 20,000 sessions over 2 s took 15 s.
func TestShutdownPaceKeepsToTheWindow(t *testing.T) {
	const window = 2 * time.Second
	for _, n := range []int{1, 2, 10, 1000, 20000} {
		start := time.Unix(1000, 0)
		now := start
		var told []time.Time
		for i := range n {
			if wait := paceWait(start, now, i, n, window); wait > 0 {
				now = now.Add(wait + time.Millisecond) // a late timer
			}
			told = append(told, now)
			now = now.Add(5 * time.Microsecond) // closeWith
		}
		end := told[n-1].Sub(start)
		if end > window+5*time.Millisecond {
			t.Errorf("%d sessions: the last was told %v after the start, past the %v window", n, end, window)
		}
		// Spread, not all at once: the first half goes in the first half
		// of the window, give or take the timers' lateness.
		if n >= 10 {
			if mid := told[n/2].Sub(start); mid < window/2-5*time.Millisecond || mid > window/2+5*time.Millisecond {
				t.Errorf("%d sessions: the middle one was told at %v, want about %v", n, mid, window/2)
			}
		}
	}
}
