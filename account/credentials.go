package account

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"hash"
)

// DefaultIterations is the PBKDF2 iteration count for new credentials
// (RFC 7677 recommends at least 4096).
const DefaultIterations = 4096

// saltLen is the length of a new user's salt in bytes.
const saltLen = 16

// NewSalt returns a random salt.
func NewSalt() []byte {
	b := make([]byte, saltLen)
	if _, err := rand.Read(b); err != nil {
		panic("account: no randomness: " + err.Error())
	}
	return b
}

// DeriveCredentials derives the SCRAM-SHA-1 and SCRAM-SHA-256 keys of secret
// with salt and iterations.
func DeriveCredentials(secret string, salt []byte, iterations int) Credentials {
	return Credentials{
		Salt:       salt,
		Iterations: iterations,
		SHA1:       DeriveKeys(sha1.New, secret, salt, iterations),
		SHA256:     DeriveKeys(sha256.New, secret, salt, iterations),
	}
}

// DeriveKeys derives the SCRAM StoredKey and ServerKey of secret (RFC 5802 §3)
// for the hash function h.
func DeriveKeys(h func() hash.Hash, secret string, salt []byte, iterations int) ScramKeys {
	salted, err := pbkdf2.Key(h, secret, salt, iterations, h().Size())
	if err != nil {
		panic("account: pbkdf2: " + err.Error())
	}
	clientKey := HMAC(h, salted, []byte("Client Key"))
	sum := h()
	sum.Write(clientKey)
	return ScramKeys{
		StoredKey: sum.Sum(nil),
		ServerKey: HMAC(h, salted, []byte("Server Key")),
	}
}

// HMAC returns HMAC(key, msg) with the hash function h.
func HMAC(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

// Matches reports whether secret is the secret c was derived from. It costs
// one PBKDF2 derivation (SHA-256).
func (c *Credentials) Matches(secret string) bool {
	if len(c.SHA256.StoredKey) == 0 || c.Iterations <= 0 {
		return false
	}
	k := DeriveKeys(sha256.New, secret, c.Salt, c.Iterations)
	return subtle.ConstantTimeCompare(k.StoredKey, c.SHA256.StoredKey) == 1
}

// HashToken returns the hex SHA-256 of a session token or API key, the form in
// which they are stored and looked up.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("account: no randomness: " + err.Error())
	}
	return hex.EncodeToString(b)
}
