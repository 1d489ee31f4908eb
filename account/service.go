package account

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"chatd/internal/oid"
	"chatd/internal/throttle"
)

// Config tunes a Service. Zero fields take the documented defaults.
type Config struct {
	// SessionTTL is how long a session lives after its last request.
	// Defaults to 2 hours.
	SessionTTL time.Duration
	// SignatureWindow is how far a signed timestamp may be from the server's
	// clock, either way. Defaults to 1 hour.
	SignatureWindow time.Duration
	// Iterations is the PBKDF2 iteration count for new credentials.
	// Defaults to DefaultIterations.
	Iterations int
	// LoginFailureDelay is the wait a user's next password login gets after
	// its first failure; it doubles with each further one, up to 5 s, and
	// attempts made sooner are refused with ErrTooManyAttempts (see
	// loginKey). Defaults to DefaultLoginFailureDelay.
	LoginFailureDelay time.Duration
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
}

// refreshEvery bounds how often a session's sliding expiry and its user's
// last_request_at are written back: at most once a minute per session.
const refreshEvery = time.Minute

// Service applies the account rules on top of a Store.
type Service struct {
	store Store
	cfg   Config
	log   *slog.Logger

	mu   sync.RWMutex
	apps map[int64]*Application // applications never change once created

	userDeleted []func(appID, userID int64)

	logins *throttle.Throttle[loginKey] // password logins' failures

	touchMu sync.Mutex
	touched map[[2]int64]time.Time // when Touch last wrote each user's last_request_at
}

// maxTouched bounds Service.touched; past it, entries older than
// refreshEvery are dropped.
const maxTouched = 100_000

// NewService returns a Service over store.
func NewService(store Store, cfg Config, log *slog.Logger) *Service {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 2 * time.Hour
	}
	if cfg.SignatureWindow <= 0 {
		cfg.SignatureWindow = time.Hour
	}
	if cfg.Iterations <= 0 {
		cfg.Iterations = DefaultIterations
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LoginFailureDelay <= 0 {
		cfg.LoginFailureDelay = DefaultLoginFailureDelay
	}
	return &Service{store: store, cfg: cfg, log: log, apps: make(map[int64]*Application), touched: make(map[[2]int64]time.Time),
		logins: throttle.New[loginKey](cfg.LoginFailureDelay)}
}

// SessionTTL returns the sliding lifetime of sessions.
func (s *Service) SessionTTL() time.Duration { return s.cfg.SessionTTL }

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Second) }

// CreateApp creates an application with a fresh auth key and secret.
func (s *Service) CreateApp(ctx context.Context, name string) (*Application, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, &ValidationError{Fields: []FieldError{{"name", "can't be blank"}}}
	}
	app := &Application{Name: name, AuthKey: randomHex(12), AuthSecret: randomHex(16), CreatedAt: s.now()}
	if err := s.store.CreateApp(ctx, app); err != nil {
		return nil, err
	}
	return app, nil
}

