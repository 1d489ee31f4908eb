// Package addrlimit bounds the connections one client address holds in a
// state that costs the server a socket and a goroutine but proves nothing
// yet: an XMPP stream not authenticated, a TURN TCP connection without an
// allocation. Both are closed after a timeout anyway, but without a bound
// per address one machine can open enough of them to use up the process's
// file descriptors, which XMPP, REST and TURN share.
//
// An address is an IPv4 address or an IPv6 /64, the block one host or
// one subscriber is usually given: counting single IPv6 addresses would let
// one host take as many as it likes.
package addrlimit

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Limiter counts held connections per address. The zero value and a nil
// Limiter do not limit.
type Limiter struct {
	max     int
	mu      sync.Mutex
	held    map[netip.Prefix]int
	refused atomic.Int64
}

// New returns a Limiter allowing max connections per address at once; max
// ≤ 0 allows any number.
func New(max int) *Limiter {
	return &Limiter{max: max, held: map[netip.Prefix]int{}}
}

// Key is the block addr is counted in: the IPv4 address (also for
// IPv4-mapped IPv6) or the IPv6 /64. ok is false for addresses that are
// not IP (they are not limited).
func Key(addr net.Addr) (key netip.Prefix, ok bool) {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, ok = netip.AddrFromSlice(a.IP)
	case *net.UDPAddr:
		ip, ok = netip.AddrFromSlice(a.IP)
	default:
		if addr == nil {
			return netip.Prefix{}, false
		}
		ap, err := netip.ParseAddrPort(addr.String())
		ip, ok = ap.Addr(), err == nil
	}
	if !ok {
		return netip.Prefix{}, false
	}
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	key, err := ip.WithZone("").Prefix(bits)
	return key, err == nil
}

// Acquire counts a connection from addr. It returns false, counting
// nothing, when the address already holds the maximum. release gives the
// place back; calling it again does nothing.
func (l *Limiter) Acquire(addr net.Addr) (release func(), ok bool) {
	if l == nil || l.max <= 0 {
		return func() {}, true
	}
	key, ok := Key(addr)
	if !ok {
		return func() {}, true
	}
	l.mu.Lock()
	if l.held[key] >= l.max {
		l.mu.Unlock()
		l.refused.Add(1)
		return nil, false
	}
	l.held[key]++
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			if l.held[key]--; l.held[key] <= 0 {
				delete(l.held, key)
			}
			l.mu.Unlock()
		})
	}, true
}

// Refused is how many connections Acquire refused.
func (l *Limiter) Refused() int64 {
	if l == nil {
		return 0
	}
	return l.refused.Load()
}
