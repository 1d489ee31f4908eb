//go:build !unix

package xmpp

// canWaitReadable: idle readers wait inside crypto/tls on this platform.
const canWaitReadable = false

func readNonblocking(uintptr, []byte) (n int, wouldBlock bool, err error) { return 0, false, nil }
