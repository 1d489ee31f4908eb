package xmpp

import (
	"bytes"
	"crypto/tls"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"chatd/internal/certs"
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
