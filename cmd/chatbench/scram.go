package main

import (
	"crypto/hmac"
	"crypto/pbkdf2"
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
	"sync"
)

// scramKeys are what a SCRAM client derives from the password with the
// server's salt and iteration count (RFC 5802 §3). Real clients keep them
// (or the salted password) so that a reconnection costs no PBKDF2; so does
// chatbench, or its own PBKDF2 would dominate the login rate it measures.
type scramKeys struct {
	clientKey, storedKey, serverKey []byte
}

// keyCache holds scramKeys per (mechanism, user, password, salt,
// iterations).
type keyCache struct {
	mu   sync.Mutex
	keys map[string]*scramKeys
	hits int64
	miss int64
}

func newKeyCache() *keyCache { return &keyCache{keys: map[string]*scramKeys{}} }

func (c *keyCache) get(h func() hash.Hash, mech, user, password string, salt []byte, iterations int) (*scramKeys, error) {
	id := mech + "\x00" + user + "\x00" + password + "\x00" + string(salt) + "\x00" + strconv.Itoa(iterations)
	c.mu.Lock()
	k := c.keys[id]
	if k != nil {
		c.hits++
	} else {
		c.miss++
	}
	c.mu.Unlock()
	if k != nil {
		return k, nil
	}
	salted, err := pbkdf2.Key(h, password, salt, iterations, h().Size())
	if err != nil {
		return nil, err
	}
	ck := hmacSum(h, salted, []byte("Client Key"))
	sum := h()
	sum.Write(ck)
	k = &scramKeys{clientKey: ck, storedKey: sum.Sum(nil), serverKey: hmacSum(h, salted, []byte("Server Key"))}
	c.mu.Lock()
	c.keys[id] = k
	c.mu.Unlock()
	return k, nil
}

func (c *keyCache) stats() (hits, misses int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.miss
}

func hmacSum(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

// scramClient is one SCRAM exchange without channel binding.
type scramClient struct {
	mech      string
	h         func() hash.Hash
	user      string
	password  string
	cache     *keyCache
	cnonce    string
	firstBare string
	serverSig []byte
}

func newScram(mech, user, password string, cache *keyCache) (*scramClient, error) {
	var h func() hash.Hash
	switch mech {
	case "SCRAM-SHA-256":
		h = sha256.New
	case "SCRAM-SHA-1":
		h = sha1.New
	default:
		return nil, fmt.Errorf("unsupported mechanism %s", mech)
	}
	var b [18]byte
	rand.Read(b[:])
	return &scramClient{mech: mech, h: h, user: user, password: password, cache: cache,
		cnonce: base64.RawStdEncoding.EncodeToString(b[:])}, nil
}

// first returns the client-first-message.
func (s *scramClient) first() []byte {
	name := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s.user)
	s.firstBare = "n=" + name + ",r=" + s.cnonce
	return []byte("n,," + s.firstBare)
}

var errServerSignature = errors.New("scram: the server's signature does not verify")

// final answers the server-first-message with the client-final-message.
func (s *scramClient) final(serverFirst []byte) ([]byte, error) {
	var nonce, salt64 string
	iterations := 0
	for _, a := range strings.Split(string(serverFirst), ",") {
		switch {
		case strings.HasPrefix(a, "r="):
			nonce = a[2:]
		case strings.HasPrefix(a, "s="):
			salt64 = a[2:]
		case strings.HasPrefix(a, "i="):
			iterations, _ = strconv.Atoi(a[2:])
		case strings.HasPrefix(a, "m="):
			return nil, errors.New("scram: unsupported mandatory extension")
		}
	}
	if !strings.HasPrefix(nonce, s.cnonce) || len(nonce) == len(s.cnonce) || iterations <= 0 {
		return nil, errors.New("scram: bad server-first-message")
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil || len(salt) == 0 {
		return nil, errors.New("scram: bad salt")
	}
	keys, err := s.cache.get(s.h, s.mech, s.user, s.password, salt, iterations)
	if err != nil {
		return nil, err
	}
	withoutProof := "c=biws,r=" + nonce
	authMessage := []byte(s.firstBare + "," + string(serverFirst) + "," + withoutProof)
	sig := hmacSum(s.h, keys.storedKey, authMessage)
	proof := make([]byte, len(sig))
	for i := range sig {
		proof[i] = keys.clientKey[i] ^ sig[i]
	}
	s.serverSig = hmacSum(s.h, keys.serverKey, authMessage)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// verify checks the server-final-message (the additional data of
// <success/>).
func (s *scramClient) verify(serverFinal []byte) error {
	v, ok := strings.CutPrefix(string(serverFinal), "v=")
	if !ok {
		return errServerSignature
	}
	got, err := base64.StdEncoding.DecodeString(v)
	if err != nil || subtle.ConstantTimeCompare(got, s.serverSig) != 1 {
		return errServerSignature
	}
	return nil
}