// App returns an application; applications are cached once read.
func (s *Service) App(ctx context.Context, id int64) (*Application, error) {
	s.mu.RLock()
	app := s.apps[id]
	s.mu.RUnlock()
	if app != nil {
		return app, nil
	}
	app, err := s.store.App(ctx, id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.apps[id] = app
	s.mu.Unlock()
	return app, nil
}

// Apps lists every application.
func (s *Service) Apps(ctx context.Context) ([]*Application, error) { return s.store.Apps(ctx) }

// Principal is who a REST request acts as: an application session, a user
// session, or an API key acting on behalf of a user (or of the application).
type Principal struct {
	App     *Application
	UserID  int64
	Session *Session // nil when authenticated by API key
	Token   string   // the session token as presented
}

// SessionRequest is a POST /session.json: the application, the signature and
// what it covers, and optionally a user's credentials.
type SessionRequest struct {
	AppID     int64
	AuthKey   string
	Nonce     int64
	Timestamp int64
	Signature string
	// Signed is the string the signature was computed over.
	Signed   string
	Login    string
	Email    string
	Password string
}

// StartSession checks a signed session request and creates the session,
// bound to the user when credentials are given. It returns the session with
// its token.
func (s *Service) StartSession(ctx context.Context, r SessionRequest) (*Principal, error) {
	app, err := s.App(ctx, r.AppID)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrBadSignature
	} else if err != nil {
		return nil, err
	}
	if !hmac.Equal([]byte(r.AuthKey), []byte(app.AuthKey)) || !verifySignature(app.AuthSecret, r.Signed, r.Signature) {
		return nil, ErrBadSignature
	}
	now := s.now()
	ts := time.Unix(r.Timestamp, 0)
	if ts.Before(now.Add(-s.cfg.SignatureWindow)) || ts.After(now.Add(s.cfg.SignatureWindow)) {
		return nil, ErrStaleTimestamp
	}
	var user *User
	if r.Login != "" || r.Email != "" {
		if user, err = s.checkPassword(ctx, app.ID, r.Login, r.Email, r.Password); err != nil {
			return nil, err
		}
	}
	// A replay is the same signed request again: the key holds the
	// signature, so two users whose SDKs drew the same nonce (0..9999) in
	// the same second each get their session.
	key := strconv.FormatInt(r.Timestamp, 10) + ":" + strconv.FormatInt(r.Nonce, 10) + ":" + strings.ToLower(r.Signature)
	// The timestamp is accepted up to and including ts+window (now is in
	// whole seconds), and the store forgets a nonce at its expiry
	// (DeleteExpired removes expires <= now): keep it until the first
	// second the timestamp is refused in, or a sweep in the last second
	// would let the request be replayed.
	if err := s.store.UseNonce(ctx, app.ID, key, ts.Add(s.cfg.SignatureWindow+time.Second)); err != nil {
		return nil, err
	}
	token := randomHex(20)
	sess := &Session{
		ObjectID:  oid.New(now),
		AppID:     app.ID,
		TokenHash: HashToken(token),
		Nonce:     r.Nonce,
		Timestamp: r.Timestamp,
		CreatedAt: now,
		UpdatedAt: now,
		ExpiresAt: now.Add(s.cfg.SessionTTL),
	}
	if user != nil {
		s.bind(sess, user, token)
	}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return nil, err
	}
	if user != nil {
		if err := s.stillThere(ctx, user, sess); err != nil {
			return nil, err
		}
		s.touch(ctx, user.AppID, user.ID, now)
	}
	return &Principal{App: app, UserID: sess.UserID, Session: sess, Token: token}, nil
}

// stillThere makes sure the user a session was just bound to was not
// deleted meanwhile: DeleteUser deletes the user, then its sessions, so a
// session written after the second step would outlive the user. When the
// user is gone, the session is deleted and the login fails as for an
// unknown user.
func (s *Service) stillThere(ctx context.Context, user *User, sess *Session) error {
	_, err := s.store.User(ctx, user.AppID, user.ID)
	if errors.Is(err, ErrNotFound) {
		if err := s.store.DeleteSession(ctx, sess.TokenHash); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return ErrBadCredentials
	}
	return err
}

// verifySignature checks a hex HMAC-SHA1 (40 characters) or HMAC-SHA256 (64
// characters) of signed keyed with secret.
func verifySignature(secret, signed, sig string) bool {
	var h func() hash.Hash
	switch len(sig) {
	case 40:
		h = sha1.New
	case 64:
		h = sha256.New
	default:
		return false
	}
	want := fmt.Sprintf("%x", HMAC(h, []byte(secret), []byte(signed)))
	return hmac.Equal([]byte(want), []byte(strings.ToLower(sig)))
}

// bind makes sess a session of user, deriving the token's SCRAM keys with the
// user's salt so the token works as an XMPP password under SCRAM.
func (s *Service) bind(sess *Session, user *User, token string) {
	sess.UserID = user.ID
	keys := DeriveCredentials(token, user.Credentials.Salt, user.Credentials.Iterations)
	sess.TokenKeys = &keys
}

