package turn

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRelay allocates with issued credentials over each client transport and
// relays a packet to a peer and back.
func TestRelay(t *testing.T) {
	for _, transport := range []string{"udp", "tcp", "tls"} {
		t.Run(transport, func(t *testing.T) {
			s, book := startServer(t, testConfig(), true)
			peer := startEchoPeer(t)
			cred := s.Issue(42, time.Now())

			c := dialClient(t, s, transport, cred.Username, cred.Password)
			relay, err := c.Allocate()
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			if got := relay.LocalAddr().(*net.UDPAddr); !got.IP.Equal(net.IPv4(127, 0, 0, 1)) {
				t.Errorf("relayed address %v, want RelayAddress 127.0.0.1", got)
			}
			for i := range 3 {
				roundTrip(t, relay, peer, []byte(fmt.Sprintf("packet %d over %s", i, transport)))
			}

			st := s.Stats()
			if st.AllocationsActive != 1 || st.AllocationsTotal != 1 {
				t.Errorf("Stats allocations active %d total %d, want 1 and 1", st.AllocationsActive, st.AllocationsTotal)
			}
			// The relay counts a packet just after sending it, so the echo
			// can come back first.
			waitFor(t, 5*time.Second, "3 packets each way in Stats", func() bool {
				st := s.Stats()
				return st.PacketsToPeers == 3 && st.PacketsFromPeers == 3 &&
					st.BytesToPeers == uint64(3*len("packet 0 over udp")) && st.BytesFromPeers == st.BytesToPeers
			})
			if n := book.count("turn allocation created", "user=42", "transport="+transport); n != 1 {
				t.Errorf("%d creation lines for user 42 over %s, want 1", n, transport)
			}

			if err := relay.Close(); err != nil { // a Refresh with lifetime 0
				t.Fatalf("relay Close: %v", err)
			}
			waitFor(t, 5*time.Second, "the allocation's deletion line", func() bool {
				return book.count("turn allocation deleted", "user=42", "transport="+transport, "bytes_to_peers=51") == 1
			})
			if st := s.Stats(); st.AllocationsActive != 0 {
				t.Errorf("%d allocations active after deletion", st.AllocationsActive)
			}
			if strings.Contains(book.String(), cred.Password) {
				t.Error("the password reached the log")
			}
		})
	}
}

// TestRefused checks that expired, forged and malformed credentials get no
// allocation, over UDP and TCP.
func TestRefused(t *testing.T) {
	s, _ := startServer(t, testConfig(), false)
	now := time.Now()
	good := s.Issue(7, now)
	expired := s.Issue(7, now.Add(-DefaultCredentialTTL-time.Minute))
	otherIssuer, err := NewIssuer(Config{Secret: "another secret"})
	if err != nil {
		t.Fatal(err)
	}
	forged := otherIssuer.Issue(7, now)
	cases := []struct {
		name, username, password string
	}{
		{"expired", expired.Username, expired.Password},
		{"wrong password", good.Username, "d3Jvbmc="},
		{"other secret", forged.Username, forged.Password},
		{"username changed", strings.Replace(good.Username, ":7", ":8", 1), good.Password},
		{"no expiry", "7", good.Password},
	}
	for _, transport := range []string{"udp", "tcp"} {
		for _, tc := range cases {
			t.Run(transport+"/"+tc.name, func(t *testing.T) {
				before := s.Stats().AuthFailures
				c := dialClient(t, s, transport, tc.username, tc.password)
				_, err := c.Allocate()
				if err == nil {
					t.Fatal("Allocate succeeded")
				}
				if code := turnCode(err); code != 400 {
					t.Errorf("Allocate failed with %v (code %d), want 400 Bad Request", err, code)
				}
				if got := s.Stats().AuthFailures; got <= before {
					t.Errorf("AuthFailures %d, want more than %d", got, before)
				}
			})
		}
	}
	if st := s.Stats(); st.AllocationsTotal != 0 {
		t.Errorf("%d allocations made with bad credentials", st.AllocationsTotal)
	}
}

