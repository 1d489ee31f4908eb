package turn

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWithDefaults(t *testing.T) {
	c := Config{RelayBind: "192.0.2.7"}.WithDefaults()
	want := Config{
		Realm: "chatd", UDPAddr: ":3478", TCPAddr: ":3478", TLSAddr: ":5349",
		RelayAddress: "192.0.2.7", RelayBind: "192.0.2.7", MinPort: 49152, MaxPort: 65535,
		CredentialTTL: 24 * time.Hour, MaxAllocationsPerUser: 10, AllocationLifetime: 12 * time.Hour,
		PublicHost: "192.0.2.7", IdleTimeout: 65 * time.Minute,
	}
	if c.Realm != want.Realm || c.UDPAddr != want.UDPAddr || c.TCPAddr != want.TCPAddr ||
		c.TLSAddr != want.TLSAddr || c.RelayAddress != want.RelayAddress || c.MinPort != want.MinPort ||
		c.MaxPort != want.MaxPort || c.CredentialTTL != want.CredentialTTL ||
		c.MaxAllocationsPerUser != want.MaxAllocationsPerUser ||
		c.AllocationLifetime != want.AllocationLifetime || c.PublicHost != want.PublicHost ||
		c.IdleTimeout != want.IdleTimeout {
		t.Errorf("WithDefaults = %+v, want %+v", c, want)
	}
	// With no specific bind address, some IPv4 address is advertised.
	if a := (Config{}).WithDefaults().RelayAddress; a == "" || a == "0.0.0.0" {
		t.Errorf("default RelayAddress %q", a)
	}
	if err := (Config{Secret: "s"}).Validate(); err != nil {
		t.Errorf("Validate of defaults: %v", err)
	}
}

func TestValidate(t *testing.T) {
	bad := Config{
		UDPAddr: "nope", TCPAddr: "127.0.0.1:99999", TLSAddr: Off,
		RelayAddress: "::1", RelayBind: "example.com",
		MinPort: 60000, MaxPort: 50000,
		CredentialTTL: time.Millisecond, MaxAllocationsPerUser: -2, AllocationLifetime: -time.Second,
		IdleTimeout:   -time.Second,
		PublicTLSPort: 70000, DeniedPeers: []string{"10.0.0.0/8", "10.0.0.1"},
	}
	err := bad.Validate()
	if !errors.Is(err, ErrNoSecret) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate: %v, want ErrNoSecret and ErrInvalidConfig", err)
	}
	for _, field := range []string{"UDPAddr", "TCPAddr", "RelayAddress", "RelayBind", "MinPort (60000) is higher than MaxPort (50000)",
		"CredentialTTL", "MaxAllocationsPerUser", "AllocationLifetime", "IdleTimeout", "PublicTLSPort", `"10.0.0.1"`} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("Validate does not name %s: %v", field, err)
		}
	}
	if strings.Contains(err.Error(), "10.0.0.0/8") {
		t.Errorf("Validate refuses a good prefix: %v", err)
	}
	allOff := Config{Secret: "s", UDPAddr: Off, TCPAddr: Off, TLSAddr: Off}
	if err := allOff.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Validate with every listener off: %v", err)
	}
}
