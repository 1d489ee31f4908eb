package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"testing"

	"chatd/history"
)

// A database written by the schema before migration 8 (messages and marks
// ordered by dialog) keeps its history: every message, its marks and the
// unread counters read the same afterwards.
func TestMigration8KeepsHistory(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "chatd.db")
	old, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate(ctx, old, migrations[:7]); err != nil {
		t.Fatal(err)
	}
	const dialog = "5f0000000000000000000001"
	ids := []string{"5f0000000000000000000011", "5f0000000000000000000012", "5f0000000000000000000013"}
	stmts := []string{
		`INSERT INTO apps(id, name, auth_key, auth_secret, created_at) VALUES(1, 'a', 'k', 's', 0)`,
		`INSERT INTO dialogs(id, app_id, type, owner_id, occupants, last_message, last_message_id, last_message_date_sent,
			last_message_user_id, created_at, updated_at) VALUES('` + dialog + `', 1, 3, 10, '[10,11]', 'third', '` + ids[2] + `', 102, 10, 0, 0)`,
		`INSERT INTO dialog_members(dialog_id, user_id, app_id, occupant, unread, last_ts) VALUES
			('` + dialog + `', 10, 1, 1, 0, 102), ('` + dialog + `', 11, 1, 1, 2, 102)`,
		`INSERT INTO messages(id, app_id, dialog_id, text, date_sent, sender_id, recipient_id, custom, created_at, updated_at) VALUES
			('` + ids[0] + `', 1, '` + dialog + `', 'first', 100, 10, 11, '{"k":"v"}', 100, 100),
			('` + ids[1] + `', 1, '` + dialog + `', 'second', 101, 10, 11, '{}', 101, 101),
			('` + ids[2] + `', 1, '` + dialog + `', 'third', 102, 10, 11, '{}', 102, 102)`,
		`INSERT INTO message_users(message_id, user_id, dialog_id, recipient, read, delivered) VALUES
			('` + ids[0] + `', 11, '` + dialog + `', 1, 1, 1), ('` + ids[1] + `', 11, '` + dialog + `', 1, 0, 1),
			('` + ids[2] + `', 11, '` + dialog + `', 1, 0, 0)`,
	}
	for _, s := range stmts {
		if _, err := old.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if found, now := db.Schema(); found != 7 || now != len(migrations) {
		t.Errorf("Schema() = %d, %d; want 7, %d", found, now, len(migrations))
	}
	h := db.History()
	msgs, err := h.FindMessages(ctx, 1, dialog, 11, history.MessageQuery{Sort: "date_sent", Desc: true})
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range msgs {
		texts = append(texts, m.Text)
	}
	if !slices.Equal(texts, []string{"third", "second", "first"}) {
		t.Fatalf("messages after the upgrade: %v", texts)
	}
	first := msgs[2]
	if first.Custom["k"] != "v" || !slices.Equal(first.ReadIDs, []int64{10, 11}) || !slices.Equal(msgs[1].DeliveredIDs, []int64{10, 11}) ||
		!slices.Equal(msgs[0].ReadIDs, []int64{10}) || !slices.Equal(msgs[0].DeliveredIDs, []int64{10}) {
		t.Errorf("marks after the upgrade: %+v %+v %+v", msgs[0], msgs[1], msgs[2])
	}
	if n, err := h.RecountUnread(ctx, 1, dialog, 11); err != nil || n != 2 {
		t.Errorf("recount after the upgrade: %d, %v", n, err)
	}
	// The upgraded tables take new writes: the rest is read, a message is
	// hidden and one deleted.
	if n, err := h.MarkUpTo(ctx, 1, dialog, 11, ids[2], history.Read); err != nil || n != 2 {
		t.Errorf("MarkUpTo after the upgrade: %d, %v", n, err)
	}
	if done, err := h.HideMessages(ctx, 1, 11, ids[:1]); err != nil || len(done) != 1 {
		t.Errorf("HideMessages after the upgrade: %v, %v", done, err)
	}
	if done, err := h.DeleteMessages(ctx, 1, ids[2:]); err != nil || len(done) != 1 {
		t.Errorf("DeleteMessages after the upgrade: %v, %v", done, err)
	}
	msgs, err = h.FindMessages(ctx, 1, dialog, 11, history.MessageQuery{})
	if err != nil || len(msgs) != 1 || msgs[0].Text != "second" || !slices.Equal(msgs[0].ReadIDs, []int64{10, 11}) {
		t.Errorf("after new writes: %v %v", msgs, err)
	}
}

// The upgrade to schema 8 of a store of 1,000,000 messages in 10,000
// dialogs, one recipient each (the history benchmarks' size): the time
// BENCHMARKS.md and the README give.
//
//	go test -run '^$' -bench Migration8 -benchtime 1x -timeout 30m ./store/sqlite
func BenchmarkMigration8(b *testing.B) {
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "chatd.db")
		old, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := migrate(ctx, old, migrations[:7]); err != nil {
			b.Fatal(err)
		}
		for _, q := range []string{
			`WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999999)
			INSERT INTO messages(id, app_id, dialog_id, text, date_sent, sender_id, recipient_id, created_at, updated_at)
			SELECT printf('%024x', i), 1, printf('%024x', 16777216 + i % 10000), 'a message of a usual length, with a few words',
				1700000000 + i / 10000 * 60, 1, 2, 0, 0 FROM n`,
			`INSERT INTO message_users(message_id, user_id, dialog_id, recipient) SELECT id, 2, dialog_id, 1 FROM messages`,
		} {
			if _, err := old.ExecContext(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
		if err := old.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		db, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if found, _ := db.Schema(); found != 7 {
			b.Fatalf("upgraded from schema %d", found)
		}
		db.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)/1000, "s/upgrade")
	b.ReportMetric(0, "ns/op")
}
