// Package turn is chatd's embedded TURN server (RFC 8656) and the
// time-limited credentials it accepts.
//
// It is a thin adapter over github.com/pion/turn/v4, using only pion's public
// API: New opens its own sockets (UDP, TCP and, given a tls.Config, TLS
// listeners; relay sockets in a port range advertised at RelayAddress),
// builds a pion server around them with chatd's authentication, quota and
// event handlers, and Close takes it all down again. No pion type appears in
// this package's API.
//
// # Credentials
//
// Credentials follow the TURN REST scheme that coturn calls use-auth-secret:
// the username is "<expiry>:<user_id>" (expiry a Unix time), the password is
// base64(HMAC-SHA1(secret, username)). An Issuer makes them (Issue) for the
// REST API (GET /turn/credentials.json) and renders them as XEP-0215 external
// services (Services, ServiceCredentials) for the XMPP layer; it needs no
// running server, so chatd can also hand out credentials for a coturn run
// elsewhere with the same secret. Callers issue credentials only to
// logged-in users. The server refuses malformed and expired usernames and
// other realms before pion sees a key, and pion's message-integrity check
// refuses a forged password. The user id in the username is what the
// per-user allocation quota counts.
//
// # Visibility
//
// Stats returns plain counters (allocations active and total, quota and
// lifetime endings, authentication and permission refusals, bytes and packets
// relayed each way) for the metrics endpoint. The injected slog.Logger gets
// one line per allocation created, refused by the quota, and deleted (the
// last with its duration and bytes relayed). Passwords are never logged;
// pion's own messages go to debug level, its warnings rate-limited.
//
// # Concurrency
//
// Server and Issuer methods are safe for concurrent use. pion runs one
// goroutine per UDP listener, per TCP or TLS listener, per client connection
// and per allocation, and calls this package's handlers from them; the
// handlers share one mutex (Server.mu), which is never held while calling
// pion or closing a socket, so there is no lock ordering to respect beyond
// pion's own. The sockets handed to pion are wrappers that report when pion's
// loops end: Close closes the listeners through pion, then every client
// connection and relay socket pion would leave open, and waits (at most a few
// seconds, else ErrCloseTimeout) until pion has deleted every allocation and
// left every loop. Close is idempotent. A TCP or TLS connection that sends
// nothing for IdleTimeout is closed, so a client that vanished without
// closing does not hold a goroutine and a socket forever.
//
// pion answers a client before it reports a failed request, so for a moment
// after a client sees an allocation fail its quota place may still be held;
// pion's goroutines likewise finish their last instructions just after Close
// returns.
//
// # Limits of the current pion (v4.1.4)
//
// Relays are UDP over IPv4 only: pion's server has no RFC 6062 Connect, and
// should it ask for a TCP relay this package refuses with ErrTCPRelay. pion
// takes the lifetime a client asks for (up to
// an hour, default ten minutes) and refreshes need fresh authentication;
// AllocationLifetime caps the total. Authentication refusals are answered
// with 400 Bad Request, as pion does, not 401.
package turn
