// Package account owns applications (tenants), their users, REST sessions and
// API keys, and the credentials both the REST API and XMPP authenticate
// against.
//
// The package defines the Store interface its backends implement
// (store/sqlite, store/mongo) and a Service holding the rules: password and
// SCRAM key derivation, session tokens with a sliding expiry, request
// signatures and nonce replay, and validation of user records. Passwords and
// tokens are never stored in plain: a user keeps a salt and SCRAM-SHA-1 and
// SCRAM-SHA-256 keys (enough for PLAIN, SCRAM-SHA-1 and SCRAM-SHA-256), a
// session keeps the SHA-256 of its token and SCRAM keys derived from the token
// with its user's salt, so a live token works as the XMPP password under every
// mechanism chatd offers.
//
// A replay is the same signed session request again (timestamp, nonce and
// signature): QuickBlox SDKs draw the nonce from 0..9999, so two users'
// requests in one second may share one, and both are served. A request is
// remembered until the first second its timestamp is refused in, so an
// expiry sweep never lets it be replayed. A session's
// sliding refresh writes only its expiry, never the user it was read with,
// so a login or logout made meanwhile with the same token stays made.
//
// A Service is safe for concurrent use; it holds no mutable state of its own
// beyond what its Store keeps.
package account
