package restapi_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"chatd/account"
	"chatd/history"
	"chatd/restapi"
	"chatd/store/sqlite"
	"chatd/turn"
	"chatd/xmpp"
)

// The test application: fixed keys so that signatures can be computed
// outside Go (openssl) and hard-coded.
const (
	appKey    = "authKeyX"
	appSecret = "fixedSecretY"
	t0Unix    = 1795305916 // 2026-11-22 00:05:16 UTC, the test clock's start
)

// clock is the account service's clock in tests, moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects the server's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// env is a real server on a real SQLite store behind real HTTPS.
type env struct {
	t      testing.TB
	ts     *httptest.Server
	svc    *account.Service
	store  account.Store
	app    *account.Application
	clock  *clock
	logs   *syncBuffer
	nonce  atomic.Int64
	mu     sync.Mutex
	secret []string // strings that must never be logged

	// With chat (newChatEnv): the history service over the same database,
	// and the XMPP server when one was asked for.
	history *history.Service
	xmpp    *xmpp.Server
}

// newEnv starts a server with cfg and only the account service; setup runs
// on the Server before it serves.
func newEnv(t *testing.T, cfg restapi.Config, setup ...func(*restapi.Server)) *env {
	t.Helper()
	return startEnv(t, cfg, chatOptions{}, setup...)
}

// chatOptions says which chat parts newChatEnv starts besides history.
type chatOptions struct {
	history bool // set by newChatEnv
	// xmpp starts a real XMPP server on 127.0.0.1:0 as deps.Chat.
	xmpp bool
	// turn, when set, is the TURN configuration of deps.TURN.
	turn *turn.Config
}

// newChatEnv starts a server with chat history (on the test clock) and the
// optional parts.
func newChatEnv(t testing.TB, cfg restapi.Config, opts chatOptions) *env {
	t.Helper()
	opts.history = true
	return startEnv(t, cfg, opts)
}

func startEnv(t testing.TB, cfg restapi.Config, opts chatOptions, setup ...func(*restapi.Server)) *env {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "chatd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{t: t, store: db.Accounts(), clock: &clock{t: time.Unix(t0Unix, 0).UTC()}, logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// 256 PBKDF2 iterations keep the suite fast; the algorithm is the same.
	e.svc = account.NewService(e.store, account.Config{Iterations: 256, Now: e.clock.Now}, log)
	e.app = &account.Application{Name: "test", AuthKey: appKey, AuthSecret: appSecret, CreatedAt: e.clock.Now()}
	if err := e.store.CreateApp(context.Background(), e.app); err != nil {
		t.Fatal(err)
	}
	deps := restapi.Deps{Accounts: e.svc}
	if opts.history {
		e.history = history.NewService(db.History(), e.svc, history.Config{Now: e.clock.Now}, log)
		t.Cleanup(e.history.Close)
		deps.History = e.history
	}
	if opts.xmpp {
		e.xmpp = startXMPP(t, e.svc, db, e.history, log)
		deps.Chat = e.xmpp
	}
	if opts.turn != nil {
		iss, err := turn.NewIssuer(*opts.turn)
		if err != nil {
			t.Fatal(err)
		}
		deps.TURN = iss
	}
	if cfg.Now == nil {
		cfg.Now = e.clock.Now
	}
	srv := restapi.New(cfg, deps, log)
	for _, f := range setup {
		f(srv)
	}
	e.ts = httptest.NewTLSServer(srv.Handler())
	t.Cleanup(e.ts.Close)
	t.Cleanup(e.checkLogs)
	return e
}

// keep records a string that must never appear in the log.
func (e *env) keep(s string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secret = append(e.secret, s)
	return s
}

func (e *env) checkLogs() {
	logs := e.logs.String()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.secret {
		if s != "" && strings.Contains(logs, s) {
			e.t.Errorf("the log contains the secret %q", s)
		}
	}
}

// encodeURIComponent escapes like JavaScript's function of that name, as
// the SDK escapes form values.
func encodeURIComponent(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// form encodes alternating keys and values as the SDK does: keys with
// literal brackets, values escaped.
func form(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, kv[i]+"="+encodeURIComponent(kv[i+1]))
	}
	return strings.Join(parts, "&")
}

// response is what a call got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// obj decodes the body as a JSON object.
func (r response) obj(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

// want checks the status and, if body is not empty, the exact body (one
// JSON value followed by a newline is compared without the newline).
func (r response) want(t testing.TB, status int, body string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if body != "" && strings.TrimSuffix(string(r.body), "\n") != body {
		t.Fatalf("body\n %s\nwant\n %s", r.body, body)
	}
	if status >= 400 && !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("error response of type %q, want JSON", r.header.Get("Content-Type"))
	}
}

// request sends a raw request.
func (e *env) request(req *http.Request) response {
	e.t.Helper()
	res, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{res.StatusCode, res.Header, body}
}

