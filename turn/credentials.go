package turn

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // the TURN REST scheme is HMAC-SHA1 by definition
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Credentials are time-limited TURN credentials for one user, in the TURN REST
// scheme coturn calls use-auth-secret: Username is "<expiry>:<user_id>" with
// expiry a Unix time, Password is base64(HMAC-SHA1(secret, Username)).
type Credentials struct {
	Username string
	Password string
	// TTL is how long the credentials stay valid from the time they were
	// issued (the REST API renders it as whole seconds).
	TTL time.Duration
	// Expires is the expiry encoded in Username.
	Expires time.Time
	// URIs are the server's URIs for the listeners that run, in the order
	// UDP, TCP, TLS: "turn:host:port?transport=udp",
	// "turn:host:port?transport=tcp", "turns:host:port?transport=tcp".
	URIs []string
}

// endpoint is one way to reach the server: one URI, one XEP-0215 service.
type endpoint struct {
	scheme    string // "turn" or "turns"
	host      string
	port      int
	transport string // "udp" or "tcp"
}

func (e endpoint) uri() string {
	return e.scheme + ":" + net.JoinHostPort(e.host, strconv.Itoa(e.port)) + "?transport=" + e.transport
}

// Issuer issues and checks credentials. It needs no running server: the REST
// API and the XMPP service can hold one for a TURN server run elsewhere with
// the same secret. It is safe for concurrent use.
type Issuer struct {
	secret    []byte
	ttl       time.Duration
	endpoints []endpoint
}

// NewIssuer returns an Issuer for cfg (taken with its defaults). The URIs it
// issues use cfg.PublicHost and, for each listener that is not off, the
// configured public port or else the listen address's port; a listener whose
// port is then 0 is left out (use (*Server).Issuer for a running server,
// which knows its bound ports).
func NewIssuer(cfg Config) (*Issuer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newIssuer(cfg.WithDefaults(), 0, 0, 0), nil
}

// newIssuer builds an Issuer for validated cfg; a non-zero udp, tcp or tls
// port is the bound port of a running listener, used when cfg has no public
// port for it. A server passes 0 for a listener it does not run.
func newIssuer(cfg Config, udp, tcp, tls int) *Issuer {
	pick := func(public, bound int, addr string) int {
		if addr == Off {
			return 0
		}
		if public != 0 {
			return public
		}
		if bound != 0 {
			return bound
		}
		p, _ := listenPort(addr)
		return p
	}
	var eps []endpoint
	if p := pick(cfg.PublicUDPPort, udp, cfg.UDPAddr); p != 0 {
		eps = append(eps, endpoint{"turn", cfg.PublicHost, p, "udp"})
	}
	if p := pick(cfg.PublicTCPPort, tcp, cfg.TCPAddr); p != 0 {
		eps = append(eps, endpoint{"turn", cfg.PublicHost, p, "tcp"})
	}
	if p := pick(cfg.PublicTLSPort, tls, cfg.TLSAddr); p != 0 {
		eps = append(eps, endpoint{"turns", cfg.PublicHost, p, "tcp"})
	}
	return &Issuer{secret: []byte(cfg.Secret), ttl: cfg.CredentialTTL, endpoints: eps}
}

// Issue returns credentials for userID valid from now for the configured
// CredentialTTL. Callers issue them only to logged-in users.
func (i *Issuer) Issue(userID int64, now time.Time) Credentials {
	expires := now.Add(i.ttl).Unix()
	username := strconv.FormatInt(expires, 10) + ":" + strconv.FormatInt(userID, 10)
	return Credentials{
		Username: username,
		Password: i.password(username),
		TTL:      i.ttl,
		Expires:  time.Unix(expires, 0).UTC(),
		URIs:     i.uris(),
	}
}

// uris returns a new slice of the server's URIs.
func (i *Issuer) uris() []string {
	uris := make([]string, len(i.endpoints))
	for k, e := range i.endpoints {
		uris[k] = e.uri()
	}
	return uris
}

// Check reports whether username and password are credentials this Issuer's
// secret produced and that have not expired at now, and returns the user id
// they were issued to. The error wraps ErrMalformedUsername, ErrExpired or
// ErrBadPassword.
func (i *Issuer) Check(username, password string, now time.Time) (userID int64, err error) {
	userID, err = i.checkUsername(username, now)
	if err != nil {
		return 0, err
	}
	if !hmac.Equal([]byte(password), []byte(i.password(username))) {
		return 0, ErrBadPassword
	}
	return userID, nil
}

// checkUsername parses username and refuses it when malformed or expired.
func (i *Issuer) checkUsername(username string, now time.Time) (int64, error) {
	expires, userID, err := parseUsername(username)
	if err != nil {
		return 0, err
	}
	if !now.Before(expires) {
		return 0, fmt.Errorf("%w at %s", ErrExpired, expires.UTC().Format(time.RFC3339))
	}
	return userID, nil
}

// password is base64(HMAC-SHA1(secret, username)), as in coturn's
// use-auth-secret and pion's GenerateLongTermTURNRESTCredentials.
func (i *Issuer) password(username string) string {
	mac := hmac.New(sha1.New, i.secret)
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// parseUsername splits "<expiry>:<user_id>" strictly: both decimal, the user
// id positive.
func parseUsername(username string) (expires time.Time, userID int64, err error) {
	ts, id, ok := strings.Cut(username, ":")
	if !ok || !decimal(ts) || !decimal(id) {
		return time.Time{}, 0, ErrMalformedUsername
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, 0, ErrMalformedUsername
	}
	userID, err = strconv.ParseInt(id, 10, 64)
	if err != nil || userID <= 0 {
		return time.Time{}, 0, ErrMalformedUsername
	}
	return time.Unix(sec, 0), userID, nil
}

func decimal(s string) bool {
	if s == "" || len(s) > 19 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// GenerateSecret returns a new random shared secret (32 bytes, base64url) for
// Config.Secret. The caller persists it.
func GenerateSecret() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}
