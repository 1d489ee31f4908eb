package history_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"chatd/history"
)

// Two services on one store, as two chatd processes sharing a database.
func setupShared(t *testing.T) (a, b *history.Service, app int64, users []int64) {
	t.Helper()
	f := setup(t, history.Config{})
	b = history.NewService(f.db.History(), f.accounts, history.Config{}, f.log)
	t.Cleanup(b.Close) // before setup's cleanup closes the database
	return f.svc, b, f.app, f.users[:2]
}

func recordPair(t *testing.T, svc *history.Service, app, from, to int64, text string) (*history.Message, *history.Dialog) {
	t.Helper()
	m, d, err := svc.Record(context.Background(), history.NewMessage{App: app, SenderID: from, RecipientID: to, Text: text})
	if err != nil {
		t.Fatalf("Record %q: %v", text, err)
	}
	if d.Type != history.Private || !slices.Equal(d.Occupants, sortedPair(from, to)) || m.DialogID != d.ID {
		t.Fatalf("Record %q: dialog %+v, message in %s", text, d, m.DialogID)
	}
	return m, d
}

// A pair's messages keep going to their one dialog; once it is deleted,
// the next message makes a new one instead of failing.
func TestRecordPairAfterDialogDeleted(t *testing.T) {
	f := setup(t, history.Config{})
	ctx := context.Background()
	alice, bob := f.users[0], f.users[1]
	_, d1 := recordPair(t, f.svc, f.app, alice, bob, "one")
	_, again := recordPair(t, f.svc, f.app, bob, alice, "two")
	if again.ID != d1.ID {
		t.Fatalf("the pair's second message went to %s, not %s", again.ID, d1.ID)
	}
	res, err := f.svc.DeleteDialogs(ctx, f.app, alice, []string{d1.ID}, true)
	if err != nil || !slices.Equal(res.Deleted, []string{d1.ID}) {
		t.Fatalf("DeleteDialogs: %+v %v", res, err)
	}
	m3, d2 := recordPair(t, f.svc, f.app, alice, bob, "three")
	if d2.ID == d1.ID {
		t.Fatal("a message went to the deleted dialog")
	}
	got, err := f.svc.Message(ctx, f.app, bob, m3.ID)
	if err != nil || got.DialogID != d2.ID {
		t.Fatalf("message after the delete: %+v %v", got, err)
	}
	counts, _, err := f.svc.UnreadCounts(ctx, f.app, bob, []string{d2.ID})
	if err != nil || counts[d2.ID] != 1 {
		t.Errorf("bob's unread in the new dialog = %v %v, want 1", counts, err)
	}
	if _, err := f.svc.Dialog(ctx, f.app, alice, d1.ID); err == nil {
		t.Error("the deleted dialog is back")
	}
}

// A pair's dialog deleted through another service sharing the store (another
// chatd) is not written to by a service that had it cached: the message goes
// to a new dialog, the one both services see from then on.
func TestRecordPairDeletedElsewhere(t *testing.T) {
	a, b, app, users := setupShared(t)
	ctx := context.Background()
	alice, bob := users[0], users[1]
	_, d1 := recordPair(t, a, app, alice, bob, "one")
	recordPair(t, a, app, bob, alice, "two") // from the cache
	if res, err := b.DeleteDialogs(ctx, app, alice, []string{d1.ID}, true); err != nil || len(res.Deleted) != 1 {
		t.Fatalf("DeleteDialogs through the other service: %+v %v", res, err)
	}
	m3, d2 := recordPair(t, a, app, alice, bob, "three")
	if d2.ID == d1.ID {
		t.Fatal("a message went to the dialog deleted elsewhere")
	}
	_, d2b := recordPair(t, b, app, bob, alice, "four")
	if d2b.ID != d2.ID {
		t.Errorf("the services disagree on the pair's dialog: %s and %s", d2.ID, d2b.ID)
	}
	msgs, err := b.Messages(ctx, app, bob, d2.ID, history.MessageQuery{}, false)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range msgs {
		texts = append(texts, m.Text)
	}
	if !slices.Equal(texts, []string{"three", "four"}) || msgs[0].ID != m3.ID {
		t.Errorf("messages of the new dialog = %q", texts)
	}
	for _, u := range []int64{alice, bob} {
		counts, _, err := a.UnreadCounts(ctx, app, u, []string{d2.ID})
		if err != nil || counts[d2.ID] != 1 {
			t.Errorf("user %d unread in the new dialog = %v %v, want 1", u, counts, err)
		}
	}
}

// Two messages of a session begun one after the other (as a pipelining XMPP
// session does) stay in that order in the history even when the pair's
// cached dialog turns out deleted between them: the first is recorded again
// with its id and date, not after the second.
func TestStaleDialogKeepsOrder(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dateSent float64
	}{
		{"server's date", 0},
		{"client's date refused", 1e9}, // 2001: a phone with a wrong clock
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			now := time.Now().Truncate(time.Second).Add(500 * time.Millisecond)
			f := setup(t, history.Config{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
			ctx := context.Background()
			alice, bob := f.users[0], f.users[1]
			_, d0 := recordPair(t, f.svc, f.app, alice, bob, "m0")
			// Another chatd on the same store deletes the dialog: this one's
			// pair cache still names it.
			if err := f.db.History().DeleteDialog(ctx, f.app, d0.ID); err != nil {
				t.Fatal(err)
			}
			first := f.svc.Begin(ctx, history.NewMessage{App: f.app, SenderID: alice, RecipientID: bob, Text: "first", DateSent: tc.dateSent})
			recordPair(t, f.svc, f.app, bob, alice, "bob") // finds the dialog gone, makes a new one
			second := f.svc.Begin(ctx, history.NewMessage{App: f.app, SenderID: alice, RecipientID: bob, Text: "second", DateSent: tc.dateSent})
			// The first try of 'first' is found stale in the next second.
			mu.Lock()
			now = now.Add(time.Second)
			mu.Unlock()
			m1, d1, err1 := first.Wait()
			m2, d2, err2 := second.Wait()
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			if d1.ID != d2.ID || d1.ID == d0.ID {
				t.Fatalf("dialogs %s and %s, the deleted one %s", d1.ID, d2.ID, d0.ID)
			}
			if m1.DateSent != m2.DateSent {
				t.Errorf("first dated %d, second %d: the retry was dated again", m1.DateSent, m2.DateSent)
			}
			msgs, err := f.svc.Messages(ctx, f.app, bob, d1.ID, history.MessageQuery{}, false)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range msgs {
				got = append(got, m.Text)
			}
			if want := []string{"first", "bob", "second"}; !slices.Equal(got, want) {
				t.Errorf("history holds %v, want %v", got, want)
			}
		})
	}
}
