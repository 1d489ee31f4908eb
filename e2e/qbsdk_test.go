package e2e_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"chatd/account"
	"chatd/config"
	"chatd/internal/testtool"
	"chatd/server"
)

// suiteDir is the JavaScript side of the suite: package.json, the lock file,
// the reconnect-core shim and the scripts.
const suiteDir = "testdata/qbsdk"

// chromiumPath is Debian's chromium (.ci/run installs it); the suite never
// downloads a browser.
const chromiumPath = "/usr/bin/chromium"

// The unmodified QuickBlox JavaScript SDK against a whole chatd node: the
// Node path (node-xmpp-client over TCP with STARTTLS) and the browser path
// (Strophe over WebSocket in headless Chromium, with stream management).
// Each path is a script of named checks that assert the values the SDK hands
// to an app; the first failing check fails the test with its message.
func TestQuickBloxSDK(t *testing.T) {
	nodeBin := testtool.Path(t, "node", "install Node.js 18 or later with npm")
	npmBin := testtool.Path(t, "npm", "install Node.js 18 or later with npm")
	installModules(t, npmBin)

	// The reconnect-core shim's own tests (node's test runner).
	t.Run("shim", func(t *testing.T) {
		runScript(t, time.Minute, nodeBin, "reconnect-core-shim/test.js", nil, "--test")
	})

	s := startNode(t)

	t.Run("node", func(t *testing.T) {
		app := newApp(t, s, "qbsdk-node")
		// One user's XMPP connection goes through a relay the script can
		// cut (POST /drop on a plain-HTTP control server).
		relay := startRelay(t, s.XMPP.TCPAddr().String())
		control := httptest.NewServer(dropHandler(relay))
		t.Cleanup(control.Close)
		env := append(suiteEnv(s, app),
			"QB_XMPP_RELAY_PORT="+port(relay.Addr()),
			"QB_CONTROL_URL="+control.URL,
		)
		runScript(t, 4*time.Minute, nodeBin, "node-suite.js", env)
	})

	t.Run("browser", func(t *testing.T) {
		testtool.Path(t, chromiumPath, "apt-get install chromium (Debian's; the suite never downloads a browser)")
		app := newApp(t, s, "qbsdk-browser")
		relay := startRelay(t, s.XMPP.WebSocketAddr().String())
		page := servePage(t, relay)
		env := suiteEnv(s, app)
		env = append(env,
			"QB_PAGE_URL="+page.URL+"/",
			"QB_WS_URL=wss://127.0.0.1:"+port(relay.Addr())+"/",
			"QB_CHROMIUM="+chromiumPath,
			// a fresh profile, removed with the test even if the runner
			// is killed
			"QB_PROFILE_DIR="+t.TempDir(),
		)
		runScript(t, 4*time.Minute, nodeBin, "browser-suite.js", env)
	})
}

// installModules runs npm ci when node_modules is missing or older than the
// lock file. The lock file pins every package, and reconnect-core resolves to
// the shim in the suite's directory, so nothing comes from outside the npm
// registry.
func installModules(t *testing.T, npm string) {
	t.Helper()
	lock, err := os.Stat(filepath.Join(suiteDir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	fresh := true
	installed, err := os.Stat(filepath.Join(suiteDir, "node_modules", ".package-lock.json"))
	if err != nil || installed.ModTime().Before(lock.ModTime()) {
		fresh = false
	}
	for _, p := range []string{"quickblox/quickblox.min.js", "playwright-core/package.json", "reconnect-core/index.js"} {
		if _, err := os.Stat(filepath.Join(suiteDir, "node_modules", p)); err != nil {
			fresh = false
		}
	}
	if fresh {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = suiteDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", suiteDir, err, out)
	}
	t.Logf("npm ci in %s took %s", suiteDir, time.Since(start).Round(time.Millisecond))
}

// startNode starts a whole chatd on loopback ports in a temporary data
// directory. Its log goes to the test log at the level of
// CHATD_TEST_QBSDK_LOG (warn unless set).
func startNode(t *testing.T) *server.Server {
	t.Helper()
	level := os.Getenv("CHATD_TEST_QBSDK_LOG")
	if level == "" {
		level = "warn"
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		t.Fatalf("CHATD_TEST_QBSDK_LOG: %v", err)
	}
	cfg, err := config.Load("", []string{
		"CHATD_DATA_DIR=" + t.TempDir(),
		"CHATD_API_LISTEN=127.0.0.1:0",
		"CHATD_XMPP_LISTEN=127.0.0.1:0",
		"CHATD_XMPP_TLS_LISTEN=127.0.0.1:0",
		"CHATD_XMPP_WEBSOCKET_LISTEN=127.0.0.1:0",
		"CHATD_TURN_ENABLED=false",
	})
	if err != nil {
		t.Fatal(err)
	}
	logw := newLineLogger(t, "chatd: ")
	s, err := server.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: lv})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		logw.Close()
	})
	return s
}

