package xmpp_test

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"chatd/internal/xmpptest"
	"chatd/xmpp"
)

// BenchmarkStanzaPath measures the server's path for one 1:1 message —
// parse, stamp, route, encode, write — through real loopback TCP sockets
// (without TLS, whose cost is the kernel's and crypto/tls's, not ours). The
// sender writes pre-encoded stanzas and the receiver counts them in the raw
// bytes, so the allocations reported are the server's.
//
//	go test -run '^$' -bench StanzaPath -benchmem ./xmpp
func BenchmarkStanzaPath(b *testing.B) {
	a, r, msg := benchPair(b)
	const batch = 64
	chunk := bytes.Repeat(msg, batch)
	done := make(chan int64, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	go func() { done <- countMessages(r.Conn, b.N) }()
	for sent := 0; sent < b.N; sent += batch {
		n := min(batch, b.N-sent)
		a.Conn.SetWriteDeadline(time.Now().Add(xmpptest.Wait))
		if _, err := a.Conn.Write(chunk[:n*len(msg)]); err != nil {
			b.Fatal(err)
		}
	}
	if got := <-done; got != int64(b.N) {
		b.Fatalf("received %d of %d", got, b.N)
	}
}

// benchPair logs in a sender and a receiver without TLS and returns them
// with the message the sender sends, pre-encoded.
func benchPair(b *testing.B) (a, r *client, msg []byte) {
	e := startBenchEnv(b)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	a = e.plainLogin(alice, "a")
	r = e.plainLogin(bob, "b")
	msg = []byte(fmt.Sprintf(`<message to='%s' type='chat' id='6b0231bc2b1d9e0e6f000000'><body>hello over xmpp, a message of typical length</body>`+
		`<markable xmlns='urn:xmpp:chat-markers:0'/></message>`, bob.JID))
	return a, r, msg
}

// countMessages reads until n message end tags went by.
func countMessages(r io.Reader, n int) int64 {
	buf := make([]byte, 64<<10)
	end := []byte("</message>")
	var got int64
	var carry []byte
	for got < int64(n) {
		k, err := r.Read(buf)
		if err != nil {
			return got
		}
		data := append(carry, buf[:k]...)
		got += int64(bytes.Count(data, end))
		if i := bytes.LastIndex(data, end); i >= 0 {
			data = data[i+len(end):]
		}
		carry = append(carry[:0], data[max(0, len(data)-len(end)):]...)
	}
	return got
}

// startBenchEnv starts a server for benchmarks: no TLS requirement, no rate
// limit (the benchmark is the flood).
func startBenchEnv(b *testing.B) *env {
	return startEnvTB(b, func(c *xmpp.Config) {
		c.RequireTLS = false
		c.StanzaRate = 1e9
		c.StanzaBurst = 1e9
		c.MaxQueueBytes = 64 << 20
	})
}

// plainLogin logs in without TLS and binds, with initial presence, leaving
// the connection for raw use.
func (e *env) plainLogin(u user, resource string) *client {
	c := e.RawDial()
	c.Open()
	local := strings.TrimSuffix(u.JID, "@localhost")
	c.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + xmpptest.B64([]byte("\x00"+local+"\x00"+u.Password)) + `</auth>`)
	if r := c.NextSync(); r.Name != "success" {
		e.T.Fatalf("auth: %s", r)
	}
	c.Open()
	c.BindOnly(resource)
	c.Write(`<presence/><iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>`)
	for r := c.NextSync(); r.Attr("id") != "sync"; r = c.NextSync() {
	}
	return c
}

// BenchmarkStanzaPathPaced is BenchmarkStanzaPath one message at a time:
// each is sent once the one before has arrived, as in chatbench's rate
// mode, where every message costs the server a read, a wake-up of the
// recipient's writer and a write of its own.
//
//	go test -run '^$' -bench StanzaPathPaced -benchmem ./xmpp
func BenchmarkStanzaPathPaced(b *testing.B) {
	a, r, msg := benchPair(b)
	end := []byte("</message>")
	buf := make([]byte, 64<<10)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		a.Conn.SetWriteDeadline(time.Now().Add(xmpptest.Wait))
		if _, err := a.Conn.Write(msg); err != nil {
			b.Fatal(err)
		}
		r.Conn.SetReadDeadline(time.Now().Add(xmpptest.Wait))
		got := buf[:0]
		for !bytes.HasSuffix(got, end) {
			k, err := r.Conn.Read(got[len(got):cap(got)])
			if err != nil {
				b.Fatal(err)
			}
			got = got[:len(got)+k]
		}
	}
}
