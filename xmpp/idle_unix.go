//go:build unix

package xmpp

import "syscall"

// peek reports whether the socket has data (or an end, or an error) without
// consuming it: false only when a read would block.
func peek(fd uintptr) (ready, supported bool) {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK, true
}
