package turn

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The wrappers below are the sockets handed to pion. They let the server
// know when pion's loops end (for Close), close what pion leaves open, and
// count relayed traffic, using nothing but pion's public API.

// trackedPacketConn is the UDP listener. pion's read loop ends at the first
// read error, which drops the listener's reference.
type trackedPacketConn struct {
	net.PacketConn
	s    *Server
	once sync.Once
}

func (c *trackedPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(b)
	if err != nil {
		c.once.Do(c.s.refs.Done)
	}
	return n, addr, err
}

// loopListener is a TCP or TLS listener as pion sees it. pion's accept loop
// ends at the first accept error, which drops the listener's reference.
type loopListener struct {
	net.Listener
	s    *Server
	once sync.Once
}

func (l *loopListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		l.once.Do(l.s.refs.Done)
	}
	return c, err
}

// connListener registers every accepted TCP connection (below TLS, if any)
// so Close can cut the ones pion leaves open.
type connListener struct {
	net.Listener
	s *Server
}

func (l *connListener) Accept() (net.Conn, error) {
	var c net.Conn
	var release func()
	for {
		var err error
		if c, err = l.Listener.Accept(); err != nil {
			return nil, err
		}
		var ok bool
		if release, ok = l.s.unallocated.Acquire(c.RemoteAddr()); ok {
			break
		}
		// The address holds its share of connections without an
		// allocation: close this one and accept the next (an error would
		// end pion's accept loop).
		c.Close()
		l.s.log.Debug("turn connection refused: too many without an allocation from its address",
			"client", c.RemoteAddr().String())
	}
	tc := &trackedConn{Conn: c, s: l.s, accepted: time.Now(), key: tupleKey(c.RemoteAddr(), c.LocalAddr()), unallocated: release}
	l.s.mu.Lock()
	closed := l.s.closed
	if !closed {
		l.s.conns[tc] = struct{}{}
		l.s.byTuple[tc.key] = tc
	}
	// The accept loop's own reference is held, so the count is not zero.
	l.s.refs.Add(1)
	l.s.mu.Unlock()
	if closed {
		tc.cut()
	}
	return tc, nil
}

// trackedConn is one client connection. pion closes it when its read loop
// for the connection ends; that drops the connection's reference.
type trackedConn struct {
	net.Conn
	s         *Server
	once      sync.Once
	accepted  time.Time
	key       string      // tupleKey(remote, local)
	allocated atomic.Bool // an allocation was made over it
	// unallocated gives back the connection's place among its address's
	// connections without an allocation; idempotent.
	unallocated func()
}

// Read gives each read IdleTimeout to return, and, until an allocation is
// made over the connection, ends it ConnectTimeout after it was accepted:
// pion reads one connection in one goroutine, so a read that times out
// ends the loop and the connection.
func (c *trackedConn) Read(b []byte) (int, error) {
	deadline := time.Now().Add(c.s.cfg.IdleTimeout)
	if first := c.accepted.Add(c.s.cfg.ConnectTimeout); !c.allocated.Load() && first.Before(deadline) {
		deadline = first
	}
	if err := c.Conn.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

// cut closes the socket under pion's read loop, which then ends and calls
// Close.
func (c *trackedConn) cut() { c.Conn.Close() }

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.unallocated()
		c.s.mu.Lock()
		delete(c.s.conns, c)
		if c.s.byTuple[c.key] == c {
			delete(c.s.byTuple, c.key)
		}
		c.s.mu.Unlock()
		c.s.refs.Done()
	})
	return err
}

// relayAllocator is the pion.RelayAddressGenerator: it binds relay sockets
// in the configured port range and advertises RelayAddress.
type relayAllocator struct{ s *Server }

func (r *relayAllocator) Validate() error { return nil }

func (r *relayAllocator) AllocatePacketConn(_ string, requestedPort int) (net.PacketConn, net.Addr, error) {
	s := r.s
	lo, hi := s.cfg.MinPort, s.cfg.MaxPort
	size := hi - lo + 1
	first, tries := lo+rand.IntN(size), size
	if requestedPort != 0 {
		if requestedPort < lo || requestedPort > hi {
			return nil, nil, fmt.Errorf("%w: port %d requested", ErrNoRelayPort, requestedPort)
		}
		first, tries = requestedPort, 1
	}
	var lc net.ListenConfig
	for k := range tries {
		port := lo + (first-lo+k)%size
		pc, err := lc.ListenPacket(context.Background(), "udp4", net.JoinHostPort(s.cfg.RelayBind, strconv.Itoa(port)))
		if errors.Is(err, syscall.EADDRINUSE) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("turn: binding relay: %w", err)
		}
		rc := &relayConn{PacketConn: pc, s: s, port: port}
		s.mu.Lock()
		closed := s.closed
		if !closed {
			s.relays[port] = rc
		}
		s.mu.Unlock()
		if closed {
			pc.Close()
			return nil, nil, ErrClosed
		}
		return rc, &net.UDPAddr{IP: net.ParseIP(s.cfg.RelayAddress).To4(), Port: port}, nil
	}
	return nil, nil, ErrNoRelayPort
}

func (r *relayAllocator) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, ErrTCPRelay
}

// relayConn is one relay socket. It counts what it relays, for the
// allocation's log line and for Stats.
type relayConn struct {
	net.PacketConn
	s    *Server
	port int

	bytesIn, bytesOut atomic.Uint64 // from peers, to peers
	expired           atomic.Bool   // closed by AllocationLifetime
	once              sync.Once
}

func (c *relayConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(b)
	if err == nil {
		c.bytesIn.Add(uint64(n))
		c.s.stats.bytesFromPeers.Add(uint64(n))
		c.s.stats.packetsFromPeers.Add(1)
	}
	return n, addr, err
}

func (c *relayConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	n, err := c.PacketConn.WriteTo(b, addr)
	if err == nil {
		c.bytesOut.Add(uint64(n))
		c.s.stats.bytesToPeers.Add(uint64(n))
		c.s.stats.packetsToPeers.Add(1)
	}
	return n, err
}

// Close closes the socket once; pion's relay loop then ends and deletes the
// allocation if it still exists.
func (c *relayConn) Close() error {
	var err error
	c.once.Do(func() {
		c.s.mu.Lock()
		if c.s.relays[c.port] == c {
			delete(c.s.relays, c.port)
		}
		c.s.mu.Unlock()
		err = c.PacketConn.Close()
	})
	return err
}

// expire ends the allocation when AllocationLifetime passes.
func (c *relayConn) expire() {
	c.expired.Store(true)
	c.Close()
}
