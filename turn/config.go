package turn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Off, as a listen address, disables that listener.
const Off = "off"

// Defaults applied by WithDefaults to zero-valued fields.
const (
	DefaultRealm                    = "chatd"
	DefaultUDPAddr                  = ":3478"
	DefaultTCPAddr                  = ":3478"
	DefaultTLSAddr                  = ":5349"
	DefaultRelayBind                = "0.0.0.0"
	DefaultMinPort                  = 49152
	DefaultMaxPort                  = 65535
	DefaultCredentialTTL            = 24 * time.Hour
	DefaultMaxAllocationsPerUser    = 10
	DefaultAllocationLifetime       = 12 * time.Hour
	DefaultIdleTimeout              = 65 * time.Minute
	DefaultConnectTimeout           = 30 * time.Second
	DefaultMaxUnallocatedPerAddress = 100
)

// Config configures the embedded TURN server and the credentials issued for
// it. A zero field takes its default (see WithDefaults); Validate reports every
// field New cannot use.
type Config struct {
	// Enabled starts the TURN server with chatd. Defaults to false. An Issuer
	// can be built from a Config that is not enabled, to hand out credentials
	// for a TURN server run elsewhere (coturn with use-auth-secret and the
	// same secret).
	Enabled bool

	// Realm is the long-term credential realm (RFC 8489 section 9.2).
	// Defaults to "chatd".
	Realm string

	// UDPAddr is the host:port of the UDP listener. Defaults to ":3478".
	// Set it to "off" to run no UDP listener.
	UDPAddr string

	// TCPAddr is the host:port of the TCP listener. Defaults to ":3478".
	// Set it to "off" to run no TCP listener.
	TCPAddr string

	// TLSAddr is the host:port of the TLS listener (TURN over TLS, the
	// turns: URIs). It runs only when New is given a tls.Config, the same
	// certificate store the other listeners of chatd use. Defaults to
	// ":5349". Set it to "off" to run no TLS listener.
	TLSAddr string

	// RelayAddress is the IPv4 address advertised to clients as the address
	// of their relays: the server's public address, or behind a NAT the NAT's
	// external address (the NAT must forward the relay port range to
	// RelayBind). Defaults to RelayBind when that is a specific address,
	// otherwise to the first global unicast IPv4 address of this host's
	// interfaces, and to 127.0.0.1 when there is none.
	RelayAddress string

	// RelayBind is the local IPv4 address relay sockets are bound to.
	// Defaults to "0.0.0.0".
	RelayBind string

	// MinPort and MaxPort bound the relay ports (inclusive). Default to
	// 49152 and 65535, the range coturn uses.
	MinPort int
	MaxPort int

	// Secret is the shared HMAC-SHA1 secret of the TURN REST scheme
	// (coturn's static-auth-secret). It has no default: New and NewIssuer
	// return ErrNoSecret when it is empty. The caller (cmd/chatd) generates
	// one with GenerateSecret on first start and persists it in the data
	// directory, so credentials survive a restart and every part of chatd
	// issuing or checking them agrees.
	Secret string

	// CredentialTTL is how long issued credentials stay valid. Defaults to
	// 24 hours.
	CredentialTTL time.Duration

	// MaxAllocationsPerUser caps the allocations one user id holds at once,
	// across listeners and credentials; one more is refused with 486
	// (Allocation Quota Reached). Defaults to 10. Set it to -1 for no cap.
	MaxAllocationsPerUser int

	// AllocationLifetime is the longest an allocation may live, refreshes
	// included; when it passes, the relay is closed and the allocation
	// deleted. Refreshes are authenticated, so an allocation also ends within
	// the hour after its credentials expire. Defaults to 12 hours.
	AllocationLifetime time.Duration

	// IdleTimeout closes a TCP or TLS client connection that has sent
	// nothing for this long, with its allocation; it finds clients that
	// vanished without closing. Defaults to 65 minutes, past the longest
	// lifetime a client can ask for (an hour), so a client that keeps its
	// allocation refreshed is never cut.
	IdleTimeout time.Duration

	// ConnectTimeout closes a TCP or TLS client connection that has no
	// allocation this long after it was accepted (its TLS handshake
	// included), so connections that never authenticate cannot hold
	// descriptors the rest of chatd needs. Defaults to 30 seconds.
	ConnectTimeout time.Duration

	// MaxUnallocatedPerAddress bounds the TCP and TLS connections one
	// client address (an IPv4 address or an IPv6 /64) holds without an
	// allocation; more are closed at once, so that one machine cannot use
	// up the descriptors within ConnectTimeout. Defaults to 100; -1 for no
	// bound.
	MaxUnallocatedPerAddress int

	// PublicHost is the host (name or address) put in the issued URIs and
	// XEP-0215 services. Defaults to RelayAddress.
	PublicHost string

	// PublicUDPPort, PublicTCPPort and PublicTLSPort are the ports put in the
	// issued URIs. Each defaults to the port its listener is bound to (for a
	// listener on port 0, the port the system picked).
	PublicUDPPort int
	PublicTCPPort int
	PublicTLSPort int

	// AllowLoopbackPeers lets clients relay to loopback addresses
	// (127.0.0.0/8, ::1). Defaults to false, as in coturn: a relay to the
	// server's own loopback services is refused. Tests set it.
	AllowLoopbackPeers bool

	// DeniedPeers lists CIDR prefixes clients may not relay to, such as the
	// private networks around the server. Defaults to none. Unspecified,
	// multicast and link-local peers (169.254.0.0/16, fe80::/10: where
	// cloud providers serve instance metadata and credentials) are always
	// refused.
	DeniedPeers []string
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.UDPAddr == "" {
		c.UDPAddr = DefaultUDPAddr
	}
	if c.TCPAddr == "" {
		c.TCPAddr = DefaultTCPAddr
	}
	if c.TLSAddr == "" {
		c.TLSAddr = DefaultTLSAddr
	}
	if c.RelayBind == "" {
		c.RelayBind = DefaultRelayBind
	}
	if c.RelayAddress == "" {
		c.RelayAddress = defaultRelayAddress(c.RelayBind)
	}
	if c.MinPort == 0 && c.MaxPort == 0 {
		c.MinPort, c.MaxPort = DefaultMinPort, DefaultMaxPort
	}
	if c.CredentialTTL == 0 {
		c.CredentialTTL = DefaultCredentialTTL
	}
	if c.MaxAllocationsPerUser == 0 {
		c.MaxAllocationsPerUser = DefaultMaxAllocationsPerUser
	}
	if c.AllocationLifetime == 0 {
		c.AllocationLifetime = DefaultAllocationLifetime
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.MaxUnallocatedPerAddress == 0 {
		c.MaxUnallocatedPerAddress = DefaultMaxUnallocatedPerAddress
	}
	if c.PublicHost == "" {
		c.PublicHost = c.RelayAddress
	}
	return c
}

// defaultRelayAddress picks the address to advertise when none is configured.
func defaultRelayAddress(bind string) string {
	if ip, err := netip.ParseAddr(bind); err == nil && !ip.IsUnspecified() {
		return ip.String()
	}
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					ip = ip.Unmap()
					if ip.Is4() && ip.IsGlobalUnicast() {
						return ip.String()
					}
				}
			}
		}
	}
	return "127.0.0.1"
}

