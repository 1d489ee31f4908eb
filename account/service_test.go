package account_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"chatd/account"
	"chatd/store/sqlite"
)

// An XMPP client that logs in or changes presence often writes the user's
// last_request_at once a minute, not on every presence.
func TestTouchWritesOnceAMinute(t *testing.T) {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "chatd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	svc := account.NewService(db.Accounts(), account.Config{Iterations: 4096, Now: func() time.Time { return now }}, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	app, err := svc.CreateApp(ctx, "touch")
	if err != nil {
		t.Fatal(err)
	}
	u, err := svc.CreateUserAdmin(ctx, app.ID, "alice", "secret-password")
	if err != nil {
		t.Fatal(err)
	}
	lastRequest := func() time.Time {
		t.Helper()
		got, err := svc.User(ctx, app.ID, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.LastRequestAt
	}

	first := now
	svc.Touch(ctx, app.ID, u.ID)
	if got := lastRequest(); !got.Equal(first) {
		t.Fatalf("after the first presence last_request_at = %v, want %v", got, first)
	}
	now = now.Add(59 * time.Second)
	svc.Touch(ctx, app.ID, u.ID)
	if got := lastRequest(); !got.Equal(first) {
		t.Fatalf("59 s later last_request_at = %v, want it unchanged (%v)", got, first)
	}
	now = now.Add(time.Second)
	svc.Touch(ctx, app.ID, u.ID)
	if got := lastRequest(); !got.Equal(now) {
		t.Fatalf("a minute later last_request_at = %v, want %v", got, now)
	}
}
