package xmpp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/websocket"

	"chatd/account"
	"chatd/internal/addrlimit"
	"chatd/xmpp/stanza"
)

// Accounts is what the XMPP server needs from the account service.
type Accounts interface {
	Authenticator
	User(ctx context.Context, appID, id int64) (*account.User, error)
	Touch(ctx context.Context, appID, userID int64)
}

// Service handles stanzas addressed to a domain of its own, such as
// muc.<domain>. Route is called on the sender's reader goroutine (or a REST
// request's) with the sender's stamped stanza; like everything else it must
// only enqueue.
type Service interface {
	Route(ctx context.Context, from Sender, el *stanza.Element)
}

// Sender is who a stanza routed to a Service comes from: a bound session, or
// a user acting through the REST API (send_to_chat), whose Session is nil.
type Sender struct {
	User    UserRef
	JID     JID // the session's full JID, or the user's bare JID
	Session *Session
}

func (s *Session) sender() Sender { return Sender{User: s.user, JID: s.jid, Session: s} }

// Server is the XMPP client-to-server service: listeners, sessions, the
// router and the server's own IQ handlers.
type Server struct {
	cfg       Config
	tlsConfig *tls.Config
	accounts  Accounts
	store     Store
	log       *slog.Logger
	router    *router
	limiter   *authLimiter
	unauthed  *addrlimit.Limiter // connections not authenticated yet, per address
	lastWarn  atomic.Int64       // when a refusal was last logged (unix ns)
	fakeSalt  func(string) []byte
	started   time.Time
	metrics   metrics
	// usersEnded counts EndUserSessions calls (account deletions).
	usersEnded atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	services  map[string]Service
	features  []string // disco#info features, besides the built-in ones
	listeners []net.Listener
	https     []*http.Server
	conns     map[*Session]struct{}
	detached  map[string]*Session // resumable sessions without a connection, by SM id
	resumable map[string]*Session // every resumable session, by SM id
	smEnded   smEnded             // the last counts of resumable sessions that ended
	stopping  bool
	stopOnce  sync.Once

	tcpAddr, tlsAddr, wsAddr net.Addr

	hooks         Hooks
	deliveryLocks userLocks
	history       History
	sessionEnd    []func(*Session)
	iqHandlers    map[string]IQHandler
	rosterLocks   rosterLocks
}

// Hooks let other parts follow steps of delivery. Set them with SetHooks
// before Start.
type Hooks struct {
	// OfflineStored is told of each message stored for an offline user (a
	// push notification candidate).
	OfflineStored func(ctx context.Context, to UserRef, msg *stanza.Element)
}

// SetHooks installs hooks; call before Start.
func (srv *Server) SetHooks(h Hooks) { srv.hooks = h }

// metrics are the server's counters; Stats returns a snapshot.
type metrics struct {
	connections, logins, authFailures atomic.Int64
	stanzasIn, stanzasOut             atomic.Int64
	overflows, tooLarge, panics       atomic.Int64
	throttled                         atomic.Int64
	offlineStored, offlineDelivered   atomic.Int64
	detached, resumed, resumeFailed   atomic.Int64
	pipelined                         atomic.Int64
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	Sessions         int   `json:"sessions"`
	Connections      int64 `json:"connections_total"`
	Logins           int64 `json:"logins_total"`
	AuthFailures     int64 `json:"auth_failures_total"`
	StanzasIn        int64 `json:"stanzas_in_total"`
	StanzasOut       int64 `json:"stanzas_out_total"`
	QueueOverflows   int64 `json:"queue_overflows_total"`
	StanzasTooLarge  int64 `json:"stanzas_too_large_total"`
	Panics           int64 `json:"panics_total"`
	Throttled        int64 `json:"throttled_total"`
	OfflineStored    int64 `json:"offline_stored_total"`
	OfflineDelivered int64 `json:"offline_delivered_total"`
	Detached         int64 `json:"sm_detached_total"`
	Resumed          int64 `json:"sm_resumed_total"`
	ResumeFailed     int64 `json:"sm_resume_failed_total"`
	// Refused counts connections refused because their address held
	// MaxUnauthenticatedPerAddress unauthenticated ones.
	Refused int64 `json:"connections_refused_total"`
	// HistoryPipelined counts the messages with save_to_history begun while
	// earlier ones of their session were still being stored (pipeline.go).
	HistoryPipelined int64 `json:"history_pipelined_total"`
}

