package xmpp

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/net/websocket"

	"chatd/xmpp/stanza"
)

// transport carries one client stream: RFC 6120 framing over TCP (optionally
// upgraded with STARTTLS, or TLS from the first byte), or RFC 7395 framing
// over WebSocket. Next is called only by the session's reader goroutine and
// Write only by its writer; Close may be called by anyone.
type transport interface {
	// Next returns the next stream header, element or end of stream.
	Next() (stanza.Event, error)
	// Restart expects a new stream header (after STARTTLS or SASL).
	Restart()
	// Header writes the server's stream header, and then (if any) the first
	// elements of the stream in the same write.
	Header(id, domain string, then []byte) error
	// Write writes complete, encoded top-level elements.
	Write(elems [][]byte) error
	// Trailer writes the end of the stream.
	Trailer() error
	StartTLS(cfg *tls.Config, timeout time.Duration) error
	TLS() *tls.ConnectionState
	// SetReadTimeout makes reads fail after d without data (0: never).
	SetReadTimeout(d time.Duration)
	SetWriteDeadline(t time.Time) error
	RemoteAddr() net.Addr
	Close() error
	// WebSocket reports whether this is RFC 7395 framing.
	WebSocket() bool
	// DefaultNS is the default namespace the client's stream declared.
	DefaultNS() string
	// LastSize is the size in bytes of the element Next returned last.
	LastSize() int
}

// idleWaiter is a transport whose wait for input can happen on a goroutine
// of its own, with a stack that holds nothing else (idle.go).
type idleWaiter interface {
	// Idle reports whether the next element needs the network.
	Idle() bool
	// Wait waits for input and buffers it; Next reports a failure.
	Wait()
	// WaitBriefly is Wait for at most d: false when no input came.
	WaitBriefly(d time.Duration) bool
}

// deadlineConn sets a read deadline before each read, so a stream with no
// data for the read timeout ends with a timeout error. A deadline set less
// than slack(timeout) ago is kept (the timeout is that much shorter at
// worst): setting one costs a timer update, which a read per message would
// otherwise pay.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
	setAt   time.Time // when the current deadline was set; zero: none
	full    bool      // the last read filled its buffer: more may be waiting in Conn
}

// slack is how much earlier than asked a deadline may stay: an eighth of
// the timeout, at most a second.
func slack(timeout time.Duration) time.Duration { return min(time.Second, timeout/8) }

func (c *deadlineConn) refresh() {
	if c.timeout <= 0 {
		if !c.setAt.IsZero() {
			c.Conn.SetReadDeadline(time.Time{})
			c.setAt = time.Time{}
		}
		return
	}
	if now := time.Now(); c.setAt.IsZero() || now.Sub(c.setAt) >= slack(c.timeout) {
		c.Conn.SetReadDeadline(now.Add(c.timeout))
		c.setAt = now
	}
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	c.refresh()
	n, err := c.Conn.Read(b)
	c.full = n == len(b)
	return n, err
}

// tcpTransport is RFC 6120 framing over a TCP connection.
type tcpTransport struct {
	raw     net.Conn     // the TCP connection
	conn    net.Conn     // raw, or the TLS connection over it
	tls     *tls.Conn    // set once TLS is up
	rec     *recordConn  // under tls (see idle.go)
	reader  deadlineConn // reads from conn
	parser  *stanza.Parser
	max     int
	noWait  bool  // the platform cannot wait for readability (idle.go)
	waitErr error // what Wait met, returned by the next Next

	writeDeadline atomic.Int64 // unix nanoseconds; 0: none
}

// newTCPTransport serves a TCP connection; with tlsConfig set, TLS starts
// with the first byte (XEP-0368 direct TLS).
func newTCPTransport(c net.Conn, max int, tlsConfig *tls.Config) *tcpTransport {
	t := &tcpTransport{raw: c, conn: c, max: max}
	if tlsConfig != nil {
		t.wrapTLS(tlsConfig)
	}
	t.reader.Conn = t.conn
	t.parser = stanza.NewParser(&t.reader, max)
	return t
}

func (t *tcpTransport) wrapTLS(cfg *tls.Config) {
	t.rec = &recordConn{Conn: t.raw}
	t.tls = tls.Server(t.rec, cfg)
	t.conn = t.tls
}

// Next waits for the socket to become readable near the top of the stack
// when nothing is buffered (see idle.go), then parses.
func (t *tcpTransport) Next() (stanza.Event, error) {
	if t.Idle() {
		t.Wait()
	}
	if err := t.waitErr; err != nil {
		t.waitErr = nil
		return stanza.Event{}, err
	}
	return t.parser.Next()
}

