package xmpp

import (
	"net"
	"sync"
	"syscall"
)

// An idle client stream costs the server what its reader goroutine keeps
// while it waits. Waiting inside crypto/tls's Read keeps a goroutine stack of
// 8 KiB (the frames of tls.Conn.Read down to the poller are more than the 2
// KiB the garbage collector needs to see in use before it halves a stack),
// and even a wait near the top of the reader's stack keeps 4 KiB: the
// collector halves a stack only when less than a quarter of it is in use.
// So when nothing is buffered anywhere — not in the parser, not as plaintext
// in tls.Conn, not as ciphertext under it — a bound session's reader starts
// a fresh goroutine, Session.awaitInput, and ends: the new goroutine starts
// with the runtime's smallest stack (2 KiB) and waits for the socket to
// become readable (tcpTransport.Wait) with nothing else on it, then reads on
// through TLS, growing its stack only while there is work. The reader first
// waits a second itself (tcpTransport.WaitBriefly), so that a session that
// sends often does not pay a goroutine start and a stack grown again for
// every stanza; at 19,500 idle sessions the hand-over saves 4 KiB each.

// tls.Conn does not say whether it holds ciphertext it has not decrypted
// yet. recordConn, under it, makes that knowable: it hands tls.Conn at most
// the rest of the current TLS record, so once tls.Conn has returned a
// record's plaintext it holds no ciphertext, and recordConn knows whether it
// still has some.

// tlsRecordMax is the largest TLS record on the wire: a 5-byte header and at
// most 2^14 + 256 bytes of ciphertext (RFC 8446 §5.2).
const tlsRecordMax = 5 + 1<<14 + 256

var recordBufs = sync.Pool{New: func() any { b := make([]byte, tlsRecordMax); return &b }}

// recordConn is the connection under crypto/tls: it reads the socket (or
// fillWhenReadable does) into a
// pooled buffer, given back whenever it is empty, and hands over no more
// than the current record.
type recordConn struct {
	net.Conn
	buf  *[]byte // nil when empty
	r, w int
	err  error // a read error that came with data, returned next

	rc syscall.RawConn // for fillWhenReadable

	hdr [5]byte // the next record's header bytes handed over so far
	// offline: Read hands over only what completes a record already
	// buffered, and otherwise fails with errWouldBlock rather than read the
	// socket (tcpTransport.Ready).
	offline bool
	hdrN    int
	left    int // body bytes of the current record not handed over yet
}

// errWouldBlock is an offline recordConn's answer when a read would need the
// network. It is a timeout, so tls.Conn keeps its state and reads on later.
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "xmpp: input not buffered yet" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// wholeRecord reports whether the buffer holds the rest of the current TLS
// record, or a whole next one.
func (c *recordConn) wholeRecord() bool {
	n := c.w - c.r
	switch {
	case c.left > 0:
		return n >= c.left
	case c.hdrN > 0 || n < len(c.hdr):
		return false
	}
	b := (*c.buf)[c.r:c.w]
	return n >= len(c.hdr)+(int(b[3])<<8|int(b[4]))
}

func (c *recordConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if c.offline && !c.wholeRecord() {
		return 0, errWouldBlock
	}
	if c.r == c.w {
		if c.err != nil {
			err := c.err
			c.err = nil
			return 0, err
		}
		if c.buf == nil {
			c.buf = recordBufs.Get().(*[]byte)
		}
		n, err := c.Conn.Read(*c.buf)
		c.r, c.w = 0, n
		if n == 0 {
			c.release()
			return 0, err
		}
		c.err = err
	}
	avail := (*c.buf)[c.r:c.w]
	n := copy(b, avail[:c.limit(avail)])
	c.advance(avail[:n])
	c.r += n
	if c.r == c.w {
		c.release()
	}
	return n, nil
}

// limit is how much of avail belongs to the current record (its header
// included when it has not been handed over yet).
func (c *recordConn) limit(avail []byte) int {
	if c.left > 0 {
		return min(c.left, len(avail))
	}
	need := len(c.hdr) - c.hdrN
	if len(avail) < need {
		return len(avail)
	}
	hdr := c.hdr
	copy(hdr[c.hdrN:], avail[:need])
	body := int(hdr[3])<<8 | int(hdr[4])
	return need + min(body, len(avail)-need)
}

// advance accounts for bytes handed over.
func (c *recordConn) advance(p []byte) {
	for len(p) > 0 {
		if c.left > 0 {
			k := min(c.left, len(p))
			c.left -= k
			p = p[k:]
			continue
		}
		c.hdr[c.hdrN] = p[0]
		c.hdrN++
		p = p[1:]
		if c.hdrN == len(c.hdr) {
			c.left = int(c.hdr[3])<<8 | int(c.hdr[4])
			c.hdrN = 0
		}
	}
}

func (c *recordConn) release() {
	if c.buf != nil {
		recordBufs.Put(c.buf)
		c.buf = nil
	}
	c.r, c.w = 0, 0
}

// drained reports whether everything read from the socket was handed over
// and ended a record.
func (c *recordConn) drained() bool {
	return c.r == c.w && c.err == nil && c.left == 0 && c.hdrN == 0
}

// fillWhenReadable waits until the socket has data (or an end, or an
// error) and reads it into the connection's buffer, within the read
// deadline set on the connection. The read that tls.Conn would have made happens here,
// near the top of the stack; nothing is read twice. It returns false, nil
// where the platform offers no such wait.
func (c *recordConn) fillWhenReadable() (bool, error) {
	if c.rc == nil {
		sc, ok := c.Conn.(syscall.Conn)
		if !ok || !canWaitReadable {
			return false, nil
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return false, nil
		}
		c.rc = rc
	}
	return true, c.rc.Read(func(fd uintptr) bool {
		if c.buf == nil {
			c.buf = recordBufs.Get().(*[]byte)
		}
		n, wouldBlock, rerr := readNonblocking(fd, *c.buf)
		switch {
		case wouldBlock:
			c.release() // not held while waiting
			return false
		case n > 0:
			c.r, c.w = 0, n
		default:
			c.release()
			c.err = rerr
		}
		return true
	})
}