// New returns a server; Start opens its listeners.
func New(cfg Config, tlsConfig *tls.Config, accounts Accounts, store Store, log *slog.Logger) (*Server, error) {
	cfg = cfg.withDefaults()
	if cfg.Domain == "" {
		return nil, errors.New("xmpp: no domain configured")
	}
	switch cfg.ResourceConflict {
	case "replace", "reject", "rename":
	default:
		return nil, fmt.Errorf("xmpp: unknown resource conflict policy %q", cfg.ResourceConflict)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	ctx, cancel := context.WithCancel(context.Background())
	srv := &Server{
		cfg:       cfg,
		tlsConfig: tlsConfig,
		accounts:  accounts,
		store:     store,
		log:       log,
		unauthed:  addrlimit.New(cfg.MaxUnauthenticatedPerAddress),
		router:    newRouter(),
		limiter:   newAuthLimiter(cfg.AuthFailureDelay),
		fakeSalt:  fakeSalter(secret),
		started:   time.Now(),
		ctx:       ctx,
		cancel:    cancel,
		services:  map[string]Service{},
		conns:     map[*Session]struct{}{},
		detached:  map[string]*Session{},
		resumable: map[string]*Session{},
	}
	srv.iqHandlers = map[string]IQHandler{nsCarbons: srv.carbonsIQ, nsPrivacy: srv.privacyIQ, nsBlocking: srv.blockingIQ}
	srv.features = append([]string{nsCarbons, nsPrivacy, nsBlocking, nsIBB, "msgoffline"}, ampFeatures...)
	return srv, nil
}

// Domain returns the server's domain.
func (srv *Server) Domain() string { return srv.cfg.Domain }

// RegisterService routes stanzas for domain to svc and lists it in the
// server's disco#items.
func (srv *Server) RegisterService(domain string, svc Service) {
	srv.mu.Lock()
	srv.services[domain] = svc
	srv.mu.Unlock()
}

// Start opens the configured listeners and starts serving.
func (srv *Server) Start() error {
	if srv.cfg.Listen != "" {
		ln, err := net.Listen("tcp", srv.cfg.Listen)
		if err != nil {
			return fmt.Errorf("xmpp: %w", err)
		}
		srv.tcpAddr = ln.Addr()
		srv.serveListener(ln, false)
	}
	if srv.cfg.TLSListen != "" {
		if srv.tlsConfig == nil {
			return errors.New("xmpp: direct TLS needs a certificate")
		}
		ln, err := net.Listen("tcp", srv.cfg.TLSListen)
		if err != nil {
			return fmt.Errorf("xmpp: %w", err)
		}
		srv.tlsAddr = ln.Addr()
		srv.serveListener(ln, true)
	}
	if srv.cfg.WebSocketListen != "" {
		if err := srv.serveWebSocket(); err != nil {
			return err
		}
	}
	srv.wg.Add(1)
	go srv.pingLoop()
	return nil
}

// TCPAddr, TLSAddr and WebSocketAddr return bound addresses (nil when off).
func (srv *Server) TCPAddr() net.Addr       { return srv.tcpAddr }
func (srv *Server) TLSAddr() net.Addr       { return srv.tlsAddr }
func (srv *Server) WebSocketAddr() net.Addr { return srv.wsAddr }

func (srv *Server) serveListener(ln net.Listener, directTLS bool) {
	srv.mu.Lock()
	srv.listeners = append(srv.listeners, ln)
	srv.mu.Unlock()
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		var backoff time.Duration
		for {
			c, err := ln.Accept()
			if err != nil {
				if srv.isStopping() || errors.Is(err, net.ErrClosed) {
					return
				}
				// Out of file descriptors and the like: back off (5ms doubling
				// to 1s, as net/http does) instead of spinning.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				srv.log.Warn("accept failed; backing off", "err", err, "delay", backoff)
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-srv.ctx.Done():
					t.Stop()
					return
				}
				continue
			}
			backoff = 0
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetKeepAlive(true)
				tc.SetKeepAlivePeriod(time.Minute)
			}
			release, ok := srv.unauthed.Acquire(c.RemoteAddr())
			if !ok {
				srv.refuse(c, directTLS)
				continue
			}
			var tlsConfig *tls.Config
			if directTLS {
				tlsConfig = srv.tlsConfig
			}
			srv.serveConn(newTCPTransport(c, srv.cfg.MaxStanzaBytes, tlsConfig), c.RemoteAddr(), release)
		}
	}()
}

// errTooManyUnauthenticated is the answer to a connection over
// MaxUnauthenticatedPerAddress.
var errTooManyUnauthenticated = streamErr("policy-violation", "too many connections from this address are not authenticated yet")

