package turn

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	pion "github.com/pion/turn/v4"
)

// testConfig is a server on 127.0.0.1 with every listener on a port the
// system picks, relaying to loopback peers.
func testConfig() Config {
	return Config{
		Enabled:            true,
		Realm:              "chatd.test",
		UDPAddr:            "127.0.0.1:0",
		TCPAddr:            "127.0.0.1:0",
		TLSAddr:            "127.0.0.1:0",
		RelayAddress:       "127.0.0.1",
		RelayBind:          "127.0.0.1",
		Secret:             testSecret,
		AllowLoopbackPeers: true,
	}
}

// logBook keeps the server's log lines for assertions and copies them to the
// test's output.
type logBook struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBook) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBook) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// count returns how many lines contain every one of parts.
func (b *logBook) count(parts ...string) int {
	n := 0
	for line := range strings.Lines(b.String()) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// startServer starts a server for cfg (with TLS when withTLS) and closes it
// when the test ends, failing the test if Close fails.
func startServer(t *testing.T, cfg Config, withTLS bool) (*Server, *logBook) {
	t.Helper()
	book := &logBook{}
	log := slog.New(slog.NewTextHandler(book, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var tc *tls.Config
	if withTLS {
		tc = selfSigned(t)
	}
	s, err := New(cfg, tc, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", book)
		}
	})
	return s, book
}

// selfSigned returns a TLS config with a fresh ECDSA P-256 certificate for
// 127.0.0.1 and localhost.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "chatd turn test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}
}

// startEchoPeer runs a UDP peer on 127.0.0.1 that sends every datagram back
// to its sender, until the test ends.
func startEchoPeer(t *testing.T) *net.UDPAddr {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if _, err := pc.WriteTo(buf[:n], from); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return pc.LocalAddr().(*net.UDPAddr)
}

// turnClient is a pion TURN client over one transport.
type turnClient struct {
	*pion.Client
	conn net.PacketConn
	raw  net.Conn // the TCP or TLS connection, nil over UDP
}

// dialClient connects a pion client to s over transport ("udp", "tcp" or
// "tls") with username and password; it is closed when the test ends.
func dialClient(t *testing.T, s *Server, transport, username, password string) *turnClient {
	t.Helper()
	a := s.Addrs()
	var (
		conn   net.PacketConn
		raw    net.Conn
		server string
	)
	switch transport {
	case "udp":
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn, server = pc, a.UDP.String()
	case "tcp":
		c, err := net.Dial("tcp", a.TCP.String())
		if err != nil {
			t.Fatal(err)
		}
		conn, raw, server = pion.NewSTUNConn(c), c, a.TCP.String()
	case "tls":
		c, err := tls.Dial("tcp", a.TLS.String(), &tls.Config{InsecureSkipVerify: true}) // self-signed test certificate
		if err != nil {
			t.Fatal(err)
		}
		conn, raw, server = pion.NewSTUNConn(c), c, a.TLS.String()
	default:
		t.Fatalf("unknown transport %q", transport)
	}
	c, err := pion.NewClient(&pion.ClientConfig{
		STUNServerAddr: server,
		TURNServerAddr: server,
		Conn:           conn,
		Username:       username,
		Password:       password,
		RTO:            100 * time.Millisecond,
		LoggerFactory:  newPionLogs(slog.New(slog.DiscardHandler)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	tc := &turnClient{Client: c, conn: conn, raw: raw}
	t.Cleanup(tc.close)
	return tc
}

func (c *turnClient) close() {
	c.Client.Close()
	c.conn.Close()
}

// roundTrip sends msg through relay to the echo peer and reads it back.
func roundTrip(t *testing.T, relay net.PacketConn, peer *net.UDPAddr, msg []byte) {
	t.Helper()
	if _, err := relay.WriteTo(msg, peer); err != nil {
		t.Fatalf("relay write: %v", err)
	}
	if err := relay.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	n, from, err := relay.ReadFrom(buf)
	if err != nil {
		t.Fatalf("relay read: %v", err)
	}
	if !bytes.Equal(buf[:n], msg) {
		t.Fatalf("relay read %q, want %q", buf[:n], msg)
	}
	if f, ok := from.(*net.UDPAddr); !ok || !f.IP.Equal(peer.IP) || f.Port != peer.Port {
		t.Fatalf("relay read from %v, want %v", from, peer)
	}
}

// turnCode returns the STUN error code of a failed TURN transaction, or 0.
func turnCode(err error) int {
	var te *stun.TurnError
	if errors.As(err, &te) {
		return int(te.ErrorCodeAttr.Code)
	}
	return 0
}

// waitFor polls cond every few milliseconds until it holds, failing the test
// after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}