// Idle reports whether nothing is buffered anywhere — not in the parser,
// not as plaintext in tls.Conn, not as ciphertext under it — so that the
// next element needs the network, and Wait can wait for it (idle.go).
func (t *tcpTransport) Idle() bool {
	return t.rec != nil && !t.noWait && t.waitErr == nil && t.parser.Drained() && !t.reader.full && t.rec.drained()
}

// Ready reports whether Next can return without the network: the parser
// holds the next element whole, or a failure is waiting to be reported.
// Input already received but still under TLS (plaintext tls.Conn kept from
// a record larger than the parser's read, or whole records in recordConn's
// buffer) is moved into the parser first, without reading the socket.
func (t *tcpTransport) Ready() bool {
	for !t.parser.Ready() {
		if t.waitErr != nil {
			return true
		}
		if t.rec == nil || !t.reader.full && !t.rec.wholeRecord() {
			return false
		}
		if err := t.fillOffline(); err != nil {
			return !errors.Is(err, errWouldBlock)
		}
	}
	return true
}

// fillOffline moves input already received into the parser without
// reading the socket.
func (t *tcpTransport) fillOffline() error {
	t.rec.offline = true
	defer func() { t.rec.offline = false }()
	return t.parser.Fill()
}

// LastSize is the size of the element Next returned last.
func (t *tcpTransport) LastSize() int { return t.parser.LastSize() }

// Wait waits until the socket is readable and reads what arrived into the
// buffer under tls.Conn, within the read timeout. Next returns a failure.
func (t *tcpTransport) Wait() {
	t.reader.refresh()
	t.waitErr = t.fill()
}

// fill reads what arrives into the buffer under tls.Conn (idle.go).
func (t *tcpTransport) fill() error {
	ok, err := t.rec.fillWhenReadable()
	t.noWait = !ok
	return err
}

// WaitBriefly is Wait with a read deadline d away (a quarter of the read
// timeout if that is sooner); the next read, or Wait, sets the timeout's
// deadline again.
func (t *tcpTransport) WaitBriefly(d time.Duration) bool {
	if t.reader.timeout > 0 {
		d = min(d, t.reader.timeout/4)
	}
	t.conn.SetReadDeadline(time.Now().Add(d))
	// Make the next refresh set (or clear) the deadline.
	t.reader.setAt = time.Time{}
	if t.reader.timeout <= 0 {
		t.reader.setAt = time.Now()
	}
	err := t.fill()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	t.waitErr = err
	return true
}

func (t *tcpTransport) Restart() {
	t.reader.Conn = t.conn
	t.parser = stanza.NewParser(&t.reader, t.max)
}

