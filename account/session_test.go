package account_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"chatd/account"
	"chatd/store/sqlite"
)

// heldStore holds the next SessionByToken call, once armed, after it has
// read the session and before it returns, so that a test can run another
// request with the same token in between.
type heldStore struct {
	account.Store
	mu      sync.Mutex
	armed   bool
	reached chan struct{}
	release chan struct{}
}

func (s *heldStore) SessionByToken(ctx context.Context, h string) (*account.Session, error) {
	sess, err := s.Store.SessionByToken(ctx, h)
	s.mu.Lock()
	armed := s.armed
	s.armed = false
	s.mu.Unlock()
	if armed {
		close(s.reached)
		<-s.release
	}
	return sess, err
}

func (s *heldStore) arm() {
	s.mu.Lock()
	s.armed, s.reached, s.release = true, make(chan struct{}), make(chan struct{})
	s.mu.Unlock()
}

type sessionEnv struct {
	svc   *account.Service
	store *heldStore
	app   *account.Application
	mu    sync.Mutex
	now   time.Time
	nonce int64
}

func newSessionEnv(t *testing.T) *sessionEnv {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "chatd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &sessionEnv{store: &heldStore{Store: db.Accounts()}, now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	e.svc = account.NewService(e.store, account.Config{Iterations: 256, Now: e.clock}, slog.New(slog.DiscardHandler))
	if e.app, err = e.svc.CreateApp(context.Background(), "sessions"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateUserAdmin(context.Background(), e.app.ID, "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *sessionEnv) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *sessionEnv) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

// request is a signed session request (POST /session.json) of the
// application, with this nonce, over the string signed.
func (e *sessionEnv) request(nonce int64, signed, login, password string) account.SessionRequest {
	mac := hmac.New(sha1.New, []byte(e.app.AuthSecret))
	mac.Write([]byte(signed))
	return account.SessionRequest{AppID: e.app.ID, AuthKey: e.app.AuthKey, Nonce: nonce, Timestamp: e.clock().Unix(),
		Signature: hex.EncodeToString(mac.Sum(nil)), Signed: signed, Login: login, Password: password}
}

func (e *sessionEnv) start(t *testing.T, login, password string) *account.Principal {
	t.Helper()
	e.nonce++
	p, err := e.svc.StartSession(context.Background(), e.request(e.nonce, "signed by "+login, login, password))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// whileResolving runs change while another request with the token is in
// flight: it has read the session and will refresh its sliding expiry.
func (e *sessionEnv) whileResolving(t *testing.T, token string, change func()) {
	t.Helper()
	e.advance(2 * time.Minute) // past the refresh interval
	e.store.arm()
	done := make(chan error, 1)
	go func() { _, err := e.svc.Resolve(context.Background(), token); done <- err }()
	<-e.store.reached
	change()
	close(e.store.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A logout (DELETE /login.json) or a login (POST /login.json) made while
// another request with the same token is under way stays made: that
// request's refresh of the session's expiry does not write back the user
// it had read.
func TestSessionChangesSurviveConcurrentRequests(t *testing.T) {
	ctx := context.Background()
	t.Run("logout", func(t *testing.T) {
		e := newSessionEnv(t)
		p := e.start(t, "alice", "password1")
		alice := p.UserID
		e.whileResolving(t, p.Token, func() {
			if err := e.svc.Logout(ctx, p); err != nil {
				t.Fatal(err)
			}
		})
		if got, err := e.svc.Resolve(ctx, p.Token); err != nil || got.UserID != 0 {
			t.Errorf("after the logout the token resolves to user %v (%v), want the application session", got.UserID, err)
		}
		if err := e.svc.VerifyPassword(ctx, e.app.ID, alice, p.Token); err == nil {
			t.Error("after the logout the token is still alice's XMPP password")
		}
	})
	t.Run("end", func(t *testing.T) {
		// A request under way when its token is ended (DELETE
		// /session.json) is answered as for an unknown token, 401, which
		// the SDK's session-expired hook looks for (it had been a 404).
		e := newSessionEnv(t)
		p := e.start(t, "alice", "password1")
		e.advance(2 * time.Minute)
		e.store.arm()
		done := make(chan error, 1)
		go func() { _, err := e.svc.Resolve(ctx, p.Token); done <- err }()
		<-e.store.reached
		if err := e.svc.EndSession(ctx, p); err != nil {
			t.Fatal(err)
		}
		close(e.store.release)
		if err := <-done; !errors.Is(err, account.ErrNoSession) {
			t.Errorf("the request under way got %v, want %v", err, account.ErrNoSession)
		}
	})
	t.Run("login", func(t *testing.T) {
		e := newSessionEnv(t)
		p := e.start(t, "", "")
		var alice int64
		e.whileResolving(t, p.Token, func() {
			u, err := e.svc.Login(ctx, p, "alice", "", "password1")
			if err != nil {
				t.Fatal(err)
			}
			alice = u.ID
		})
		if got, err := e.svc.Resolve(ctx, p.Token); err != nil || got.UserID != alice {
			t.Errorf("after the login as user %d the token resolves to user %v (%v)", alice, got.UserID, err)
		}
	})
}

// The nonce guards against replays of one signed request: another user's
// request with the same nonce in the same second is not one, the same
// request again is.
func TestNonceRefusesOnlyReplays(t *testing.T) {
	e := newSessionEnv(t)
	ctx := context.Background()
	if _, err := e.svc.CreateUserAdmin(ctx, e.app.ID, "bob", "password2"); err != nil {
		t.Fatal(err)
	}
	alice := e.request(42, "alice's request", "alice", "password1")
	if _, err := e.svc.StartSession(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.StartSession(ctx, e.request(42, "bob's request", "bob", "password2")); err != nil {
		t.Errorf("bob's request with the nonce alice drew in the same second: %v", err)
	}
	if _, err := e.svc.StartSession(ctx, alice); !errors.Is(err, account.ErrNonceReused) {
		t.Errorf("alice's request again: %v, want %v", err, account.ErrNonceReused)
	}
}

// A signed request's nonce is remembered for as long as its timestamp is
// accepted: a sweep in the last second of the window does not let the
// request be replayed (found in audit). The window is an hour either way of
// the server's clock, both ends included.
func TestNonceOutlivesItsTimestampWindow(t *testing.T) {
	ctx := context.Background()
	for _, skew := range []time.Duration{-time.Hour, 0, time.Hour} {
		t.Run(skew.String(), func(t *testing.T) {
			e := newSessionEnv(t)
			req := e.request(7, "signed", "alice", "password1")
			req.Timestamp = e.clock().Add(skew).Unix()
			if _, err := e.svc.StartSession(ctx, req); err != nil {
				t.Fatal(err)
			}
			// The last second the timestamp is accepted in, from its
			// start to its end.
			e.advance(time.Unix(req.Timestamp, 0).Add(time.Hour).Sub(e.clock()))
			for range 2 {
				if err := e.svc.SweepExpired(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := e.svc.StartSession(ctx, req); !errors.Is(err, account.ErrNonceReused) {
					t.Fatalf("replay at %v after a sweep: %v, want %v", e.clock(), err, account.ErrNonceReused)
				}
				e.advance(999 * time.Millisecond)
			}
			e.advance(time.Millisecond)
			if _, err := e.svc.StartSession(ctx, req); !errors.Is(err, account.ErrStaleTimestamp) {
				t.Fatalf("replay at %v: %v, want %v", e.clock(), err, account.ErrStaleTimestamp)
			}
		})
	}
}

// heldUsers holds the next UserBy call, once armed, after it has read the
// user (a login checking the password) and before it returns.
type heldUsers struct {
	account.Store
	reached, release chan struct{}
	done             atomic.Bool
}

func (s *heldUsers) UserBy(ctx context.Context, appID int64, f account.UserField, v any) (*account.User, error) {
	u, err := s.Store.UserBy(ctx, appID, f, v)
	if s.done.CompareAndSwap(false, true) {
		close(s.reached)
		<-s.release
	}
	return u, err
}

// A login racing with the deletion of its user gives no session that
// outlives the user: a session request checked against the user before the
// deletion and stored after it is refused, and its token works nowhere.
func TestNoSessionOutlivesItsUser(t *testing.T) {
	e := newSessionEnv(t)
	ctx := context.Background()
	owner := e.start(t, "alice", "password1")
	held := &heldUsers{Store: e.store, reached: make(chan struct{}), release: make(chan struct{})}
	svc := account.NewService(held, account.Config{Iterations: 256, Now: e.clock}, slog.New(slog.DiscardHandler))
	type result struct {
		p   *account.Principal
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := svc.StartSession(ctx, e.request(999, "second login", "alice", "password1"))
		done <- result{p, err}
	}()
	<-held.reached
	if err := svc.DeleteUser(ctx, owner, owner.UserID); err != nil {
		t.Fatal(err)
	}
	close(held.release)
	r := <-done
	if !errors.Is(r.err, account.ErrBadCredentials) {
		t.Errorf("the login of a user deleted meanwhile: %v, want %v", r.err, account.ErrBadCredentials)
	}
	if r.p != nil {
		if got, err := svc.Resolve(ctx, r.p.Token); err == nil {
			t.Errorf("a token of deleted user %d resolves (user %d)", owner.UserID, got.UserID)
		}
		if err := svc.VerifyPassword(ctx, e.app.ID, owner.UserID, r.p.Token); err == nil {
			t.Errorf("a token of deleted user %d is their XMPP password", owner.UserID)
		}
	}
}

// heldUser holds the next User call after it has read the user (an update
// reading what it changes) and before it returns.
type heldUser struct {
	account.Store
	reached, release chan struct{}
	done             atomic.Bool
}

func (s *heldUser) User(ctx context.Context, appID, id int64) (*account.User, error) {
	u, err := s.Store.User(ctx, appID, id)
	if s.done.CompareAndSwap(false, true) {
		close(s.reached)
		<-s.release
	}
	return u, err
}

// Two updates of one user at once, from two devices, both take effect: a
// full_name change made from a copy read before a password change does not
// write the old password back (found in audit).
func TestConcurrentUserUpdatesBothTakeEffect(t *testing.T) {
	e := newSessionEnv(t)
	ctx := context.Background()
	p := e.start(t, "alice", "password1")
	held := &heldUser{Store: e.store, reached: make(chan struct{}), release: make(chan struct{})}
	svc := account.NewService(held, account.Config{Iterations: 256, Now: e.clock}, slog.New(slog.DiscardHandler))
	name := "Alice A."
	done := make(chan error, 1)
	go func() {
		_, err := svc.UpdateUser(ctx, p, p.UserID, account.UserInput{FullName: &name})
		done <- err
	}()
	<-held.reached
	pw, old := "new-password2", "password1"
	if _, err := svc.UpdateUser(ctx, p, p.UserID, account.UserInput{Password: &pw, OldPassword: &old}); err != nil {
		t.Fatal(err)
	}
	close(held.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := svc.VerifyPassword(ctx, e.app.ID, p.UserID, pw); err != nil {
		t.Errorf("the new password is refused: %v", err)
	}
	if err := svc.VerifyPassword(ctx, e.app.ID, p.UserID, old); err == nil {
		t.Error("the old password works again")
	}
	if u, err := svc.User(ctx, e.app.ID, p.UserID); err != nil || u.FullName != name {
		t.Errorf("full name %q (%v), want %q", u.FullName, err, name)
	}
}
