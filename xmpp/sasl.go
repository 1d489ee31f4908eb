package xmpp

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"

	"chatd/account"
	"chatd/internal/throttle"
)

// Authenticator is what SASL needs from the account service.
type Authenticator interface {
	// VerifyPassword checks a password or a live session token of the user.
	VerifyPassword(ctx context.Context, appID, userID int64, password string) error
	// ScramSecrets returns every credential set a SCRAM proof may match
	// (the password's and each live token's), sharing one salt.
	ScramSecrets(ctx context.Context, appID, userID int64) ([]account.Credentials, error)
}

// SASL mechanisms chatd offers, strongest first. -PLUS variants are not
// offered: channel binding is not implemented.
var mechanisms = []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"}

// saslFailure is a SASL failure condition (RFC 6120 §6.5) with its text.
type saslFailure struct {
	condition string
	text      string
}

func (f *saslFailure) Error() string { return "xmpp: sasl " + f.condition + ": " + f.text }

var (
	errNotAuthorized = &saslFailure{"not-authorized", "Password not verified"}
	errMalformed     = &saslFailure{"malformed-request", "Malformed SASL message"}
	errBadAuthzid    = &saslFailure{"invalid-authzid", "Authorization identity is not the authenticated user"}
	errBadMechanism  = &saslFailure{"invalid-mechanism", "Mechanism not supported"}
	errEncoding      = &saslFailure{"incorrect-encoding", "Bad base64 encoding"}
)

// saslExchange is one SASL authentication in progress. Step is fed the
// decoded client data and returns the server data to send: as a challenge
// while done is false, as additional data of <success/> once it is true.
type saslExchange interface {
	Step(ctx context.Context, in []byte) (out []byte, done bool, err error)
	// User is the user the attempt is for once the client named one it
	// may be (known or not: failures are counted for it), and the
	// authenticated user once done.
	User() UserRef
}

// tooSoon refuses an attempt made before the user's wait after its last
// failure is over (authLimiter.admit): RFC 6120 §6.5.12's "try again later".
func tooSoon(wait time.Duration) *saslFailure {
	return &saslFailure{"temporary-auth-failure", fmt.Sprintf(
		"Too many failed attempts for this user; retry in %d s", throttle.Seconds(wait))}
}

// parseAuthcid reads a user's authentication identity: <user>-<app>, or the
// bare JID <user>-<app>@domain.
func parseAuthcid(s, domain string) (UserRef, bool) {
	if local, d, ok := strings.Cut(s, "@"); ok {
		if !strings.EqualFold(d, domain) {
			return UserRef{}, false
		}
		s = local
	}
	return ParseUserLocal(s)
}

// checkAuthzid accepts an empty authorization identity or one naming the
// authenticated user.
func checkAuthzid(authzid string, u UserRef, domain string) error {
	if authzid == "" {
		return nil
	}
	if z, ok := parseAuthcid(authzid, domain); ok && z == u {
		return nil
	}
	return errBadAuthzid
}

// newExchange starts mech. admit is asked, before a password or proof is
// checked, how long the user must still wait (0: check now).
func newExchange(mech string, auth Authenticator, domain string, fakeSalt func(string) []byte,
	admit func(UserRef) time.Duration) (saslExchange, error) {
	switch mech {
	case "PLAIN":
		return &plainExchange{auth: auth, domain: domain, admit: admit}, nil
	case "SCRAM-SHA-1":
		return &scramExchange{auth: auth, domain: domain, h: sha1.New, sha1: true, fakeSalt: fakeSalt, admit: admit}, nil
	case "SCRAM-SHA-256":
		return &scramExchange{auth: auth, domain: domain, h: sha256.New, fakeSalt: fakeSalt, admit: admit}, nil
	}
	return nil, errBadMechanism
}

// plainExchange is RFC 4616 PLAIN: authzid NUL authcid NUL password.
type plainExchange struct {
	auth   Authenticator
	domain string
	admit  func(UserRef) time.Duration
	user   UserRef
}

func (p *plainExchange) User() UserRef { return p.user }

func (p *plainExchange) Step(ctx context.Context, in []byte) ([]byte, bool, error) {
	if len(in) == 0 {
		return nil, false, nil // empty initial response: ask for the credentials
	}
	parts := bytes.Split(in, []byte{0})
	if len(parts) != 3 {
		return nil, false, errMalformed
	}
	u, ok := parseAuthcid(string(parts[1]), p.domain)
	if !ok {
		return nil, false, errNotAuthorized
	}
	if err := checkAuthzid(string(parts[0]), u, p.domain); err != nil {
		return nil, false, err
	}
	p.user = u
	if wait := p.admit(u); wait > 0 {
		return nil, false, tooSoon(wait)
	}
	if err := p.auth.VerifyPassword(ctx, u.App, u.User, string(parts[2])); err != nil {
		if errors.Is(err, account.ErrBadCredentials) || errors.Is(err, account.ErrNotFound) {
			return nil, false, errNotAuthorized
		}
		return nil, false, err
	}
	return nil, true, nil
}

