package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"chatd/history"
	"chatd/internal/oid"
)

func runHistory(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s history.Store)
	}{
		{"Dialogs", testDialogs},
		{"FindDialogs", testFindDialogs},
		{"SaveMessages", testSaveMessages},
		{"SaveMessagesBatch", testSaveMessagesBatch},
		{"FindMessages", testFindMessages},
		{"Marks", testMarks},
		{"PageMarks", testPageMarks},
		{"HideAndDelete", testHideAndDelete},
		{"DialogMembership", testDialogMembership},
		{"ConcurrentCounters", testConcurrentCounters},
		{"DialogQueryLanguage", testDialogQueryLanguage},
		{"MessageQueryLanguage", testMessageQueryLanguage},
		{"ContainsFoldsCase", testContainsFoldsCase},
		{"ConcurrentMarkers", testConcurrentMarkers},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := open(t).History
			if st == nil {
				t.Fatal("the backend has no history store")
			}
			tc.fn(t, st)
		})
	}
}

var idClock = t0

// newID returns ids that sort by creation.
func newID() string {
	idClock = idClock.Add(time.Second)
	return oid.New(idClock)
}

func mkDialog(t *testing.T, s history.Store, app int64, typ history.DialogType, owner int64, occupants ...int64) *history.Dialog {
	t.Helper()
	d := &history.Dialog{ID: newID(), AppID: app, Type: typ, OwnerID: owner, Name: "d", CreatedAt: t0, UpdatedAt: t0}
	if typ != history.PublicGroup {
		d.Occupants = append(slices.Clone(occupants), owner)
		slices.Sort(d.Occupants)
	}
	if typ != history.Private {
		d.RoomName = d.ID
	}
	if err := s.CreateDialog(context.Background(), d); err != nil {
		t.Fatalf("CreateDialog: %v", err)
	}
	return d
}

func mkMessage(d *history.Dialog, sender int64, dateSent int64, text string) *history.Message {
	m := &history.Message{ID: newID(), AppID: d.AppID, DialogID: d.ID, Text: text, DateSent: dateSent,
		SenderID: sender, CreatedAt: t0, UpdatedAt: t0, ReadIDs: []int64{sender}, DeliveredIDs: []int64{sender}}
	if d.Type != history.PublicGroup {
		for _, o := range d.Occupants {
			if o != sender {
				m.Recipients = append(m.Recipients, o)
			}
		}
	}
	if d.Type == history.Private {
		m.RecipientID = m.Recipients[0]
	}
	return m
}

func save(t *testing.T, s history.Store, msgs ...*history.Message) {
	t.Helper()
	if errs := s.SaveMessages(context.Background(), msgs); errs != nil {
		t.Fatalf("SaveMessages: %v", errs)
	}
}

// checkUnread compares a user's counter with the expected value and with a
// recount from the messages.
func checkUnread(t *testing.T, s history.Store, d *history.Dialog, user int64, want int) {
	t.Helper()
	ctx := context.Background()
	counts, _, err := s.UnreadCounts(ctx, d.AppID, user, []string{d.ID})
	if err != nil {
		t.Fatal(err)
	}
	recount, err := s.RecountUnread(ctx, d.AppID, d.ID, user)
	if err != nil {
		t.Fatal(err)
	}
	if counts[d.ID] != want || recount != want {
		t.Errorf("user %d unread in %s: counter %d, recount %d, want %d", user, d.ID, counts[d.ID], recount, want)
	}
}

