package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
	"time"
)

// options are the command line.
type options struct {
	mode         string
	addr         string
	domain       string
	tlsMode      string
	sources      []*net.TCPAddr
	insecure     bool
	caFile       string
	sasl         string
	resumption   bool
	curves       []tls.CurveID
	usersFile    string
	api          string
	app          int64
	key          string
	secret       string
	usersOut     string
	prefix       string
	password     string
	createConc   int
	n            int
	pairs        int
	duration     time.Duration
	warmup       time.Duration
	rate         float64
	window       int
	size         int
	history      bool
	concurrency  int
	pid          int
	settle       time.Duration
	hold         time.Duration
	presence     bool
	jsonOut      bool
	timeout      time.Duration
	loginTimeout time.Duration
	drain        time.Duration
	cpuProfile   string
}

const usageText = `usage: chatbench -mode idle|pairs|rate|login|offline [flags]

Server:   -addr host:port -domain D [-tls starttls|direct] [-insecure=false -ca FILE]
Users:    -users FILE ("jid password" lines)
      or  -api https://host:port -app ID -key K -secret S [-users-out FILE]
Examples:
  chatbench -mode idle  -n 19500 -pid $(pidof chatd) -sources 127.0.0.1,127.0.0.2 -api … -users-out users.txt
  chatbench -mode pairs -pairs 500 -window 64 -duration 10s -users users.txt
  chatbench -mode rate  -pairs 200 -rate 20000 -duration 10s -users users.txt
  chatbench -mode login -concurrency 64 -duration 10s -users users.txt
  chatbench -mode offline -n 1000 -users users.txt

Flags:
`

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("chatbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.mode, "mode", "", "what to measure: idle, pairs, rate, login or offline")
	fs.StringVar(&o.addr, "addr", "127.0.0.1:5222", "XMPP server `host:port` (the STARTTLS port, or the direct TLS port with -tls direct)")
	fs.StringVar(&o.domain, "domain", "localhost", "XMPP domain of the server")
	fs.StringVar(&o.tlsMode, "tls", "starttls", "starttls, or direct (XEP-0368 TLS from the first byte)")
	sources := fs.String("sources", "", "comma-separated local `addresses` to connect from, round-robin (127.0.0.1,127.0.0.2,…: on Linux all of 127/8 is loopback); each gives ~28k connections to one server port")
	fs.BoolVar(&o.insecure, "insecure", true, "accept any server certificate (self-signed test servers)")
	fs.StringVar(&o.caFile, "ca", "", "PEM `file` of a CA (or the self-signed certificate) to verify the server with; implies -insecure=false")
	fs.StringVar(&o.sasl, "sasl", "auto", "SASL mechanism: auto (SCRAM-SHA-256, then SCRAM-SHA-1, then PLAIN), SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN")
	curves := fs.String("curves", "", "TLS key exchanges to offer, in order: comma-separated x25519mlkem768, x25519, p256, p384 (default: Go's, which puts the post-quantum hybrid X25519MLKEM768 first)")
	fs.BoolVar(&o.resumption, "tls-resume", true, "keep a TLS session cache per user so that repeated logins resume TLS sessions, as real clients do")
	fs.StringVar(&o.usersFile, "users", "", "`file` of users, one \"jid password\" per line")
	fs.StringVar(&o.api, "api", "", "chatd REST API base `URL` to create users with (instead of -users)")
	fs.Int64Var(&o.app, "app", 0, "application id (with -api)")
	fs.StringVar(&o.key, "key", "", "application auth_key (with -api)")
	fs.StringVar(&o.secret, "secret", "", "application auth_secret (with -api)")
	fs.StringVar(&o.usersOut, "users-out", "", "cache `file` for users created with -api: reused when it matches, written otherwise")
	fs.StringVar(&o.prefix, "prefix", "chatbench", "login prefix of created users (<prefix>-0, <prefix>-1, …)")
	fs.StringVar(&o.password, "password", "chatbench-pass", "password of created users")
	fs.IntVar(&o.createConc, "create-concurrency", 16, "concurrent REST requests when creating users")
	fs.IntVar(&o.n, "n", 0, "idle: sessions (default 100); offline: messages (default 1000); login: users to cycle through (default 2×concurrency)")
	fs.IntVar(&o.pairs, "pairs", 100, "pairs and rate: sender/receiver pairs")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "pairs, rate, login: measured duration")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "pairs, rate: sending before the measurement starts")
	fs.Float64Var(&o.rate, "rate", 20000, "rate: total messages per second over all senders (chatd throttles a session above 500/s by default: keep rate/pairs below that)")
	fs.IntVar(&o.window, "window", 0, "pairs, rate: most messages in flight per sender (default 32 for pairs, 1000 for rate)")
	fs.IntVar(&o.size, "size", 0, "pairs, rate: pad message bodies to this many `bytes`")
	fs.BoolVar(&o.history, "history", false, "pairs, rate: ask chatd to store each message (QuickBlox save_to_history)")
	fs.IntVar(&o.concurrency, "concurrency", 0, "login: workers (default 32); idle, pairs, rate: parallel logins while opening (default 32)")
	fs.IntVar(&o.pid, "pid", 0, "server process id: report its resident memory (VmRSS) and CPU time from /proc")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "idle: wait this long after the last login before reading the server's memory")
	fs.DurationVar(&o.hold, "hold", 0, "idle: keep the sessions open this much longer after measuring")
	fs.BoolVar(&o.presence, "presence", true, "idle: send initial presence after binding, as clients do")
	fs.BoolVar(&o.jsonOut, "json", false, "print the result as one JSON object")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "bound on the whole run")
	fs.DurationVar(&o.loginTimeout, "login-timeout", 15*time.Second, "bound on one login (connect to bound resource)")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "pairs, rate: how long to wait for messages in flight after sending stops")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write chatbench's own CPU profile to `file`")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	switch o.mode {
	case "idle", "pairs", "rate", "login", "offline":
	case "":
		errs = append(errs, errors.New("-mode is required (idle, pairs, rate, login or offline)"))
	default:
		errs = append(errs, fmt.Errorf("-mode %q: want idle, pairs, rate, login or offline", o.mode))
	}
	switch o.tlsMode {
	case "starttls", "direct":
	default:
		errs = append(errs, fmt.Errorf("-tls %q: want starttls or direct", o.tlsMode))
	}
	switch o.sasl {
	case "auto", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN":
	default:
		errs = append(errs, fmt.Errorf("-sasl %q: want auto, SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN", o.sasl))
	}
	if _, _, err := net.SplitHostPort(o.addr); err != nil {
		errs = append(errs, fmt.Errorf("-addr %q: %v", o.addr, err))
	}
	if *sources != "" {
		for _, s := range strings.Split(*sources, ",") {
			ip := net.ParseIP(strings.TrimSpace(s))
			if ip == nil {
				errs = append(errs, fmt.Errorf("-sources: %q is not an IP address", s))
				continue
			}
			o.sources = append(o.sources, &net.TCPAddr{IP: ip})
		}
	}
	if *curves != "" {
		for _, name := range strings.Split(*curves, ",") {
			id, ok := curveNames[strings.ToLower(strings.TrimSpace(name))]
			if !ok {
				errs = append(errs, fmt.Errorf("-curves: unknown %q", name))
			}
			o.curves = append(o.curves, id)
		}
	}
	if (o.usersFile == "") == (o.api == "") {
		errs = append(errs, errors.New("give exactly one of -users and -api"))
	}
	if o.api != "" && (o.app == 0 || o.key == "" || o.secret == "") {
		errs = append(errs, errors.New("-api needs -app, -key and -secret"))
	}
	if o.concurrency == 0 {
		o.concurrency = 32
	}
	if o.n == 0 {
		switch o.mode {
		case "idle":
			o.n = 100
		case "offline":
			o.n = 1000
		case "login":
			o.n = 2 * o.concurrency
		}
	}
	if o.window == 0 {
		o.window = 32
		if o.mode == "rate" {
			o.window = 1000
		}
	}
	for _, c := range []struct {
		name string
		bad  bool
	}{
		{"-n", o.n < 0}, {"-pairs", o.pairs < 1}, {"-window", o.window < 1}, {"-concurrency", o.concurrency < 1},
		{"-duration", o.duration <= 0}, {"-warmup", o.warmup < 0}, {"-rate", o.mode == "rate" && o.rate <= 0},
		{"-timeout", o.timeout <= 0}, {"-login-timeout", o.loginTimeout <= 0}, {"-size", o.size < 0},
		{"-create-concurrency", o.createConc < 1}, {"-settle", o.settle < 0}, {"-hold", o.hold < 0}, {"-drain", o.drain < 0},
	} {
		if c.bad {
			errs = append(errs, fmt.Errorf("%s is out of range", c.name))
		}
	}
	if o.caFile != "" {
		o.insecure = false
	}
	return o, errors.Join(errs...)
}