const streamHeader = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en' id='`

func (t *tcpTransport) Header(id, domain string, then []byte) error {
	_, err := t.conn.Write(headerBytes(id, domain, then))
	return err
}

// headerBytes is the server's stream header followed by then.
func headerBytes(id, domain string, then []byte) []byte {
	b := make([]byte, 0, len(streamHeader)+64+len(then))
	b = append(b, streamHeader...)
	b = append(b, id...)
	b = append(b, "' from='"...)
	b = append(b, domain...)
	b = append(b, "'>"...)
	return append(b, then...)
}

func (t *tcpTransport) Write(elems [][]byte) error {
	if len(elems) == 1 {
		_, err := t.conn.Write(elems[0])
		return err
	}
	bufs := net.Buffers(elems)
	if t.tls == nil {
		_, err := bufs.WriteTo(t.conn)
		return err
	}
	// TLS gains from one record per batch rather than one per element.
	n := 0
	for _, e := range elems {
		n += len(e)
	}
	b := make([]byte, 0, n)
	for _, e := range elems {
		b = append(b, e...)
	}
	_, err := t.conn.Write(b)
	return err
}

func (t *tcpTransport) Trailer() error {
	_, err := t.conn.Write([]byte("</stream:stream>"))
	return err
}

func (t *tcpTransport) StartTLS(cfg *tls.Config, timeout time.Duration) error {
	if t.tls != nil {
		return errors.New("xmpp: TLS is already on")
	}
	if len(bytes.TrimSpace(t.parser.Buffered())) > 0 {
		// RFC 6120 §5.4.3.3: nothing may follow <starttls/> in the clear
		// (white space, which some clients send, is harmless).
		return streamErr("policy-violation", "data after <starttls/>")
	}
	t.wrapTLS(cfg)
	t.raw.SetDeadline(time.Now().Add(timeout))
	if err := t.tls.Handshake(); err != nil {
		return err
	}
	t.raw.SetDeadline(time.Time{})
	t.writeDeadline.Store(0)
	t.reader.setAt = time.Time{}
	t.Restart()
	return nil
}

func (t *tcpTransport) TLS() *tls.ConnectionState {
	if t.tls == nil {
		return nil
	}
	st := t.tls.ConnectionState()
	return &st
}

func (t *tcpTransport) SetReadTimeout(d time.Duration) {
	t.reader.timeout = d
	t.reader.setAt = time.Time{} // applies from the next read
}

// SetWriteDeadline keeps the deadline set if tm is later by less than the
// slack of the timeout it stands for (one writer per session at a time
// calls it, and negotiation before there is one).
func (t *tcpTransport) SetWriteDeadline(tm time.Time) error {
	cur := t.writeDeadline.Load()
	if cur != 0 && !tm.IsZero() && tm.UnixNano() >= cur &&
		tm.UnixNano()-cur < int64(slack(time.Until(tm))) {
		return nil
	}
	if tm.IsZero() {
		t.writeDeadline.Store(0)
	} else {
		t.writeDeadline.Store(tm.UnixNano())
	}
	return t.conn.SetWriteDeadline(tm)
}

func (t *tcpTransport) RemoteAddr() net.Addr { return t.raw.RemoteAddr() }

func (t *tcpTransport) Close() error { return t.conn.Close() }

func (t *tcpTransport) WebSocket() bool { return false }

func (t *tcpTransport) DefaultNS() string { return t.parser.DefaultNS }

// wsTransport is RFC 7395 framing: one element per WebSocket text message,
// <open/> and <close/> in place of the stream header and end.
type wsTransport struct {
	ws      *websocket.Conn
	secure  *tls.ConnectionState
	max     int
	timeout time.Duration
	closed  bool
	last    int // the size of the last message read
}

func newWSTransport(ws *websocket.Conn, max int) *wsTransport {
	ws.MaxPayloadBytes = max
	ws.PayloadType = websocket.TextFrame
	t := &wsTransport{ws: ws, max: max}
	if r := ws.Request(); r != nil && r.TLS != nil {
		t.secure = r.TLS
	}
	return t
}

func (t *wsTransport) Next() (stanza.Event, error) {
	if t.closed {
		return stanza.Event{}, io.EOF
	}
	var msg []byte
	for {
		if t.timeout > 0 {
			t.ws.SetReadDeadline(time.Now().Add(t.timeout))
		}
		if err := websocket.Message.Receive(t.ws, &msg); err != nil {
			if errors.Is(err, websocket.ErrFrameTooLarge) {
				return stanza.Event{}, stanza.ErrTooLarge
			}
			return stanza.Event{}, err
		}
		if len(msg) > 0 {
			break
		}
	}
	t.last = len(msg)
	el, err := stanza.ParseElement(msg, stanza.NSClient, t.max)
	if err != nil {
		return stanza.Event{}, err
	}
	if el.Space == stanza.NSFraming {
		switch el.Name {
		case "open":
			return stanza.Event{Kind: stanza.KindOpen, Element: el}, nil
		case "close":
			t.closed = true
			return stanza.Event{Kind: stanza.KindClose, Element: el}, nil
		}
	}
	return stanza.Event{Kind: stanza.KindElement, Element: el}, nil
}

func (t *wsTransport) Restart() {}

func (t *wsTransport) LastSize() int { return t.last }

func (t *wsTransport) Header(id, domain string, then []byte) error {
	_, err := t.ws.Write([]byte(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" version="1.0" xml:lang="en" id="` +
		id + `" from="` + domain + `"/>`))
	if err == nil && len(then) > 0 {
		_, err = t.ws.Write(then) // a message of its own (RFC 7395 §3.3.3)
	}
	return err
}

func (t *wsTransport) Write(elems [][]byte) error {
	for _, e := range elems {
		if _, err := t.ws.Write(e); err != nil {
			return err
		}
	}
	return nil
}

func (t *wsTransport) Trailer() error {
	_, err := t.ws.Write([]byte(`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>`))
	return err
}

func (t *wsTransport) StartTLS(*tls.Config, time.Duration) error {
	return errors.New("xmpp: STARTTLS over WebSocket")
}

func (t *wsTransport) TLS() *tls.ConnectionState { return t.secure }

func (t *wsTransport) SetReadTimeout(d time.Duration) { t.timeout = d }

func (t *wsTransport) SetWriteDeadline(tm time.Time) error { return t.ws.SetWriteDeadline(tm) }

func (t *wsTransport) RemoteAddr() net.Addr {
	if r := t.ws.Request(); r != nil {
		if addr := requestAddr(r); addr != nil {
			return addr
		}
	}
	return t.ws.RemoteAddr()
}

// requestAddr is the client address of an HTTP request (nil if unreadable).
func requestAddr(r *http.Request) net.Addr {
	if addr, err := net.ResolveTCPAddr("tcp", r.RemoteAddr); err == nil {
		return addr
	}
	return nil
}

func (t *wsTransport) Close() error { return t.ws.Close() }

func (t *wsTransport) WebSocket() bool { return true }

func (t *wsTransport) DefaultNS() string { return stanza.NSClient }
