package history_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"chatd/account"
	"chatd/history"
	"chatd/internal/oid"
	"chatd/store/sqlite"
)

type fixture struct {
	svc   *history.Service
	app   int64
	users []int64 // alice, bob, carol, dave

	db       *sqlite.DB
	accounts *account.Service
	log      *slog.Logger
}

func setup(t *testing.T, cfg history.Config) *fixture {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "chatd.db"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	accounts := account.NewService(db.Accounts(), account.Config{Iterations: 16}, log)
	ctx := context.Background()
	app, err := accounts.CreateApp(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{app: app.ID, db: db, accounts: accounts, log: log}
	for _, login := range []string{"alice", "bob", "carol", "dave"} {
		u, err := accounts.CreateUserAdmin(ctx, app.ID, login, "password-"+login)
		if err != nil {
			t.Fatal(err)
		}
		f.users = append(f.users, u.ID)
	}
	f.svc = history.NewService(db.History(), accounts, cfg, log)
	t.Cleanup(func() { f.svc.Close(); db.Close() })
	return f
}

func TestCreateDialogRules(t *testing.T) {
	f := setup(t, history.Config{})
	ctx := context.Background()
	alice, bob, carol := f.users[0], f.users[1], f.users[2]
	p, created, err := f.svc.CreateDialog(ctx, f.app, alice, history.DialogInput{Type: history.Private, Occupants: []int64{bob, alice}})
	if err != nil || !created || !slices.Equal(p.Occupants, sortedPair(alice, bob)) || p.RoomName != "" {
		t.Fatalf("private: %+v %v %v", p, created, err)
	}
	again, created, err := f.svc.CreateDialog(ctx, f.app, bob, history.DialogInput{Type: history.Private, Occupants: []int64{alice}})
	if err != nil || created || again.ID != p.ID {
		t.Errorf("the pair's second create returned %v %v %v, want the existing dialog", again, created, err)
	}
	for _, bad := range []history.DialogInput{
		{Type: 7, Name: "x"},
		{Type: history.Private, Occupants: []int64{bob, carol}},
		{Type: history.Private},
		{Type: history.Group, Occupants: []int64{bob}},
		{Type: history.Group, Name: "x", Occupants: []int64{999999}},
		{Type: history.PublicGroup},
	} {
		var ve *history.ValidationError
		if _, _, err := f.svc.CreateDialog(ctx, f.app, alice, bad); !errors.As(err, &ve) {
			t.Errorf("CreateDialog(%+v) = %v, want a validation error", bad, err)
		}
	}
	g, _, err := f.svc.CreateDialog(ctx, f.app, alice, history.DialogInput{Type: history.Group, Name: " Team ",
		Occupants: []int64{carol, bob, bob}, Data: map[string]string{"class_name": "Extra"}})
	if err != nil || g.Name != "Team" || g.RoomName != g.ID || g.JoinRequired || g.OwnerID != alice ||
		!slices.Equal(g.Occupants, sortedIDs(alice, bob, carol)) {
		t.Errorf("group: %+v %v", g, err)
	}
	pub, _, err := f.svc.CreateDialog(ctx, f.app, alice, history.DialogInput{Type: history.PublicGroup, Name: "Lobby", Occupants: []int64{bob}})
	if err != nil || len(pub.Occupants) != 0 || !pub.JoinRequired {
		t.Errorf("public: %+v %v", pub, err)
	}
}

func sortedPair(a, b int64) []int64 { return sortedIDs(a, b) }

func sortedIDs(ids ...int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

func TestUpdateDialogPermissions(t *testing.T) {
	f := setup(t, history.Config{})
	ctx := context.Background()
	alice, bob, carol, dave := f.users[0], f.users[1], f.users[2], f.users[3]
	g, _, _ := f.svc.CreateDialog(ctx, f.app, alice, history.DialogInput{Type: history.Group, Name: "g", Occupants: []int64{bob, carol}})
	// Any occupant may add.
	if _, err := f.svc.UpdateDialog(ctx, f.app, bob, g.ID, history.DialogUpdate{PushAll: []int64{dave}}); err != nil {
		t.Fatalf("occupant adds: %v", err)
	}
	// An occupant may not remove someone else…
	if _, err := f.svc.UpdateDialog(ctx, f.app, bob, g.ID, history.DialogUpdate{PullAll: []int64{carol}}); !errors.Is(err, history.ErrForbidden) {
		t.Errorf("occupant removes another: %v", err)
	}
	// …but may leave.
	d, err := f.svc.UpdateDialog(ctx, f.app, bob, g.ID, history.DialogUpdate{PullAll: []int64{bob}})
	if err != nil || d.HasOccupant(bob) {
		t.Errorf("occupant leaves: %+v %v", d, err)
	}
	// Now bob is out and may do nothing.
	if _, err := f.svc.UpdateDialog(ctx, f.app, bob, g.ID, history.DialogUpdate{Name: ptr("mine")}); !errors.Is(err, history.ErrForbidden) {
		t.Errorf("non-occupant renames: %v", err)
	}
	// The owner removes anyone.
	d, err = f.svc.UpdateDialog(ctx, f.app, alice, g.ID, history.DialogUpdate{PullAll: []int64{carol}, Name: ptr("renamed")})
	if err != nil || d.HasOccupant(carol) || d.Name != "renamed" || !slices.Equal(d.Occupants, sortedIDs(alice, dave)) {
		t.Errorf("owner removes: %+v %v", d, err)
	}
	// Only the owner changes is_join_required.
	if _, err := f.svc.UpdateDialog(ctx, f.app, dave, g.ID, history.DialogUpdate{JoinRequired: ptrBool(true)}); !errors.Is(err, history.ErrForbidden) {
		t.Errorf("occupant changes join rule: %v", err)
	}
	// The last occupant leaving deletes the group.
	if _, err := f.svc.UpdateDialog(ctx, f.app, alice, g.ID, history.DialogUpdate{PullAll: []int64{alice, dave}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.DialogAny(ctx, f.app, g.ID); !errors.Is(err, history.ErrNotFound) {
		t.Errorf("empty group survived: %v", err)
	}
	// A public group is changed by its owner only; a private dialog's
	// occupants never change.
	pub, _, _ := f.svc.CreateDialog(ctx, f.app, alice, history.DialogInput{Type: history.PublicGroup, Name: "p"})
	if _, err := f.svc.UpdateDialog(ctx, f.app, bob, pub.ID, history.DialogUpdate{Name: ptr("x")}); !errors.Is(err, history.ErrForbidden) {
		t.Errorf("non-owner updates a public group: %v", err)
	}
	p, _, _ := f.svc.CreateDialog(ctx, f.app, alice, history.DialogInput{Type: history.Private, Occupants: []int64{bob}})
	var ve *history.ValidationError
	if _, err := f.svc.UpdateDialog(ctx, f.app, alice, p.ID, history.DialogUpdate{PushAll: []int64{carol}}); !errors.As(err, &ve) {
		t.Errorf("adding to a private dialog: %v", err)
	}
}

func ptr(s string) *string { return &s }
func ptrBool(b bool) *bool { return &b }
func TestDeleteDialogs(t *testing.T) {
	f := setup(t, history.Config{})
	ctx := context.Background()
	alice, bob, carol := f.users[0], f.users[1], f.users[2]
	g, _, _ := f.svc.CreateDialog(ctx, f.app, alice, history.DialogInput{Type: history.Group, Name: "g", Occupants: []int64{bob, carol}})
	p, _, _ := f.svc.CreateDialog(ctx, f.app, alice, history.DialogInput{Type: history.Private, Occupants: []int64{bob}})
	unknown := oid.New(time.Now())
	res, err := f.svc.DeleteDialogs(ctx, f.app, bob, []string{g.ID, p.ID, unknown}, true)
	if err != nil || !slices.Equal(res.WrongPermissions, []string{g.ID, p.ID}) || !slices.Equal(res.NotFound, []string{unknown}) {
		t.Errorf("bob forcing: %+v %v", res, err)
	}
	// Without force bob leaves the group and hides the private dialog.
	res, err = f.svc.DeleteDialogs(ctx, f.app, bob, []string{g.ID, p.ID}, false)
	if err != nil || len(res.Deleted) != 2 {
		t.Fatalf("bob deleting for himself: %+v %v", res, err)
	}
	if d, _ := f.svc.DialogAny(ctx, f.app, g.ID); d.HasOccupant(bob) {
		t.Error("bob still in the group")
	}
	ds, _, _ := f.svc.FindDialogs(ctx, f.app, bob, history.DialogQuery{})
	if len(ds) != 0 {
		t.Errorf("bob still lists %d dialogs", len(ds))
	}
	if ds, _, _ := f.svc.FindDialogs(ctx, f.app, alice, history.DialogQuery{}); len(ds) != 2 {
		t.Errorf("alice lists %d dialogs, want 2", len(ds))
	}
	res, err = f.svc.DeleteDialogs(ctx, f.app, alice, []string{g.ID}, true)
	if err != nil || !slices.Equal(res.Deleted, []string{g.ID}) {
		t.Errorf("owner forcing: %+v %v", res, err)
	}
	if _, err := f.svc.DialogAny(ctx, f.app, g.ID); !errors.Is(err, history.ErrNotFound) {
		t.Errorf("group after force delete: %v", err)
	}
}

func TestRecordRules(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	f := setup(t, history.Config{Now: func() time.Time { return now }})
	ctx := context.Background()
	alice, bob, carol := f.users[0], f.users[1], f.users[2]
	// First message of a pair creates their dialog.
	m, d, err := f.svc.Record(ctx, history.NewMessage{App: f.app, SenderID: alice, RecipientID: bob, Text: "hi",
		DateSent: float64(now.Unix() - 3)})
	if err != nil || d.Type != history.Private || m.RecipientID != bob || m.DateSent != now.Unix()-3 {
		t.Fatalf("first message: %+v %+v %v", m, d, err)
	}
	// A client clock more than 5 s off is replaced by the server's.
	m2, _, err := f.svc.Record(ctx, history.NewMessage{App: f.app, SenderID: bob, DialogID: d.ID, Text: "x",
		DateSent: float64(now.Unix() - 60)})
	if err != nil || m2.DateSent != now.Unix() {
		t.Errorf("skewed date_sent kept: %+v %v", m2, err)
	}
	// The same client id again is the same message (idempotent retries).
	id := oid.New(now)
	first := f.svc.Begin(ctx, history.NewMessage{App: f.app, SenderID: alice, DialogID: d.ID, ID: id, Text: "once"})
	a, _, err := first.Wait()
	if err != nil || first.Repeated() {
		t.Fatalf("first: %v, repeated %v", err, first.Repeated())
	}
	rec := f.svc.Begin(ctx, history.NewMessage{App: f.app, SenderID: alice, DialogID: d.ID, ID: id, Text: "once"})
	b, _, err := rec.Wait()
	if err != nil || b.ID != a.ID || !rec.Repeated() {
		t.Errorf("retry: %+v %v, repeated %v", b, err, rec.Repeated())
	}
	// The same id with another text is not a retry: the id is taken.
	if _, _, err := f.svc.Record(ctx, history.NewMessage{App: f.app, SenderID: alice, DialogID: d.ID, ID: id, Text: "twice?"}); !errors.Is(err, history.ErrDuplicate) {
		t.Errorf("the id again with another text: %v", err)
	}
	if counts, _, _ := f.svc.UnreadCounts(ctx, f.app, bob, []string{d.ID}); counts[d.ID] != 2 {
		t.Errorf("bob's unread %d, want 2 (the retry counts once)", counts[d.ID])
	}
	// Someone else reusing the id is refused.
	if _, _, err := f.svc.Record(ctx, history.NewMessage{App: f.app, SenderID: bob, DialogID: d.ID, ID: id, Text: "steal"}); !errors.Is(err, history.ErrDuplicate) {
		t.Errorf("id reuse by another sender: %v", err)
	}
	// Outsiders cannot post.
	if _, _, err := f.svc.Record(ctx, history.NewMessage{App: f.app, SenderID: carol, DialogID: d.ID, Text: "x"}); !errors.Is(err, history.ErrForbidden) {
		t.Errorf("outsider posts: %v", err)
	}
	// Anyone may post to a public group; it keeps no unread counts.
	pub, _, _ := f.svc.CreateDialog(ctx, f.app, alice, history.DialogInput{Type: history.PublicGroup, Name: "p"})
	if _, _, err := f.svc.Record(ctx, history.NewMessage{App: f.app, SenderID: carol, DialogID: pub.ID, Text: "hello all"}); err != nil {
		t.Errorf("posting to a public group: %v", err)
	}
	// Listing marks read unless told not to.
	msgs, err := f.svc.Messages(ctx, f.app, bob, d.ID, history.MessageQuery{}, false)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("list: %d %v", len(msgs), err)
	}
	if counts, _, _ := f.svc.UnreadCounts(ctx, f.app, bob, []string{d.ID}); counts[d.ID] != 2 {
		t.Errorf("mark_as_read=0 changed the count: %d", counts[d.ID])
	}
	msgs, _ = f.svc.Messages(ctx, f.app, bob, d.ID, history.MessageQuery{}, true)
	for _, m := range msgs {
		if m.SenderID == alice && !slices.Contains(m.ReadIDs, bob) {
			t.Errorf("listed message %s not marked read", m.ID)
		}
	}
	if counts, _, _ := f.svc.UnreadCounts(ctx, f.app, bob, []string{d.ID}); counts[d.ID] != 0 {
		t.Errorf("after listing, unread %d", counts[d.ID])
	}
	// What listing marked read is stored read and delivered: listed again,
	// and one by one.
	msgs, _ = f.svc.Messages(ctx, f.app, bob, d.ID, history.MessageQuery{}, false)
	for _, m := range msgs {
		if m.SenderID != alice {
			continue
		}
		if !slices.Contains(m.ReadIDs, bob) || !slices.Contains(m.DeliveredIDs, bob) {
			t.Errorf("listed again, %s has read %v, delivered %v; want bob in both", m.ID, m.ReadIDs, m.DeliveredIDs)
		}
		if one, err := f.svc.Message(ctx, f.app, bob, m.ID); err != nil || !slices.Contains(one.DeliveredIDs, bob) {
			t.Errorf("Message(%s) delivered %v, %v; want bob", m.ID, one.DeliveredIDs, err)
		}
	}
}

// Many concurrent senders and readers on one dialog: the counters equal a
// recount of the messages at the end, for every occupant.
func TestCountersUnderConcurrency(t *testing.T) {
	f := setup(t, history.Config{})
	ctx := context.Background()
	owner := f.users[0]
	d, _, err := f.svc.CreateDialog(ctx, f.app, owner, history.DialogInput{Type: history.Group, Name: "busy", Occupants: f.users[1:]})
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		sent []string
	)
	errc := make(chan error, 100)
	for i, u := range f.users {
		wg.Add(2)
		go func() { // a sender
			defer wg.Done()
			for n := range 30 {
				m, _, err := f.svc.Record(ctx, history.NewMessage{App: f.app, SenderID: u, DialogID: d.ID, Text: fmt.Sprint(n)})
				if err != nil {
					errc <- err
					return
				}
				mu.Lock()
				sent = append(sent, m.ID)
				mu.Unlock()
			}
		}()
		go func() { // a reader doing what clients do
			defer wg.Done()
			for n := range 30 {
				mu.Lock()
				var last string
				if len(sent) > 0 {
					last = sent[len(sent)-1]
				}
				mu.Unlock()
				var err error
				switch {
				case last == "":
				case (n+i)%5 == 0:
					_, err = f.svc.Messages(ctx, f.app, u, d.ID, history.MessageQuery{Limit: 10, Sort: "date_sent", Desc: true}, true)
				case (n+i)%5 == 1:
					_, err = f.svc.MarkUpTo(ctx, f.app, u, d.ID, last, history.Read)
				case (n+i)%5 == 2:
					_, err = f.svc.DeleteMessages(ctx, f.app, u, []string{last}, false)
				case (n+i)%11 == 3:
					_, err = f.svc.DeleteMessages(ctx, f.app, u, []string{last}, true)
				default:
					err = f.svc.MarkMessages(ctx, f.app, u, d.ID, []string{last}, history.Delivered)
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
	for _, u := range f.users {
		counts, _, err := f.svc.UnreadCounts(ctx, f.app, u, []string{d.ID})
		if err != nil {
			t.Fatal(err)
		}
		recount, err := f.svc.Store().RecountUnread(ctx, f.app, d.ID, u)
		if err != nil {
			t.Fatal(err)
		}
		if counts[d.ID] != recount {
			t.Errorf("user %d: counter %d, recount %d", u, counts[d.ID], recount)
		}
	}
}

func TestParseQueries(t *testing.T) {
	q, err := history.ParseDialogQuery([]history.Param{{Field: "type", Op: "in", Value: "2, 3"},
		{Field: "data.color", Value: "red"}, {Field: "occupants_ids", Op: "all", Value: "1,2"}},
		"", "last_message_date_sent", "20", "5", false)
	if err != nil || len(q.Conds) != 3 || q.Limit != 20 || q.Skip != 5 || !q.Desc || q.Sort != "last_message_date_sent" {
		t.Fatalf("dialog query %+v %v", q, err)
	}
	if vals := q.Conds[0].Values; len(vals) != 2 || vals[1] != int64(3) {
		t.Errorf("type[in] values %v", vals)
	}
	if q, _ := history.ParseDialogQuery(nil, "", "", "500", "", false); q.Limit != 100 {
		t.Errorf("limit capped to %d", q.Limit)
	}
	mq, err := history.ParseMessageQuery([]history.Param{{Field: "date_sent", Op: "lt", Value: "1700000000.5"}}, "", "date_sent", "", "")
	if err != nil || mq.Conds[0].Values[0] != int64(1700000001) || mq.Limit != 100 {
		t.Errorf("message query %+v %v", mq, err)
	}
	for _, bad := range []struct {
		params []history.Param
		asc    string
	}{
		{params: []history.Param{{Field: "colour", Value: "x"}}},
		{params: []history.Param{{Field: "type", Op: "near", Value: "1"}}},
		{params: []history.Param{{Field: "type", Op: "ctn", Value: "1"}}},
		{params: []history.Param{{Field: "type", Value: "one"}}},
		{params: []history.Param{{Field: "_id", Value: "xyz"}}},
		{asc: "occupants_ids"},
		// Order comparisons mean nothing on arrays (the stores cannot run
		// them: they must be refused here, not fail there).
		{params: []history.Param{{Field: "occupants_ids", Op: "lt", Value: "5"}}},
		{params: []history.Param{{Field: "occupants_ids", Op: "gte", Value: "5"}}},
	} {
		var qe *history.QueryError
		if _, err := history.ParseDialogQuery(bad.params, bad.asc, "", "", "", false); !errors.As(err, &qe) {
			t.Errorf("ParseDialogQuery(%+v) = %v, want a QueryError", bad, err)
		}
	}
	for _, op := range []string{"lt", "lte", "gt", "gte", "ctn"} {
		var qe *history.QueryError
		p := []history.Param{{Field: "attachments.type", Op: op, Value: "image"}}
		if _, err := history.ParseMessageQuery(p, "", "", "", ""); !errors.As(err, &qe) {
			t.Errorf("ParseMessageQuery(attachments.type[%s]) = %v, want a QueryError", op, err)
		}
	}
	// Up to MaxValues filter values in all; more is refused, so that no
	// backend is handed more than it can bind.
	ids := func(n int) string {
		out := make([]string, n)
		for i := range out {
			out[i] = strconv.Itoa(i + 1)
		}
		return strings.Join(out, ",")
	}
	if _, err := history.ParseMessageQuery([]history.Param{{Field: "sender_id", Op: "in", Value: ids(history.MaxValues)}}, "", "", "", ""); err != nil {
		t.Errorf("%d sender ids: %v", history.MaxValues, err)
	}
	for _, p := range [][]history.Param{
		{{Field: "sender_id", Op: "in", Value: ids(history.MaxValues + 1)}},
		{{Field: "sender_id", Op: "in", Value: ids(600)}, {Field: "recipient_id", Op: "nin", Value: ids(600)}},
	} {
		var qe *history.QueryError
		if _, err := history.ParseMessageQuery(p, "", "", "", ""); !errors.As(err, &qe) {
			t.Errorf("message query with more than %d values: %v, want a QueryError", history.MaxValues, err)
		}
		if _, err := history.ParseDialogQuery([]history.Param{{Field: "user_id", Op: "in", Value: ids(history.MaxValues + 1)}}, "", "", "", "", false); !errors.As(err, &qe) {
			t.Errorf("dialog query with more than %d values: %v, want a QueryError", history.MaxValues, err)
		}
	}
	// Fractions on integer fields are compared exactly: the stores get
	// the integers that select the same values, or no condition at all.
	for _, c := range []struct {
		field, op, value string
		want             []any // the condition's values; nil: left out
		none             bool  // nothing matches
	}{
		{"date_sent", "lt", "10.5", []any{int64(11)}, false},
		{"date_sent", "gte", "10.5", []any{int64(11)}, false},
		{"date_sent", "lte", "10.5", []any{int64(10)}, false},
		{"date_sent", "gt", "10.5", []any{int64(10)}, false},
		{"date_sent", "lt", "-10.5", []any{int64(-10)}, false},
		{"date_sent", "lte", "-0.5", []any{int64(-1)}, false},
		{"date_sent", "gt", ".5", []any{int64(0)}, false},
		{"date_sent", "", "10.5", nil, true},
		{"date_sent", "", "10.000", []any{int64(10)}, false},
		{"date_sent", "ne", "10.5", nil, false},
		{"date_sent", "in", "10.5, 11", []any{int64(11)}, false},
		{"date_sent", "in", "10.5", nil, true},
		{"date_sent", "nin", "10.5,11", []any{int64(11)}, false},
		{"date_sent", "nin", "10.5", nil, false},
		{"created_at", "lt", "10.5", []any{int64(11)}, false},
		{"created_at", "gte", "2026-11-22T00:05:16.5Z", []any{int64(1795305917)}, false},
		{"created_at", "lte", "2026-11-22T00:05:16.5Z", []any{int64(1795305916)}, false},
	} {
		mq, err := history.ParseMessageQuery([]history.Param{{Field: c.field, Op: c.op, Value: c.value}}, "", "", "", "")
		var got []any
		if len(mq.Conds) == 1 {
			got = mq.Conds[0].Values
		}
		if err != nil || len(mq.Conds) > 1 || !reflect.DeepEqual(got, c.want) || mq.None != c.none {
			t.Errorf("%s[%s]=%s: %+v, %v; want values %v, none %v", c.field, c.op, c.value, mq, err, c.want, c.none)
		}
	}
	if q, err := history.ParseDialogQuery([]history.Param{{Field: "occupants_ids", Op: "all", Value: "1,2.5"}}, "", "", "", "", false); err != nil || !q.None {
		t.Errorf("occupants_ids[all]=1,2.5: %+v, %v; want nothing to match", q, err)
	}
	for _, v := range []string{"1e3", "Inf", "NaN", "0x1p3", "1.2.3", "--1", "+-1", ".", "-", "1,5", "99999999999999999999"} {
		var qe *history.QueryError
		if _, err := history.ParseMessageQuery([]history.Param{{Field: "date_sent", Value: v}}, "", "", "", ""); !errors.As(err, &qe) {
			t.Errorf("date_sent=%s: %v, want a QueryError", v, err)
		}
	}
	for op, v := range map[string]string{"": "1", "ne": "1", "in": "1,2", "nin": "1,2", "all": "1,2"} {
		if _, err := history.ParseDialogQuery([]history.Param{{Field: "occupants_ids", Op: op, Value: v}}, "", "", "", "", false); err != nil {
			t.Errorf("occupants_ids[%s]: %v", op, err)
		}
	}
}

// A message begun after the service closed is refused, never left waiting:
// closing and queueing exclude each other, so the committer's last drain
// sees everything queued.
func TestBeginAfterClose(t *testing.T) {
	f := setup(t, history.Config{})
	ctx := context.Background()
	alice, bob := f.users[0], f.users[1]
	if _, _, err := f.svc.Record(ctx, history.NewMessage{App: f.app, SenderID: alice, RecipientID: bob, Text: "m0"}); err != nil {
		t.Fatal(err)
	}
	f.svc.Close()
	for i := range 50 {
		done := make(chan error, 1)
		go func() {
			_, _, err := f.svc.Begin(ctx, history.NewMessage{App: f.app, SenderID: alice, RecipientID: bob, Text: "late"}).Wait()
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("recording %d, begun after Close, was stored", i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("recording %d, begun after Close, was neither stored nor refused", i)
		}
	}
}

// The 5 s window for a client's date_sent is measured on its exact time:
// 4.5 s off (with fractions on both sides) is kept, truncated to the
// second; 5.1 s off is replaced by the server's time.
func TestDateSentWindowIsExact(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 200_000_000, time.UTC)
	f := setup(t, history.Config{Now: func() time.Time { return now }})
	ctx := context.Background()
	alice, bob := f.users[0], f.users[1]
	base := float64(now.Unix())
	for _, c := range []struct {
		sent float64
		want int64
	}{
		{base - 4.3, now.Unix() - 5}, // 4.5 s before 12:00:00.2
		{base + 4.9, now.Unix() + 4}, // 4.7 s after
		{base - 4.9, now.Unix()},     // 5.1 s before
		{base + 5.3, now.Unix()},     // 5.1 s after
	} {
		m, _, err := f.svc.Record(ctx, history.NewMessage{App: f.app, SenderID: alice, RecipientID: bob, Text: "t", DateSent: c.sent})
		if err != nil || m.DateSent != c.want {
			t.Errorf("date_sent %.1f at server time %.1f: stored %d (%v), want %d", c.sent, float64(now.UnixNano())/1e9, m.DateSent, err, c.want)
		}
	}
}
