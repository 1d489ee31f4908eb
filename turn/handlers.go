package turn

import (
	"net"
	"net/netip"
	"time"

	pion "github.com/pion/turn/v4"
)

// The functions below are the handlers given to pion. pion calls them from
// its read loops (one per UDP listener, one per TCP or TLS connection) and
// from its relay loops (one per allocation), never under its own locks.

// authenticate is the pion.AuthHandler: it refuses malformed and expired
// usernames and other realms, and otherwise returns the long-term key for
// the password the secret gives; pion then checks the request's integrity
// against it, so a forged password fails there (reported to onAuth).
func (s *Server) authenticate(username, realm string, src net.Addr) ([]byte, bool) {
	_, err := s.issuer.checkUsername(username, time.Now())
	if err == nil && realm != s.cfg.Realm {
		err = ErrWrongRealm
	}
	if err != nil {
		s.stats.authFailures.Add(1)
		s.log.Debug("turn credentials refused", "client", src.String(), "username", clip(username), "err", err)
		return nil, false
	}
	return pion.GenerateAuthKey(username, realm, s.issuer.password(username)), true
}

// onAuth counts the requests whose integrity check failed: a wrong password.
func (s *Server) onAuth(src, _ net.Addr, _, username, _, method string, verdict bool) {
	if !verdict {
		s.stats.authFailures.Add(1)
		s.log.Debug("turn credentials refused", "client", src.String(), "username", clip(username),
			"method", method, "err", ErrBadPassword)
	}
}