// TestQuota fills one user's quota from several client sockets and
// transports, and checks the next allocation is refused with 486 while other
// users and freed places still work.
func TestQuota(t *testing.T) {
	cfg := testConfig()
	cfg.MaxAllocationsPerUser = 2
	s, book := startServer(t, cfg, true)
	now := time.Now()
	// Two different credentials for user 5: the quota is per user id.
	c1, c2 := s.Issue(5, now), s.Issue(5, now.Add(time.Minute))

	r1, err := dialClient(t, s, "udp", c1.Username, c1.Password).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialClient(t, s, "tcp", c2.Username, c2.Password).Allocate(); err != nil {
		t.Fatal(err)
	}
	_, err = dialClient(t, s, "tls", c1.Username, c1.Password).Allocate()
	if code := turnCode(err); code != 486 {
		t.Fatalf("third allocation for user 5: %v (code %d), want 486 Allocation Quota Reached", err, code)
	}
	if _, err := dialClient(t, s, "udp", c1.Username, c1.Password).Allocate(); turnCode(err) != 486 {
		t.Fatalf("fourth allocation for user 5: %v, want 486", err)
	}
	other := s.Issue(6, now)
	if _, err := dialClient(t, s, "udp", other.Username, other.Password).Allocate(); err != nil {
		t.Fatalf("user 6 refused: %v", err)
	}
	if st := s.Stats(); st.AllocationsQuotaRefused != 2 || st.AllocationsActive != 3 {
		t.Errorf("Stats %+v, want 2 refused and 3 active", st)
	}
	if n := book.count("turn allocation refused", "user=5", "max=2"); n != 2 {
		t.Errorf("%d refusal lines, want 2", n)
	}

	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "user 5's first allocation to go", func() bool {
		return s.Stats().AllocationsActive == 2
	})
	if _, err := dialClient(t, s, "udp", c1.Username, c1.Password).Allocate(); err != nil {
		t.Fatalf("allocation after one was freed: %v", err)
	}
}

// TestQuotaFailedAllocation checks that an allocation refused after the
// quota check (no relay port free) does not use up a place.
func TestQuotaFailedAllocation(t *testing.T) {
	blocker, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := blocker.LocalAddr().(*net.UDPAddr).Port
	cfg := testConfig()
	cfg.MaxAllocationsPerUser = 1
	cfg.MinPort, cfg.MaxPort = port, port
	s, _ := startServer(t, cfg, false)
	cred := s.Issue(9, time.Now())

	_, err = dialClient(t, s, "udp", cred.Username, cred.Password).Allocate()
	if code := turnCode(err); code != 508 {
		t.Fatalf("Allocate with the only relay port taken: %v (code %d), want 508 Insufficient Capacity", err, code)
	}
	// pion answers before it reports the failure that releases the place.
	waitFor(t, 5*time.Second, "user 9's reservation to be released", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.perUser[9] == 0 && len(s.reserved) == 0
	})
	blocker.Close()
	if _, err := dialClient(t, s, "tcp", cred.Username, cred.Password).Allocate(); err != nil {
		t.Fatalf("Allocate once the port is free: %v", err)
	}
}

// TestAllocationLifetime checks that an allocation ends when
// AllocationLifetime passes, refreshes or not.
func TestAllocationLifetime(t *testing.T) {
	cfg := testConfig()
	cfg.AllocationLifetime = 200 * time.Millisecond
	s, book := startServer(t, cfg, false)
	cred := s.Issue(3, time.Now())
	if _, err := dialClient(t, s, "udp", cred.Username, cred.Password).Allocate(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the allocation to reach its lifetime", func() bool {
		return book.count("turn allocation deleted", "user=3", "reason=lifetime") == 1
	})
	if st := s.Stats(); st.AllocationsActive != 0 || st.AllocationsLifetimeEnded != 1 {
		t.Errorf("Stats %+v, want no allocation and one ended by its lifetime", st)
	}
}

// TestPermission checks that loopback, link-local (a cloud's metadata
// service), "this network", broadcast and denied peers are refused.
func TestPermission(t *testing.T) {
	cfg := testConfig()
	cfg.AllowLoopbackPeers = false
	cfg.DeniedPeers = []string{"192.0.2.0/24"}
	s, _ := startServer(t, cfg, false)
	peer := startEchoPeer(t)
	cred := s.Issue(4, time.Now())
	relay, err := dialClient(t, s, "udp", cred.Username, cred.Password).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	refused := []*net.UDPAddr{peer, {IP: net.IPv4(192, 0, 2, 1), Port: 9}, {IP: net.IPv4(169, 254, 169, 254), Port: 80},
		{IP: net.IPv4(0, 1, 2, 3), Port: 9}, {IP: net.IPv4bcast, Port: 9}}
	for _, to := range refused {
		if _, err := relay.WriteTo([]byte("no"), to); err == nil {
			t.Errorf("relay to %v allowed", to)
		}
	}
	if st := s.Stats(); st.PermissionsRefused < uint64(len(refused)) || st.PacketsToPeers != 0 {
		t.Errorf("Stats %+v, want %d permissions refused and nothing relayed", st, len(refused))
	}
}

