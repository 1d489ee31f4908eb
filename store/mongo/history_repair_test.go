package mongo

import (
	"context"
	"slices"
	"testing"
	"time"

	"chatd/history"
	"chatd/internal/oid"

	"go.mongodb.org/mongo-driver/v2/bson"
)

const grace = 10 * time.Minute

// repairFixture is a group dialog of users 1, 2 and 3 in application 1.
type repairFixture struct {
	t  *testing.T
	db *DB
	h  history.Store
	d  *history.Dialog
}

func newRepairFixture(t *testing.T) *repairFixture {
	db := openDB(t)
	now := time.Now()
	d := &history.Dialog{ID: oid.New(now), AppID: 1, Type: history.Group, OwnerID: 1, Name: "d",
		Occupants: []int64{1, 2, 3}, CreatedAt: now, UpdatedAt: now}
	d.RoomName = d.ID
	f := &repairFixture{t: t, db: db, h: db.History(), d: d}
	if err := f.h.CreateDialog(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	return f
}

// message returns a new message from user 1 to users 2 and 3, not stored.
func (f *repairFixture) message() *history.Message {
	now := time.Now()
	return &history.Message{ID: oid.New(now), AppID: f.d.AppID, DialogID: f.d.ID, Text: "hi", DateSent: now.Unix(),
		SenderID: 1, Recipients: []int64{2, 3}, CreatedAt: now, UpdatedAt: now}
}

// insertPending writes m's pending documents of the given kinds for every
// recipient, as SaveMessages does, inserted at (no insertion time when at
// is zero, as before it was recorded).
func (f *repairFixture) insertPending(m *history.Message, at time.Time, kinds ...string) {
	f.t.Helper()
	var docs []any
	for _, r := range m.Recipients {
		for _, k := range kinds {
			d := &pendingDoc{ID: pendingKey(m.ID, r, k), AppID: m.AppID, DialogID: m.DialogID, MessageID: m.ID,
				UserID: r, Kind: k, DateSent: m.DateSent}
			if !at.IsZero() {
				d.At = at.Unix()
			}
			docs = append(docs, d)
		}
	}
	if _, err := f.db.pending.InsertMany(context.Background(), docs); err != nil {
		f.t.Fatal(err)
	}
}

// storedAt writes m as a SaveMessages that ran at at would have left it.
func (f *repairFixture) storedAt(m *history.Message, at time.Time) {
	f.t.Helper()
	f.insertPending(m, at, pendingUnread)
	f.insertPending(m, at, pendingRead, pendingDelivered)
	if _, err := f.db.messages.InsertOne(context.Background(), toMessageDoc(m)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *repairFixture) deletePending(m *history.Message, user int64, kind string) {
	f.t.Helper()
	if _, err := f.db.pending.DeleteOne(context.Background(), byKey(pendingKey(m.ID, user, kind))); err != nil {
		f.t.Fatal(err)
	}
}

// unread returns the user's counter in the dialog and its recount.
func (f *repairFixture) unread(user int64) (counter, recount int) {
	f.t.Helper()
	ctx := context.Background()
	counts, _, err := f.h.UnreadCounts(ctx, f.d.AppID, user, []string{f.d.ID})
	if err != nil {
		f.t.Fatal(err)
	}
	recount, err = f.h.RecountUnread(ctx, f.d.AppID, f.d.ID, user)
	if err != nil {
		f.t.Fatal(err)
	}
	return counts[f.d.ID], recount
}

// checkUnread fails unless the user's counter and recount are both want.
func (f *repairFixture) checkUnread(user int64, want int) {
	f.t.Helper()
	if c, r := f.unread(user); c != want || r != want {
		f.t.Errorf("user %d: counter %d, recount %d; want %d", user, c, r, want)
	}
}

// checkBroken fails unless the user's counter is recount+1, the state an
// interrupted write leaves.
func (f *repairFixture) checkBroken(user int64) {
	f.t.Helper()
	if c, r := f.unread(user); c != r+1 {
		f.t.Errorf("user %d: counter %d, recount %d; want the counter one higher (the interrupted state)", user, c, r)
	}
}

func (f *repairFixture) repair(want RepairReport) {
	f.t.Helper()
	f.repairBatch(want, repairBatch)
}

func (f *repairFixture) repairBatch(want RepairReport, size int) {
	f.t.Helper()
	rep, err := f.db.repairHistory(context.Background(), grace, size)
	if err != nil {
		f.t.Fatal(err)
	}
	rep.Scanned = 0
	if rep != want {
		f.t.Errorf("RepairHistory removed %+v, want %+v", rep, want)
	}
}

// readIDs returns who read m, as the viewer sees it.
func (f *repairFixture) readIDs(m *history.Message, viewer int64) []int64 {
	f.t.Helper()
	got, err := f.h.Message(context.Background(), f.d.AppID, m.ID, viewer)
	if err != nil {
		f.t.Fatal(err)
	}
	return got.ReadIDs
}

func (f *repairFixture) listed(viewer int64) []string {
	f.t.Helper()
	msgs, err := f.h.FindMessages(context.Background(), f.d.AppID, f.d.ID, viewer, history.MessageQuery{Limit: 100})
	if err != nil {
		f.t.Fatal(err)
	}
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.ID)
	}
	return ids
}

