package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func TestStatementCache(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "chatd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	const insert = `INSERT INTO nonces(app_id, key, expires_at) VALUES(?,?,?)`
	const count = `SELECT count(*) FROM nonces WHERE app_id = ?`
	// A statement first met inside a transaction runs there uncached and is
	// cached for the next transaction, which uses it on the same connection.
	for i := range 3 {
		err := db.tx(ctx, func(tx txn) error {
			_, err := tx.ExecContext(ctx, insert, 1, fmt.Sprint("k", i), 100)
			return err
		})
		if err != nil {
			t.Fatalf("transaction %d: %v", i, err)
		}
		if cached := db.w.cached(insert) != nil; cached != (i > 0) {
			t.Fatalf("after transaction %d: cached = %v", i, cached)
		}
	}
	var n int
	if err := db.r.QueryRowContext(ctx, count, 1).Scan(&n); err != nil || n != 3 {
		t.Fatalf("count = %d, %v; want 3", n, err)
	}
	if db.r.cached(count) == nil {
		t.Fatal("a read is not cached")
	}

	// A query that does not compile reports its error, through a Row too.
	if err := db.r.QueryRowContext(ctx, `SELECT nope FROM nonces`).Scan(&n); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("bad query: %v", err)
	}
	if _, err := db.w.ExecContext(ctx, `UPDATE nowhere SET x = 1`); err == nil {
		t.Fatal("bad update: no error")
	}

	// Past the bound, queries still run, uncached.
	for i := range maxCachedStmts + 10 {
		if err := db.r.QueryRowContext(ctx, fmt.Sprintf("SELECT count(*) + %d FROM nonces", i)).Scan(&n); err != nil || n != 3+i {
			t.Fatalf("query %d: %d, %v", i, n, err)
		}
	}
	db.r.mu.RLock()
	size := len(db.r.stmts)
	db.r.mu.RUnlock()
	if size != maxCachedStmts {
		t.Fatalf("cache holds %d statements, want the bound %d", size, maxCachedStmts)
	}
}
