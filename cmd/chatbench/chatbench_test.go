package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"chatd/config"
	"chatd/server"
)

// startNode starts a whole chatd on loopback ports in a temporary data
// directory, as server/server_test.go does.
func startNode(t *testing.T) *server.Server {
	t.Helper()
	cfg, err := config.Load("", []string{
		"CHATD_DATA_DIR=" + t.TempDir(),
		"CHATD_LOG_LEVEL=error",
		"CHATD_API_LISTEN=127.0.0.1:0",
		"CHATD_XMPP_LISTEN=127.0.0.1:0",
		"CHATD_XMPP_TLS_LISTEN=127.0.0.1:0",
		"CHATD_XMPP_WEBSOCKET_LISTEN=127.0.0.1:0",
		"CHATD_TURN_ENABLED=false",
		// Sessions silent for 2s end: held sessions must answer pings.
		"CHATD_XMPP_PING_INTERVAL=1s",
		"CHATD_XMPP_PING_TIMEOUT=1s",
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

// chatbench runs the command with -json and returns its result.
func chatbench(t *testing.T, args ...string) *result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append(args, "-json", "-timeout", "90s")
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("chatbench %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var r result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("output %q: %v", stdout.String(), err)
	}
	if r.Errors != 0 {
		t.Errorf("%s: %d errors, first: %s", r.Mode, r.Errors, r.FirstError)
	}
	return &r
}

// Each mode against a real chatd, briefly: the numbers must be sane (no
// timing is asserted).
func TestModes(t *testing.T) {
	s := startNode(t)
	apps, err := s.Accounts.Apps(context.Background())
	if err != nil || len(apps) != 1 {
		t.Fatalf("apps: %v %v", apps, err)
	}
	app := apps[0]
	usersFile := filepath.Join(t.TempDir(), "users.txt")
	xmppAddr := s.XMPP.TCPAddr().String()
	api := []string{"-addr", xmppAddr, "-api", "https://" + s.APIAddr().String(), "-app", fmt.Sprint(app.ID),
		"-key", app.AuthKey, "-secret", app.AuthSecret, "-users-out", usersFile, "-create-concurrency", "4"}
	fromFile := []string{"-addr", xmppAddr, "-users", usersFile}

	t.Run("idle", func(t *testing.T) {
		r := chatbench(t, append(api, "-mode", "idle", "-n", "6", "-concurrency", "3", "-settle", "0", "-hold", "2500ms",
			"-pid", fmt.Sprint(os.Getpid()), "-sources", "127.0.0.1,127.0.0.2")...)
		if r.Idle == nil || r.Idle.Sessions != 6 || r.Idle.Failed != 0 || r.Idle.Lost != 0 {
			t.Fatalf("idle: %+v", r.Idle)
		}
		if r.Idle.RSSAfterKiB <= 0 || r.Idle.RSSBeforeKiB <= 0 || r.Server == nil {
			t.Errorf("no server memory figures: %+v", r.Idle)
		}
		if r.Mechanisms["SCRAM-SHA-256"] != 6 || r.TLSFull+r.TLSResumed != 6 {
			t.Errorf("mechanisms %v, TLS %d full %d resumed", r.Mechanisms, r.TLSFull, r.TLSResumed)
		}
	})
	// The users created for idle are in the cache file, which -users reads.
	users, err := readUsers(usersFile)
	if err != nil || len(users) != 6 {
		t.Fatalf("cache file: %d users, %v", len(users), err)
	}

	t.Run("existing users", func(t *testing.T) {
		// A new cache file: the logins exist, so each is checked by logging
		// in as it, and the same users come back.
		other := filepath.Join(t.TempDir(), "other.txt")
		args := slices.Clone(api)
		args[slices.Index(args, usersFile)] = other
		chatbench(t, append(args, "-mode", "login", "-n", "3", "-concurrency", "1", "-duration", "100ms")...)
		again, err := readUsers(other)
		if err != nil || !slices.Equal(again, users[:3]) {
			t.Errorf("users %v, %v; want %v", again, err, users[:3])
		}
	})

	t.Run("pairs", func(t *testing.T) {
		r := chatbench(t, append(fromFile, "-mode", "pairs", "-pairs", "3", "-window", "8", "-duration", "1s",
			"-warmup", "200ms", "-size", "100")...)
		p := r.Pairs
		if p == nil || p.Sent == 0 || p.Delivered == 0 || p.Latency.Count != uint64(p.Delivered) {
			t.Fatalf("pairs: %+v", p)
		}
		if !p.ExactlyOnce || p.Received != p.Sent || p.Duplicates != 0 || p.Reordered != 0 {
			t.Errorf("not every message arrived exactly once: %+v", p)
		}
		if p.Latency.P50 <= 0 || p.Latency.P50 > p.Latency.P99 || p.Latency.P99 > p.Latency.Max {
			t.Errorf("latency %+v", p.Latency)
		}
	})

	t.Run("pairs direct TLS with history", func(t *testing.T) {
		r := chatbench(t, "-addr", s.XMPP.TLSAddr().String(), "-tls", "direct", "-users", usersFile,
			"-mode", "pairs", "-pairs", "2", "-duration", "1s", "-warmup", "0s", "-history")
		if p := r.Pairs; p == nil || p.Sent == 0 || !p.ExactlyOnce {
			t.Fatalf("pairs: %+v", p)
		}
	})

	t.Run("rate", func(t *testing.T) {
		r := chatbench(t, append(fromFile, "-mode", "rate", "-pairs", "2", "-rate", "200", "-duration", "1s",
			"-warmup", "200ms")...)
		p := r.Pairs
		if p == nil || p.Sent == 0 || p.Delivered == 0 || !p.ExactlyOnce || p.SenderLag == nil || p.Rate != 200 {
			t.Fatalf("rate: %+v", p)
		}
	})

	t.Run("login", func(t *testing.T) {
		r := chatbench(t, append(fromFile, "-mode", "login", "-concurrency", "2", "-n", "4", "-duration", "1s")...)
		l := r.Login
		if l == nil || l.Logins == 0 || l.Failed != 0 || l.LoginTime.Count != uint64(l.Logins) {
			t.Fatalf("login: %+v", l)
		}
		if l.Logins > 4 && (r.TLSResumed == 0 || r.KeyCache.Hits == 0) {
			// Every user logged in more than once: the second time resumes
			// TLS and skips PBKDF2.
			t.Errorf("%d logins of 4 users: %d TLS resumptions, %d SCRAM key cache hits", l.Logins, r.TLSResumed, r.KeyCache.Hits)
		}
	})

	t.Run("offline", func(t *testing.T) {
		r := chatbench(t, append(fromFile, "-mode", "offline", "-n", "200", "-sasl", "PLAIN")...)
		o := r.Offline
		if o == nil || o.Received != 200 || o.Delayed != 200 || o.Bounced != 0 || o.LastMs < o.FirstMs {
			t.Fatalf("offline: %+v", o)
		}
		if r.Mechanisms["PLAIN"] == 0 || r.Mechanisms["SCRAM-SHA-256"] != 0 {
			t.Errorf("mechanisms %v", r.Mechanisms)
		}
	})
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-mode", "nope", "-users", "f"},
		{"-mode", "idle"},
		{"-mode", "idle", "-users", "f", "-api", "https://x"},
		{"-mode", "idle", "-api", "https://x"},
		{"-mode", "pairs", "-users", "f", "-tls", "ssl"},
		{"-mode", "pairs", "-users", "f", "-sources", "127.0.0.1,localhost"},
		{"-mode", "rate", "-users", "f", "-rate", "0"},
		{"-mode", "login", "-users", "f", "-sasl", "DIGEST-MD5"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%q: accepted", args)
		}
	}
	o, err := parseFlags([]string{"-mode", "rate", "-users", "f", "-sources", "127.0.0.1, 127.0.0.2"}, io.Discard)
	if err != nil || len(o.sources) != 2 || o.window != 1000 || o.usersNeeded() != 200 {
		t.Errorf("%+v %v", o, err)
	}
}

func TestParseUsers(t *testing.T) {
	users, err := parseUsers(strings.NewReader("# header\n\n1-1@localhost pw1\n  2-1@localhost   pw2  \n"), "f")
	if err != nil || !slices.Equal(users, []account{{"1-1@localhost", "pw1"}, {"2-1@localhost", "pw2"}}) {
		t.Errorf("%v %v", users, err)
	}
	if _, err := parseUsers(strings.NewReader("alice pw\n"), "f"); err == nil {
		t.Error("a line without a JID was accepted")
	}
}

func TestHistogram(t *testing.T) {
	h := newHistogram()
	if h.quantile(0.5) != 0 {
		t.Error("empty histogram")
	}
	// Uniform 1..100000 µs, shuffled.
	vals := make([]time.Duration, 100000)
	for i := range vals {
		vals[i] = time.Duration(i+1) * time.Microsecond
	}
	rand.Shuffle(len(vals), func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })
	half := newHistogram()
	for i, v := range vals {
		if i%2 == 0 {
			h.record(v)
		} else {
			half.record(v)
		}
	}
	h.merge(half)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := float64(q * 100000 * float64(time.Microsecond))
		got := float64(h.quantile(q))
		if got < want*0.995 || got > want*1.01 {
			t.Errorf("q%v = %v, want ≈ %v", q, time.Duration(got), time.Duration(want))
		}
	}
	if h.quantile(1) != 100*time.Millisecond || h.n != 100000 || h.mean() != 50000500*time.Nanosecond {
		t.Errorf("max %v n %d mean %v", h.quantile(1), h.n, h.mean())
	}
	// Bucket bounds are contiguous and each value lies within its bucket.
	for _, v := range []uint64{0, 1, 255, 256, 257, 511, 512, 1000, 1 << 20, 1<<36 - 1} {
		i := bucket(v)
		if v > bucketHigh(i) || (i > 0 && v <= bucketHigh(i-1)) {
			t.Errorf("value %d in bucket %d [%d, %d]", v, i, bucketHigh(i-1)+1, bucketHigh(i))
		}
	}
	big := newHistogram()
	big.record(2 * time.Minute) // past the bucketed range: the maximum is still exact
	if big.quantile(0.5) > 2*time.Minute || big.summary().Max != ms(2*time.Minute) {
		t.Errorf("large value: %v", big.summary())
	}
}