// checkPassword finds the user by login or email and checks the password.
// Credentials that are not UTF-8 are a *ValidationError: no user can have
// them (CreateUser and UpdateUser refuse them). A user that failed too
// recently is refused with a *TooManyAttemptsError before any check.
func (s *Service) checkPassword(ctx context.Context, appID int64, login, email, password string) (*User, error) {
	verr := &ValidationError{}
	checkUTF8("login", login, verr)
	checkUTF8("email", email, verr)
	checkUTF8("password", password, verr)
	if err := verr.orNil(); err != nil {
		return nil, err
	}
	key := loginKey{app: appID, field: FieldLogin, value: strings.TrimSpace(login)}
	if login == "" {
		key.field, key.value = FieldEmail, normalizeEmail(email)
	}
	now := s.cfg.Now()
	if wait := s.logins.Admit(key, now); wait > 0 {
		return nil, &TooManyAttemptsError{RetryAfter: wait}
	}
	u, err := s.store.UserBy(ctx, appID, key.field, key.value)
	if errors.Is(err, ErrNotFound) || err == nil && !u.Credentials.Matches(password) {
		s.logins.Fail(key, now)
		return nil, ErrBadCredentials
	} else if err != nil {
		return nil, err
	}
	s.logins.Succeed(key)
	return u, nil
}

// Resolve returns the principal of a session token, extending the session's
// sliding expiry. An unknown or expired token is ErrNoSession.
func (s *Service) Resolve(ctx context.Context, token string) (*Principal, error) {
	if token == "" {
		return nil, ErrNoSession
	}
	sess, err := s.store.SessionByToken(ctx, HashToken(token))
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNoSession
	} else if err != nil {
		return nil, err
	}
	now := s.now()
	if !now.Before(sess.ExpiresAt) {
		return nil, ErrNoSession
	}
	app, err := s.App(ctx, sess.AppID)
	if err != nil {
		return nil, err
	}
	if now.Sub(sess.UpdatedAt) >= refreshEvery {
		// Only the expiry: writing back the whole session read above
		// would undo a login or logout made with the token meanwhile.
		sess.UpdatedAt = now
		sess.ExpiresAt = now.Add(s.cfg.SessionTTL)
		if err := s.store.RefreshSession(ctx, sess.TokenHash, now, sess.ExpiresAt); errors.Is(err, ErrNotFound) {
			return nil, ErrNoSession
		} else if err != nil {
			return nil, err
		}
		if sess.UserID != 0 {
			s.touch(ctx, sess.AppID, sess.UserID, now)
		}
	}
	return &Principal{App: app, UserID: sess.UserID, Session: sess, Token: token}, nil
}

// touch records a user's last request; a failure is logged, not returned.
func (s *Service) touch(ctx context.Context, appID, userID int64, at time.Time) {
	if err := s.store.TouchUser(ctx, appID, userID, at); err != nil && !errors.Is(err, ErrNotFound) {
		s.log.Warn("recording last request", "app", appID, "user", userID, "err", err)
	}
}

// Touch records that a user was active now (XMPP presence does this). Like
// a REST session's, a user's last_request_at is written at most once per
// refreshEvery (a minute) this way: a client that logs in again and again,
// or changes its presence often, costs one write a minute.
func (s *Service) Touch(ctx context.Context, appID, userID int64) {
	now := s.now()
	key := [2]int64{appID, userID}
	s.touchMu.Lock()
	if last, ok := s.touched[key]; ok && now.Sub(last) < refreshEvery {
		s.touchMu.Unlock()
		return
	}
	if len(s.touched) >= maxTouched {
		for k, t := range s.touched {
			if now.Sub(t) >= refreshEvery {
				delete(s.touched, k)
			}
		}
		if len(s.touched) >= maxTouched { // all recent: start afresh rather than scan on every call
			clear(s.touched)
		}
	}
	s.touched[key] = now
	s.touchMu.Unlock()
	s.touch(ctx, appID, userID, now)
}

// Login binds the principal's session to the user with these credentials
// (POST /login.json).
func (s *Service) Login(ctx context.Context, p *Principal, login, email, password string) (*User, error) {
	if p.Session == nil {
		return nil, ErrForbidden
	}
	u, err := s.checkPassword(ctx, p.App.ID, login, email, password)
	if err != nil {
		return nil, err
	}
	s.bind(p.Session, u, p.Token)
	p.Session.UpdatedAt = s.now()
	p.Session.ExpiresAt = p.Session.UpdatedAt.Add(s.cfg.SessionTTL)
	if err := s.store.UpdateSession(ctx, p.Session); err != nil {
		return nil, err
	}
	if err := s.stillThere(ctx, u, p.Session); err != nil {
		return nil, err
	}
	p.UserID = u.ID
	s.touch(ctx, u.AppID, u.ID, p.Session.UpdatedAt)
	return u, nil
}