func testDialogs(t *testing.T, s history.Store) {
	ctx := context.Background()
	p := mkDialog(t, s, 1, history.Private, 10, 11)
	g := &history.Dialog{ID: newID(), AppID: 1, Type: history.Group, OwnerID: 10, Name: "Team", Photo: "42",
		Occupants: []int64{10, 11, 12}, AdminIDs: []int64{11}, RoomName: "team-room", JoinRequired: true,
		Data: map[string]string{"class_name": "Extra", "color": "red"}, CreatedAt: t0, UpdatedAt: t0.Add(time.Minute)}
	if err := s.CreateDialog(ctx, g); err != nil {
		t.Fatal(err)
	}
	got, err := s.Dialog(ctx, 1, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := *g
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("times %v %v", got.CreatedAt, got.UpdatedAt)
	}
	got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("Dialog = %+v\nwant     %+v", *got, want)
	}
	// A second private dialog of the same pair, in either order, is refused.
	dup := &history.Dialog{ID: newID(), AppID: 1, Type: history.Private, OwnerID: 11, Occupants: []int64{10, 11},
		CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateDialog(ctx, dup); !errors.Is(err, history.ErrDuplicate) {
		t.Errorf("second private dialog: %v, want ErrDuplicate", err)
	}
	for _, pair := range [][2]int64{{10, 11}, {11, 10}} {
		if got, err := s.PrivateDialog(ctx, 1, pair[0], pair[1]); err != nil || got.ID != p.ID {
			t.Errorf("PrivateDialog(%v) = %v, %v", pair, got, err)
		}
	}
	if _, err := s.PrivateDialog(ctx, 1, 10, 12); !errors.Is(err, history.ErrNotFound) {
		t.Errorf("PrivateDialog of a pair without one: %v", err)
	}
	// The same pair in another application is another dialog.
	mkDialog(t, s, 2, history.Private, 10, 11)
	if got, err := s.RoomDialog(ctx, 1, "team-room"); err != nil || got.ID != g.ID {
		t.Errorf("RoomDialog = %v, %v", got, err)
	}
	sameRoom := &history.Dialog{ID: newID(), AppID: 1, Type: history.Group, OwnerID: 12, Occupants: []int64{12},
		RoomName: "team-room", CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateDialog(ctx, sameRoom); !errors.Is(err, history.ErrDuplicate) {
		t.Errorf("second dialog with the same room: %v, want ErrDuplicate", err)
	}
	if _, err := s.Dialog(ctx, 2, g.ID); !errors.Is(err, history.ErrNotFound) {
		t.Errorf("dialog through another application: %v", err)
	}
	// Update.
	g.Name, g.Photo, g.JoinRequired = "Renamed", "", false
	g.Data = map[string]string{"class_name": "Extra", "color": "blue", "size": "3"}
	g.Occupants = []int64{10, 12, 13}
	g.UpdatedAt = t0.Add(time.Hour)
	if err := s.UpdateDialog(ctx, g); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Dialog(ctx, 1, g.ID)
	if got.Name != "Renamed" || got.Photo != "" || got.JoinRequired || !reflect.DeepEqual(got.Data, g.Data) ||
		!slices.Equal(got.Occupants, []int64{10, 12, 13}) || !got.UpdatedAt.Equal(g.UpdatedAt) {
		t.Errorf("after update: %+v", got)
	}
	ghost := *g
	ghost.ID = newID()
	if err := s.UpdateDialog(ctx, &ghost); !errors.Is(err, history.ErrNotFound) {
		t.Errorf("UpdateDialog(unknown) = %v", err)
	}
	// Notifications default to on and are per user.
	if on, err := s.Notifications(ctx, 1, g.ID, 10); err != nil || !on {
		t.Errorf("default notifications: %v %v", on, err)
	}
	if err := s.SetNotifications(ctx, 1, g.ID, 10, false); err != nil {
		t.Fatal(err)
	}
	if on, _ := s.Notifications(ctx, 1, g.ID, 10); on {
		t.Error("notifications still on")
	}
	if on, _ := s.Notifications(ctx, 1, g.ID, 12); !on {
		t.Error("another user's notifications changed")
	}
	// Delete takes everything with it.
	save(t, s, mkMessage(g, 10, 100, "bye"))
	if err := s.DeleteDialog(ctx, 1, g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Dialog(ctx, 1, g.ID); !errors.Is(err, history.ErrNotFound) {
		t.Errorf("dialog after delete: %v", err)
	}
	if msgs, err := s.FindMessages(ctx, 1, g.ID, 10, history.MessageQuery{}); err != nil || len(msgs) != 0 {
		t.Errorf("messages after delete: %v %v", msgs, err)
	}
	if _, total, _ := s.UnreadCounts(ctx, 1, 12, nil); total != 0 {
		t.Errorf("unread after delete: %d", total)
	}
	if err := s.DeleteDialog(ctx, 1, g.ID); !errors.Is(err, history.ErrNotFound) {
		t.Errorf("second DeleteDialog: %v", err)
	}
}

func dialogIDs(ds []*history.Dialog) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func testFindDialogs(t *testing.T, s history.Store) {
	ctx := context.Background()
	const me = int64(10)
	private := mkDialog(t, s, 1, history.Private, me, 11)
	group := mkDialog(t, s, 1, history.Group, 12, me, 13)
	other := mkDialog(t, s, 1, history.Group, 12, 13) // not mine
	public := mkDialog(t, s, 1, history.PublicGroup, 14)
	foreign := mkDialog(t, s, 2, history.PublicGroup, 14) // another app
	_ = other
	_ = foreign
	// Give each a last message at a known time.
	save(t, s, mkMessage(private, 11, 300, "p"), mkMessage(group, 12, 200, "g"), mkMessage(public, 14, 100, "pub"))
	group.Data = map[string]string{"class_name": "Extra", "color": "red"}
	group.Name = "Weekend plans"
	if err := s.UpdateDialog(ctx, group); err != nil {
		t.Fatal(err)
	}
	find := func(q history.DialogQuery) ([]string, int) {
		t.Helper()
		ds, total, err := s.FindDialogs(ctx, 1, me, q)
		if err != nil {
			t.Fatalf("FindDialogs(%+v): %v", q, err)
		}
		return dialogIDs(ds), total
	}
	cond := func(field string, kind history.Kind, op history.Op, vals ...any) history.Cond {
		return history.Cond{Field: field, Kind: kind, Op: op, Values: vals}
	}
	cases := []struct {
		name  string
		q     history.DialogQuery
		want  []string
		total int
	}{
		{"visible, newest message first", history.DialogQuery{}, []string{private.ID, group.ID, public.ID}, 3},
		{"type in", history.DialogQuery{Conds: []history.Cond{cond("type", history.KindInt, history.OpIn, int64(1), int64(3))}},
			[]string{private.ID, public.ID}, 2},
		{"name ctn", history.DialogQuery{Conds: []history.Cond{cond("name", history.KindString, history.OpContains, "WEEKEND")}},
			[]string{group.ID}, 1},
		{"occupants all", history.DialogQuery{Conds: []history.Cond{cond("occupants_ids", history.KindIntArray, history.OpAll, me, int64(13))}},
			[]string{group.ID}, 1},
		{"occupants in", history.DialogQuery{Conds: []history.Cond{cond("occupants_ids", history.KindIntArray, history.OpIn, int64(11), int64(13))}},
			[]string{private.ID, group.ID}, 2},
		{"data field", history.DialogQuery{Conds: []history.Cond{cond("data.color", history.KindString, history.OpEq, "red")}},
			[]string{group.ID}, 1},
		{"last message gt", history.DialogQuery{Conds: []history.Cond{cond("last_message_date_sent", history.KindInt, history.OpGt, int64(150))}},
			[]string{private.ID, group.ID}, 2},
		{"_id ne", history.DialogQuery{Conds: []history.Cond{cond("_id", history.KindID, history.OpNe, group.ID)}},
			[]string{private.ID, public.ID}, 2},
		{"sort asc", history.DialogQuery{Sort: "last_message_date_sent"}, []string{public.ID, group.ID, private.ID}, 3},
		{"page", history.DialogQuery{Sort: "last_message_date_sent", Desc: true, Limit: 1, Skip: 1}, []string{group.ID}, 3},
		{"count", history.DialogQuery{Count: true}, nil, 3},
	}
	for _, tc := range cases {
		got, total := find(tc.q)
		if !slices.Equal(got, tc.want) || total != tc.total {
			t.Errorf("%s: %v (total %d), want %v (total %d)", tc.name, got, total, tc.want, tc.total)
		}
	}
	ds, _, _ := s.FindDialogs(ctx, 1, me, history.DialogQuery{})
	for _, d := range ds {
		want := map[string]int{private.ID: 1, group.ID: 1, public.ID: 0}[d.ID]
		if d.UnreadCount != want {
			t.Errorf("dialog %s unread %d, want %d", d.ID, d.UnreadCount, want)
		}
	}
	// Hiding removes a dialog from the list until a new message arrives.
	if err := s.HideDialog(ctx, 1, private.ID, me); err != nil {
		t.Fatal(err)
	}
	if got, _ := find(history.DialogQuery{}); slices.Contains(got, private.ID) {
		t.Error("hidden dialog still listed")
	}
	checkUnread(t, s, private, me, 0)
	if err := s.HideDialog(ctx, 1, public.ID, me); err != nil {
		t.Fatal(err)
	}
	if got, _ := find(history.DialogQuery{}); !slices.Equal(got, []string{group.ID}) {
		t.Errorf("after hiding two: %v", got)
	}
	// Unhiding shows a dialog again for that user only, with the unread
	// count it had (hiding read everything); unhiding a dialog that is
	// not hidden, or through another application, changes nothing.
	if err := s.UnhideDialog(ctx, 1, public.ID, me); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{group.ID, public.ID} {
		if err := s.UnhideDialog(ctx, 1, id, me); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.UnhideDialog(ctx, 2, private.ID, me); err != nil {
		t.Fatal(err)
	}
	if got, _ := find(history.DialogQuery{}); !slices.Equal(got, []string{group.ID, public.ID}) {
		t.Errorf("after unhiding the public group: %v", got)
	}
	if ds, _, err := s.FindDialogs(ctx, 1, 14, history.DialogQuery{}); err != nil || !slices.Equal(dialogIDs(ds), []string{public.ID}) {
		t.Errorf("the public group's owner sees %v, %v", dialogIDs(ds), err)
	}
	save(t, s, mkMessage(private, 11, 400, "again"))
	if got, _ := find(history.DialogQuery{}); !slices.Equal(got, []string{private.ID, group.ID, public.ID}) {
		t.Errorf("after a new message: %v", got)
	}
	checkUnread(t, s, private, me, 1)
	if err := s.HideDialog(ctx, 1, private.ID, me); err != nil {
		t.Fatal(err)
	}
	if err := s.UnhideDialog(ctx, 1, private.ID, me); err != nil {
		t.Fatal(err)
	}
	if got, _ := find(history.DialogQuery{}); !slices.Equal(got, []string{private.ID, group.ID, public.ID}) {
		t.Errorf("after hiding and unhiding the private dialog: %v", got)
	}
	checkUnread(t, s, private, me, 0)
	checkUnread(t, s, private, 11, 0)
	if counts, total, err := s.UnreadCounts(ctx, 1, me, nil); err != nil || total != 1 || counts[private.ID] != 0 || counts[group.ID] != 1 {
		t.Errorf("unread after unhiding: %v total %d, %v", counts, total, err)
	}
}

func testSaveMessages(t *testing.T, s history.Store) {
	ctx := context.Background()
	d := mkDialog(t, s, 1, history.Group, 10, 11, 12)
	m1 := mkMessage(d, 10, 100, "first")
	m1.Attachments = []history.Attachment{{"type": "image", "id": "42", "url": "https://x/a.png"}}
	m1.Custom = map[string]string{"save_to_history": "1", "color": "red"}
	m1.Markable = true
	save(t, s, m1)
	got, err := s.Message(ctx, 1, m1.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != "first" || got.DateSent != 100 || got.SenderID != 10 || !got.Markable ||
		!reflect.DeepEqual(got.Attachments, m1.Attachments) || !reflect.DeepEqual(got.Custom, m1.Custom) ||
		!slices.Equal(got.Recipients, []int64{11, 12}) || !slices.Equal(got.ReadIDs, []int64{10}) ||
		!slices.Equal(got.DeliveredIDs, []int64{10}) || got.DialogID != d.ID || !got.CreatedAt.Equal(t0) {
		t.Errorf("stored message = %+v", got)
	}
	checkUnread(t, s, d, 11, 1)
	checkUnread(t, s, d, 12, 1)
	checkUnread(t, s, d, 10, 0)
	dl, _ := s.Dialog(ctx, 1, d.ID)
	if dl.LastMessage != "first" || dl.LastMessageID != m1.ID || dl.LastMessageDateSent != 100 || dl.LastMessageUserID != 10 {
		t.Errorf("last message fields: %+v", dl)
	}
	// An older message does not become the last one; a newer one does.
	older := mkMessage(d, 11, 50, "older")
	newer := mkMessage(d, 12, 150, "")
	newer.Attachments = []history.Attachment{{"type": "video"}}
	save(t, s, older, newer)
	dl, _ = s.Dialog(ctx, 1, d.ID)
	if dl.LastMessageID != newer.ID || dl.LastMessageUserID != 12 || dl.LastMessage != "[video]" {
		t.Errorf("last message after two more: %+v", dl)
	}
	checkUnread(t, s, d, 10, 2)
	checkUnread(t, s, d, 11, 2)
	// A batch with a duplicate id and an unknown dialog stores the rest.
	good := mkMessage(d, 10, 160, "good")
	dup := mkMessage(d, 10, 170, "dup")
	dup.ID = m1.ID
	lost := mkMessage(d, 10, 180, "lost")
	lost.DialogID = newID()
	errs := s.SaveMessages(ctx, []*history.Message{dup, good, lost})
	if len(errs) != 3 || !errors.Is(errs[0], history.ErrDuplicate) || errs[1] != nil || !errors.Is(errs[2], history.ErrNotFound) {
		t.Fatalf("batch errors = %v", errs)
	}
	if got, _ := s.Message(ctx, 1, m1.ID, 0); got.Text != "first" {
		t.Errorf("a duplicate overwrote the message: %q", got.Text)
	}
	if _, err := s.Message(ctx, 1, good.ID, 0); err != nil {
		t.Errorf("the good message of the batch: %v", err)
	}
	checkUnread(t, s, d, 11, 3)
	if _, err := s.Message(ctx, 2, good.ID, 0); !errors.Is(err, history.ErrNotFound) {
		t.Errorf("message through another application: %v", err)
	}
}

// A batch mixing dialogs, applications, duplicates and a missing dialog
// stores each message or fails it on its own, with exact counters and last
// messages, as if its messages had been saved one by one.
func testSaveMessagesBatch(t *testing.T, s history.Store) {
	ctx := context.Background()
	p := mkDialog(t, s, 1, history.Private, 10, 11)
	g := mkDialog(t, s, 1, history.Group, 10, 11, 12)
	x := mkDialog(t, s, 2, history.Private, 20, 21)
	m0 := mkMessage(p, 10, 100, "stored before")
	save(t, s, m0)
	if err := s.HideDialog(ctx, 1, g.ID, 11); err != nil {
		t.Fatal(err)
	}
	lo, hi := newID(), newID()
	batch := []*history.Message{
		mkMessage(p, 10, 120, "p new"),      // 0: stored, then replaced as last by 10
		mkMessage(g, 10, 110, "g tie high"), // 1: last of g (same date_sent as 7, greater id)
		mkMessage(g, 11, 150, "dup"),        // 2: the id of m0
		mkMessage(p, 11, 90, "p older"),     // 3: stored, not last
		mkMessage(g, 10, 160, "lost"),       // 4: no such dialog
		mkMessage(g, 10, 170, "other app"),  // 5: g seen from application 2
		mkMessage(g, 12, 180, "dup in batch"),
		mkMessage(g, 12, 110, "g tie low"), // 7: stored, not last
		mkMessage(x, 20, 50, "x"),          // 8: application 2
		mkMessage(p, 10, 130, "p newest"),  // 9: the id of 4, which was not stored
	}
	batch[1].ID, batch[7].ID = hi, lo
	batch[2].ID = m0.ID
	batch[4].DialogID = newID()
	batch[5].AppID = 2
	batch[6].ID = batch[1].ID
	batch[9].ID = batch[4].ID
	errs := s.SaveMessages(ctx, batch)
	want := []error{nil, nil, history.ErrDuplicate, nil, history.ErrNotFound, history.ErrNotFound,
		history.ErrDuplicate, nil, nil, nil}
	if len(errs) != len(want) {
		t.Fatalf("errors = %v", errs)
	}
	for i, err := range errs {
		if !errors.Is(err, want[i]) || (want[i] == nil) != (err == nil) {
			t.Errorf("message %d (%q): error %v, want %v", i, batch[i].Text, err, want[i])
		}
	}
	for i, m := range batch {
		got, err := s.Message(ctx, m.AppID, m.ID, 0)
		switch {
		case want[i] == nil && (err != nil || got.Text != m.Text || got.DialogID != m.DialogID):
			t.Errorf("message %d: stored %+v, %v", i, got, err)
		case i == 2 && (err != nil || got.Text != m0.Text):
			t.Errorf("the duplicate of a stored message: %+v, %v", got, err)
		}
	}
	checkUnread(t, s, p, 11, 3)
	checkUnread(t, s, p, 10, 1)
	checkUnread(t, s, g, 10, 1)
	checkUnread(t, s, g, 11, 2)
	checkUnread(t, s, g, 12, 1)
	checkUnread(t, s, x, 21, 1)
	checkUnread(t, s, x, 20, 0)
	for _, c := range []struct {
		d    *history.Dialog
		last *history.Message
	}{{p, batch[9]}, {g, batch[1]}, {x, batch[8]}} {
		d, err := s.Dialog(ctx, c.d.AppID, c.d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d.LastMessageID != c.last.ID || d.LastMessage != c.last.Text || d.LastMessageDateSent != c.last.DateSent ||
			d.LastMessageUserID != c.last.SenderID {
			t.Errorf("dialog %s: last message %q %s at %d by %d, want %q", d.ID, d.LastMessage, d.LastMessageID,
				d.LastMessageDateSent, d.LastMessageUserID, c.last.Text)
		}
	}
	// The group is shown again to the user who hid it, and the lists
	// follow the last messages.
	ds, _, err := s.FindDialogs(ctx, 1, 11, history.DialogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if got := dialogIDs(ds); !slices.Equal(got, []string{p.ID, g.ID}) {
		t.Errorf("dialogs of 11 = %v, want %v", got, []string{p.ID, g.ID})
	}
	g2 := mkMessage(g, 11, 200, "g newest")
	save(t, s, g2)
	if ds, _, _ := s.FindDialogs(ctx, 1, 10, history.DialogQuery{}); !slices.Equal(dialogIDs(ds), []string{g.ID, p.ID}) {
		t.Errorf("dialogs of 10 after a newer message in g = %v", dialogIDs(ds))
	}
}

func testFindMessages(t *testing.T, s history.Store) {
	ctx := context.Background()
	d := mkDialog(t, s, 1, history.Private, 10, 11)
	var ms []*history.Message
	for i := range 6 {
		m := mkMessage(d, []int64{10, 11}[i%2], int64(100+i*10), fmt.Sprintf("message %d", i))
		if i == 2 {
			m.Text = "Find ME"
			m.Attachments = []history.Attachment{{"type": "image"}}
		}
		ms = append(ms, m)
	}
	save(t, s, ms...)
	find := func(q history.MessageQuery) []int {
		t.Helper()
		got, err := s.FindMessages(ctx, 1, d.ID, 10, q)
		if err != nil {
			t.Fatalf("FindMessages(%+v): %v", q, err)
		}
		var out []int
		for _, m := range got {
			out = append(out, slices.IndexFunc(ms, func(x *history.Message) bool { return x.ID == m.ID }))
		}
		return out
	}
	cond := func(field string, kind history.Kind, op history.Op, vals ...any) history.Cond {
		return history.Cond{Field: field, Kind: kind, Op: op, Values: vals}
	}
	cases := []struct {
		name string
		q    history.MessageQuery
		want []int
	}{
		{"all ascending", history.MessageQuery{}, []int{0, 1, 2, 3, 4, 5}},
		{"descending", history.MessageQuery{Sort: "date_sent", Desc: true}, []int{5, 4, 3, 2, 1, 0}},
		{"date_sent lt", history.MessageQuery{Conds: []history.Cond{cond("date_sent", history.KindInt, history.OpLt, int64(120))}}, []int{0, 1}},
		{"date_sent gte lte", history.MessageQuery{Conds: []history.Cond{cond("date_sent", history.KindInt, history.OpGte, int64(120)), cond("date_sent", history.KindInt, history.OpLte, int64(140))}}, []int{2, 3, 4}},
		{"sender", history.MessageQuery{Conds: []history.Cond{cond("sender_id", history.KindInt, history.OpEq, int64(11))}}, []int{1, 3, 5}},
		{"_id in", history.MessageQuery{Conds: []history.Cond{cond("_id", history.KindID, history.OpIn, ms[1].ID, ms[4].ID)}}, []int{1, 4}},
		{"_id nin", history.MessageQuery{Conds: []history.Cond{cond("_id", history.KindID, history.OpNin, ms[0].ID, ms[5].ID)}}, []int{1, 2, 3, 4}},
		{"text ctn", history.MessageQuery{Conds: []history.Cond{cond("message", history.KindString, history.OpContains, "find me")}}, []int{2}},
		{"attachment type", history.MessageQuery{Conds: []history.Cond{cond("attachments.type", history.KindStringArray, history.OpEq, "image")}}, []int{2}},
		{"recipient", history.MessageQuery{Conds: []history.Cond{cond("recipient_id", history.KindInt, history.OpEq, int64(10))}}, []int{1, 3, 5}},
		{"page", history.MessageQuery{Limit: 2, Skip: 3}, []int{3, 4}},
	}
	for _, tc := range cases {
		if got := find(tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func testMarks(t *testing.T, s history.Store) {
	ctx := context.Background()
	d := mkDialog(t, s, 1, history.Group, 10, 11, 12)
	var ms []*history.Message
	for i := range 5 {
		ms = append(ms, mkMessage(d, 10, int64(100+i), fmt.Sprint(i)))
	}
	// Two messages share a date_sent: MarkUpTo orders them by id.
	ms[3].DateSent = ms[2].DateSent
	save(t, s, ms...)
	checkUnread(t, s, d, 11, 5)
	n, err := s.MarkMessages(ctx, 1, d.ID, 11, []string{ms[0].ID, ms[1].ID}, history.Read)
	if err != nil || n != 2 {
		t.Fatalf("MarkMessages = %d, %v", n, err)
	}
	checkUnread(t, s, d, 11, 3)
	// Marking again changes nothing.
	if n, _ := s.MarkMessages(ctx, 1, d.ID, 11, []string{ms[0].ID}, history.Read); n != 0 {
		t.Errorf("re-marking counted %d", n)
	}
	checkUnread(t, s, d, 11, 3)
	got, _ := s.Message(ctx, 1, ms[0].ID, 0)
	if !slices.Equal(got.ReadIDs, []int64{10, 11}) || !slices.Equal(got.DeliveredIDs, []int64{10}) {
		t.Errorf("marks of message 0: read %v delivered %v", got.ReadIDs, got.DeliveredIDs)
	}
	// Delivered marks do not touch the counter.
	if n, _ := s.MarkMessages(ctx, 1, d.ID, 12, nil, history.Delivered); n != 5 {
		t.Errorf("delivered all = %d", n)
	}
	checkUnread(t, s, d, 12, 5)
	// The sender is no recipient: nothing to mark, nothing to count.
	if n, _ := s.MarkMessages(ctx, 1, d.ID, 10, nil, history.Read); n != 0 {
		t.Errorf("sender marked %d", n)
	}
	// Up to message 2 (which shares its time with 3, a later id).
	n, err = s.MarkUpTo(ctx, 1, d.ID, 12, ms[2].ID, history.Read)
	if err != nil || n != 3 {
		t.Fatalf("MarkUpTo = %d, %v", n, err)
	}
	checkUnread(t, s, d, 12, 2)
	got, _ = s.Message(ctx, 1, ms[3].ID, 0)
	if slices.Contains(got.ReadIDs, 12) {
		t.Error("MarkUpTo marked a later message with the same date_sent")
	}
	if _, err := s.MarkUpTo(ctx, 1, d.ID, 12, newID(), history.Read); !errors.Is(err, history.ErrNotFound) {
		t.Errorf("MarkUpTo an unknown message: %v", err)
	}
	// All of them.
	if n, _ := s.MarkMessages(ctx, 1, d.ID, 11, nil, history.Read); n != 3 {
		t.Errorf("read all = %d", n)
	}
	checkUnread(t, s, d, 11, 0)
	// Editing keeps marks and follows into the dialog's last message.
	if err := s.EditMessage(ctx, 1, ms[4].ID, "edited", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Message(ctx, 1, ms[4].ID, 0)
	if got.Text != "edited" || !got.UpdatedAt.Equal(t0.Add(time.Hour)) || !slices.Contains(got.ReadIDs, 11) {
		t.Errorf("after edit: %+v", got)
	}
	if dl, _ := s.Dialog(ctx, 1, d.ID); dl.LastMessage != "edited" {
		t.Errorf("last message after edit: %q", dl.LastMessage)
	}
	if err := s.EditMessage(ctx, 1, newID(), "x", t0); !errors.Is(err, history.ErrNotFound) {
		t.Errorf("editing an unknown message: %v", err)
	}
}

// testPageMarks: every message of a page carries its own marks, whether
// the messages' ids follow their dates (made from the same time, as the
// server and the QuickBlox SDKs make them) or a client chose them out of
// step, and a message outside the page lends it none of its own.
func testPageMarks(t *testing.T, s history.Store) {
	ctx := context.Background()
	d := mkDialog(t, s, 1, history.Group, 10, 11, 12)
	at := func(sec int64) string { return oid.New(time.Unix(sec, 0)) }
	// By date: a, b, c, e, f, x. The ids of a to e follow their dates; x's
	// was made right after a's (it falls between a's and b's) though x is
	// the newest by date; f's is older than all.
	idA := at(1000)
	idX := at(1000)
	order := []struct {
		name string
		id   string
		date int64
	}{{"a", idA, 1000}, {"b", at(1001), 1001}, {"c", at(1002), 1002}, {"e", at(1003), 1003}, {"f", at(900), 1004},
		{"x", idX, 5000}}
	byName := map[string]*history.Message{}
	var ms []*history.Message
	for _, o := range order {
		m := mkMessage(d, 10, o.date, o.name)
		m.ID = o.id
		byName[o.name] = m
		ms = append(ms, m)
	}
	save(t, s, ms...)
	for _, mark := range []struct {
		user  int64
		names []string
		mark  history.Mark
	}{{11, []string{"x", "b", "f"}, history.Read}, {12, []string{"x", "c"}, history.Delivered}} {
		var marked []string
		for _, n := range mark.names {
			marked = append(marked, byName[n].ID)
		}
		if _, err := s.MarkMessages(ctx, 1, d.ID, mark.user, marked, mark.mark); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][2][]int64{ // read, delivered
		"a": {{10}, {10}}, "b": {{10, 11}, {10}}, "c": {{10}, {10, 12}}, "e": {{10}, {10}},
		"f": {{10, 11}, {10}}, "x": {{10, 11}, {10, 12}},
	}
	for _, q := range []history.MessageQuery{
		{Sort: "date_sent", Limit: 3},                      // a b c: ids follow dates, x's lies in their range
		{Sort: "date_sent", Desc: true, Limit: 2, Skip: 2}, // e c: ids follow dates, falling
		{Sort: "date_sent", Desc: true, Limit: 3},          // x f e: out of step
		{Limit: 2, Conds: []history.Cond{{Field: "date_sent", Kind: history.KindInt, Op: history.OpNe, // a c
			Values: []any{int64(1001)}}}},
		{}, // all
	} {
		got, err := s.FindMessages(ctx, 1, d.ID, 10, q)
		if err != nil {
			t.Fatalf("FindMessages(%+v): %v", q, err)
		}
		for _, m := range got {
			w := want[m.Text]
			if !slices.Equal(m.ReadIDs, w[0]) || !slices.Equal(m.DeliveredIDs, w[1]) || !slices.Equal(m.Recipients, []int64{11, 12}) {
				t.Errorf("%+v: message %s read %v delivered %v recipients %v, want read %v delivered %v recipients [11 12]",
					q, m.Text, m.ReadIDs, m.DeliveredIDs, m.Recipients, w[0], w[1])
			}
		}
	}
}

func testHideAndDelete(t *testing.T, s history.Store) {
	ctx := context.Background()
	d := mkDialog(t, s, 1, history.Group, 10, 11, 12)
	var ms []*history.Message
	for i := range 4 {
		ms = append(ms, mkMessage(d, 10, int64(100+i), fmt.Sprint(i)))
	}
	save(t, s, ms...)
	if _, err := s.MarkMessages(ctx, 1, d.ID, 11, []string{ms[0].ID}, history.Read); err != nil {
		t.Fatal(err)
	}
	checkUnread(t, s, d, 11, 3)
	// Hiding a read and an unread message for 11: one less unread.
	done, err := s.HideMessages(ctx, 1, 11, []string{ms[0].ID, ms[1].ID, newID()})
	if err != nil || len(done) != 2 {
		t.Fatalf("HideMessages = %v, %v", done, err)
	}
	checkUnread(t, s, d, 11, 2)
	if _, err := s.Message(ctx, 1, ms[1].ID, 11); !errors.Is(err, history.ErrNotFound) {
		t.Errorf("hidden message visible to its hider: %v", err)
	}
	if _, err := s.Message(ctx, 1, ms[1].ID, 12); err != nil {
		t.Errorf("hidden message gone for others: %v", err)
	}
	if got, _ := s.FindMessages(ctx, 1, d.ID, 11, history.MessageQuery{}); len(got) != 2 {
		t.Errorf("11 sees %d messages, want 2", len(got))
	}
	count := func(viewer int64, q history.MessageQuery) int {
		t.Helper()
		n, err := s.CountMessages(ctx, 1, d.ID, viewer, q)
		if err != nil {
			t.Fatalf("CountMessages(%d, %+v): %v", viewer, q, err)
		}
		return n
	}
	after := history.MessageQuery{Conds: []history.Cond{{Field: "date_sent", Kind: history.KindInt, Op: history.OpGte,
		Values: []any{int64(101)}}}}
	if n := count(11, history.MessageQuery{}); n != 2 {
		t.Errorf("counted for 11, who deleted two of four: %d, want 2", n)
	}
	if n := count(11, after); n != 2 {
		t.Errorf("counted for 11 from 101 on: %d, want 2", n)
	}
	if n := count(12, history.MessageQuery{}); n != 4 {
		t.Errorf("counted for 12: %d, want 4", n)
	}
	// Marking a hidden message read does not count twice.
	if _, err := s.MarkMessages(ctx, 1, d.ID, 11, nil, history.Read); err != nil {
		t.Fatal(err)
	}
	checkUnread(t, s, d, 11, 0)
	// The sender may hide their own message.
	if done, _ := s.HideMessages(ctx, 1, 10, []string{ms[2].ID}); len(done) != 1 {
		t.Errorf("sender hide = %v", done)
	}
	if got, _ := s.FindMessages(ctx, 1, d.ID, 10, history.MessageQuery{}); len(got) != 3 {
		t.Errorf("sender sees %d messages, want 3", len(got))
	}
	if n := count(10, history.MessageQuery{}); n != 3 {
		t.Errorf("counted for the sender: %d, want 3", n)
	}
	// Deleting for everyone: counters drop, the last message moves back.
	checkUnread(t, s, d, 12, 4)
	done, err = s.DeleteMessages(ctx, 1, []string{ms[3].ID, ms[2].ID, newID()})
	if err != nil || len(done) != 2 {
		t.Fatalf("DeleteMessages = %v, %v", done, err)
	}
	checkUnread(t, s, d, 12, 2)
	if _, err := s.Message(ctx, 1, ms[3].ID, 0); !errors.Is(err, history.ErrNotFound) {
		t.Errorf("deleted message: %v", err)
	}
	if n := count(12, history.MessageQuery{}); n != 2 {
		t.Errorf("counted after a delete for everyone: %d, want 2", n)
	}
	dl, _ := s.Dialog(ctx, 1, d.ID)
	if dl.LastMessageID != ms[1].ID || dl.LastMessage != "1" || dl.LastMessageDateSent != 101 {
		t.Errorf("last message after delete: %+v", dl)
	}
	if _, err := s.DeleteMessages(ctx, 1, []string{ms[0].ID, ms[1].ID}); err != nil {
		t.Fatal(err)
	}
	dl, _ = s.Dialog(ctx, 1, d.ID)
	if dl.LastMessageID != "" || dl.LastMessage != "" || dl.LastMessageDateSent != 0 || dl.LastMessageUserID != 0 {
		t.Errorf("last message of an emptied dialog: %+v", dl)
	}
	counts, total, err := s.UnreadCounts(ctx, 1, 12, nil)
	if err != nil || total != 0 || counts[d.ID] != 0 {
		t.Errorf("UnreadCounts = %v %d %v", counts, total, err)
	}
}

func testDialogMembership(t *testing.T, s history.Store) {
	ctx := context.Background()
	d := mkDialog(t, s, 1, history.Group, 10, 11, 12)
	other := mkDialog(t, s, 1, history.Private, 11, 13)
	save(t, s, mkMessage(d, 10, 100, "a"), mkMessage(d, 10, 101, "b"), mkMessage(other, 13, 102, "c"))
	counts, total, _ := s.UnreadCounts(ctx, 1, 11, nil)
	if total != 3 || counts[d.ID] != 2 || counts[other.ID] != 1 {
		t.Errorf("UnreadCounts(all) = %v total %d", counts, total)
	}
	counts, total, _ = s.UnreadCounts(ctx, 1, 11, []string{other.ID})
	if total != 3 || len(counts) != 1 || counts[other.ID] != 1 {
		t.Errorf("UnreadCounts(one) = %v total %d (total covers every dialog)", counts, total)
	}
	// 11 leaves: its counter goes, and the dialog is no longer listed.
	d.Occupants = []int64{10, 12}
	if err := s.UpdateDialog(ctx, d); err != nil {
		t.Fatal(err)
	}
	counts, total, _ = s.UnreadCounts(ctx, 1, 11, nil)
	if total != 1 || counts[d.ID] != 0 {
		t.Errorf("after leaving: %v total %d", counts, total)
	}
	if ds, _, _ := s.FindDialogs(ctx, 1, 11, history.DialogQuery{}); len(ds) != 1 || ds[0].ID != other.ID {
		t.Errorf("after leaving, 11 lists %v", dialogIDs(ds))
	}
	// A message while away is not 11's; coming back recounts from the messages.
	save(t, s, mkMessage(d, 10, 103, "while away"))
	d.Occupants = []int64{10, 11, 12}
	if err := s.UpdateDialog(ctx, d); err != nil {
		t.Fatal(err)
	}
	checkUnread(t, s, d, 11, 2)
	checkUnread(t, s, d, 12, 3)
}

// Counters equal a recount after many concurrent writers and readers.
func testConcurrentCounters(t *testing.T, s history.Store) {
	ctx := context.Background()
	users := []int64{10, 11, 12, 13}
	d := mkDialog(t, s, 1, history.Group, users[0], users[1:]...)
	const writers, perWriter = 4, 25
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		ids []string
	)
	errc := make(chan error, 64)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sender := users[w]
			for i := range perWriter {
				m := mkMessageConcurrent(d, sender, int64(1000+i))
				if errs := s.SaveMessages(ctx, []*history.Message{m}); errs != nil {
					errc <- errs[0]
					return
				}
				mu.Lock()
				ids = append(ids, m.ID)
				mu.Unlock()
			}
		}()
	}
	for r := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(r), 7))
			user := users[r]
			for range 40 {
				mu.Lock()
				var pick string
				if len(ids) > 0 {
					pick = ids[rnd.IntN(len(ids))]
				}
				mu.Unlock()
				var err error
				switch {
				case pick == "":
				case rnd.IntN(4) == 0:
					_, err = s.MarkUpTo(ctx, 1, d.ID, user, pick, history.Read)
				case rnd.IntN(4) == 0:
					_, err = s.HideMessages(ctx, 1, user, []string{pick})
				case rnd.IntN(8) == 0:
					_, err = s.DeleteMessages(ctx, 1, []string{pick})
				default:
					_, err = s.MarkMessages(ctx, 1, d.ID, user, []string{pick}, history.Read)
				}
				if err != nil && !errors.Is(err, history.ErrNotFound) {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for _, u := range users {
		counts, _, err := s.UnreadCounts(ctx, 1, u, []string{d.ID})
		if err != nil {
			t.Fatal(err)
		}
		recount, err := s.RecountUnread(ctx, 1, d.ID, u)
		if err != nil {
			t.Fatal(err)
		}
		if counts[d.ID] != recount {
			t.Errorf("user %d: counter %d, recount %d", u, counts[d.ID], recount)
		}
	}
}

var concurrentIDs sync.Mutex

func mkMessageConcurrent(d *history.Dialog, sender, dateSent int64) *history.Message {
	concurrentIDs.Lock()
	defer concurrentIDs.Unlock()
	return mkMessage(d, sender, dateSent, "x")
}

// Every operator on every kind of dialog field, as the filter language
// defines it.
func testDialogQueryLanguage(t *testing.T, s history.Store) {
	ctx := context.Background()
	const me = int64(10)
	mk := func(typ history.DialogType, owner int64, name string, created time.Time, data map[string]string, occupants ...int64) *history.Dialog {
		t.Helper()
		d := &history.Dialog{ID: newID(), AppID: 1, Type: typ, OwnerID: owner, Name: name, Data: data,
			CreatedAt: created, UpdatedAt: created}
		if typ != history.PublicGroup {
			d.Occupants = append(slices.Clone(occupants), owner)
			slices.Sort(d.Occupants)
		}
		if typ != history.Private {
			d.RoomName = d.ID
		}
		if err := s.CreateDialog(ctx, d); err != nil {
			t.Fatalf("CreateDialog: %v", err)
		}
		return d
	}
	a := mk(history.Group, me, "Alpha", t0, map[string]string{"color": "red", "a.b": "x", "$x": "y", "size": "3"}, 11)
	b := mk(history.Group, 12, "beta", t0.Add(time.Hour), map[string]string{"color": "blue"}, me, 13)
	c := mk(history.Private, me, "", t0.Add(2*time.Hour), nil, 14)
	p := mk(history.PublicGroup, 15, "Public", t0.Add(3*time.Hour), nil)
	mk(history.Group, 12, "not mine", t0, map[string]string{"color": "red"}, 13)
	foreign := &history.Dialog{ID: newID(), AppID: 2, Type: history.Group, OwnerID: me, Occupants: []int64{me, 11},
		Name: "Alpha", RoomName: "x", CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateDialog(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	// b and c share a last message time; p has no message.
	save(t, s, mkMessage(a, 11, 100, "from eleven"), mkMessage(b, 12, 200, "B"), mkMessage(c, 14, 200, "C"),
		mkMessage(foreign, 11, 300, "elsewhere"))
	// Custom fields with any key come back as they were.
	if got, err := s.Dialog(ctx, 1, a.ID); err != nil || !reflect.DeepEqual(got.Data, a.Data) {
		t.Errorf("data of a = %v, %v; want %v", got.Data, err, a.Data)
	}
	cond := func(field string, kind history.Kind, op history.Op, vals ...any) history.Cond {
		return history.Cond{Field: field, Kind: kind, Op: op, Values: vals}
	}
	one := func(c history.Cond) history.DialogQuery { return history.DialogQuery{Conds: []history.Cond{c}} }
	const (
		i   = history.KindInt
		str = history.KindString
		id  = history.KindID
		tm  = history.KindTime
		arr = history.KindIntArray
	)
	// By default the newest last message first, then updated_at and _id
	// descending: c and b tie on both, c has the higher id.
	all := []string{c.ID, b.ID, a.ID, p.ID}
	cases := []struct {
		name string
		q    history.DialogQuery
		want []string
	}{
		{"default order", history.DialogQuery{}, all},
		{"type eq", one(cond("type", i, history.OpEq, int64(2))), []string{b.ID, a.ID}},
		{"type ne", one(cond("type", i, history.OpNe, int64(2))), []string{c.ID, p.ID}},
		{"type lt", one(cond("type", i, history.OpLt, int64(2))), []string{p.ID}},
		{"type lte", one(cond("type", i, history.OpLte, int64(2))), []string{b.ID, a.ID, p.ID}},
		{"type gt", one(cond("type", i, history.OpGt, int64(2))), []string{c.ID}},
		{"type gte", one(cond("type", i, history.OpGte, int64(2))), []string{c.ID, b.ID, a.ID}},
		{"type nin", one(cond("type", i, history.OpNin, int64(1), int64(3))), []string{b.ID, a.ID}},
		{"user_id", one(cond("user_id", i, history.OpEq, int64(12))), []string{b.ID}},
		{"name eq", one(cond("name", str, history.OpEq, "Alpha")), []string{a.ID}},
		{"name ctn", one(cond("name", str, history.OpContains, "LPH")), []string{a.ID}},
		{"name ctn quotes", one(cond("name", str, history.OpContains, ".*")), nil},
		{"name gt", one(cond("name", str, history.OpGt, "Public")), []string{b.ID}},
		{"photo eq", one(cond("photo", str, history.OpEq, "")), all},
		{"occupants eq", one(cond("occupants_ids", arr, history.OpEq, int64(13))), []string{b.ID}},
		{"occupants ne", one(cond("occupants_ids", arr, history.OpNe, int64(13))), []string{c.ID, a.ID, p.ID}},
		{"occupants in", one(cond("occupants_ids", arr, history.OpIn, int64(11), int64(14))), []string{c.ID, a.ID}},
		{"occupants nin", one(cond("occupants_ids", arr, history.OpNin, int64(11), int64(14))), []string{b.ID, p.ID}},
		{"occupants all", one(cond("occupants_ids", arr, history.OpAll, me, int64(12))), []string{b.ID}},
		{"occupants all repeated", one(cond("occupants_ids", arr, history.OpAll, int64(12), int64(12))), []string{b.ID}},
		{"data eq", one(cond("data.color", str, history.OpEq, "red")), []string{a.ID}},
		// A dialog without the field matches no comparison on it.
		{"data ne", one(cond("data.color", str, history.OpNe, "red")), []string{b.ID}},
		{"data nin", one(cond("data.color", str, history.OpNin, "green")), []string{b.ID, a.ID}},
		{"data in", one(cond("data.color", str, history.OpIn, "red", "blue")), []string{b.ID, a.ID}},
		{"data lt", one(cond("data.color", str, history.OpLt, "c")), []string{b.ID}},
		{"data gte", one(cond("data.color", str, history.OpGte, "r")), []string{a.ID}},
		{"data ctn", one(cond("data.color", str, history.OpContains, "LU")), []string{b.ID}},
		{"data key with a dot", one(cond("data.a.b", str, history.OpEq, "x")), []string{a.ID}},
		{"data key with a dollar", one(cond("data.$x", str, history.OpEq, "y")), []string{a.ID}},
		{"data missing", one(cond("data.nothing", str, history.OpNe, "x")), nil},
		{"last message date", one(cond("last_message_date_sent", i, history.OpEq, int64(200))), []string{c.ID, b.ID}},
		{"last message user", one(cond("last_message_user_id", i, history.OpIn, int64(11), int64(14))), []string{c.ID, a.ID}},
		{"last message text", one(cond("last_message", str, history.OpContains, "eleven")), []string{a.ID}},
		{"created_at gt", one(cond("created_at", tm, history.OpGt, t0.Unix())), []string{c.ID, b.ID, p.ID}},
		{"created_at lte", one(cond("created_at", tm, history.OpLte, t0.Add(time.Hour).Unix())), []string{b.ID, a.ID}},
		{"updated_at eq", one(cond("updated_at", tm, history.OpEq, t0.Add(3*time.Hour).Unix())), []string{p.ID}},
		{"_id in", one(cond("_id", id, history.OpIn, a.ID, c.ID)), []string{c.ID, a.ID}},
		{"_id lt", one(cond("_id", id, history.OpLt, b.ID)), []string{a.ID}},
		{"two conditions", history.DialogQuery{Conds: []history.Cond{cond("type", i, history.OpEq, int64(2)),
			cond("occupants_ids", arr, history.OpIn, int64(11))}}, []string{a.ID}},
		// Byte order: upper case before lower case, "" first.
		{"sort name", history.DialogQuery{Sort: "name"}, []string{c.ID, a.ID, p.ID, b.ID}},
		{"sort type desc, ties by _id", history.DialogQuery{Sort: "type", Desc: true}, []string{c.ID, b.ID, a.ID, p.ID}},
		{"sort user_id, ties by _id", history.DialogQuery{Sort: "user_id"}, []string{a.ID, c.ID, b.ID, p.ID}},
		{"sort _id desc", history.DialogQuery{Sort: "_id", Desc: true}, []string{p.ID, c.ID, b.ID, a.ID}},
		{"sort created_at desc", history.DialogQuery{Sort: "created_at", Desc: true}, []string{p.ID, c.ID, b.ID, a.ID}},
		{"page", history.DialogQuery{Sort: "_id", Limit: 2, Skip: 1}, []string{b.ID, c.ID}},
		{"past the end", history.DialogQuery{Skip: 4}, nil},
	}
	for _, tc := range cases {
		ds, total, err := s.FindDialogs(ctx, 1, me, tc.q)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		wantTotal := len(tc.want)
		if tc.q.Limit > 0 || tc.q.Skip > 0 {
			wantTotal = len(all)
		}
		if got := dialogIDs(ds); !slices.Equal(got, tc.want) || total != wantTotal {
			t.Errorf("%s: %v (total %d), want %v (total %d)", tc.name, got, total, tc.want, wantTotal)
		}
		if tc.q.Limit == 0 && tc.q.Skip == 0 {
			tc.q.Count = true
			if ds, n, err := s.FindDialogs(ctx, 1, me, tc.q); err != nil || n != wantTotal || ds != nil {
				t.Errorf("%s counted: %d, %v, %v", tc.name, n, ds, err)
			}
		}
	}
	// Unread counts stay within the application.
	counts, total, err := s.UnreadCounts(ctx, 1, 11, nil)
	if err != nil || total != 0 || len(counts) != 1 || counts[a.ID] != 0 {
		t.Errorf("UnreadCounts(app 1, 11) = %v total %d, %v", counts, total, err)
	}
	counts, total, err = s.UnreadCounts(ctx, 2, me, nil)
	if err != nil || total != 1 || !reflect.DeepEqual(counts, map[string]int{foreign.ID: 1}) {
		t.Errorf("UnreadCounts(app 2, 10) = %v total %d, %v", counts, total, err)
	}
	if ds, _, _ := s.FindDialogs(ctx, 2, me, history.DialogQuery{}); !slices.Equal(dialogIDs(ds), []string{foreign.ID}) ||
		ds[0].UnreadCount != 1 {
		t.Errorf("FindDialogs(app 2) = %v", dialogIDs(ds))
	}
}

// Every operator on every kind of message field.
func testMessageQueryLanguage(t *testing.T, s history.Store) {
	ctx := context.Background()
	d := mkDialog(t, s, 1, history.Group, 10, 11)
	var ms []*history.Message
	add := func(sender, dateSent int64, text string, atts ...history.Attachment) {
		m := mkMessage(d, sender, dateSent, text)
		m.Attachments = atts
		m.CreatedAt = t0.Add(time.Duration(len(ms)) * time.Minute)
		m.UpdatedAt = t0.Add(time.Duration(10-len(ms)) * time.Minute)
		ms = append(ms, m)
	}
	add(10, 100, "Hello World", history.Attachment{"type": "image"}, history.Attachment{"type": "image"})
	add(11, 110, "", history.Attachment{"type": "video", "url": "v"})
	add(10, 110, "hello")
	add(11, 120, "", history.Attachment{"type": "image"}, history.Attachment{"type": "audio"})
	add(10, 130, "", history.Attachment{"url": "no type", "content-type": "x/y", "a.b": "1"})
	ms[2].Custom = map[string]string{"x.y": "1", "$k": "2", "": "3", "%": "4", "%2E": "5", "plain": "6"}
	save(t, s, ms...)
	for _, i := range []int{2, 4} {
		got, err := s.Message(ctx, 1, ms[i].ID, 0)
		if err != nil || !reflect.DeepEqual(got.Custom, ms[i].Custom) || !reflect.DeepEqual(got.Attachments, ms[i].Attachments) {
			t.Errorf("message %d: %+v, %v", i, got, err)
		}
	}
	cond := func(field string, kind history.Kind, op history.Op, vals ...any) history.Cond {
		return history.Cond{Field: field, Kind: kind, Op: op, Values: vals}
	}
	one := func(c history.Cond) history.MessageQuery { return history.MessageQuery{Conds: []history.Cond{c}} }
	const (
		i   = history.KindInt
		str = history.KindString
		id  = history.KindID
		tm  = history.KindTime
		arr = history.KindStringArray
	)
	cases := []struct {
		name string
		q    history.MessageQuery
		want []int
	}{
		// date_sent ascending, ties (1 and 2) by _id.
		{"default order", history.MessageQuery{}, []int{0, 1, 2, 3, 4}},
		{"attachment eq", one(cond("attachments.type", arr, history.OpEq, "image")), []int{0, 3}},
		{"attachment ne", one(cond("attachments.type", arr, history.OpNe, "image")), []int{1, 2, 4}},
		{"attachment in", one(cond("attachments.type", arr, history.OpIn, "video", "audio")), []int{1, 3}},
		{"attachment nin", one(cond("attachments.type", arr, history.OpNin, "image", "video")), []int{2, 4}},
		// Every type present: two images are not an image and an audio.
		{"attachment all", one(cond("attachments.type", arr, history.OpAll, "image", "audio")), []int{3}},
		{"attachment all repeated", one(cond("attachments.type", arr, history.OpAll, "audio", "audio")), []int{3}},
		{"text ctn", one(cond("message", str, history.OpContains, "HELLO")), []int{0, 2}},
		{"text eq empty", one(cond("message", str, history.OpEq, "")), []int{1, 3, 4}},
		{"text ne empty", one(cond("message", str, history.OpNe, "")), []int{0, 2}},
		{"text gt", one(cond("message", str, history.OpGt, "a")), []int{2}},
		{"date_sent eq", one(cond("date_sent", i, history.OpEq, int64(110))), []int{1, 2}},
		{"date_sent ne", one(cond("date_sent", i, history.OpNe, int64(110))), []int{0, 3, 4}},
		{"date_sent in", one(cond("date_sent", i, history.OpIn, int64(100), int64(130))), []int{0, 4}},
		{"date_sent nin", one(cond("date_sent", i, history.OpNin, int64(100), int64(130))), []int{1, 2, 3}},
		{"date_sent gt", one(cond("date_sent", i, history.OpGt, int64(110))), []int{3, 4}},
		{"sender ne", one(cond("sender_id", i, history.OpNe, int64(10))), []int{1, 3}},
		{"recipient", one(cond("recipient_id", i, history.OpEq, int64(0))), []int{0, 1, 2, 3, 4}},
		{"created_at gte", one(cond("created_at", tm, history.OpGte, t0.Add(3*time.Minute).Unix())), []int{3, 4}},
		{"updated_at lt", one(cond("updated_at", tm, history.OpLt, t0.Add(8*time.Minute).Unix())), []int{3, 4}},
		{"_id gt", one(cond("_id", id, history.OpGt, ms[2].ID)), []int{3, 4}},
		{"_id ne", one(cond("_id", id, history.OpNe, ms[2].ID)), []int{0, 1, 3, 4}},
		{"sort date_sent desc", history.MessageQuery{Sort: "date_sent", Desc: true}, []int{4, 3, 2, 1, 0}},
		{"sort updated_at", history.MessageQuery{Sort: "updated_at"}, []int{4, 3, 2, 1, 0}},
		{"sort created_at desc", history.MessageQuery{Sort: "created_at", Desc: true}, []int{4, 3, 2, 1, 0}},
		{"sort _id desc", history.MessageQuery{Sort: "_id", Desc: true}, []int{4, 3, 2, 1, 0}},
		{"page", history.MessageQuery{Sort: "date_sent", Desc: true, Limit: 2, Skip: 2}, []int{2, 1}},
	}
	for _, tc := range cases {
		got, err := s.FindMessages(ctx, 1, d.ID, 11, tc.q)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var idx []int
		for _, m := range got {
			idx = append(idx, slices.IndexFunc(ms, func(x *history.Message) bool { return x.ID == m.ID }))
		}
		if !slices.Equal(idx, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, idx, tc.want)
		}
		// Counting selects the same messages, limit and skip aside.
		want := len(tc.want)
		if tc.q.Limit > 0 || tc.q.Skip > 0 {
			want = len(ms)
		}
		if n, err := s.CountMessages(ctx, 1, d.ID, 11, tc.q); err != nil || n != want {
			t.Errorf("%s counted: %d, %v; want %d", tc.name, n, err, want)
		}
	}
	if got, err := s.FindMessages(ctx, 2, d.ID, 11, history.MessageQuery{}); err != nil || len(got) != 0 {
		t.Errorf("messages through another application: %d, %v", len(got), err)
	}
	if n, err := s.CountMessages(ctx, 2, d.ID, 11, history.MessageQuery{}); err != nil || n != 0 {
		t.Errorf("messages counted through another application: %d, %v", n, err)
	}
	// Operators that do not apply are errors, not empty results.
	for _, c := range []history.Cond{
		cond("attachments.type", arr, history.OpLt, "x"),
		cond("attachments.type", arr, history.OpContains, "x"),
	} {
		if _, err := s.FindMessages(ctx, 1, d.ID, 11, history.MessageQuery{Conds: []history.Cond{c}}); err == nil {
			t.Errorf("%s[%s] accepted", c.Field, c.Op)
		}
		if _, err := s.CountMessages(ctx, 1, d.ID, 11, history.MessageQuery{Conds: []history.Cond{c}}); err == nil {
			t.Errorf("%s[%s] accepted by CountMessages", c.Field, c.Op)
		}
	}
}

// ctn matches whatever the case of any letter, not only of ASCII ones.
func testContainsFoldsCase(t *testing.T, s history.Store) {
	ctx := context.Background()
	g := mkDialog(t, s, 1, history.Group, 10, 11)
	g.Name = "Ärger im BÜRO"
	g.Data = map[string]string{"city": "Zürich"}
	if err := s.UpdateDialog(ctx, g); err != nil {
		t.Fatal(err)
	}
	other := mkDialog(t, s, 1, history.Group, 10, 11) // named "d"
	m1, m2 := mkMessage(g, 11, 100, "Grüße aus MÜNCHEN"), mkMessage(g, 10, 101, "ΣΟΦΊΑ")
	save(t, s, m1, m2, mkMessage(other, 10, 102, "Munchen"))
	for _, c := range []struct {
		field, value string
		want         []string
	}{
		{"name", "ärger", []string{g.ID}},
		{"name", "büro", []string{g.ID}},
		{"name", "äRGER IM bÜro", []string{g.ID}},
		{"name", "arger", nil},
		{"data.city", "ZÜRICH", []string{g.ID}},
		{"last_message", "σοφία", []string{g.ID}},
	} {
		q := history.DialogQuery{Conds: []history.Cond{{Field: c.field, Kind: history.KindString, Op: history.OpContains,
			Values: []any{c.value}}}}
		ds, total, err := s.FindDialogs(ctx, 1, 10, q)
		if err != nil || !slices.Equal(dialogIDs(ds), c.want) || total != len(c.want) {
			t.Errorf("%s ctn %q: %v (total %d), %v; want %v", c.field, c.value, dialogIDs(ds), total, err, c.want)
		}
	}
	for _, c := range []struct {
		value string
		want  []string
	}{
		{"MÜNCHEN", []string{m1.ID}},
		{"münchen", []string{m1.ID}},
		{"GRÜSSE", nil}, // folding is letter by letter: ß is not ss
		{"grüße", []string{m1.ID}},
		{"σοφία", []string{m2.ID}},
	} {
		q := history.MessageQuery{Conds: []history.Cond{{Field: "message", Kind: history.KindString, Op: history.OpContains,
			Values: []any{c.value}}}}
		ms, err := s.FindMessages(ctx, 1, g.ID, 10, q)
		var got []string
		for _, m := range ms {
			got = append(got, m.ID)
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("message ctn %q: %v, %v; want %v", c.value, got, err, c.want)
		}
	}
}

// Many markers of the same user and message at once: each message is
// newly read (and delivered) exactly once, whoever marks it, and deleters
// racing markers leave the counters equal to a recount.
func testConcurrentMarkers(t *testing.T, s history.Store) {
	ctx := context.Background()
	d := mkDialog(t, s, 1, history.Group, 10, 11, 12)
	e := mkDialog(t, s, 1, history.Group, 10, 11, 12)
	const n = 16
	var inD, inE []string
	var msgs []*history.Message
	for i := range n {
		md, me := mkMessage(d, 10, int64(100+i), "d"), mkMessage(e, 10, int64(100+i), "e")
		msgs = append(msgs, md, me)
		inD, inE = append(inD, md.ID), append(inE, me.ID)
	}
	save(t, s, msgs...)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		read, dlv int
	)
	errc := make(chan error, 64)
	count := func(total *int, k int, err error) {
		mu.Lock()
		defer mu.Unlock()
		*total += k
		if err != nil && !errors.Is(err, history.ErrNotFound) {
			errc <- err
		}
	}
	for g := range 6 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(g), 3))
			order := slices.Clone(inD)
			rnd.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			for len(order) > 0 {
				k := min(len(order), 1+rnd.IntN(4))
				var got int
				var err error
				switch g {
				case 0:
					got, err = s.MarkUpTo(ctx, 1, d.ID, 11, order[0], history.Read)
				case 1:
					got, err = s.MarkMessages(ctx, 1, d.ID, 11, order[:k], history.Delivered)
					count(&dlv, got, err)
					order = order[k:]
					continue
				case 2:
					got, err = s.MarkUpTo(ctx, 1, d.ID, 11, order[0], history.Delivered)
					count(&dlv, got, err)
					order = order[1:]
					continue
				default:
					got, err = s.MarkMessages(ctx, 1, d.ID, 11, order[:k], history.Read)
				}
				count(&read, got, err)
				if g == 0 {
					k = 1
				}
				order = order[k:]
			}
		})
	}
	// In e, user 11 and 12 mark, hide and delete at once.
	for g := range 4 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(g), 5))
			var dummy int
			for range 12 {
				pick := inE[rnd.IntN(len(inE))]
				user := int64(11 + g%2)
				var k int
				var err error
				switch rnd.IntN(5) {
				case 0:
					_, err = s.DeleteMessages(ctx, 1, []string{pick})
				case 1:
					_, err = s.HideMessages(ctx, 1, user, []string{pick})
				case 2:
					k, err = s.MarkUpTo(ctx, 1, e.ID, user, pick, history.Read)
				default:
					k, err = s.MarkMessages(ctx, 1, e.ID, user, []string{pick}, history.Read)
				}
				count(&dummy, k, err)
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if read != n || dlv != n {
		t.Errorf("markers of %d messages counted %d newly read and %d newly delivered", n, read, dlv)
	}
	checkUnread(t, s, d, 11, 0)
	checkUnread(t, s, d, 12, n)
	for _, u := range []int64{11, 12} {
		counts, _, err := s.UnreadCounts(ctx, 1, u, []string{e.ID})
		if err != nil {
			t.Fatal(err)
		}
		recount, err := s.RecountUnread(ctx, 1, e.ID, u)
		if err != nil {
			t.Fatal(err)
		}
		if counts[e.ID] != recount {
			t.Errorf("user %d in e: counter %d, recount %d", u, counts[e.ID], recount)
		}
	}
	for _, id := range inD {
		m, err := s.Message(ctx, 1, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(m.ReadIDs, []int64{10, 11}) || !slices.Equal(m.DeliveredIDs, []int64{10, 11}) {
			t.Errorf("message %s: read %v delivered %v", id, m.ReadIDs, m.DeliveredIDs)
		}
	}
}