var curveNames = map[string]tls.CurveID{
	"x25519mlkem768": tls.X25519MLKEM768, "x25519": tls.X25519, "p256": tls.CurveP256, "p384": tls.CurveP384,
}

// usersNeeded is how many users a mode logs in as.
func (o *options) usersNeeded() int {
	switch o.mode {
	case "idle", "login":
		return o.n
	case "pairs", "rate":
		return 2 * o.pairs
	}
	return 2
}

// portsPerSource is about how many connections one source address can have
// open to one server address: Linux's default ephemeral port range.
const portsPerSource = 28000

// connections is how many connections a mode holds open at once.
func (o *options) connections() int {
	switch o.mode {
	case "idle", "pairs", "rate":
		return o.usersNeeded()
	case "login":
		return o.concurrency
	}
	return 2
}

func (o *options) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{ServerName: o.domain, InsecureSkipVerify: o.insecure, CurvePreferences: o.curves}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificate", o.caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// result is what a run reports; -json prints it as is.
type result struct {
	Mode       string           `json:"mode"`
	Addr       string           `json:"addr"`
	TLS        string           `json:"tls"`
	Sources    int              `json:"sources"`
	Users      int              `json:"users"`
	Mechanisms map[string]int64 `json:"sasl_mechanisms"`
	TLSFull    int64            `json:"tls_full_handshakes"`
	TLSResumed int64            `json:"tls_resumed"`
	KeyCache   struct {
		Hits   int64 `json:"hits"`
		Misses int64 `json:"misses"`
	} `json:"scram_key_cache"`
	Errors     int64      `json:"errors"`
	FirstError string     `json:"first_error,omitempty"`
	Server     *procDelta `json:"server_process,omitempty"`
	Client     *procDelta `json:"chatbench_process,omitempty"`

	Idle    *idleResult    `json:"idle,omitempty"`
	Pairs   *pairsResult   `json:"pairs,omitempty"`
	Login   *loginResult   `json:"login,omitempty"`
	Offline *offlineResult `json:"offline,omitempty"`
}