func newApp(t *testing.T, s *server.Server, name string) *account.Application {
	t.Helper()
	app, err := s.Accounts.CreateApp(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return app
}

func port(a net.Addr) string { return strconv.Itoa(a.(*net.TCPAddr).Port) }

// suiteEnv is what every script reads: where chatd listens and the
// application's credentials. The XMPP domain is chatd's default, localhost.
func suiteEnv(s *server.Server, app *account.Application) []string {
	return []string{
		"QB_API=127.0.0.1:" + port(s.APIAddr()),
		"QB_CHAT=localhost",
		"QB_XMPP_HOST=127.0.0.1",
		"QB_XMPP_PORT=" + port(s.XMPP.TCPAddr()),
		"QB_APP_ID=" + strconv.FormatInt(app.ID, 10),
		"QB_AUTH_KEY=" + app.AuthKey,
		"QB_AUTH_SECRET=" + app.AuthSecret,
		// Node trusts chatd's self-signed certificate for REST.
		"NODE_EXTRA_CA_CERTS=" + s.CertFile,
	}
}

// runScript runs one of the suite's scripts with node under a deadline,
// streaming its output into the test log, and fails the test when it exits
// non-zero. The script runs in its own process group, killed whole at the
// end, so nothing it started (a browser) outlives the test.
func runScript(t *testing.T, limit time.Duration, nodeBin, script string, env []string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, append(args, script)...)
	cmd.Dir = suiteDir
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "QB_DEADLINE_MS="+strconv.FormatInt((limit-10*time.Second).Milliseconds(), 10))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out := newLineLogger(t, script+": ")
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err := cmd.Start()
	if err == nil {
		err = cmd.Wait()
		// Whatever the script left behind (a browser that outlived a
		// crash) goes with its group.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	out.Close()
	elapsed := time.Since(start).Round(time.Millisecond)
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s did not finish within %s", script, limit)
	case err != nil:
		t.Fatalf("%s failed after %s: %v", script, elapsed, err)
	}
	t.Logf("%s passed in %s", script, elapsed)
}

// lineLogger writes whole lines to the test log until closed (a test log
// must not be written after the test ends).
type lineLogger struct {
	t      *testing.T
	prefix string
	mu     sync.Mutex
	buf    []byte
	closed bool
}

func newLineLogger(t *testing.T, prefix string) *lineLogger {
	return &lineLogger{t: t, prefix: prefix}
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return len(p), nil
	}
	l.buf = append(l.buf, p...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			break
		}
		l.t.Log(l.prefix + string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *lineLogger) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 && !l.closed {
		l.t.Log(l.prefix + string(l.buf))
	}
	l.closed = true
}

// relay is a TCP relay in front of one of chatd's XMPP listeners: a client
// connects through it, so the suite can cut its connection the way a network
// or server failure does (both sides closed at once, no stream error) and
// watch the SDK reconnect.
type relay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func startRelay(t *testing.T, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target, conns: map[net.Conn]bool{}}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(func() {
		ln.Close()
		r.drop(false)
		r.wg.Wait()
	})
	return r
}

func (r *relay) Addr() net.Addr { return r.ln.Addr() }

func (r *relay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", r.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns[c], r.conns[up] = true, true
		r.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer r.wg.Done()
			io.Copy(dst, src)
			dst.Close()
			src.Close()
			r.mu.Lock()
			delete(r.conns, dst)
			delete(r.conns, src)
			r.mu.Unlock()
		}
		r.wg.Add(2)
		go pipe(c, up)
		go pipe(up, c)
	}
}

// drop closes every relayed connection and reports how many there were.
// With reset, both sides get a TCP RST instead of a FIN: every connection is
// set to linger 0 before any is closed, since closing one side makes its
// pipe close the other.
func (r *relay) drop(reset bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if reset {
		for c := range r.conns {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
		}
	}
	n := len(r.conns)
	for c := range r.conns {
		c.Close()
		delete(r.conns, c)
	}
	return n / 2
}

// dropHandler cuts the relayed connections (with a reset for ?mode=reset)
// and answers {"dropped":N}.
func dropHandler(r *relay) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"dropped":%d}`, r.drop(req.URL.Query().Get("mode") == "reset"))
	})
}

// servePage serves the browser side over HTTPS: the page, its scripts, the
// SDK's browser bundle, and POST /drop, which cuts the relayed XMPP
// connections.
func servePage(t *testing.T, r *relay) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	file := func(path, contentType string) http.HandlerFunc {
		return func(w http.ResponseWriter, req *http.Request) {
			data, err := os.ReadFile(filepath.Join(suiteDir, path))
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", contentType)
			w.Header().Set("Cache-Control", "no-store")
			w.Write(data)
		}
	}
	mux.HandleFunc("GET /{$}", file("browser-page.html", "text/html; charset=utf-8"))
	mux.HandleFunc("GET /browser-page.js", file("browser-page.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /inbox.js", file("inbox.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /quickblox.min.js", file("node_modules/quickblox/quickblox.min.js", "text/javascript; charset=utf-8"))
	mux.Handle("POST /drop", dropHandler(r))
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, req *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the browser's probes of the test certificate
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}
