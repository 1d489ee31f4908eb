//go:build unix

package xmpp

import (
	"io"
	"os"
	"syscall"
)

// canWaitReadable: idle readers wait for readability (idle.go).
const canWaitReadable = true

// readNonblocking reads from a non-blocking socket: wouldBlock when it has
// nothing yet; err is io.EOF at the end of the stream.
func readNonblocking(fd uintptr, b []byte) (n int, wouldBlock bool, err error) {
	for {
		n, err = syscall.Read(int(fd), b)
		if err != syscall.EINTR {
			break
		}
	}
	switch {
	case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
		return 0, true, nil
	case err != nil:
		return 0, false, os.NewSyscallError("read", err)
	case n == 0:
		return 0, false, io.EOF
	}
	return n, false, nil
}