// TestClose checks that Close releases every socket and goroutine while
// clients still hold allocations over every transport, and that it can be
// called again.
func TestClose(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		s, err := New(testConfig(), selfSigned(t), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		addrs := s.Addrs()
		var clients []*turnClient
		var relays []int
		var relayConns []net.PacketConn
		for i, transport := range []string{"udp", "tcp", "tls", "tcp"} {
			cred := s.Issue(int64(i+1), time.Now())
			c := dialClient(t, s, transport, cred.Username, cred.Password)
			clients = append(clients, c)
			if i == 3 {
				break // a connection with no allocation
			}
			r, err := c.Allocate()
			if err != nil {
				t.Fatal(err)
			}
			relays = append(relays, r.LocalAddr().(*net.UDPAddr).Port)
			relayConns = append(relayConns, r)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		waitFor(t, time.Second, "the server's goroutines to end", func() bool { return serverGoroutines() == 0 })
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if st := s.Stats(); st.AllocationsActive != 0 {
			t.Errorf("%d allocations after Close", st.AllocationsActive)
		}
		// The server closed its end of every client connection.
		for _, c := range clients[1:] {
			c.raw.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.raw.Read(make([]byte, 64)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("client connection read: %v, want end of stream", err)
			}
		}
		// Every port is free again.
		rebind(t, "udp", addrs.UDP.String())
		rebind(t, "tcp", addrs.TCP.String())
		rebind(t, "tcp", addrs.TLS.String())
		for _, p := range relays {
			rebind(t, "udp", "127.0.0.1:"+strconv.Itoa(p))
		}
		// The clients' own goroutines end with their allocations.
		for _, r := range relayConns {
			r.Close()
		}
		for _, c := range clients {
			c.close()
		}
	}()
	waitFor(t, 5*time.Second, fmt.Sprintf("the goroutine count to return to %d", base), func() bool {
		if runtime.NumGoroutine() <= base {
			return true
		}
		if testing.Verbose() {
			buf := make([]byte, 1<<20)
			t.Logf("goroutines:\n%s", buf[:runtime.Stack(buf, true)])
		}
		return false
	})
}

func rebind(t *testing.T, network, addr string) {
	t.Helper()
	var c io.Closer
	var err error
	if network == "udp" {
		c, err = net.ListenPacket("udp4", addr)
	} else {
		c, err = net.Listen("tcp4", addr)
	}
	if err != nil {
		t.Errorf("%s %s still in use after Close: %v", network, addr, err)
		return
	}
	c.Close()
}

func TestNewErrors(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if _, err := New(Config{Secret: "x"}, nil, log); !errors.Is(err, ErrDisabled) {
		t.Errorf("New with Enabled false: %v, want ErrDisabled", err)
	}
	cfg := testConfig()
	cfg.Secret = ""
	if _, err := New(cfg, nil, log); !errors.Is(err, ErrNoSecret) {
		t.Errorf("New without a secret: %v, want ErrNoSecret", err)
	}
	// A port already taken: New fails and leaves nothing open.
	s, _ := startServer(t, testConfig(), false)
	cfg = testConfig()
	cfg.UDPAddr = "127.0.0.1:0"
	cfg.TCPAddr = s.Addrs().TCP.String()
	if _, err := New(cfg, nil, log); err == nil {
		t.Error("New on a TCP port in use succeeded")
	}
}

// TestListenersOff runs only a TLS listener and checks the issued URIs.
func TestListenersOff(t *testing.T) {
	cfg := testConfig()
	cfg.UDPAddr, cfg.TCPAddr = Off, Off
	cfg.PublicHost = "turn.example.com"
	s, _ := startServer(t, cfg, true)
	a := s.Addrs()
	if a.UDP != nil || a.TCP != nil || a.TLS == nil {
		t.Fatalf("Addrs %+v, want only TLS", a)
	}
	want := fmt.Sprintf("turns:turn.example.com:%d?transport=tcp", a.TLS.Port)
	if got := s.Issue(1, time.Now()).URIs; len(got) != 1 || got[0] != want {
		t.Errorf("URIs %q, want [%q]", got, want)
	}
}

// serverGoroutines counts the goroutines running pion's server or this
// package's server code.
func serverGoroutines() int {
	buf := make([]byte, 1<<20)
	n := 0
	for g := range strings.SplitSeq(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		for _, frame := range []string{"pion/turn/v4.(*Server)", "pion/turn/v4.NewServer",
			"pion/turn/v4/internal/allocation.", "pion/turn/v4/internal/server.", "chatd/turn.(*"} {
			if strings.Contains(g, frame) {
				n++
				break
			}
		}
	}
	return n
}

// TestIdleTimeout checks that a TCP or TLS client connection that sends
// nothing is closed after IdleTimeout, its allocation with it.
func TestIdleTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.IdleTimeout = 300 * time.Millisecond
	s, _ := startServer(t, cfg, true)
	silent, err := net.Dial("tcp", s.Addrs().TLS.String()) // not even a TLS handshake
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	cred := s.Issue(12, time.Now())
	c := dialClient(t, s, "tcp", cred.Username, cred.Password)
	if _, err := c.Allocate(); err != nil {
		t.Fatal(err)
	}
	for _, conn := range []net.Conn{silent, c.raw} {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(conn); err != nil {
			t.Errorf("idle connection: %v, want it closed by the server", err)
		}
	}
	waitFor(t, 5*time.Second, "the allocation and connections to go", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.allocs) == 0 && len(s.conns) == 0
	})
}