// Validate reports, joined, every field of c (taken with its defaults) that
// New or NewIssuer cannot use. Each error wraps ErrInvalidConfig, or
// ErrNoSecret for an empty Secret.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Secret == "" {
		errs = append(errs, ErrNoSecret)
	}
	listeners := 0
	for _, l := range []struct{ field, addr string }{
		{"UDPAddr", c.UDPAddr}, {"TCPAddr", c.TCPAddr}, {"TLSAddr", c.TLSAddr},
	} {
		if l.addr == Off {
			continue
		}
		listeners++
		if _, err := listenPort(l.addr); err != nil {
			bad("%s %q: %v", l.field, l.addr, err)
		}
	}
	if listeners == 0 {
		bad("UDPAddr, TCPAddr and TLSAddr are all off")
	}
	if ip, err := netip.ParseAddr(c.RelayAddress); err != nil || !ip.Is4() || ip.IsUnspecified() {
		bad("RelayAddress %q is not a specific IPv4 address", c.RelayAddress)
	}
	if ip, err := netip.ParseAddr(c.RelayBind); err != nil || !ip.Is4() {
		bad("RelayBind %q is not an IPv4 address", c.RelayBind)
	}
	switch {
	case c.MinPort < 1 || c.MinPort > 65535:
		bad("MinPort (%d) is not a port", c.MinPort)
	case c.MaxPort < 1 || c.MaxPort > 65535:
		bad("MaxPort (%d) is not a port", c.MaxPort)
	case c.MinPort > c.MaxPort:
		bad("MinPort (%d) is higher than MaxPort (%d)", c.MinPort, c.MaxPort)
	}
	if c.CredentialTTL < time.Second {
		bad("CredentialTTL (%v) is shorter than a second", c.CredentialTTL)
	}
	if c.MaxAllocationsPerUser < -1 {
		bad("MaxAllocationsPerUser (%d) is neither positive nor -1", c.MaxAllocationsPerUser)
	}
	if c.AllocationLifetime < 0 {
		bad("AllocationLifetime (%v) is negative", c.AllocationLifetime)
	}
	if c.IdleTimeout < 0 {
		bad("IdleTimeout (%v) is negative", c.IdleTimeout)
	}
	if c.ConnectTimeout < 0 {
		bad("ConnectTimeout (%v) is negative", c.ConnectTimeout)
	}
	if c.MaxUnallocatedPerAddress < -1 {
		bad("MaxUnallocatedPerAddress (%d) is neither positive nor -1", c.MaxUnallocatedPerAddress)
	}
	for _, p := range []struct {
		field string
		port  int
	}{{"PublicUDPPort", c.PublicUDPPort}, {"PublicTCPPort", c.PublicTCPPort}, {"PublicTLSPort", c.PublicTLSPort}} {
		if p.port < 0 || p.port > 65535 {
			bad("%s (%d) is not a port", p.field, p.port)
		}
	}
	for _, d := range c.DeniedPeers {
		if _, err := netip.ParsePrefix(d); err != nil {
			bad("DeniedPeers entry %q is not a CIDR prefix", d)
		}
	}
	return errors.Join(errs...)
}

// listenPort parses a host:port listen address and returns its port.
func listenPort(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	return port, nil
}