// A SaveMessages interrupted before the message, or a DeleteMessages after
// it, leaves pending documents of a message that does not exist; once
// they are older than the grace period the pass removes them.
func TestRepairOrphans(t *testing.T) {
	for _, tc := range []struct {
		name  string
		at    time.Time
		kinds []string
	}{
		{"interrupted after unread", time.Now().Add(-time.Hour), []string{pendingUnread}},
		{"interrupted after read", time.Now().Add(-time.Hour), []string{pendingUnread, pendingRead, pendingDelivered}},
		// By a chatd from before insertion times: aged by date_sent.
		{"written without insertion time", time.Time{}, []string{pendingUnread, pendingRead, pendingDelivered}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRepairFixture(t)
			kept := f.message()
			if errs := f.h.SaveMessages(context.Background(), []*history.Message{kept}); errs != nil {
				t.Fatal(errs)
			}
			lost := f.message()
			lost.DateSent = time.Now().Add(-time.Hour).Unix()
			f.insertPending(lost, tc.at, tc.kinds...)
			f.checkBroken(2)
			f.checkBroken(3)
			f.repair(RepairReport{Orphaned: 2 * len(tc.kinds)})
			f.checkUnread(2, 1)
			f.checkUnread(3, 1)
			// A retry of the save stores it whole.
			if errs := f.h.SaveMessages(context.Background(), []*history.Message{lost}); errs != nil {
				t.Fatal(errs)
			}
			f.checkUnread(2, 2)
			if got := f.readIDs(lost, 2); !slices.Equal(got, []int64{1}) {
				t.Errorf("read_ids of the saved message %v, want [1]", got)
			}
		})
	}
	t.Run("deleted message", func(t *testing.T) {
		f := newRepairFixture(t)
		m := f.message()
		f.storedAt(m, time.Now().Add(-time.Hour))
		if _, err := f.db.messages.DeleteOne(context.Background(), byKey(m.ID)); err != nil {
			t.Fatal(err)
		}
		f.checkBroken(2)
		f.repair(RepairReport{Orphaned: 6})
		f.checkUnread(2, 0)
		f.checkUnread(3, 0)
	})
}

// The pending documents of a save under way are left alone, and the save
// completes normally.
func TestRepairKeepsSaveUnderWay(t *testing.T) {
	for _, tc := range []struct {
		name  string
		kinds []string
		at    time.Time
	}{
		{"after unread", []string{pendingUnread}, time.Now()},
		{"after read", []string{pendingUnread, pendingRead, pendingDelivered}, time.Now()},
		// A chatd from before insertion times (during a rolling upgrade)
		// saving a message of now.
		{"by an older chatd", []string{pendingUnread, pendingRead, pendingDelivered}, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRepairFixture(t)
			m := f.message()
			f.insertPending(m, tc.at, tc.kinds...)
			f.checkBroken(2)
			f.repair(RepairReport{})
			f.checkBroken(2)
			if errs := f.h.SaveMessages(context.Background(), []*history.Message{m}); errs != nil {
				t.Fatal(errs)
			}
			f.checkUnread(2, 1)
			f.checkUnread(3, 1)
			if got := f.readIDs(m, 2); !slices.Equal(got, []int64{1}) {
				t.Errorf("read_ids %v, want [1]", got)
			}
			f.repair(RepairReport{})
			f.checkUnread(2, 1)
		})
	}
}

