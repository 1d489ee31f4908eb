package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// The admin commands print what they create as JSON, against the same
// storage the server uses.
func TestAdminCommands(t *testing.T) {
	env := []string{"CHATD_DATA_DIR=" + t.TempDir(), "CHATD_LOG_LEVEL=error"}
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"app", "create", "-name", "shop"}, env, &out, &out); err != nil {
		t.Fatal(err)
	}
	var app struct {
		Application struct {
			ID         int64  `json:"id"`
			Name       string `json:"name"`
			AuthKey    string `json:"auth_key"`
			AuthSecret string `json:"auth_secret"`
		} `json:"application"`
	}
	if err := json.Unmarshal(out.Bytes(), &app); err != nil || app.Application.ID == 0 || app.Application.Name != "shop" ||
		app.Application.AuthKey == "" || app.Application.AuthSecret == "" {
		t.Fatalf("app create printed %s (%v)", out.String(), err)
	}
	out.Reset()
	appID := strconv.FormatInt(app.Application.ID, 10)
	if err := run(ctx, []string{"user", "create", "-app", appID, "-login", "bob", "-password", "bobpass12"}, env, &out, &out); err != nil {
		t.Fatal(err)
	}
	var user struct {
		User struct {
			ID    int64  `json:"id"`
			Login string `json:"login"`
		} `json:"user"`
	}
	if err := json.Unmarshal(out.Bytes(), &user); err != nil || user.User.ID == 0 || user.User.Login != "bob" {
		t.Fatalf("user create printed %s (%v)", out.String(), err)
	}
	// Bad input is refused with a message naming the problem, storing nothing.
	out.Reset()
	err := run(ctx, []string{"user", "create", "-app", appID, "-login", "bob", "-password", "bobpass12"}, env, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "taken") {
		t.Errorf("duplicate login: %v", err)
	}
	if err := run(ctx, []string{"user", "create", "-app", appID, "-login", "eve", "-password", "short"}, env, &out, &out); err == nil ||
		!strings.Contains(err.Error(), "password") {
		t.Errorf("short password: %v", err)
	}
	out.Reset()
	if err := run(ctx, []string{"apikey", "create", "-app", appID, "-name", "backend"}, env, &out, &out); err != nil ||
		!strings.Contains(out.String(), `"key"`) {
		t.Errorf("apikey create: %v %s", err, out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"app", "list"}, env, &out, &out); err != nil || !strings.Contains(out.String(), `"shop"`) {
		t.Errorf("app list: %v %s", err, out.String())
	}
	if err := run(ctx, []string{"frobnicate", "now"}, env, &out, &out); err == nil {
		t.Error("an unknown command was accepted")
	}
}

// Serving stops cleanly when its context ends; a bad configuration stops the
// start with the key named.
func TestServeAndStop(t *testing.T) {
	env := []string{"CHATD_DATA_DIR=" + t.TempDir(), "CHATD_LOG_LEVEL=info",
		"CHATD_API_LISTEN=127.0.0.1:0", "CHATD_XMPP_LISTEN=127.0.0.1:0", "CHATD_XMPP_TLS_LISTEN=127.0.0.1:0",
		"CHATD_XMPP_WEBSOCKET_LISTEN=127.0.0.1:0", "CHATD_TURN_ENABLED=false"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out syncBuffer
	go func() { done <- run(ctx, nil, env, &out, &out) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "chatd started") {
		if time.Now().After(deadline) {
			t.Fatalf("chatd did not start:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the log, bounded by the deadline
	}
	if !strings.Contains(out.String(), "auth_secret=") {
		t.Errorf("the first application's credentials were not printed:\n%s", out.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("chatd did not stop")
	}
	err := run(context.Background(), nil, append(env, "CHATD_XMPP_PING_INTERVAL=soon"), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "xmpp.ping_interval") {
		t.Errorf("bad configuration: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's log and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// repair-history refuses SQLite, which needs no repair, and on MongoDB
// prints what it removed.
func TestRepairHistoryCommand(t *testing.T) {
	dataDir := t.TempDir()
	env := []string{"CHATD_DATA_DIR=" + dataDir, "CHATD_LOG_LEVEL=error"}
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"repair-history"}, env, &out, &out); err == nil || !strings.Contains(err.Error(), "SQLite") {
		t.Errorf("repair-history on SQLite: %v", err)
	}
	// Refused before the database is opened (which would create or upgrade it).
	if files, _ := os.ReadDir(dataDir); len(files) != 0 {
		t.Errorf("repair-history on SQLite left %d files in the data directory", len(files))
	}
	env = append(env, "CHATD_STORAGE_MONGODB_URI="+startFerretDB(t), "CHATD_STORAGE_MONGODB_DATABASE=chatd_repair")
	out.Reset()
	if err := run(ctx, []string{"repair-history", "-grace", "0s"}, env, &out, &out); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		RepairHistory map[string]int `json:"repair_history"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || len(rep.RepairHistory) != 4 {
		t.Fatalf("repair-history printed %s (%v)", out.String(), err)
	}
	for k, n := range rep.RepairHistory {
		if n != 0 {
			t.Errorf("repair-history on a new database: %s %d", k, n)
		}
	}
	if err := run(ctx, []string{"repair-history", "-grace", "-1m"}, env, &out, &out); err == nil {
		t.Error("a negative grace was accepted")
	}
}

// startFerretDB runs an embedded FerretDB (on SQLite) until t ends and
// returns its URI.
func startFerretDB(t *testing.T) string {
	t.Helper()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: "file:" + t.TempDir() + "/",
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return f.MongoDBURI() // waits for the listener
}
