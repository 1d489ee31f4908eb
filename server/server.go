// Package server assembles a chatd node from its configuration: it opens
// storage, loads the certificate, builds every part by hand in dependency
// order, starts the listeners, and stops everything in reverse order.
//
// cmd/chatd is a thin wrapper around Start; tests start whole nodes the same
// way on 127.0.0.1:0 and ask the Server for its bound addresses.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"chatd/account"
	"chatd/config"
	"chatd/history"
	"chatd/internal/certs"
	"chatd/muc"
	"chatd/restapi"
	"chatd/store/mongo"
	"chatd/turn"
	"chatd/xmpp"
)

// Server is a running chatd node.
type Server struct {
	cfg  *config.Config
	log  *slog.Logger
	errc chan error

	// The parts, for the admin commands and tests.
	Accounts *account.Service
	History  *history.Service
	XMPP     *xmpp.Server
	MUC      *muc.Service
	TURN     *turn.Server
	// CertFile is the PEM certificate every TLS listener serves.
	CertFile string

	apiAddr, httpAddr, pprofAddr net.Addr

	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
	stoppers []func(context.Context) error // run in reverse order
}

// Start builds and starts a node. On error everything already started is
// stopped again.
func Start(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, log: log, errc: make(chan error, 8)}
	if err := s.start(ctx); err != nil {
		s.Shutdown(context.Background())
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context) error {
	cfg, log := s.cfg, s.log

	stores, err := OpenStorage(ctx, cfg, log)
	if err != nil {
		return err
	}
	s.onStop(func(ctx context.Context) error { return stores.Close(ctx) })
	if stores.RepairHistory != nil {
		s.repairHistory(stores.RepairHistory, cfg.RepairGrace())
	}

	cert, certFile, err := certs.Load(cfg.TLS.CertFile, cfg.TLS.KeyFile, cfg.TLSDir(), cfg.TLS.Hosts)
	if err != nil {
		return err
	}
	s.CertFile = certFile
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	s.Accounts = account.NewService(stores.Accounts, cfg.Account(), log.With("part", "account"))
	if err := s.ensureApp(ctx); err != nil {
		return err
	}
	s.every(10*time.Minute, func(ctx context.Context) {
		if err := s.Accounts.SweepExpired(ctx); err != nil {
			log.Warn("sweeping expired sessions", "err", err)
		}
	})

	s.History = history.NewService(stores.History, s.Accounts, cfg.History(), log.With("part", "history"))
	s.onStop(func(context.Context) error { s.History.Close(); return nil })

	if s.XMPP, err = xmpp.New(cfg.XMPPConfig(), tlsConfig, s.Accounts, stores.XMPP, log.With("part", "xmpp")); err != nil {
		return err
	}
	s.XMPP.SetHistory(s.History)
	s.Accounts.OnUserDeleted(func(app, user int64) {
		s.XMPP.EndUserSessions(xmpp.UserRef{App: app, User: user}, "the account was deleted")
	})
	s.MUC = muc.New(cfg.MUCConfig(), s.XMPP, s.History, log.With("part", "muc"))
	secret, err := s.turnSecret()
	if err != nil {
		return err
	}
	turnCfg, err := cfg.TURNConfig(secret)
	if err != nil {
		return err
	}
	var issuer *turn.Issuer
	if cfg.TURN.Enabled {
		if s.TURN, err = turn.New(turnCfg, tlsConfig, log.With("part", "turn")); err != nil {
			return err
		}
		s.onStop(func(context.Context) error { return s.TURN.Close() })
		issuer = s.TURN.Issuer()
		log.Info("TURN listening", "relay", turnCfg.RelayAddress)
	}
	if issuer == nil && cfg.TURN.Secret != "" {
		// TURN runs elsewhere (coturn with the same static-auth-secret):
		// credentials are still issued for it.
		if issuer, err = turn.NewIssuer(turnCfg); err != nil {
			return err
		}
	}
	if issuer != nil {
		serveExtDisco(s.XMPP, issuer)
	}
	if err := s.XMPP.Start(); err != nil {
		return err
	}
	s.onStop(s.XMPP.Shutdown)
	for _, a := range []net.Addr{s.XMPP.TCPAddr(), s.XMPP.TLSAddr(), s.XMPP.WebSocketAddr()} {
		if a != nil {
			log.Info("XMPP listening", "addr", a.String())
		}
	}

	api := restapi.New(cfg.RESTAPI(), restapi.Deps{Accounts: s.Accounts, History: s.History, Chat: s.XMPP, TURN: issuer,
		Stats: s.Stats}, log.With("part", "restapi"))
	if cfg.API.Listen != "" {
		if s.apiAddr, err = s.serveHTTP(cfg.API.Listen, api.Handler(), tlsConfig); err != nil {
			return err
		}
		log.Info("REST API listening", "addr", s.apiAddr.String(), "tls", true)
	}
	if cfg.API.HTTPListen != "" {
		if s.httpAddr, err = s.serveHTTP(cfg.API.HTTPListen, api.Handler(), nil); err != nil {
			return err
		}
		log.Info("REST API listening", "addr", s.httpAddr.String(), "tls", false)
	}
	if cfg.Log.PprofListen != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		if s.pprofAddr, err = s.serveHTTP(cfg.Log.PprofListen, mux, nil); err != nil {
			return err
		}
		log.Info("profiler listening", "addr", s.pprofAddr.String())
	}
	return nil
}

