package turn

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	pion "github.com/pion/turn/v4"
)

const testSecret = "test-secret-not-for-production"

func testIssuer(t *testing.T, cfg Config) *Issuer {
	t.Helper()
	i, err := NewIssuer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func TestIssue(t *testing.T) {
	i := testIssuer(t, Config{Secret: testSecret, PublicHost: "turn.example.com", CredentialTTL: time.Hour})
	now := time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)
	c := i.Issue(1234, now)
	if want := strconv.FormatInt(now.Add(time.Hour).Unix(), 10) + ":1234"; c.Username != want {
		t.Errorf("Username %q, want %q", c.Username, want)
	}
	if c.TTL != time.Hour || !c.Expires.Equal(time.Date(2030, 1, 2, 4, 4, 5, 0, time.UTC)) {
		t.Errorf("TTL %v Expires %v, want 1h and 04:04:05", c.TTL, c.Expires)
	}
	want := []string{
		"turn:turn.example.com:3478?transport=udp",
		"turn:turn.example.com:3478?transport=tcp",
		"turns:turn.example.com:5349?transport=tcp",
	}
	if !slices.Equal(c.URIs, want) {
		t.Errorf("URIs %q, want %q", c.URIs, want)
	}
	if id, err := i.Check(c.Username, c.Password, now); err != nil || id != 1234 {
		t.Errorf("Check of fresh credentials: %d, %v", id, err)
	}
	if id, err := i.Check(c.Username, c.Password, c.Expires.Add(-time.Second)); err != nil || id != 1234 {
		t.Errorf("Check a second before expiry: %d, %v", id, err)
	}
	if _, err := i.Check(c.Username, c.Password, c.Expires); !errors.Is(err, ErrExpired) {
		t.Errorf("Check at expiry: %v, want ErrExpired", err)
	}
}

// TestPionCompatible checks the password against pion's own generator of
// TURN REST credentials with the same secret.
func TestPionCompatible(t *testing.T) {
	i := testIssuer(t, Config{Secret: testSecret})
	username, password, err := pion.GenerateLongTermTURNRESTCredentials(testSecret, "77", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := i.password(username); got != password {
		t.Errorf("password(%q) = %q, pion says %q", username, got, password)
	}
	if id, err := i.Check(username, password, time.Now()); err != nil || id != 77 {
		t.Errorf("Check of pion's credentials: %d, %v", id, err)
	}
}

func TestCheckRefuses(t *testing.T) {
	i := testIssuer(t, Config{Secret: testSecret})
	now := time.Now()
	good := i.Issue(5, now)
	exp := strings.Split(good.Username, ":")[0]
	other := testIssuer(t, Config{Secret: "other"}).Issue(5, now)
	for _, tc := range []struct {
		name, username, password string
		want                     error
	}{
		{"wrong password", good.Username, "AAAA", ErrBadPassword},
		{"empty password", good.Username, "", ErrBadPassword},
		{"other secret", other.Username, other.Password, ErrBadPassword},
		{"user changed", exp + ":6", good.Password, ErrBadPassword},
		{"expiry changed", "9" + good.Username, good.Password, ErrBadPassword},
		{"expired", i.Issue(5, now.Add(-25*time.Hour)).Username, i.Issue(5, now.Add(-25*time.Hour)).Password, ErrExpired},
		{"no user", exp, good.Password, ErrMalformedUsername},
		{"empty user", exp + ":", good.Password, ErrMalformedUsername},
		{"user zero", exp + ":0", good.Password, ErrMalformedUsername},
		{"user negative", exp + ":-5", good.Password, ErrMalformedUsername},
		{"user not a number", exp + ":alice", good.Password, ErrMalformedUsername},
		{"extra part", good.Username + ":x", good.Password, ErrMalformedUsername},
		{"signed expiry", "+" + good.Username, good.Password, ErrMalformedUsername},
		{"huge expiry", "99999999999999999999:5", good.Password, ErrMalformedUsername},
		{"empty", "", "", ErrMalformedUsername},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if id, err := i.Check(tc.username, tc.password, now); !errors.Is(err, tc.want) {
				t.Errorf("Check(%q) = %d, %v; want %v", tc.username, id, err, tc.want)
			}
		})
	}
}

func TestGenerateSecret(t *testing.T) {
	a, b := GenerateSecret(), GenerateSecret()
	if len(a) != 43 || a == b {
		t.Errorf("GenerateSecret gave %q and %q", a, b)
	}
}

func TestIssuerListeners(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"public ports", Config{PublicUDPPort: 3479, PublicTCPPort: 80, PublicTLSPort: 443},
			[]string{"turn:h:3479?transport=udp", "turn:h:80?transport=tcp", "turns:h:443?transport=tcp"}},
		{"only TLS", Config{UDPAddr: Off, TCPAddr: Off, TLSAddr: ":443"},
			[]string{"turns:h:443?transport=tcp"}},
		{"port 0 left out", Config{UDPAddr: "127.0.0.1:0"},
			[]string{"turn:h:3478?transport=tcp", "turns:h:5349?transport=tcp"}},
		{"IPv6 host", Config{PublicHost: "2001:db8::1", UDPAddr: Off, TCPAddr: Off},
			[]string{"turns:[2001:db8::1]:5349?transport=tcp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Secret = "s"
			if tc.cfg.PublicHost == "" {
				tc.cfg.PublicHost = "h"
			}
			if got := testIssuer(t, tc.cfg).Issue(1, time.Now()).URIs; !slices.Equal(got, tc.want) {
				t.Errorf("URIs %q, want %q", got, tc.want)
			}
		})
	}
}
