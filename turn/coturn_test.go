package turn

import (
	"chatd/internal/testtool"
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// These tests run coturn's test client, turnutils_uclient (Debian package
// coturn), against the server: an independent TURN implementation
// allocating over UDP, TCP and TLS and relaying to a UDP echo peer.

const (
	uclientMessages = 10  // -n: messages per client
	uclientLength   = 100 // -l: bytes per message
	uclientTimeout  = time.Minute
)

// uclientPath returns the path of turnutils_uclient (see testtool).
func uclientPath(t *testing.T) string {
	t.Helper()
	return testtool.Path(t, "turnutils_uclient", "install Debian's coturn package (apt-get install -y coturn) to run the coturn tests")
}

// runUclient runs turnutils_uclient against s over transport with the given
// credentials, relaying to peerPort on 127.0.0.1, and returns its output and
// exit error.
func runUclient(t *testing.T, s *Server, transport, username, password string, peerPort int) (string, error) {
	t.Helper()
	a := s.Addrs()
	var args []string
	var port int
	switch transport {
	case "udp":
		port = a.UDP.Port
	case "tcp":
		args, port = []string{"-t"}, a.TCP.Port
	case "tls":
		args, port = []string{"-t", "-S"}, a.TLS.Port // no -E: the test certificate is not verified
	}
	args = append(args,
		"-u", username, "-w", password,
		"-p", strconv.Itoa(port),
		"-e", "127.0.0.1", "-r", strconv.Itoa(peerPort),
		"-n", strconv.Itoa(uclientMessages), "-l", strconv.Itoa(uclientLength),
		"-m", "1", // one client
		"-c", // no RTCP allocation (it would relay to peerPort+1, where nothing echoes)
		"127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), uclientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, uclientPath(t), args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("turnutils_uclient over %s did not finish within %v:\n%s", transport, uclientTimeout, out)
	}
	return string(out), err
}

var (
	uclientLost   = regexp.MustCompile(`Total lost packets (\d+) \(`)
	uclientTotals = regexp.MustCompile(`tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$`)
)

// uclientResult parses the final totals of turnutils_uclient's output.
func uclientResult(out string) (sent, received, lost int, ok bool) {
	var haveLost, haveTotals bool
	for line := range strings.Lines(out) {
		if m := uclientLost.FindStringSubmatch(line); m != nil {
			lost, _ = strconv.Atoi(m[1])
			haveLost = true
		}
		if m := uclientTotals.FindStringSubmatch(line); m != nil {
			sent, _ = strconv.Atoi(m[1])
			received, _ = strconv.Atoi(m[2])
			haveTotals = true
		}
	}
	return sent, received, lost, haveLost && haveTotals
}

func TestCoturnClient(t *testing.T) {
	uclientPath(t)
	for _, transport := range []string{"udp", "tcp", "tls"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			s, book := startServer(t, testConfig(), true)
			peer := startEchoPeer(t)
			cred := s.Issue(21, time.Now())

			out, err := runUclient(t, s, transport, cred.Username, cred.Password, peer.Port)
			if err != nil {
				t.Fatalf("turnutils_uclient over %s: %v\n%s", transport, err, out)
			}
			sent, received, lost, ok := uclientResult(out)
			if !ok {
				t.Fatalf("no totals in turnutils_uclient's output:\n%s", out)
			}
			if lost != 0 || sent != uclientMessages || received != uclientMessages {
				t.Fatalf("turnutils_uclient over %s: sent %d, received %d, lost %d; want %d, %d, 0\n%s",
					transport, sent, received, lost, uclientMessages, uclientMessages, out)
			}
			// The messages went through this server's relays.
			st := s.Stats()
			if want := uint64(uclientMessages * uclientLength); st.BytesToPeers < want || st.BytesFromPeers < want {
				t.Errorf("Stats %+v, want at least %d bytes relayed each way", st, want)
			}
			if n := book.count("turn allocation created", "user=21", "transport="+transport); n == 0 {
				t.Errorf("no allocation over %s in the log", transport)
			}
		})
	}
}

func TestCoturnClientRefused(t *testing.T) {
	uclientPath(t)
	s, _ := startServer(t, testConfig(), true)
	peer := startEchoPeer(t)
	now := time.Now()
	good := s.Issue(22, now)
	expired := s.Issue(22, now.Add(-DefaultCredentialTTL-time.Minute))
	for _, transport := range []string{"udp", "tcp", "tls"} {
		for _, tc := range []struct{ name, username, password string }{
			{"wrong password", good.Username, "d3Jvbmc="},
			{"expired", expired.Username, expired.Password},
		} {
			t.Run(transport+"/"+tc.name, func(t *testing.T) {
				out, err := runUclient(t, s, transport, tc.username, tc.password, peer.Port)
				if err == nil {
					t.Fatalf("turnutils_uclient succeeded:\n%s", out)
				}
				if !strings.Contains(out, "error 400") {
					t.Errorf("turnutils_uclient output lacks the 400 refusal:\n%s", out)
				}
			})
		}
	}
	if st := s.Stats(); st.AllocationsTotal != 0 || st.AuthFailures < 6 {
		t.Errorf("Stats %+v, want no allocation and at least 6 refusals", st)
	}
}