// Stats returns the counters of every part, for the admin API.
func (s *Server) Stats() map[string]any {
	out := map[string]any{}
	add := func(name string, v any) {
		var m map[string]any
		b, _ := json.Marshal(v)
		json.Unmarshal(b, &m)
		out[name] = m
	}
	if s.XMPP != nil {
		add("xmpp", s.XMPP.Stats())
	}
	if s.TURN != nil {
		add("turn", s.TURN.Stats())
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	out["runtime"] = map[string]any{
		"goroutines":        runtime.NumGoroutine(),
		"heap_inuse_bytes":  ms.HeapInuse,
		"heap_alloc_bytes":  ms.HeapAlloc,
		"stack_inuse_bytes": ms.StackInuse,
		"sys_bytes":         ms.Sys,
		"gc_total":          ms.NumGC,
	}
	return out
}

// turnSecret returns the TURN REST secret: the configured one, else the one
// kept in the data directory, generated on first start.
func (s *Server) turnSecret() (string, error) {
	if s.cfg.TURN.Secret != "" {
		return s.cfg.TURN.Secret, nil
	}
	path := s.cfg.TURNSecretFile()
	if b, err := os.ReadFile(path); err == nil {
		if secret := strings.TrimSpace(string(b)); secret != "" {
			return secret, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("server: %w", err)
	}
	secret := turn.GenerateSecret()
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return "", fmt.Errorf("server: %w", err)
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("server: %w", err)
	}
	return secret, nil
}

// onStop registers fn to run at shutdown, before everything registered
// earlier.
func (s *Server) onStop(fn func(context.Context) error) { s.stoppers = append(s.stoppers, fn) }

// every runs fn every interval until shutdown.
func (s *Server) every(interval time.Duration, fn func(context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fn(ctx)
			}
		}
	}()
	s.onStop(func(context.Context) error { cancel(); return nil })
}

// After a start on MongoDB, the leftovers of history writes that an earlier
// process was killed in are deleted in the background, repairDelay after
// the start (once reconnecting clients have settled), when they are older
// than storage.mongodb_repair_grace (see mongo.DB.RepairHistory).
var repairDelay = time.Minute

// repairHistory runs repair once, repairDelay from now, and logs what it
// removed. Shutdown cancels it and waits for it, before storage closes.
func (s *Server) repairHistory(repair func(context.Context, time.Duration) (mongo.RepairReport, error), grace time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(done)
		t := time.NewTimer(repairDelay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rep, err := repair(ctx, grace)
		attrs := []any{"scanned", rep.Scanned, "orphaned", rep.Orphaned, "read", rep.Read, "hidden", rep.Hidden}
		switch {
		case err != nil:
			s.log.Warn("history repair stopped", append(attrs, "err", err)...)
		case rep.Removed() > 0:
			s.log.Info("history repair removed the leftovers of interrupted writes", attrs...)
		default:
			s.log.Info("history repair found nothing to remove", attrs...)
		}
	}()
	s.onStop(func(context.Context) error {
		// Storage closes after this: wait for the pass whatever time is
		// left, it stops at its next call to the database.
		cancel()
		<-done
		return nil
	})
}

// httpReadTimeout bounds reading one whole request, body included, on the
// REST listener: without it a client trickling a body (at most
// api.max_body_bytes) would hold its connection and goroutine for as long
// as it likes; ReadHeaderTimeout covers only the headers. A variable for
// the tests.
var httpReadTimeout = time.Minute

// serveHTTP listens on addr and serves h, over TLS when tlsConfig is set.
func (s *Server) serveHTTP(addr string, h http.Handler, tlsConfig *tls.Config) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       httpReadTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.fail(fmt.Errorf("server: serving %s: %w", addr, err))
		}
	}()
	s.onStop(hs.Shutdown)
	return ln.Addr(), nil
}

// fail reports a fatal error of a running part.
func (s *Server) fail(err error) {
	select {
	case s.errc <- err:
	default:
	}
}

// Err delivers the first fatal error of a running part.
func (s *Server) Err() <-chan error { return s.errc }

// APIAddr is the bound HTTPS address (nil when disabled).
func (s *Server) APIAddr() net.Addr { return s.apiAddr }

// PprofAddr is the bound profiler address (nil when disabled).
func (s *Server) PprofAddr() net.Addr { return s.pprofAddr }

// HTTPAddr is the bound plain-HTTP address (nil when disabled).
func (s *Server) HTTPAddr() net.Addr { return s.httpAddr }

// Shutdown stops every part in reverse start order, waits for their
// goroutines and closes storage last. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		var errs []error
		for i := len(s.stoppers) - 1; i >= 0; i-- {
			if err := s.stoppers[i](ctx); err != nil {
				errs = append(errs, err)
			}
		}
		s.wg.Wait()
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// ensureApp creates a first application when there is none and prints its
// credentials, so that a new installation can be used at once.
func (s *Server) ensureApp(ctx context.Context) error {
	apps, err := s.Accounts.Apps(ctx)
	if err != nil {
		return err
	}
	if len(apps) > 0 {
		return nil
	}
	app, err := s.Accounts.CreateApp(ctx, "chatd")
	if err != nil {
		return err
	}
	s.log.Info("created the first application; use these credentials in QB.init",
		"application_id", app.ID, "auth_key", app.AuthKey, "auth_secret", app.AuthSecret)
	return nil
}