// refuse answers a connection whose address holds its share of
// unauthenticated connections: a plain one gets the stream error, which
// costs one write; a direct TLS one is closed, as answering would cost the
// handshake the bound saves. The write has its own goroutine and a short
// deadline, so a client that does not read cannot stall the accept loop.
func (srv *Server) refuse(c net.Conn, directTLS bool) {
	srv.noteRefused(c.RemoteAddr())
	if directTLS {
		c.Close()
		return
	}
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		end := append(errTooManyUnauthenticated.element().AppendXML(nil, ""), "</stream:stream>"...)
		if _, err := c.Write(headerBytes(newStreamID(), srv.cfg.Domain, end)); err != nil {
			return
		}
		// Closing with the client's header unread would reset the
		// connection, and the client could lose the error: end our side,
		// then read what it sends until it closes or the second is up.
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
			io.Copy(io.Discard, io.LimitReader(c, 64<<10))
		}
	}()
}

// noteRefused logs refused connections, at most once a minute.
func (srv *Server) noteRefused(addr net.Addr) {
	now := time.Now().UnixNano()
	if last := srv.lastWarn.Load(); now-last >= int64(time.Minute) && srv.lastWarn.CompareAndSwap(last, now) {
		srv.log.Warn("refusing connections: the address holds too many that are not authenticated yet",
			"addr", addr.String(), "max", srv.cfg.MaxUnauthenticatedPerAddress, "refused_total", srv.unauthed.Refused())
	}
}

// serveConn starts a session on its own goroutine. release gives back the
// connection's place among its address's unauthenticated ones.
func (srv *Server) serveConn(tr transport, remote net.Addr, release func()) {
	s := srv.newSession(tr, remote, release)
	if s == nil {
		tr.Close()
		return
	}
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		s.serve(srv.ctx)
	}()
}

func (srv *Server) newSession(tr transport, remote net.Addr, release func()) *Session {
	ip := ""
	if remote != nil {
		ip, _, _ = net.SplitHostPort(remote.String())
	}
	s := &Session{srv: srv, tr: tr, id: newStreamID(), ip: ip, unauthed: release,
		drained: make(chan struct{}, 1), writerExit: make(chan struct{}, 1)}
	s.log = sessionLog{s}
	if remote != nil {
		s.remote = remote.String()
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.stopping {
		release()
		return nil
	}
	srv.conns[s] = struct{}{}
	srv.metrics.connections.Add(1)
	return s
}

func (srv *Server) forget(s *Session) {
	s.unauthed()
	id, h := s.smCount()
	srv.mu.Lock()
	delete(srv.conns, s)
	if id != "" && srv.resumable[id] == s {
		delete(srv.resumable, id)
		srv.smEnded.add(id, s.user, h, time.Now())
	}
	srv.mu.Unlock()
}

func (srv *Server) isStopping() bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.stopping
}

// paceWait is how long to wait, at now, before telling the i-th of n
// sessions to go, for the n to be spread evenly over window from start. It
// keeps to the schedule rather than waiting a fixed step each time: timers
// are not finer than about a millisecond, so with thousands of sessions
// fixed steps of a fraction of one would stretch the window many times
// over. Sessions less than a millisecond ahead of now go at once.
func paceWait(start, now time.Time, i, n int, window time.Duration) time.Duration {
	if n <= 1 {
		return 0
	}
	due := start.Add(window * time.Duration(i) / time.Duration(n))
	if wait := due.Sub(now); wait >= time.Millisecond {
		return wait
	}
	return 0
}

// unauthedKey carries a WebSocket connection's release func to its session.
type unauthedKey struct{}