// The SCRAM-SHA-256 example of RFC 7677 §3, twice: the second exchange takes
// its keys from the cache.
func TestScramRFC7677(t *testing.T) {
	cache := newKeyCache()
	for range 2 {
		sc, err := newScram("SCRAM-SHA-256", "user", "pencil", cache)
		if err != nil {
			t.Fatal(err)
		}
		sc.cnonce = "rOprNGfwEbeRWgbNEkqO"
		if got := string(sc.first()); got != "n,,n=user,r=rOprNGfwEbeRWgbNEkqO" {
			t.Fatalf("client-first %q", got)
		}
		final, err := sc.final([]byte("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))
		if err != nil {
			t.Fatal(err)
		}
		if want := "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="; string(final) != want {
			t.Fatalf("client-final %q\nwant %q", final, want)
		}
		if err := sc.verify([]byte("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")); err != nil {
			t.Fatal(err)
		}
		if sc.verify([]byte("v=AAAA")) == nil {
			t.Error("a wrong server signature verified")
		}
	}
	if hits, misses := cache.stats(); hits != 1 || misses != 1 {
		t.Errorf("key cache: %d hits, %d misses", hits, misses)
	}
	sc, _ := newScram("SCRAM-SHA-256", "user", "pencil", cache)
	sc.first()
	if _, err := sc.final([]byte("r=someone-elses-nonce,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")); err == nil {
		t.Error("a server nonce not extending the client's was accepted")
	}
}
