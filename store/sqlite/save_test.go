package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"chatd/history"
	"chatd/internal/oid"
	"chatd/store/sqlite"
)

func saveTestStore(t *testing.T) history.Store {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "chatd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db.History()
}

var saveT0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func saveDialog(t *testing.T, h history.Store, typ history.DialogType, occupants ...int64) *history.Dialog {
	t.Helper()
	d := &history.Dialog{ID: oid.New(saveT0), AppID: 1, Type: typ, OwnerID: occupants[0], Occupants: occupants,
		CreatedAt: saveT0, UpdatedAt: saveT0}
	if typ != history.Private {
		d.RoomName = d.ID
	}
	if err := h.CreateDialog(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	return d
}

func saveMessage(d *history.Dialog, sender, dateSent int64, created time.Time) *history.Message {
	m := &history.Message{ID: oid.New(created), AppID: 1, DialogID: d.ID, Text: "hi", DateSent: dateSent,
		SenderID: sender, CreatedAt: created, UpdatedAt: created}
	for _, o := range d.Occupants {
		if o != sender {
			m.Recipients = append(m.Recipients, o)
		}
	}
	return m
}

func unread(t *testing.T, h history.Store, d *history.Dialog, user int64) int {
	t.Helper()
	counts, _, err := h.UnreadCounts(context.Background(), 1, user, []string{d.ID})
	if err != nil {
		t.Fatal(err)
	}
	n, err := h.RecountUnread(context.Background(), 1, d.ID, user)
	if err != nil {
		t.Fatal(err)
	}
	if n != counts[d.ID] {
		t.Errorf("user %d in %s: counter %d, recount %d", user, d.ID, counts[d.ID], n)
	}
	return n
}

// A message failing in a way the batch's checks do not foresee (here a
// recipient listed twice) fails alone: the others of its batch are stored
// with their effects.
func TestSaveMessagesUnforeseenFailure(t *testing.T) {
	h := saveTestStore(t)
	ctx := context.Background()
	p := saveDialog(t, h, history.Private, 10, 11)
	g := saveDialog(t, h, history.Group, 10, 11, 12)
	good1 := saveMessage(p, 10, 100, saveT0.Add(time.Second))
	bad := saveMessage(g, 10, 300, saveT0.Add(2*time.Second))
	bad.Recipients = []int64{11, 11, 12}
	good2 := saveMessage(g, 12, 200, saveT0.Add(3*time.Second))
	errs := h.SaveMessages(ctx, []*history.Message{good1, bad, good2})
	if len(errs) != 3 || errs[0] != nil || errs[1] == nil || errs[2] != nil {
		t.Fatalf("errors = %v", errs)
	}
	if _, err := h.Message(ctx, 1, bad.ID, 0); !errors.Is(err, history.ErrNotFound) {
		t.Errorf("the failed message: %v", err)
	}
	for _, m := range []*history.Message{good1, good2} {
		if _, err := h.Message(ctx, 1, m.ID, 0); err != nil {
			t.Errorf("message %s: %v", m.ID, err)
		}
	}
	if n := unread(t, h, p, 11); n != 1 {
		t.Errorf("unread of 11 in p = %d, want 1", n)
	}
	if a, b, c := unread(t, h, g, 10), unread(t, h, g, 11), unread(t, h, g, 12); a != 1 || b != 1 || c != 0 {
		t.Errorf("unread in g = %d %d %d, want 1 1 0", a, b, c)
	}
	if d, _ := h.Dialog(ctx, 1, g.ID); d.LastMessageID != good2.ID {
		t.Errorf("last message of g = %s, want %s", d.LastMessageID, good2.ID)
	}
}

// A dialog's updated_at follows the creation time of the messages that
// became its last message, whatever their order in the batch.
func TestSaveMessagesDialogUpdatedAt(t *testing.T) {
	h := saveTestStore(t)
	ctx := context.Background()
	d := saveDialog(t, h, history.Private, 10, 11)
	first := saveMessage(d, 10, 100, saveT0.Add(2*time.Hour)) // the last one for a moment
	newest := saveMessage(d, 11, 200, saveT0.Add(time.Hour))  // the last one in the end
	older := saveMessage(d, 10, 50, saveT0.Add(3*time.Hour))  // never the last one
	if errs := h.SaveMessages(ctx, []*history.Message{first, newest, older}); errs != nil {
		t.Fatal(errs)
	}
	got, err := h.Dialog(ctx, 1, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.LastMessageID != newest.ID || !got.UpdatedAt.Equal(saveT0.Add(2*time.Hour)) {
		t.Errorf("last message %s, updated at %v; want %s, %v", got.LastMessageID, got.UpdatedAt, newest.ID,
			saveT0.Add(2*time.Hour))
	}
}
