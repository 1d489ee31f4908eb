package xmpp

import (
	"bytes"
	"crypto/tls"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"chatd/internal/certs"
	"chatd/xmpp/stanza"
)

// chunkConn delivers its data in chunks of the sizes given, cycling.
type chunkConn struct {
	net.Conn
	data   []byte
	chunks []int
	i      int
}

func (c *chunkConn) Read(b []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(b), len(c.data), c.chunks[c.i%len(c.chunks)])
	c.i++
	copy(b, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// recordConn hands over every byte in order, never past the end of a TLS
// record in one read, and is drained exactly at record boundaries.
func TestRecordConnBoundaries(t *testing.T) {
	var stream []byte
	var ends []int // offsets where records end
	for _, size := range []int{0, 1, 100, 5000, 16640, 3, 700} {
		stream = append(stream, 23, 3, 3, byte(size>>8), byte(size))
		for i := range size {
			stream = append(stream, byte(i))
		}
		ends = append(ends, len(stream))
	}
	for _, chunks := range [][]int{{1}, {2, 7}, {4096}, {tlsRecordMax}, {3, 10000, 1}, {5, 6, 105, 5005, 16645, 8, 705}} {
		for _, bufSize := range []int{1, 5, 512, 20000} {
			c := &recordConn{Conn: &chunkConn{data: stream, chunks: chunks}}
			var got []byte
			drainedAt := 0
			b := make([]byte, bufSize)
			for {
				n, err := c.Read(b)
				got = append(got, b[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				// A read ends at most at the next record end.
				start := len(got) - n
				for _, e := range ends {
					if e > start && e < len(got) {
						t.Fatalf("chunks %v, buffer %d: a read of [%d,%d) crosses the record end at %d", chunks, bufSize, start, len(got), e)
					}
				}
				atEnd := false
				for _, e := range ends {
					atEnd = atEnd || e == len(got)
				}
				// Drained: at a record end with nothing read ahead.
				if want := atEnd && c.r == c.w; c.drained() != want {
					t.Fatalf("chunks %v, buffer %d: at %d drained() = %v, want %v", chunks, bufSize, len(got), c.drained(), want)
				}
				if c.drained() {
					drainedAt++
				}
			}
			if chunks[0] == 5 && bufSize == 20000 && drainedAt != len(ends) {
				// One record per socket read: drained after every one.
				t.Fatalf("drained at %d record ends of %d", drainedAt, len(ends))
			}
			if !bytes.Equal(got, stream) {
				t.Fatalf("chunks %v, buffer %d: the stream changed", chunks, bufSize)
			}
			if c.buf != nil {
				t.Fatalf("chunks %v, buffer %d: the pooled buffer was kept", chunks, bufSize)
			}
		}
	}
}

// Through real TLS, every size of write arrives intact, and after each is
// read in full nothing is left buffered under tls.Conn.
func TestRecordConnUnderTLS(t *testing.T) {
	cert, _, err := certs.SelfSigned([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sizes := []int{1, 300, 16384, 16385, 70000, 5, 40000}
	go func() {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.Close()
		for i, n := range sizes {
			c.Write(bytes.Repeat([]byte{byte('a' + i)}, n))
			// Wait for the echo of the size before the next write, so that
			// each write is read alone.
			var ack [1]byte
			if _, err := io.ReadFull(c, ack[:]); err != nil {
				return
			}
		}
	}()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	tr := newTCPTransport(raw, 1<<20, &tls.Config{Certificates: []tls.Certificate{cert}})
	defer tr.Close()
	raw.SetDeadline(time.Now().Add(20 * time.Second))
	for i, n := range sizes {
		want := bytes.Repeat([]byte{byte('a' + i)}, n)
		got := make([]byte, 0, n)
		buf := make([]byte, 1+rand.IntN(4096))
		for len(got) < n {
			k, err := tr.reader.Read(buf[:min(len(buf), n-len(got))])
			if err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			got = append(got, buf[:k]...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("write %d of %d bytes arrived changed", i, n)
		}
		if !tr.rec.drained() {
			t.Fatalf("write %d read in full, but ciphertext is left under tls.Conn", i)
		}
		if _, err := tr.tls.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
	}
}

// captureConn passes writes through until capturing, then keeps them.
type captureConn struct {
	net.Conn
	mu        sync.Mutex
	capturing bool
	got       [][]byte
}

func (c *captureConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.capturing {
		c.got = append(c.got, bytes.Clone(b))
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// Ready moves input still under TLS into the parser without reading the
// socket (recordConn's offline reads). With the next record only partly
// received, at each of several split points, it says not ready, and the
// elements then arrive whole and in order: crypto/tls kept its state.
func TestReadyReadsNoFurtherThanReceived(t *testing.T) {
	for _, split := range []int{0, 3, 5, 6, 100, -1} {
		t.Run(strconv.Itoa(split), func(t *testing.T) { readyWithPartialRecord(t, split) })
	}
}

func readyWithPartialRecord(t *testing.T, split int) {
	cert, _, err := certs.SelfSigned([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	sc := <-accepted
	if sc == nil {
		t.Fatal("accept failed")
	}
	defer sc.Close()
	tr := newTCPTransport(sc, 1<<16, &tls.Config{Certificates: []tls.Certificate{cert}})
	tr.SetReadTimeout(5 * time.Second)

	cc := &captureConn{Conn: raw}
	cl := tls.Client(cc, &tls.Config{InsecureSkipVerify: true, DynamicRecordSizingDisabled: true})
	hs := make(chan error, 1)
	go func() {
		if err := cl.Handshake(); err != nil {
			hs <- err
			return
		}
		_, err := cl.Write([]byte(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`))
		hs <- err
	}()
	if ev, err := tr.Next(); err != nil || ev.Kind != stanza.KindOpen {
		t.Fatalf("header: %v %v", ev.Kind, err)
	}
	if err := <-hs; err != nil {
		t.Fatal(err)
	}

	// Three records, encrypted without being sent: A and the start of B;
	// the rest of B; C.
	a := `<message id='A'><body>a</body></message>`
	body := strings.Repeat("b", 6000)
	b := `<message id='B'><body>` + body + `</body></message>`
	c := `<message id='C'><body>c</body></message>`
	cc.mu.Lock()
	cc.capturing = true
	cc.mu.Unlock()
	for _, p := range []string{a + b[:4096], b[4096:], c} {
		if _, err := cl.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	cc.mu.Lock()
	recs := cc.got
	cc.mu.Unlock()
	if len(recs) != 3 {
		t.Fatalf("%d records", len(recs))
	}
	if split < 0 {
		split = len(recs[1]) - 1
	}
	// The first record and part of the second arrive in one write.
	if _, err := raw.Write(append(bytes.Clone(recs[0]), recs[1][:split]...)); err != nil {
		t.Fatal(err)
	}
	if ev, err := tr.Next(); err != nil || ev.Element.Attr("id") != "A" {
		t.Fatalf("A: %v %v", ev.Element, err)
	}
	if tr.Ready() {
		t.Fatal("ready with B incomplete")
	}
	if _, err := raw.Write(append(bytes.Clone(recs[1][split:]), recs[2]...)); err != nil {
		t.Fatal(err)
	}
	if ev, err := tr.Next(); err != nil || ev.Element.Attr("id") != "B" || ev.Element.ChildText("body", "") != body {
		t.Fatalf("B: %v %v", ev.Element, err)
	}
	if ev, err := tr.Next(); err != nil || ev.Element.Attr("id") != "C" {
		t.Fatalf("C: %v %v", ev.Element, err)
	}
}
