package xmpp

import (
	"strconv"
	"testing"
	"time"
)

// The counts of ended sessions are kept for smEndedKeep and for at most
// smEndedMax sessions, the oldest forgotten first, and only for their user.
func TestSMEndedForgets(t *testing.T) {
	var e smEnded
	alice, bob := UserRef{App: 1, User: 1}, UserRef{App: 1, User: 2}
	t0 := time.Unix(1_800_000_000, 0)
	e.add("a", alice, 7, t0)
	if h, ok := e.count("a", alice, t0.Add(smEndedKeep-time.Second)); !ok || h != 7 {
		t.Errorf("count = %d %v, want 7", h, ok)
	}
	if _, ok := e.count("a", bob, t0); ok {
		t.Error("another user learns the count")
	}
	if _, ok := e.count("a", alice, t0.Add(smEndedKeep)); ok {
		t.Error("kept past smEndedKeep")
	}
	// Adding later prunes what is too old.
	e.add("b", alice, 1, t0.Add(smEndedKeep))
	if _, ok := e.byID["a"]; ok || len(e.order) != 1 {
		t.Errorf("the expired count is still held: %v %v", e.byID, e.order)
	}
	// At most smEndedMax, the oldest dropped first.
	for i := range smEndedMax {
		e.add(strconv.Itoa(i), alice, uint32(i), t0.Add(smEndedKeep+time.Duration(i)))
	}
	if len(e.byID) != smEndedMax || len(e.order) != smEndedMax {
		t.Errorf("holding %d (%d in order), want %d", len(e.byID), len(e.order), smEndedMax)
	}
	if _, ok := e.byID["b"]; ok {
		t.Error("the oldest was not dropped")
	}
	if h, ok := e.count(strconv.Itoa(smEndedMax-1), alice, t0.Add(smEndedKeep)); !ok || h != smEndedMax-1 {
		t.Errorf("the newest: %d %v", h, ok)
	}
}