func (e *env) newRequest(method, path, body string) *http.Request {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	return req
}

// call sends a request the way the SDK does: params in the query string
// for GET, in a form body otherwise, QB-Token when token is set.
func (e *env) call(method, path, token string, kv ...string) response {
	e.t.Helper()
	body := form(kv...)
	if method == http.MethodGet && body != "" {
		path += "?" + body
		body = ""
	}
	req := e.newRequest(method, path, body)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
	req.Header.Set("QB-SDK", "JS 2.23.0 - Client")
	if token != "" {
		req.Header.Set("QB-Token", token)
	}
	return e.request(req)
}

// callJSON sends a JSON body.
func (e *env) callJSON(method, path, token, body string) response {
	e.t.Helper()
	req := e.newRequest(method, path, body)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if token != "" {
		req.Header.Set("QB-Token", token)
	}
	return e.request(req)
}

// signSDK mirrors the SDK's signMessage, written independently of the
// server: each top-level key gives "key=value", an object gives its
// "key[sub]=value" pairs sorted and joined; the parts are sorted, joined by
// "&" and signed with HMAC in hex.
func signSDK(h func() hash.Hash, secret string, data map[string]any) string {
	var parts []string
	for k, v := range data {
		if sub, ok := v.(map[string]string); ok {
			var items []string
			for sk, sv := range sub {
				items = append(items, k+"["+sk+"]="+sv)
			}
			sort.Strings(items)
			parts = append(parts, strings.Join(items, "&"))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%v", k, v))
	}
	sort.Strings(parts)
	mac := hmac.New(h, []byte(secret))
	mac.Write([]byte(strings.Join(parts, "&")))
	return hex.EncodeToString(mac.Sum(nil))
}

// sessionData is a session request's signed parameters; user may be nil.
func (e *env) sessionData(user map[string]string) map[string]any {
	data := map[string]any{
		"application_id": e.app.ID,
		"auth_key":       appKey,
		"nonce":          e.nonce.Add(1),
		"timestamp":      e.clock.Now().Unix(),
	}
	if user != nil {
		data["user"] = user
	}
	return data
}

// sessionForm is data with its signature, as form pairs.
func sessionForm(data map[string]any, signature string) []string {
	var kv []string
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if sub, ok := data[k].(map[string]string); ok {
			for sk, sv := range sub {
				kv = append(kv, k+"["+sk+"]", sv)
			}
			continue
		}
		kv = append(kv, k, fmt.Sprint(data[k]))
	}
	return append(kv, "signature", signature)
}

// postSession signs data with the app secret and posts it.
func (e *env) postSession(data map[string]any) response {
	e.t.Helper()
	sig := e.keep(signSDK(sha1.New, appSecret, data))
	if u, ok := data["user"].(map[string]string); ok {
		e.keep(u["password"])
	}
	return e.call(http.MethodPost, "/session.json", "", sessionForm(data, sig)...)
}

// appSession starts an application session and returns its token.
func (e *env) appSession() string {
	e.t.Helper()
	res := e.postSession(e.sessionData(nil))
	res.want(e.t, http.StatusCreated, "")
	return e.keep(res.obj(e.t)["session"].(map[string]any)["token"].(string))
}

// userSession starts a session of the user with this login and password.
func (e *env) userSession(login, password string) (token string, userID int64) {
	e.t.Helper()
	res := e.postSession(e.sessionData(map[string]string{"login": login, "password": password}))
	res.want(e.t, http.StatusCreated, "")
	s := res.obj(e.t)["session"].(map[string]any)
	id, _ := s["user_id"].(json.Number).Int64()
	return e.keep(s["token"].(string)), id
}

// mkUser creates a user through the service (test setup, not under test).
func (e *env) mkUser(login, password string, edit func(*account.UserInput)) *account.User {
	e.t.Helper()
	in := account.UserInput{Login: &login, Password: &password}
	if edit != nil {
		edit(&in)
	}
	e.keep(password)
	u, err := e.svc.CreateUser(context.Background(), e.app.ID, in)
	if err != nil {
		e.t.Fatalf("CreateUser(%s): %v", login, err)
	}
	return u
}

// userCount counts the users whose login is login, straight from the store.
func (e *env) userCount(login string) int {
	e.t.Helper()
	_, n, err := e.store.FindUsers(context.Background(), e.app.ID, account.UserQuery{
		Filters: []account.Filter{{Field: account.FieldLogin, Op: account.OpEq, Values: []any{login}}},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// sessionsOf counts the live sessions of a user, straight from the store.
func (e *env) sessionsOf(userID int64) int {
	e.t.Helper()
	s, err := e.store.UserSessions(context.Background(), e.app.ID, userID, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return len(s)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func ptr[T any](v T) *T { return &v }

// num reads a JSON number field as an int64.
func num(t testing.TB, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a number", v, v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return i
}
