package turn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	pion "github.com/pion/turn/v4"

	"chatd/internal/addrlimit"
)

// closeWait bounds how long Close waits for pion's goroutines to report
// their end once every socket is closed.
const closeWait = 5 * time.Second

// Server is a running TURN server. Build it with New and stop it with Close.
// Its methods are safe for concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	issuer *Issuer
	pion   *pion.Server
	addrs  Addrs
	denied []netip.Prefix

	udp     *trackedPacketConn // nil when off
	tcp     *loopListener      // nil when off
	tls     *loopListener      // nil when off
	tlsPort int                // the TLS listener's port, to name the transport in logs

	// refs counts what pion still holds: each listener until its accept or
	// read loop ends, each accepted connection until pion closes it, each
	// allocation until pion deletes it. Close waits for it to reach zero.
	refs sync.WaitGroup

	mu       sync.Mutex // guards the fields below; never held while calling pion or closing a socket
	closed   bool
	conns    map[*trackedConn]struct{}
	byTuple  map[string]*trackedConn // the same, by five-tuple key
	relays   map[int]*relayConn      // by relay port
	allocs   map[string]*allocation  // by five-tuple key
	perUser  map[int64]int           // allocations held or reserved, by user id
	reserved map[string][]int64      // quota reservations: client address key → user ids

	stats       counters
	unallocated *addrlimit.Limiter // TCP and TLS connections without an allocation, per address

	closeOnce sync.Once
	closeErr  error
}

// Addrs are the addresses the listeners are bound to; a nil field is a
// listener that does not run.
type Addrs struct {
	UDP *net.UDPAddr
	TCP *net.TCPAddr
	TLS *net.TCPAddr
}

// allocation is what the server knows of one pion allocation.
type allocation struct {
	userID    int64
	transport string // "udp", "tcp" or "tls": how the client reaches the server
	client    net.Addr
	relay     *relayConn
	started   time.Time
	limit     *time.Timer // AllocationLifetime
}

// counters back Stats.
type counters struct {
	allocationsTotal   atomic.Uint64
	quotaRefused       atomic.Uint64
	lifetimeEnded      atomic.Uint64
	authFailures       atomic.Uint64
	permissionsRefused atomic.Uint64
	bytesFromPeers     atomic.Uint64
	bytesToPeers       atomic.Uint64
	packetsFromPeers   atomic.Uint64
	packetsToPeers     atomic.Uint64
}

// Stats is a snapshot of the server's counters, read by the metrics
// endpoint. Totals count from New.
type Stats struct {
	// AllocationsActive is the number of allocations alive now.
	AllocationsActive int `json:"allocations_active"`
	// AllocationsTotal counts allocations created.
	AllocationsTotal uint64 `json:"allocations_total"`
	// AllocationsQuotaRefused counts allocations refused by
	// MaxAllocationsPerUser.
	AllocationsQuotaRefused uint64 `json:"allocations_quota_refused_total"`
	// AllocationsLifetimeEnded counts allocations ended by
	// AllocationLifetime.
	AllocationsLifetimeEnded uint64 `json:"allocations_lifetime_ended_total"`
	// AuthFailures counts requests refused for malformed, expired or forged
	// credentials or a wrong realm.
	AuthFailures uint64 `json:"auth_failures_total"`
	// PermissionsRefused counts permissions refused for a denied peer
	// address.
	PermissionsRefused uint64 `json:"permissions_refused_total"`
	// BytesFromPeers and PacketsFromPeers count what the relays received
	// from peers, including datagrams pion then drops because the peer has
	// no permission.
	BytesFromPeers   uint64 `json:"bytes_from_peers_total"`
	PacketsFromPeers uint64 `json:"packets_from_peers_total"`
	// BytesToPeers and PacketsToPeers count what the relays sent to peers.
	BytesToPeers   uint64 `json:"bytes_to_peers_total"`
	PacketsToPeers uint64 `json:"packets_to_peers_total"`
	// ConnectionsRefused counts TCP and TLS connections closed at once
	// because their address held MaxUnallocatedPerAddress connections
	// without an allocation.
	ConnectionsRefused uint64 `json:"connections_refused_total"`
}

