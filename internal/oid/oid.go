// Package oid generates and checks 12-byte identifiers compatible with
// MongoDB ObjectIds, rendered as 24 lower-case hexadecimal characters.
//
// chatd gives dialogs, messages and sessions such identifiers (QuickBlox
// does), whichever storage backend keeps them, so ids look the same on
// SQLite and on MongoDB. New returns ids whose first four bytes are the
// creation time in seconds, so ids sort by creation time within a process.
package oid

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
	"time"
)

var (
	process [5]byte
	counter atomic.Uint32
)

func init() {
	if _, err := rand.Read(process[:]); err != nil {
		panic("oid: no randomness: " + err.Error())
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("oid: no randomness: " + err.Error())
	}
	counter.Store(binary.BigEndian.Uint32(b[:]))
}

// New returns a new id stamped with t.
func New(t time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint32(b[0:4], uint32(t.Unix()))
	copy(b[4:9], process[:])
	c := counter.Add(1)
	b[9] = byte(c >> 16)
	b[10] = byte(c >> 8)
	b[11] = byte(c)
	return hex.EncodeToString(b[:])
}

// Valid reports whether s is 24 hexadecimal characters. Upper-case letters
// are accepted; Normalize lower-cases them.
func Valid(s string) bool {
	if len(s) != 24 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Normalize returns s lower-cased; s must be Valid.
func Normalize(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'F' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'F' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// Time returns the creation time encoded in a valid id.
func Time(s string) time.Time {
	b, err := hex.DecodeString(s[:8])
	if err != nil {
		return time.Time{}
	}
	return time.Unix(int64(binary.BigEndian.Uint32(b)), 0).UTC()
}