// serveWebSocket starts the RFC 7395 listener.
func (srv *Server) serveWebSocket() error {
	ln, err := net.Listen("tcp", srv.cfg.WebSocketListen)
	if err != nil {
		return fmt.Errorf("xmpp: %w", err)
	}
	srv.wsAddr = ln.Addr()
	ws := websocket.Server{
		Handshake: func(cfg *websocket.Config, r *http.Request) error {
			for _, p := range cfg.Protocol {
				if strings.EqualFold(p, "xmpp") {
					cfg.Protocol = []string{"xmpp"}
					return nil
				}
			}
			return errors.New("xmpp: the WebSocket subprotocol must be xmpp")
		},
		Handler: func(c *websocket.Conn) {
			tr := newWSTransport(c, srv.cfg.MaxStanzaBytes)
			release, _ := c.Request().Context().Value(unauthedKey{}).(func())
			if release == nil {
				release = func() {}
			}
			s := srv.newSession(tr, tr.RemoteAddr(), release)
			if s == nil {
				return
			}
			srv.wg.Add(1)
			defer srv.wg.Done()
			s.serve(srv.ctx)
		},
	}
	// An address over its share of unauthenticated connections is
	// refused before the upgrade. The place is held until the session
	// authenticates or, at the latest, until the handler returns.
	upgrade := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		remote := requestAddr(r)
		release, ok := srv.unauthed.Acquire(remote)
		if !ok {
			srv.noteRefused(remote)
			w.Header().Set("Retry-After", "10")
			http.Error(w, errTooManyUnauthenticated.Text, http.StatusServiceUnavailable)
			return
		}
		defer release()
		ws.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), unauthedKey{}, release)))
	})
	mux := http.NewServeMux()
	path := srv.cfg.WebSocketPath
	if path == "" || path == "/" {
		mux.Handle("/", upgrade)
	} else {
		mux.Handle(path, upgrade)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(srv.log.Handler(), slog.LevelDebug)}
	if srv.cfg.WebSocketTLS {
		if srv.tlsConfig == nil {
			ln.Close()
			return errors.New("xmpp: wss needs a certificate")
		}
		ln = tls.NewListener(ln, srv.tlsConfig)
	}
	srv.mu.Lock()
	srv.https = append(srv.https, hs)
	srv.mu.Unlock()
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			srv.log.Error("WebSocket listener stopped", "err", err)
		}
	}()
	return nil
}

// pingLoop pings sessions that have been silent for PingInterval
// (XEP-0199); their read deadline closes those that stay silent.
func (srv *Server) pingLoop() {
	defer srv.wg.Done()
	every := max(srv.cfg.PingInterval/4, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-srv.ctx.Done():
			return
		case now := <-t.C:
			srv.requestAcks(now)
			srv.router.each(func(s *Session) {
				if now.UnixNano()-s.lastRead.Load() >= int64(srv.cfg.PingInterval) && !s.pinged.Swap(true) {
					s.send(stanza.New("iq", stanza.NSClient, "type", "get", "id", "srvping-"+newStreamID()[:8],
						"from", srv.cfg.Domain).Append(stanza.New("ping", nsPing)))
				}
			})
		}
	}
}

// Stats returns the server's counters.
func (srv *Server) Stats() Stats {
	m := &srv.metrics
	return Stats{
		Sessions:         srv.router.count(),
		Connections:      m.connections.Load(),
		Logins:           m.logins.Load(),
		AuthFailures:     m.authFailures.Load(),
		StanzasIn:        m.stanzasIn.Load(),
		StanzasOut:       m.stanzasOut.Load(),
		QueueOverflows:   m.overflows.Load(),
		StanzasTooLarge:  m.tooLarge.Load(),
		Panics:           m.panics.Load(),
		Throttled:        m.throttled.Load(),
		OfflineStored:    m.offlineStored.Load(),
		OfflineDelivered: m.offlineDelivered.Load(),
		Detached:         m.detached.Load(),
		Resumed:          m.resumed.Load(),
		ResumeFailed:     m.resumeFailed.Load(),
		Refused:          srv.unauthed.Refused(),

		HistoryPipelined: m.pipelined.Load(),
	}
}

// Shutdown stops accepting, tells every session <system-shutdown/> spread
// over the shutdown window, and waits for every goroutine until ctx ends,
// when remaining connections are cut. Safe to call more than once.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.stopOnce.Do(func() {
		srv.mu.Lock()
		srv.stopping = true
		lns, hss := srv.listeners, srv.https
		conns := make([]*Session, 0, len(srv.conns))
		for s := range srv.conns {
			conns = append(conns, s)
		}
		srv.mu.Unlock()
		for _, ln := range lns {
			ln.Close()
		}
		for _, hs := range hss {
			// Hijacked WebSocket connections are not closed by this; the
			// sessions below are.
			hs.Close()
		}
		start := time.Now()
		for i, s := range conns {
			if wait := paceWait(start, time.Now(), i, len(conns), srv.cfg.ShutdownWindow); wait > 0 && ctx.Err() == nil {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
			}
			s.closeWith(streamErr("system-shutdown", ""), false)
		}
	})
	srv.endDetached()
	done := make(chan struct{})
	go func() {
		// Readers end once their connections close; then the ping loop stops.
		srv.waitSessions(ctx)
		srv.cancel()
		srv.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		srv.cancel()
		srv.mu.Lock()
		for s := range srv.conns {
			s.tr.Close()
		}
		srv.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// waitSessions waits until every session has ended or ctx ends.
func (srv *Server) waitSessions(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		srv.mu.Lock()
		n := len(srv.conns)
		srv.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