// New starts a TURN server for cfg (taken with its defaults). It opens its
// own sockets: the UDP and TCP listeners, and the TLS listener when tlsConfig
// is not nil (tlsConfig is cloned). log receives one line per allocation
// created and deleted and pion's own messages (at debug level, warnings
// rate-limited); it must not be nil.
func New(cfg Config, tlsConfig *tls.Config, log *slog.Logger) (*Server, error) {
	if !cfg.Enabled {
		return nil, ErrDisabled
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	s := &Server{
		cfg:         cfg,
		log:         log,
		unallocated: addrlimit.New(cfg.MaxUnallocatedPerAddress),
		conns:       make(map[*trackedConn]struct{}),
		byTuple:     make(map[string]*trackedConn),
		relays:      make(map[int]*relayConn),
		allocs:      make(map[string]*allocation),
		perUser:     make(map[int64]int),
		reserved:    make(map[string][]int64),
	}
	for _, d := range cfg.DeniedPeers {
		s.denied = append(s.denied, netip.MustParsePrefix(d).Masked())
	}
	if err := s.listen(tlsConfig); err != nil {
		s.closeListeners()
		return nil, err
	}

	var udpPort, tcpPort int
	if s.addrs.UDP != nil {
		udpPort = s.addrs.UDP.Port
	}
	if s.addrs.TCP != nil {
		tcpPort = s.addrs.TCP.Port
	}
	c := cfg
	if s.tls == nil {
		c.TLSAddr = Off
	}
	if s.udp == nil {
		c.UDPAddr = Off
	}
	if s.tcp == nil {
		c.TCPAddr = Off
	}
	s.issuer = newIssuer(c, udpPort, tcpPort, s.tlsPort)

	relays := &relayAllocator{s: s}
	var pcs []pion.PacketConnConfig
	var lcs []pion.ListenerConfig
	if s.udp != nil {
		pcs = append(pcs, pion.PacketConnConfig{
			PacketConn: s.udp, RelayAddressGenerator: relays, PermissionHandler: s.permit,
		})
	}
	for _, l := range []*loopListener{s.tcp, s.tls} {
		if l != nil {
			lcs = append(lcs, pion.ListenerConfig{
				Listener: l, RelayAddressGenerator: relays, PermissionHandler: s.permit,
			})
		}
	}
	ps, err := pion.NewServer(pion.ServerConfig{
		PacketConnConfigs: pcs,
		ListenerConfigs:   lcs,
		LoggerFactory:     newPionLogs(log),
		Realm:             cfg.Realm,
		AuthHandler:       s.authenticate,
		QuotaHandler:      s.quota,
		EventHandler: pion.EventHandler{
			OnAuth:              s.onAuth,
			OnAllocationCreated: s.onAllocationCreated,
			OnAllocationDeleted: s.onAllocationDeleted,
			OnAllocationError:   s.onAllocationError,
		},
	})
	if err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("turn: starting pion: %w", err)
	}
	s.pion = ps

	attrs := []any{"relay_address", cfg.RelayAddress, "relay_bind", cfg.RelayBind,
		"relay_ports", fmt.Sprintf("%d-%d", cfg.MinPort, cfg.MaxPort), "realm", cfg.Realm, "uris", s.issuer.uris()}
	if a := s.addrs.UDP; a != nil {
		attrs = append(attrs, "udp", a.String())
	}
	if a := s.addrs.TCP; a != nil {
		attrs = append(attrs, "tcp", a.String())
	}
	if a := s.addrs.TLS; a != nil {
		attrs = append(attrs, "tls", a.String())
	}
	log.Info("turn server started", attrs...)
	return s, nil
}

