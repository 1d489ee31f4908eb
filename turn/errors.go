package turn

import "errors"

// Errors returned by this package. Callers test them with errors.Is; the
// wrapping error adds the detail (which field, which address).
var (
	// ErrDisabled: New was called with Config.Enabled false.
	ErrDisabled = errors.New("turn: disabled")
	// ErrNoSecret: Config.Secret is empty. The caller generates one with
	// GenerateSecret and persists it; see Config.Secret.
	ErrNoSecret = errors.New("turn: no shared secret")
	// ErrInvalidConfig: a Config field has a value New cannot use. Validate
	// joins one such error per problem, each naming its field.
	ErrInvalidConfig = errors.New("turn: invalid config")
	// ErrMalformedUsername: a TURN username is not "<expiry>:<user_id>" with
	// a Unix time and a positive integer user id.
	ErrMalformedUsername = errors.New("turn: malformed username")
	// ErrExpired: the credential's expiry time has passed.
	ErrExpired = errors.New("turn: credentials expired")
	// ErrBadPassword: the password is not the HMAC of the username under the
	// shared secret (a forged or stale credential).
	ErrBadPassword = errors.New("turn: wrong password")
	// ErrWrongRealm: the client authenticated against another realm.
	ErrWrongRealm = errors.New("turn: wrong realm")
	// ErrNoRelayPort: every port of the relay range is in use.
	ErrNoRelayPort = errors.New("turn: no free port in the relay range")
	// ErrTCPRelay: the client asked for a TCP relay (RFC 6062), which this
	// server does not offer; relays are UDP whatever the client transport.
	ErrTCPRelay = errors.New("turn: TCP relays are not supported")
	// ErrClosed: the server is closed or closing.
	ErrClosed = errors.New("turn: server closed")
	// ErrCloseTimeout: Close released every socket but pion's goroutines did
	// not all report their end within the wait.
	ErrCloseTimeout = errors.New("turn: timed out waiting for the server's goroutines")
)