// Logout turns a user session back into an application session
// (DELETE /login.json).
func (s *Service) Logout(ctx context.Context, p *Principal) error {
	if p.Session == nil {
		return ErrForbidden
	}
	if p.UserID == 0 {
		return ErrNeedUser
	}
	p.Session.UserID = 0
	p.Session.TokenKeys = nil
	p.Session.UpdatedAt = s.now()
	if err := s.store.UpdateSession(ctx, p.Session); err != nil {
		return err
	}
	p.UserID = 0
	return nil
}

// EndSession deletes the principal's session (DELETE /session.json).
func (s *Service) EndSession(ctx context.Context, p *Principal) error {
	if p.Session == nil {
		return ErrForbidden
	}
	return s.store.DeleteSession(ctx, p.Session.TokenHash)
}

// CreateAPIKey creates an API key for an application and returns it; only its
// hash is kept, so this is the one time the key is seen.
func (s *Service) CreateAPIKey(ctx context.Context, appID int64, name string) (*APIKey, string, error) {
	if _, err := s.App(ctx, appID); err != nil {
		return nil, "", err
	}
	key := randomHex(24)
	k := &APIKey{AppID: appID, Name: strings.TrimSpace(name), KeyHash: HashToken(key), CreatedAt: s.now()}
	if err := s.store.CreateAPIKey(ctx, k); err != nil {
		return nil, "", err
	}
	return k, key, nil
}

// APIKeys lists the API keys of an application.
func (s *Service) APIKeys(ctx context.Context, appID int64) ([]*APIKey, error) {
	return s.store.APIKeys(ctx, appID)
}

// DeleteAPIKey revokes an API key.
func (s *Service) DeleteAPIKey(ctx context.Context, appID, id int64) error {
	return s.store.DeleteAPIKey(ctx, appID, id)
}

// ResolveAPIKey returns the principal of an API key acting on behalf of
// userID (0: the application itself). An unknown key is ErrNoSession; an
// unknown user is ErrNotFound.
func (s *Service) ResolveAPIKey(ctx context.Context, key string, userID int64) (*Principal, error) {
	k, err := s.store.APIKeyByHash(ctx, HashToken(key))
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNoSession
	} else if err != nil {
		return nil, err
	}
	app, err := s.App(ctx, k.AppID)
	if err != nil {
		return nil, err
	}
	if userID != 0 {
		if _, err := s.store.User(ctx, app.ID, userID); err != nil {
			return nil, err
		}
	}
	return &Principal{App: app, UserID: userID}, nil
}

// VerifyPassword checks a password given over XMPP (SASL PLAIN) for a user: the
// user's password or a live session token of that user.
func (s *Service) VerifyPassword(ctx context.Context, appID, userID int64, password string) error {
	if password == "" {
		return ErrBadCredentials
	}
	sess, err := s.store.SessionByToken(ctx, HashToken(password))
	switch {
	case err == nil && sess.AppID == appID && sess.UserID == userID && s.now().Before(sess.ExpiresAt):
		return nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return err
	}
	u, err := s.store.User(ctx, appID, userID)
	if errors.Is(err, ErrNotFound) {
		return ErrBadCredentials
	} else if err != nil {
		return err
	}
	if !u.Credentials.Matches(password) {
		return ErrBadCredentials
	}
	return nil
}

// ScramSecrets returns the credentials a SCRAM exchange for the user may
// match: the password's first, then those of every live session token. All
// share the user's salt and iteration count.
func (s *Service) ScramSecrets(ctx context.Context, appID, userID int64) ([]Credentials, error) {
	u, err := s.store.User(ctx, appID, userID)
	if err != nil {
		return nil, err
	}
	sessions, err := s.store.UserSessions(ctx, appID, userID, s.now())
	if err != nil {
		return nil, err
	}
	out := make([]Credentials, 0, 1+len(sessions))
	out = append(out, u.Credentials)
	for _, sess := range sessions {
		if sess.TokenKeys != nil {
			out = append(out, *sess.TokenKeys)
		}
	}
	return out, nil
}

// SweepExpired deletes expired sessions and nonces.
func (s *Service) SweepExpired(ctx context.Context) error {
	return s.store.DeleteExpired(ctx, s.now())
}
