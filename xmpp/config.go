package xmpp

import "time"

// Config tunes the XMPP server. Zero fields take the documented defaults
// (see withDefaults).
type Config struct {
	// Domain is the XMPP domain. Required.
	Domain string
	// Listen is the TCP (STARTTLS) address, such as ":5222"; empty disables it.
	Listen string
	// TLSListen is the direct TLS address (XEP-0368), such as ":5223"; empty
	// disables it.
	TLSListen string
	// WebSocketListen is the RFC 7395 WebSocket address, such as ":5291";
	// empty disables it. The path is WebSocketPath.
	WebSocketListen string
	// WebSocketTLS serves the WebSocket listener over TLS (wss://).
	WebSocketTLS bool
	// WebSocketPath is the HTTP path of the WebSocket endpoint. Any path is
	// accepted when it is "" or "/". Defaults to "/".
	WebSocketPath string
	// RequireTLS refuses SASL on TCP before STARTTLS. A plain ws:// listener
	// is exempt (put it behind a TLS proxy).
	RequireTLS bool
	// MaxSessionsPerUser bounds the sessions (resources) one user has
	// bound at once; binding another fails with <resource-constraint/>
	// (RFC 6120 §7.6.2.1). A session replacing one on the same resource
	// does not count twice. Defaults to 50; -1 for no bound.
	MaxSessionsPerUser int
	// ResourceConflict is what binding a resource already in use does:
	// "replace" (the old session is closed with <conflict/>), "reject" (the
	// bind fails with <conflict/>) or "rename" (the new session gets the
	// resource with a random suffix). Defaults to "replace".
	ResourceConflict string
	// MaxStanzaBytes bounds each top-level element a client sends; larger
	// ones end the stream with <policy-violation/>. Defaults to 256 KiB.
	MaxStanzaBytes int
	// MaxQueueBytes bounds what a session holds for its client: its
	// outbound queue and, on a resumable stream (XEP-0198), what was
	// written but not acknowledged yet (past it for more than twice
	// SMAckInterval). A session past it is closed with <policy-violation/>
	// and the messages it held are rescued (other resources, offline
	// storage). Defaults to 1 MiB.
	MaxQueueBytes int
	// WriteTimeout bounds each batch written to a client. Defaults to 15s.
	WriteTimeout time.Duration
	// NegotiationTimeout bounds the time from connect to a bound resource.
	// Defaults to 30s.
	NegotiationTimeout time.Duration
	// MaxUnauthenticatedPerAddress bounds the connections one client
	// address (an IPv4 address or an IPv6 /64) holds before they
	// authenticate, over all listeners; more are refused at once with
	// <policy-violation/> (a WebSocket upgrade with HTTP 503, a direct TLS
	// connection closed). Defaults to 100; -1 for no bound. Behind a
	// WebSocket proxy every client has the proxy's address: raise it.
	MaxUnauthenticatedPerAddress int
	// PingInterval is how long a session may be silent before the server
	// pings it (XEP-0199). Defaults to 60s.
	PingInterval time.Duration
	// PingTimeout is how long the server then waits for any data before
	// closing the stream with <connection-timeout/>. Defaults to 30s.
	PingTimeout time.Duration
	// StanzaRate and StanzaBurst limit how fast one session's stanzas are
	// processed (a token bucket); a faster client is slowed down, not
	// disconnected. Defaults to 500 stanzas/s with a burst of 1000.
	StanzaRate  float64
	StanzaBurst int
	// ByteRate bounds the bytes of stanzas one session may send per
	// second, with a burst of four maximum stanzas; a faster client is
	// slowed down like one over StanzaRate. Defaults to 1 MiB/s; -1 for no
	// bound.
	ByteRate int
	// AuthFailureDelay is the first delay after a failed authentication from
	// one address or for one user; it doubles with each further failure up
	// to 5s, and the counts fade after a quiet minute. Defaults to 100ms.
	AuthFailureDelay time.Duration
	// SMResumeWindow is the longest a broken stream waits for resumption
	// (XEP-0198); a client's max can only shorten it. Defaults to 5 minutes.
	SMResumeWindow time.Duration
	// SMAckEvery: the server asks for an acknowledgement after this many
	// unacknowledged stanzas (and after SMAckInterval). Defaults to 10.
	SMAckEvery int
	// SMAckInterval: the server asks for an acknowledgement when stanzas
	// have waited this long unacknowledged. Defaults to 15s.
	SMAckInterval time.Duration
	// OfflineLimit is how many messages are kept for one offline user;
	// past it senders get service-unavailable. Defaults to 10,000.
	OfflineLimit int
	// ShutdownWindow is the span over which sessions are told
	// <system-shutdown/> at shutdown, so clients do not all reconnect at
	// once elsewhere. Defaults to 2s.
	ShutdownWindow time.Duration
}

func (c Config) withDefaults() Config {
	if c.ResourceConflict == "" {
		c.ResourceConflict = "replace"
	}
	if c.WebSocketPath == "" {
		c.WebSocketPath = "/"
	}
	if c.MaxStanzaBytes <= 0 {
		c.MaxStanzaBytes = 256 << 10
	}
	if c.MaxQueueBytes <= 0 {
		c.MaxQueueBytes = 1 << 20
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 15 * time.Second
	}
	if c.NegotiationTimeout <= 0 {
		c.NegotiationTimeout = 30 * time.Second
	}
	if c.MaxSessionsPerUser == 0 {
		c.MaxSessionsPerUser = 50
	}
	if c.MaxUnauthenticatedPerAddress == 0 {
		c.MaxUnauthenticatedPerAddress = 100
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 60 * time.Second
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = 30 * time.Second
	}
	if c.StanzaRate <= 0 {
		c.StanzaRate = 500
	}
	if c.StanzaBurst <= 0 {
		c.StanzaBurst = 1000
	}
	if c.ByteRate == 0 {
		c.ByteRate = 1 << 20
	}
	if c.AuthFailureDelay <= 0 {
		c.AuthFailureDelay = 100 * time.Millisecond
	}
	if c.SMResumeWindow <= 0 {
		c.SMResumeWindow = 5 * time.Minute
	}
	if c.SMAckEvery <= 0 {
		c.SMAckEvery = 10
	}
	if c.SMAckInterval <= 0 {
		c.SMAckInterval = 15 * time.Second
	}
	if c.OfflineLimit <= 0 {
		c.OfflineLimit = defaultOffMax
	}
	if c.ShutdownWindow <= 0 {
		c.ShutdownWindow = 2 * time.Second
	}
	return c
}

// byteBurst is the byte bucket's size: four stanzas of the largest size.
func (c Config) byteBurst() int { return 4 * c.MaxStanzaBytes }