// quota is the pion.QuotaHandler, called for an authenticated Allocate: it
// refuses the allocation when the user already holds MaxAllocationsPerUser,
// and otherwise reserves a place, turned into an allocation by
// onAllocationCreated or released by onAllocationError.
func (s *Server) quota(username, _ string, src net.Addr) bool {
	_, userID, err := parseUsername(username)
	if err != nil {
		return false
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	held := s.perUser[userID]
	refused := s.cfg.MaxAllocationsPerUser >= 0 && held >= s.cfg.MaxAllocationsPerUser
	if !refused {
		s.perUser[userID]++
		k := addrKey(src)
		s.reserved[k] = append(s.reserved[k], userID)
	}
	s.mu.Unlock()
	if refused {
		s.stats.quotaRefused.Add(1)
		s.log.Info("turn allocation refused", "user", userID, "client", src.String(),
			"held", held, "max", s.cfg.MaxAllocationsPerUser)
	}
	return !refused
}

// unreserve removes a reservation quota made for src for userID (any user
// when userID is 0) and returns its user id; ok is false when there is none.
// The caller holds s.mu.
func (s *Server) unreserve(src net.Addr, userID int64) (id int64, ok bool) {
	k := addrKey(src)
	ids := s.reserved[k]
	for i, id := range ids {
		if id == userID || userID == 0 {
			ids = append(ids[:i], ids[i+1:]...)
			if len(ids) == 0 {
				delete(s.reserved, k)
			} else {
				s.reserved[k] = ids
			}
			return id, true
		}
	}
	return 0, false
}

func (s *Server) release(userID int64) {
	if s.perUser[userID]--; s.perUser[userID] <= 0 {
		delete(s.perUser, userID)
	}
}

func (s *Server) onAllocationCreated(src, dst net.Addr, _, username, _ string, relayAddr net.Addr, _ int) {
	_, userID, _ := parseUsername(username)
	a := &allocation{userID: userID, transport: s.transportOf(dst), client: src, started: time.Now()}
	port := 0
	if u, ok := relayAddr.(*net.UDPAddr); ok {
		port = u.Port
	}
	s.mu.Lock()
	if _, ok := s.unreserve(src, userID); !ok {
		s.perUser[userID]++ // no quota check ran; count it all the same
	}
	a.relay = s.relays[port]
	if a.relay != nil && s.cfg.AllocationLifetime > 0 {
		a.limit = time.AfterFunc(s.cfg.AllocationLifetime, a.relay.expire)
	}
	s.allocs[tupleKey(src, dst)] = a
	if c := s.byTuple[tupleKey(src, dst)]; c != nil {
		c.allocated.Store(true) // no longer bound by ConnectTimeout nor counted per address
		c.unallocated()
	}
	// pion's loop calling this holds a reference, so the count is not zero.
	s.refs.Add(1)
	s.mu.Unlock()
	s.stats.allocationsTotal.Add(1)
	s.log.Info("turn allocation created", "user", userID, "transport", a.transport,
		"client", src.String(), "relay", relayAddr.String())
}

func (s *Server) onAllocationDeleted(src, dst net.Addr, _, _, _ string) {
	s.mu.Lock()
	k := tupleKey(src, dst)
	a := s.allocs[k]
	if a != nil {
		delete(s.allocs, k)
		s.release(a.userID)
	}
	s.mu.Unlock()
	if a == nil {
		return
	}
	if a.limit != nil {
		a.limit.Stop()
	}
	attrs := []any{"user", a.userID, "transport", a.transport, "client", src.String(),
		"duration", time.Since(a.started).Round(time.Millisecond)}
	if a.relay != nil {
		attrs = append(attrs, "relay_port", a.relay.port,
			"bytes_from_peers", a.relay.bytesIn.Load(), "bytes_to_peers", a.relay.bytesOut.Load())
		if a.relay.expired.Load() {
			s.stats.lifetimeEnded.Add(1)
			attrs = append(attrs, "reason", "lifetime")
		}
	}
	s.log.Info("turn allocation deleted", attrs...)
	s.refs.Done()
}

// onAllocationError is called when a request from src failed; if it was an
// Allocate that passed the quota, its reservation is released.
func (s *Server) onAllocationError(src, _ net.Addr, _, message string) {
	// Requests from one client address are handled one at a time, so a
	// reservation for src is the one this failed request made.
	s.mu.Lock()
	if id, ok := s.unreserve(src, 0); ok {
		s.release(id)
	}
	s.mu.Unlock()
	s.log.Debug("turn request failed", "client", src.String(), "err", message)
}

// permit is the pion.PermissionHandler: it refuses peers that are
// unspecified or in "this network" (0.0.0.0/8, which Linux may route to the
// host itself), multicast or the IPv4 broadcast address, link-local (no
// media peer is, and a cloud's metadata service is: 169.254.169.254),
// loopback (unless AllowLoopbackPeers) or in DeniedPeers.
func (s *Server) permit(client net.Addr, peer net.IP) bool {
	ip, ok := netip.AddrFromSlice(peer)
	ip = ip.Unmap()
	ok = ok && !ip.IsUnspecified() && !thisNetwork.Contains(ip) && ip != broadcast &&
		!ip.IsMulticast() && !ip.IsLinkLocalUnicast() && (s.cfg.AllowLoopbackPeers || !ip.IsLoopback())
	for _, p := range s.denied {
		if ok && p.Contains(ip) {
			ok = false
		}
	}
	if !ok {
		s.stats.permissionsRefused.Add(1)
		s.log.Debug("turn permission refused", "client", client.String(), "peer", peer.String())
	}
	return ok
}

var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	broadcast   = netip.MustParseAddr("255.255.255.255")
)

// transportOf names how a client reached the server from the server-side
// address of its five-tuple.
func (s *Server) transportOf(local net.Addr) string {
	t, ok := local.(*net.TCPAddr)
	switch {
	case !ok:
		return "udp"
	case s.tls != nil && t.Port == s.tlsPort:
		return "tls"
	default:
		return "tcp"
	}
}

func addrKey(a net.Addr) string         { return a.Network() + " " + a.String() }
func tupleKey(src, dst net.Addr) string { return addrKey(src) + " " + dst.String() }

// clip shortens a client-chosen string for a log line.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
