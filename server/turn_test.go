package server_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"chatd/internal/testtool"
)

// A user who logged in over REST fetches TURN credentials and relays media
// with coturn's turnutils_uclient through the node's TURN server over UDP,
// TCP and TLS; wrong credentials are refused; the counters show it.
func TestTURNWithRESTCredentials(t *testing.T) {
	uclient := testtool.Path(t, "turnutils_uclient", "install Debian's coturn package (apt-get install -y coturn)")
	s := startNode(t, "CHATD_TURN_ALLOW_LOOPBACK_PEERS=true", "CHATD_API_ADMIN_TOKEN=admin-token-0123456789")
	app := firstApp(t, s)
	api := newREST(t, s)
	api.session(float64(app.ID), app.AuthKey, app.AuthSecret, "", "")
	api.do(http.MethodPost, "/users.json", url.Values{"user[login]": {"caller"}, "user[password]": {"callerpass1"}}, 201)
	user := newREST(t, s)
	user.session(float64(app.ID), app.AuthKey, app.AuthSecret, "caller", "callerpass1")
	creds := user.do(http.MethodGet, "/turn/credentials.json", nil, 200)
	username, password := creds["username"].(string), creds["password"].(string)
	ports := map[string]string{}
	for _, u := range creds["uris"].([]any) {
		m := regexp.MustCompile(`^(turns?):[^:]+:(\d+)\?transport=(udp|tcp)$`).FindStringSubmatch(u.(string))
		if m == nil {
			t.Fatalf("uri %q", u)
		}
		key := m[3]
		if m[1] == "turns" {
			key = "tls"
		}
		ports[key] = m[2]
	}
	peer := echoPeer(t)
	run := func(transport, pw string) (string, error) {
		args := map[string][]string{"udp": nil, "tcp": {"-t"}, "tls": {"-t", "-S"}}[transport]
		args = append(args, "-u", username, "-w", pw, "-p", ports[transport], "-e", "127.0.0.1", "-r", peer,
			"-n", "10", "-l", "100", "-m", "1", "-c", "127.0.0.1")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, uclient, args...)
		cmd.WaitDelay = time.Second
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, transport := range []string{"udp", "tcp", "tls"} {
		out, err := run(transport, password)
		if err != nil || !strings.Contains(out, "Total lost packets 0 (") || !strings.Contains(out, "tot_send_msgs=10, tot_recv_msgs=10") {
			t.Errorf("turnutils_uclient over %s: %v\n%s", transport, err, out)
		}
		if out, err := run(transport, "d3Jvbmc="); err == nil || !strings.Contains(out, "error 400") {
			t.Errorf("a wrong password over %s was not refused: %v\n%s", transport, err, out)
		}
	}
	// The admin metrics show the allocations.
	req, _ := http.NewRequest(http.MethodGet, "https://"+s.APIAddr().String()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer admin-token-0123456789")
	resp, err := api.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		body.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if !regexp.MustCompile(`chatd_turn_allocations_total [1-9]`).MatchString(body.String()) ||
		!strings.Contains(body.String(), "chatd_xmpp_sessions ") {
		t.Errorf("metrics:\n%s", body.String())
	}
}

// echoPeer answers every UDP datagram with itself, as a media peer would.
func echoPeer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	return fmt.Sprint(pc.LocalAddr().(*net.UDPAddr).Port)
}
