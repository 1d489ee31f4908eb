package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"chatd/account"
	"chatd/history"
	"chatd/internal/oid"
	"chatd/store/sqlite"
)

// readMainFile counts the rows of table in the database file alone, as a
// checkpoint left it (a copy without the WAL).
func readMainFile(t *testing.T, path, table string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+cp+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		return -1 // not even the schema yet
	}
	return n
}

// Writes reach the database file without anything more than the writes: a
// single statement and a transaction each set the checkpoint off.
func TestCheckpointAfterWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chatd.db")
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	waitFor := func(table string, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for readMainFile(t, path, table) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d rows in the database file, want %d", table, readMainFile(t, path, table), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := db.Accounts().CreateApp(ctx, &account.Application{Name: "a", AuthKey: "k", AuthSecret: "s",
		CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	waitFor("apps", 1)
	at := time.Now().UTC()
	d := &history.Dialog{ID: oid.New(at), AppID: 1, Type: history.Private, OwnerID: 1, Occupants: []int64{1, 2},
		CreatedAt: at, UpdatedAt: at}
	if err := db.History().CreateDialog(ctx, d); err != nil {
		t.Fatal(err)
	}
	waitFor("dialogs", 1)
}

// Closing a database twice is harmless, as for database/sql.
func TestCloseTwice(t *testing.T) {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "chatd.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db.Close()
}
