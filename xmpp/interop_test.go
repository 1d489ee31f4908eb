package xmpp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"chatd/internal/testtool"
	"chatd/xmpp/stanza"
)

// slixmpp (Debian's python3-slixmpp) logs in with each mechanism over
// STARTTLS, uses the roster, subscribes, chats, pings and discovers.
func TestSlixmpp(t *testing.T) {
	python := testtool.Python(t, "slixmpp", "install Debian's python3-slixmpp (apt-get install -y python3-slixmpp)")
	e := startEnv(t, nil)
	host, port, _ := net.SplitHostPort(e.Server.TCPAddr().String())
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"} {
		t.Run(mech, func(t *testing.T) {
			name := strings.ToLower(strings.ReplaceAll(mech, "-", ""))
			a, b := e.NewUser("a"+name), e.NewUser("b"+name)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, python, "testdata/slixmpp_client.py", host, port, mech,
				a.JID, a.Password, b.JID, b.Password)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("slixmpp: %v\n%s\n%s", err, out, stderr.String())
			}
			var res struct {
				Bound        string `json:"bound_a"`
				Subscription string `json:"roster_subscription"`
				Message      struct{ Body, From string }
				Ping         bool     `json:"ping"`
				Features     []string `json:"features"`
				FailedAuth   int      `json:"failed_auth"`
			}
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("slixmpp printed %q: %v", out, err)
			}
			if !strings.HasPrefix(res.Bound, a.JID+"/") || res.FailedAuth != 0 {
				t.Errorf("login: %+v", res)
			}
			if res.Subscription != "both" {
				t.Errorf("roster subscription after approval: %q", res.Subscription)
			}
			if res.Message.Body != "hello from slixmpp" || res.Message.From != res.Bound {
				t.Errorf("message: %+v", res.Message)
			}
			if !res.Ping || !slices.Contains(res.Features, "urn:xmpp:ping") || !slices.Contains(res.Features, "jabber:iq:roster") {
				t.Errorf("ping %v, features %v", res.Ping, res.Features)
			}
		})
	}
}

// go-sendxmpp (Debian's go-sendxmpp) sends a message to a chatd user, and
// listens for one.
func TestGoSendxmpp(t *testing.T) {
	bin := testtool.Path(t, "go-sendxmpp", "install Debian's go-sendxmpp (apt-get install -y go-sendxmpp)")
	e := startEnv(t, nil)
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	server := e.Server.TCPAddr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Sending: bob is online with our client.
	b := e.Online(bob, "b")
	send := exec.CommandContext(ctx, bin, "-u", alice.JID, "-p", alice.Password, "-j", server, "-n", bob.JID)
	send.Stdin = strings.NewReader("hello from go-sendxmpp\n")
	if out, err := send.CombinedOutput(); err != nil {
		t.Fatalf("go-sendxmpp: %v\n%s", err, out)
	}
	got := b.Expect(func(el *stanza.Element) bool { return el.Name == "message" && el.ChildText("body", "") != "" })
	if strings.TrimSpace(got.ChildText("body", "")) != "hello from go-sendxmpp" || !strings.HasPrefix(got.Attr("from"), alice.JID+"/") {
		t.Errorf("bob got %s", got)
	}

	// Listening: go-sendxmpp -l prints what reaches alice. The sender's
	// session must be gone first: while it lingers (closing, but available)
	// a message to alice's bare JID goes to it, and without stream
	// management nothing can follow a message written to a client that left.
	waitFor(t, func() bool { return len(e.Server.Sessions(alice.Ref)) == 0 })
	listen := exec.CommandContext(ctx, bin, "-u", alice.JID, "-p", alice.Password, "-j", server, "-n", "-l")
	var out syncOutput
	listen.Stdout = &out
	listen.Stderr = &out
	if err := listen.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { listen.Process.Kill(); listen.Wait() }()
	waitFor(t, func() bool {
		for _, s := range e.Server.Sessions(alice.Ref) {
			if s.Available() {
				return true
			}
		}
		return false
	})
	b.Write(`<message to='` + alice.JID + `' type='chat'><body>hello listener</body></message>`)
	waitFor(t, func() bool { return strings.Contains(out.String(), "hello listener") })
	if line := out.String(); !strings.Contains(line, bob.JID+": hello listener") {
		t.Errorf("go-sendxmpp -l printed %q", line)
	}
}

// slixmpp as a mobile client: carbons, offline delivery with delay stamps, a
// block both ways, and a stream resumed after a TCP reset with messages in
// flight (each exactly once).
func TestSlixmppReliability(t *testing.T) {
	python := testtool.Python(t, "slixmpp", "install Debian's python3-slixmpp (apt-get install -y python3-slixmpp)")
	e := startEnv(t, nil)
	host, port, _ := net.SplitHostPort(e.Server.TCPAddr().String())
	a, b, c := e.NewUser("alice"), e.NewUser("bob"), e.NewUser("carol")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "testdata/slixmpp_reliability.py", host, port,
		a.JID, a.Password, b.JID, b.Password, c.JID, c.Password)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("slixmpp: %v\n%s\n%s", err, out, stderr.String())
	}
	var res struct {
		CarbonReceived string `json:"carbon_received"`
		CarbonSent     string `json:"carbon_sent"`
		Offline        []struct {
			Body    string
			Delayed bool
		}
		BlockedInbound  string   `json:"blocked_inbound"`
		BlockedOutbound string   `json:"blocked_outbound"`
		ResumedBodies   []string `json:"resumed_bodies"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("slixmpp printed %q: %v", out, err)
	}
	if res.CarbonReceived != "to one" || res.CarbonSent != "from one" {
		t.Errorf("carbons: %+v", res)
	}
	if len(res.Offline) != 3 {
		t.Fatalf("offline: %+v", res.Offline)
	}
	for i, m := range res.Offline {
		if m.Body != fmt.Sprintf("offline %d", i) || !m.Delayed {
			t.Errorf("offline message %d: %+v", i, m)
		}
	}
	if res.BlockedInbound != "service-unavailable" || res.BlockedOutbound != "service-unavailable" {
		t.Errorf("blocking: %+v", res)
	}
	want := []string{"sm 0", "sm 1", "sm 2", "sm 3", "sm 4", "sm 5", "sm 6", "sm 7", "sm 8", "sm 9"}
	if !slices.Equal(res.ResumedBodies, want) {
		t.Errorf("across the reset B1 got %q, want each of %q once, in order", res.ResumedBodies, want)
	}
}
