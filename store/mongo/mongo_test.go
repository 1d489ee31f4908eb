package mongo

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"chatd/account"
	"chatd/store/storetest"
	"chatd/xmpp"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// testURI is the server the tests use: $CHATD_TEST_MONGODB_URI, or an
// embedded FerretDB started by TestMain (then ferret is true).
var (
	testURI string
	ferret  bool
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	testURI = os.Getenv("CHATD_TEST_MONGODB_URI")
	if testURI != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "chatd-ferretdb-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting FerretDB:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	testURI = f.MongoDBURI() // waits for the listener
	ferret = true
	return m.Run()
}

var dbSeq atomic.Int64

// openDB opens a fresh database with a unique name and drops it when t ends.
func openDB(t *testing.T) *DB {
	t.Helper()
	name := fmt.Sprintf("chatd_test_%d_%s", dbSeq.Add(1), strings.ToLower(rand.Text()[:10]))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := Open(ctx, testURI, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := db.db.Drop(ctx); err != nil {
			t.Errorf("dropping %s: %v", name, err)
		}
		if err := db.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return db
}

func open(t *testing.T) storetest.Stores {
	db := openDB(t)
	return storetest.Stores{Accounts: db.Accounts(), XMPP: db.XMPP(), History: db.History()}
}

func TestConformance(t *testing.T) { storetest.Run(t, open) }

// TestOpenTwice checks that opening an existing database keeps its indexes
// and data.
func TestOpenTwice(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	s := db.Accounts()
	app := &account.Application{Name: "a", CreatedAt: time.Now()}
	if err := s.CreateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	again, err := Open(ctx, testURI, db.db.Name())
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer again.Close(ctx)
	if _, err := again.Accounts().App(ctx, app.ID); err != nil {
		t.Errorf("app after reopening: %v", err)
	}
	next := &account.Application{Name: "b", CreatedAt: time.Now()}
	if err := again.Accounts().CreateApp(ctx, next); err != nil || next.ID <= app.ID {
		t.Errorf("CreateApp after reopening: id %d after %d, %v", next.ID, app.ID, err)
	}
}

// TestPlaceholders checks that the placeholder a user without a unique
// attribute stores never collides with another user's real value.
func TestPlaceholders(t *testing.T) {
	s := openDB(t).Accounts()
	ctx := context.Background()
	app := &account.Application{Name: "a"}
	if err := s.CreateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	first := &account.User{AppID: app.ID, Email: "first@x"}
	if err := s.CreateUser(ctx, first); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprint(first.ID)
	// The first user's placeholders are int64(id) for the string attributes
	// and the string id for external_user_id: the second user's real values
	// spell the same id in the other type.
	second := &account.User{AppID: app.ID, Login: id, FacebookID: id, TwitterID: id, ExternalUserID: first.ID}
	if err := s.CreateUser(ctx, second); err != nil {
		t.Fatalf("user whose values spell another user's id: %v", err)
	}
}

// TestConcurrentCreates creates users from many goroutines at once: every
// user gets its own id, and of several users claiming one login exactly one
// succeeds. FerretDB hands out duplicate counter values under contention, so
// this also exercises the retry on a taken _id.
func TestConcurrentCreates(t *testing.T) {
	s := openDB(t).Accounts()
	ctx := context.Background()
	app := &account.Application{Name: "a"}
	if err := s.CreateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		ids   = map[int64]bool{}
		won   int
		lost  int
		other []error
	)
	for i := range n {
		wg.Go(func() {
			u := &account.User{AppID: app.ID, Login: fmt.Sprintf("user%d", i)}
			err := s.CreateUser(ctx, u)
			same := &account.User{AppID: app.ID, Login: "same"}
			err2 := s.CreateUser(ctx, same)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				other = append(other, err)
			} else if ids[u.ID] {
				other = append(other, fmt.Errorf("id %d handed out twice", u.ID))
			} else {
				ids[u.ID] = true
			}
			var dup *account.DuplicateError
			switch {
			case err2 == nil:
				won++
			case errors.As(err2, &dup) && dup.Field == "login":
				lost++
			default:
				other = append(other, err2)
			}
		})
	}
	wg.Wait()
	if len(other) > 0 {
		t.Fatal(errors.Join(other...))
	}
	if won != 1 || lost != n-1 {
		t.Errorf("creating login %q %d times: %d succeeded, %d duplicates", "same", n, won, lost)
	}
	_, total, err := s.FindUsers(ctx, app.ID, account.UserQuery{})
	if err != nil || total != n+1 {
		t.Errorf("FindUsers total = %d, %v; want %d", total, err, n+1)
	}
}

// TestRosterSameUser changes one user's roster from many goroutines at once,
// which xmpp.Server never does but several chatd nodes sharing a database
// might. Every change succeeds and is kept (the first upserts of the user's
// version and last activity documents race, and the losers retry). MongoDB
// hands each change its own version; FerretDB applies findAndModify
// non-atomically, so there versions may repeat (see DB.XMPP) and are only
// checked to be in range.
func TestRosterSameUser(t *testing.T) {
	s := openDB(t).XMPP()
	ctx := context.Background()
	owner := xmpp.UserRef{App: 1, User: 10}
	const n = 8
	vers := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			jid := fmt.Sprintf("%d-1@localhost", 20+i)
			var err error
			vers[i], err = s.PutRosterItem(ctx, owner, xmpp.RosterItem{JID: jid, Subscription: xmpp.SubNone})
			if err != nil {
				t.Error(err)
			}
			if err := s.SetLastActivity(ctx, owner, time.Unix(int64(i+1), 0), "s"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	items, ver, err := s.Roster(ctx, owner)
	if err != nil || len(items) != n {
		t.Fatalf("roster of %d items at version %d, %v; want %d items", len(items), ver, err, n)
	}
	if _, _, err := s.LastActivity(ctx, owner); err != nil {
		t.Errorf("LastActivity: %v", err)
	}
	sorted := slices.Sorted(slices.Values(vers))
	if ferret {
		if sorted[0] < 1 || sorted[n-1] > n || ver < 1 || ver > n {
			t.Errorf("versions %v, roster at %d: want them within 1..%d", vers, ver, n)
		}
		return
	}
	for i, v := range sorted {
		if v != int64(i+1) {
			t.Errorf("versions %v: want each of 1..%d once", vers, n)
			break
		}
	}
	if ver != n {
		t.Errorf("roster version %d after %d changes", ver, n)
	}
}