// bench is one run in progress.
type bench struct {
	o      *options
	d      *dialer
	users  []account
	stderr io.Writer
	errs   errorCount
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	tlsCfg, err := o.tlsConfig()
	if err != nil {
		return err
	}
	b := &bench{o: o, stderr: stderr, d: &dialer{
		addr: o.addr, domain: o.domain, direct: o.tlsMode == "direct", mech: o.sasl, timeout: o.loginTimeout,
		sources: o.sources, tls: tlsCfg, keys: newKeyCache(),
	}}
	if o.resumption {
		b.d.tickets = tls.NewLRUClientSessionCache(max(1024, o.usersNeeded()+16))
	}
	if b.users, err = b.loadUsers(ctx); err != nil {
		return err
	}
	if need := o.usersNeeded(); len(b.users) < need {
		return fmt.Errorf("%s mode needs %d users, the list has %d", o.mode, need, len(b.users))
	}
	b.users = b.users[:o.usersNeeded()]
	if conns := o.connections(); conns > portsPerSource*max(1, len(o.sources)) {
		fmt.Fprintf(stderr, "warning: %d connections to one server port need about %d source addresses (-sources 127.0.0.1,127.0.0.2,…): each gives ~%d\n",
			conns, (conns+portsPerSource-1)/portsPerSource, portsPerSource)
	}

	res := &result{Mode: o.mode, Addr: o.addr, TLS: o.tlsMode, Sources: len(o.sources), Users: len(b.users)}
	var srvBefore, selfBefore procSample
	if o.pid > 0 {
		if srvBefore, err = sampleProc(o.pid); err != nil {
			return fmt.Errorf("-pid %d: %w", o.pid, err)
		}
	}
	selfBefore, selfErr := sampleProc(os.Getpid())

	switch o.mode {
	case "idle":
		res.Idle, err = b.idle(ctx, srvBefore)
	case "pairs", "rate":
		res.Pairs, err = b.pairs(ctx)
	case "login":
		res.Login, err = b.login(ctx)
	case "offline":
		res.Offline, err = b.offline(ctx)
	}
	if err != nil {
		return err
	}
	if o.pid > 0 {
		if after, err := sampleProc(o.pid); err == nil {
			d := deltaOf(srvBefore, after)
			res.Server = &d
		}
	}
	if selfErr == nil {
		if after, err := sampleProc(os.Getpid()); err == nil {
			d := deltaOf(selfBefore, after)
			res.Client = &d
		}
	}
	res.Mechanisms = b.d.mechanisms()
	res.TLSFull, res.TLSResumed = b.d.fullTLS.Load(), b.d.resumed.Load()
	res.KeyCache.Hits, res.KeyCache.Misses = b.d.keys.stats()
	res.Errors, res.FirstError = b.errs.get()
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		return enc.Encode(res)
	}
	printResult(stdout, res)
	return nil
}