// A mark interrupted between deleting "read" and "unread" leaves an
// "unread" document of a message read; the pass removes it once it is
// older than the grace period, and leaves a young one to the mark under
// way.
func TestRepairInterruptedMark(t *testing.T) {
	t.Run("old", func(t *testing.T) {
		f := newRepairFixture(t)
		m := f.message()
		f.storedAt(m, time.Now().Add(-time.Hour))
		f.checkUnread(2, 1)
		f.deletePending(m, 2, pendingRead)
		f.checkBroken(2)
		if got := f.readIDs(m, 2); !slices.Equal(got, []int64{1, 2}) {
			t.Errorf("read_ids %v, want [1 2]", got)
		}
		f.repair(RepairReport{Read: 1})
		f.checkUnread(2, 0)
		f.checkUnread(3, 1)
		if got := f.readIDs(m, 3); !slices.Equal(got, []int64{1, 2}) {
			t.Errorf("read_ids after the repair %v, want [1 2]", got)
		}
	})
	t.Run("under way", func(t *testing.T) {
		f := newRepairFixture(t)
		m := f.message()
		if errs := f.h.SaveMessages(context.Background(), []*history.Message{m}); errs != nil {
			t.Fatal(errs)
		}
		f.deletePending(m, 2, pendingRead)
		f.checkBroken(2)
		f.repair(RepairReport{})
		f.checkBroken(2)
		// The mark's second write.
		f.deletePending(m, 2, pendingUnread)
		f.checkUnread(2, 0)
		f.checkUnread(3, 1)
	})
}

// A HideMessages interrupted between its two writes leaves an "unread"
// document of a hidden message; the pass removes it whatever its age.
func TestRepairInterruptedHide(t *testing.T) {
	f := newRepairFixture(t)
	m := f.message()
	if errs := f.h.SaveMessages(context.Background(), []*history.Message{m}); errs != nil {
		t.Fatal(errs)
	}
	_, err := f.db.hiddenMessages.InsertOne(context.Background(), &hiddenDoc{ID: hiddenKey(m.ID, 2), AppID: m.AppID,
		DialogID: m.DialogID, MessageID: m.ID, UserID: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.listed(2); len(got) != 0 {
		t.Errorf("user 2 lists %v after hiding it", got)
	}
	f.checkBroken(2)
	f.repair(RepairReport{Hidden: 1})
	f.checkUnread(2, 0)
	f.checkUnread(3, 1)
	if got := f.listed(3); !slices.Equal(got, []string{m.ID}) {
		t.Errorf("user 3 lists %v, want [%s]", got, m.ID)
	}
}

// Every kind of garbage at once, read a few documents at a time, next to
// messages in every legitimate state: only the garbage goes.
func TestRepairBatches(t *testing.T) {
	f := newRepairFixture(t)
	ctx := context.Background()
	old := time.Now().Add(-time.Hour)
	var want RepairReport
	for range 3 {
		// Unread by both.
		f.storedAt(f.message(), old)
		// Read by user 2.
		read := f.message()
		f.storedAt(read, old)
		if n, err := f.h.MarkMessages(ctx, f.d.AppID, f.d.ID, 2, []string{read.ID}, history.Read); err != nil || n != 1 {
			t.Fatalf("MarkMessages = %d, %v", n, err)
		}
		// Hidden by user 3.
		hidden := f.message()
		f.storedAt(hidden, old)
		if _, err := f.h.HideMessages(ctx, f.d.AppID, 3, []string{hidden.ID}); err != nil {
			t.Fatal(err)
		}
		// Garbage.
		f.insertPending(f.message(), old, pendingUnread, pendingRead, pendingDelivered)
		want.Orphaned += 6
		torn := f.message()
		f.storedAt(torn, old)
		f.deletePending(torn, 3, pendingRead)
		want.Read++
		shown := f.message()
		f.storedAt(shown, old)
		if _, err := f.db.hiddenMessages.InsertOne(ctx, &hiddenDoc{ID: hiddenKey(shown.ID, 2), AppID: shown.AppID,
			DialogID: shown.DialogID, MessageID: shown.ID, UserID: 2}); err != nil {
			t.Fatal(err)
		}
		want.Hidden++
		// A save under way.
		f.insertPending(f.message(), time.Now(), pendingUnread, pendingRead, pendingDelivered)
	}
	f.repairBatch(want, 4)
	// Unread by user 2: unread by both, hidden by user 3 and torn (for
	// user 3), 3 each; by user 3: unread by both, read by user 2 and shown
	// (hidden by user 2). The counters also hold the saves under way.
	if c, r := f.unread(2); c != 12 || r != 9 {
		t.Errorf("user 2: counter %d, recount %d; want 12 and 9 (3 saves under way)", c, r)
	}
	if c, r := f.unread(3); c != 12 || r != 9 {
		t.Errorf("user 3: counter %d, recount %d; want 12 and 9 (3 saves under way)", c, r)
	}
	n, err := f.db.pending.CountDocuments(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	f.repairBatch(RepairReport{}, 4)
	if again, err := f.db.pending.CountDocuments(ctx, bson.D{}); err != nil || again != n {
		t.Errorf("a second pass left %d pending documents of %d (%v)", again, n, err)
	}
}