// TestConnectTimeout checks that a TCP or TLS connection that makes no
// allocation is closed ConnectTimeout after it was accepted, while one that
// did keeps relaying past it.
func TestConnectTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.ConnectTimeout = 300 * time.Millisecond
	s, _ := startServer(t, cfg, true)
	peer := startEchoPeer(t)
	cred := s.Issue(9, time.Now())
	c := dialClient(t, s, "tcp", cred.Username, cred.Password)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{s.Addrs().TCP.String(), s.Addrs().TLS.String()} {
		silent, err := net.Dial("tcp", addr) // sends nothing, not even a TLS hello
		if err != nil {
			t.Fatal(err)
		}
		silent.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := silent.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("a connection to %s that sent nothing: read gave %v, want the server's close (EOF)", addr, err)
		}
		silent.Close()
	}
	// The silent connections were closed, so ConnectTimeout has passed for
	// the one that allocated, which still relays.
	roundTrip(t, relay, peer, []byte("still here"))
}

// An address holding MaxUnallocatedPerAddress TCP or TLS connections
// without an allocation has the next ones closed at once; an allocation or a
// close gives the place back, and allocations keep relaying.
func TestUnallocatedPerAddress(t *testing.T) {
	cfg := testConfig()
	cfg.MaxUnallocatedPerAddress = 2
	s, _ := startServer(t, cfg, true)
	peer := startEchoPeer(t)
	cred := s.Issue(9, time.Now())
	c := dialClient(t, s, "tcp", cred.Username, cred.Password)
	relay, err := c.Allocate() // counted until this allocation, then not
	if err != nil {
		t.Fatal(err)
	}
	// held reports whether a new silent connection is kept open (true) or
	// closed by the server (false).
	held := func(addr string) (net.Conn, bool) {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		// Long enough for the accept loop to have closed it, on a busy machine.
		conn.SetReadDeadline(time.Now().Add(time.Second))
		_, err = conn.Read(make([]byte, 1))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return conn, true
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("read: %v", err)
		}
		return conn, false
	}
	first, ok1 := held(s.Addrs().TCP.String())
	_, ok2 := held(s.Addrs().TLS.String())
	if !ok1 || !ok2 {
		t.Fatal("the address's first two connections without an allocation were closed")
	}
	for _, addr := range []string{s.Addrs().TCP.String(), s.Addrs().TLS.String()} {
		if _, ok := held(addr); ok {
			t.Errorf("a third connection without an allocation to %s was kept", addr)
		}
	}
	if got := s.Stats().ConnectionsRefused; got != 2 {
		t.Errorf("connections_refused_total = %d, want 2", got)
	}
	roundTrip(t, relay, peer, []byte("still relaying"))
	first.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := held(s.Addrs().TCP.String()); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed connection kept its place")
		}
	}
}
