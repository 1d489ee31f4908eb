//go:build !unix

package xmpp

// peek is not available: idle readers wait inside crypto/tls.
func peek(uintptr) (ready, supported bool) { return false, false }