// listen opens the listeners cfg asks for.
func (s *Server) listen(tlsConfig *tls.Config) error {
	var lc net.ListenConfig
	ctx := context.Background()
	if s.cfg.UDPAddr != Off {
		pc, err := lc.ListenPacket(ctx, "udp", s.cfg.UDPAddr)
		if err != nil {
			return fmt.Errorf("turn: UDP listener: %w", err)
		}
		s.udp = &trackedPacketConn{PacketConn: pc, s: s}
		s.addrs.UDP = pc.LocalAddr().(*net.UDPAddr)
		s.refs.Add(1)
	}
	if s.cfg.TCPAddr != Off {
		l, err := lc.Listen(ctx, "tcp", s.cfg.TCPAddr)
		if err != nil {
			return fmt.Errorf("turn: TCP listener: %w", err)
		}
		s.tcp = &loopListener{Listener: &connListener{Listener: l, s: s}, s: s}
		s.addrs.TCP = l.Addr().(*net.TCPAddr)
		s.refs.Add(1)
	}
	if s.cfg.TLSAddr != Off && tlsConfig != nil {
		l, err := lc.Listen(ctx, "tcp", s.cfg.TLSAddr)
		if err != nil {
			return fmt.Errorf("turn: TLS listener: %w", err)
		}
		// Connections are tracked below TLS, so Close can cut them even
		// in the middle of a handshake.
		raw := &connListener{Listener: l, s: s}
		s.tls = &loopListener{Listener: tls.NewListener(raw, tlsConfig.Clone()), s: s}
		s.addrs.TLS = l.Addr().(*net.TCPAddr)
		s.tlsPort = s.addrs.TLS.Port
		s.refs.Add(1)
	}
	return nil
}

// closeListeners closes what listen opened, for a New that fails.
func (s *Server) closeListeners() {
	if s.udp != nil {
		s.udp.PacketConn.Close()
	}
	if s.tcp != nil {
		s.tcp.Listener.Close()
	}
	if s.tls != nil {
		s.tls.Listener.Close()
	}
}

// Addrs returns the addresses the listeners are bound to.
func (s *Server) Addrs() Addrs { return s.addrs }

// Issuer returns the Issuer of credentials for this server: its URIs carry
// the configured public ports or else the ports the listeners are bound to,
// and only the listeners that run.
func (s *Server) Issuer() *Issuer { return s.issuer }

// Issue is s.Issuer().Issue.
func (s *Server) Issue(userID int64, now time.Time) Credentials { return s.issuer.Issue(userID, now) }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	active := len(s.allocs)
	s.mu.Unlock()
	c := &s.stats
	return Stats{
		AllocationsActive:        active,
		AllocationsTotal:         c.allocationsTotal.Load(),
		AllocationsQuotaRefused:  c.quotaRefused.Load(),
		AllocationsLifetimeEnded: c.lifetimeEnded.Load(),
		AuthFailures:             c.authFailures.Load(),
		PermissionsRefused:       c.permissionsRefused.Load(),
		BytesFromPeers:           c.bytesFromPeers.Load(),
		PacketsFromPeers:         c.packetsFromPeers.Load(),
		BytesToPeers:             c.bytesToPeers.Load(),
		PacketsToPeers:           c.packetsToPeers.Load(),
		ConnectionsRefused:       uint64(s.unallocated.Refused()),
	}
}

// Close stops the server: it closes the listeners, every client connection
// and every relay socket, then waits (a few seconds at most) until pion has
// deleted every allocation and left every loop it ran. It is safe to call
// more than once; later calls return what the first returned.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.shutdown() })
	return s.closeErr
}

func (s *Server) shutdown() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()

	var errs []error
	// pion closes the listeners; their loops then end and close the
	// allocations of their listener.
	if err := s.pion.Close(); err != nil {
		errs = append(errs, err)
	}
	// pion leaves accepted connections open, and an allocation made on a
	// connection while its listener was closing would escape the listener's
	// clean-up: close both kinds of socket here.
	s.mu.Lock()
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	relays := make([]*relayConn, 0, len(s.relays))
	for _, r := range s.relays {
		relays = append(relays, r)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.cut()
	}
	for _, r := range relays {
		r.Close()
	}

	done := make(chan struct{})
	go func() {
		s.refs.Wait()
		close(done)
	}()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		errs = append(errs, ErrCloseTimeout)
	}
	err := errors.Join(errs...)
	if err != nil {
		s.log.Warn("turn server stopped", "err", err)
	} else {
		s.log.Info("turn server stopped")
	}
	return err
}