// scramExchange is RFC 5802 SCRAM without channel binding. The proof is
// checked against every credential set of the user, so a session token
// works as the password.
type scramExchange struct {
	auth     Authenticator
	domain   string
	h        func() hash.Hash
	sha1     bool
	fakeSalt func(string) []byte
	admit    func(UserRef) time.Duration

	step            int
	gs2Header       string
	clientFirstBare string
	serverFirst     string
	nonce           string
	user            UserRef // the user named, known or not
	known           bool
	creds           []account.Credentials
}

func (s *scramExchange) User() UserRef { return s.user }

func (s *scramExchange) Step(ctx context.Context, in []byte) ([]byte, bool, error) {
	s.step++
	switch s.step {
	case 1:
		return s.first(ctx, string(in))
	case 2:
		return s.final(string(in))
	}
	return nil, false, errMalformed
}

// first handles client-first-message = gs2-header client-first-bare.
func (s *scramExchange) first(ctx context.Context, msg string) ([]byte, bool, error) {
	if msg == "" {
		return nil, false, errMalformed
	}
	// gs2-header: ("n" | "y" | "p=…") "," [authzid] ","
	cb, rest, ok := strings.Cut(msg, ",")
	if !ok || (cb != "n" && cb != "y") {
		// "p=" asks for channel binding, which is not offered.
		return nil, false, errMalformed
	}
	authzPart, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, false, errMalformed
	}
	s.gs2Header = cb + "," + authzPart + ","
	s.clientFirstBare = bare
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") || len(attrs[1]) < 3 {
		return nil, false, errMalformed
	}
	name, err := decodeSaslname(attrs[0][2:])
	if err != nil {
		return nil, false, errMalformed
	}
	cnonce := attrs[1][2:]
	var authzid string
	if authzPart != "" {
		if !strings.HasPrefix(authzPart, "a=") {
			return nil, false, errMalformed
		}
		if authzid, err = decodeSaslname(authzPart[2:]); err != nil {
			return nil, false, errMalformed
		}
	}
	u, ok := parseAuthcid(name, s.domain)
	var salt []byte
	iterations := account.DefaultIterations
	if ok {
		if err := checkAuthzid(authzid, u, s.domain); err != nil {
			return nil, false, err
		}
		s.user = u
		creds, err := s.auth.ScramSecrets(ctx, u.App, u.User)
		switch {
		case err == nil && len(creds) > 0:
			s.known, s.creds = true, creds
			salt, iterations = creds[0].Salt, creds[0].Iterations
		case err != nil && !errors.Is(err, account.ErrNotFound):
			return nil, false, err
		}
	}
	if !s.known {
		// An unknown user gets a plausible challenge and fails at the end,
		// so user names cannot be probed.
		salt = s.fakeSalt(name)
	}
	var rnd [18]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, false, err
	}
	s.nonce = cnonce + base64.RawStdEncoding.EncodeToString(rnd[:])
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(salt) + ",i=" + strconv.Itoa(iterations)
	return []byte(s.serverFirst), false, nil
}

// final handles client-final-message = c=…,r=…[,…],p=proof.
func (s *scramExchange) final(msg string) ([]byte, bool, error) {
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, false, errMalformed
	}
	withoutProof := msg[:i]
	proof, err := base64.StdEncoding.DecodeString(msg[i+3:])
	if err != nil {
		return nil, false, errEncoding
	}
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || attrs[0] != "c="+base64.StdEncoding.EncodeToString([]byte(s.gs2Header)) || attrs[1] != "r="+s.nonce {
		return nil, false, errMalformed
	}
	// Unknown users wait as known ones do, so that waits tell nothing.
	if s.user != (UserRef{}) {
		if wait := s.admit(s.user); wait > 0 {
			return nil, false, tooSoon(wait)
		}
	}
	if !s.known {
		return nil, false, errNotAuthorized
	}
	authMessage := []byte(s.clientFirstBare + "," + s.serverFirst + "," + withoutProof)
	for _, c := range s.creds {
		keys := c.SHA256
		if s.sha1 {
			keys = c.SHA1
		}
		if len(keys.StoredKey) == 0 || len(proof) != len(keys.StoredKey) {
			continue
		}
		sig := account.HMAC(s.h, keys.StoredKey, authMessage)
		clientKey := make([]byte, len(proof))
		for j := range proof {
			clientKey[j] = proof[j] ^ sig[j]
		}
		h := s.h()
		h.Write(clientKey)
		if subtle.ConstantTimeCompare(h.Sum(nil), keys.StoredKey) == 1 {
			serverSig := account.HMAC(s.h, keys.ServerKey, authMessage)
			return []byte("v=" + base64.StdEncoding.EncodeToString(serverSig)), true, nil
		}
	}
	return nil, false, errNotAuthorized
}

// decodeSaslname undoes RFC 5802's escaping of ',' and '=' in names.
func decodeSaslname(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", errMalformed
		}
		i += 2
	}
	return b.String(), nil
}

// fakeSalter derives a stable salt for unknown user names from a secret, so
// that repeated probes of one name see the same salt.
func fakeSalter(secret []byte) func(string) []byte {
	return func(name string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(name))
		return m.Sum(nil)[:16]
	}
}