// loadUsers reads the user list, or creates the users over REST (reusing a
// matching cache file).
func (b *bench) loadUsers(ctx context.Context) ([]account, error) {
	o := b.o
	if o.usersFile != "" {
		return readUsers(o.usersFile)
	}
	need := o.usersNeeded()
	header := cacheHeader(o.api, o.app, o.prefix, o.domain)
	if o.usersOut != "" {
		if data, err := os.ReadFile(o.usersOut); err == nil {
			first, _, _ := strings.Cut(string(data), "\n")
			if first == header {
				if users, err := parseUsers(strings.NewReader(string(data)), o.usersOut); err == nil && len(users) >= need {
					fmt.Fprintf(b.stderr, "users: %d from %s\n", len(users), o.usersOut)
					return users, nil
				}
			}
		}
	}
	rc := newRESTClient(o.api, o.app, o.key, o.secret, o.domain, o.insecure, o.createConc)
	start := time.Now()
	users, created, err := rc.createUsers(ctx, o.prefix, o.password, need, o.createConc, func(done int) {
		fmt.Fprintf(b.stderr, "users: %d/%d\n", done, need)
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(b.stderr, "users: %d ready (%d created) in %.1fs\n", len(users), created, time.Since(start).Seconds())
	if o.usersOut != "" {
		if err := writeUsers(o.usersOut, header, users); err != nil {
			return nil, err
		}
	}
	return users, nil
}

// printResult prints one human line per figure.
func printResult(w io.Writer, r *result) {
	switch {
	case r.Idle != nil:
		printIdle(w, r.Idle)
	case r.Pairs != nil:
		printPairs(w, r.Mode, r.Pairs)
	case r.Login != nil:
		printLogin(w, r.Login)
	case r.Offline != nil:
		printOffline(w, r.Offline)
	}
	var mechs []string
	for m, n := range r.Mechanisms {
		mechs = append(mechs, fmt.Sprintf("%s %d", m, n))
	}
	sort.Strings(mechs)
	fmt.Fprintf(w, "tls: %s, %d full handshakes, %d resumed; sasl: %s; scram key cache %d hits, %d misses\n",
		r.TLS, r.TLSFull, r.TLSResumed, strings.Join(mechs, ", "), r.KeyCache.Hits, r.KeyCache.Misses)
	if r.Server != nil {
		fmt.Fprintf(w, "server process: RSS %s → %s, CPU %.1fs (%.0f%% of a core)\n",
			kib(r.Server.RSSBeforeKiB), kib(r.Server.RSSAfterKiB), r.Server.CPUSeconds, r.Server.CPUPercent)
	}
	if r.Client != nil {
		fmt.Fprintf(w, "chatbench process: RSS %s, CPU %.1fs (%.0f%% of a core)\n",
			kib(r.Client.RSSAfterKiB), r.Client.CPUSeconds, r.Client.CPUPercent)
	}
	if r.Errors > 0 {
		fmt.Fprintf(w, "errors: %d, first: %s\n", r.Errors, r.FirstError)
	}
}

func kib(k int64) string {
	if k >= 10*1024 {
		return fmt.Sprintf("%.1f MiB", float64(k)/1024)
	}
	return fmt.Sprintf("%d KiB", k)
}
