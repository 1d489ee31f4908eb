package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "chatd.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsAreValid(t *testing.T) {
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if cfg.API.Listen != ":8443" || cfg.Domain != "localhost" {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
	if got := cfg.SQLiteFile(); got != filepath.Join("data", "chatd.db") {
		t.Errorf("SQLiteFile = %q", got)
	}
}

func TestFileThenEnvironment(t *testing.T) {
	p := writeFile(t, "domain: chat.example.com\napi:\n  session_ttl: 30m\n  cors_origins: [https://a.example]\n")
	cfg, err := Load(p, []string{
		"CHATD_API_SESSION_TTL=45m",
		"CHATD_STORAGE_MONGODB_URI=mongodb://db.example:27017",
		"CHATD_API_CORS_ORIGINS=https://b.example, https://c.example",
		"CHATD_API_MAX_BODY_BYTES=4096",
		"CHATD_TURN_DENIED_PEERS=10.0.0.0/8, fc00::/7",
		"CHATD_XMPP_MAX_UNAUTHENTICATED_PER_ADDRESS=0",
		"CHATD_XMPP_MAX_SESSIONS_PER_USER=3",
		"CHATD_TURN_MAX_UNALLOCATED_PER_ADDRESS=7",
		"CHATD_TEST_MONGODB_URI=ignored by config",
		"PATH=/bin",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Domain != "chat.example.com" {
		t.Errorf("domain from file = %q", cfg.Domain)
	}
	if cfg.API.SessionTTL != "45m" {
		t.Errorf("environment did not override the file: session_ttl = %q", cfg.API.SessionTTL)
	}
	if cfg.Storage.MongoDBURI != "mongodb://db.example:27017" || cfg.API.MaxBodyBytes != 4096 {
		t.Errorf("environment not applied: %+v", cfg)
	}
	if got := strings.Join(cfg.API.CORSOrigins, "|"); got != "https://b.example|https://c.example" {
		t.Errorf("cors_origins = %q", got)
	}
	if ac := cfg.Account(); ac.SessionTTL.Minutes() != 45 {
		t.Errorf("account session TTL = %v", ac.SessionTTL)
	}
	if tc, err := cfg.TURNConfig("s"); err != nil || strings.Join(tc.DeniedPeers, "|") != "10.0.0.0/8|fc00::/7" ||
		tc.MaxUnallocatedPerAddress != 7 {
		t.Errorf("turn denied peers = %q, max unallocated per address %d (%v)", tc.DeniedPeers, tc.MaxUnallocatedPerAddress, err)
	}
	// 0 is "no bound" in the file; the xmpp package's no bound is -1 (its 0
	// takes the default).
	if got := cfg.XMPPConfig().MaxUnauthenticatedPerAddress; got != -1 {
		t.Errorf("xmpp max unauthenticated per address 0 became %d, want -1 (no bound)", got)
	}
	if got := cfg.XMPPConfig().MaxSessionsPerUser; got != 3 {
		t.Errorf("xmpp max sessions per user = %d, want 3", got)
	}
	if def := Default(); def.XMPPConfig().MaxUnauthenticatedPerAddress != 100 {
		t.Errorf("default max unauthenticated per address = %d, want 100", def.XMPPConfig().MaxUnauthenticatedPerAddress)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name, file string
		env        []string
		want       []string
	}{
		{"unknown file key", "api:\n  listen_addr: ':1'\n", nil, []string{"listen_addr"}},
		{"unknown section", "storage:\n  postgres: x\n", nil, []string{"postgres"}},
		{"unknown env", "", []string{"CHATD_API_LISTENN=:1"}, []string{"CHATD_API_LISTENN"}},
		{"bad duration", "api:\n  session_ttl: forever\n", nil, []string{"api.session_ttl"}},
		{"bad env int", "", []string{"CHATD_API_MAX_BODY_BYTES=lots"}, []string{"api.max_body_bytes", "CHATD_API_MAX_BODY_BYTES"}},
		{"bad enum", "log:\n  level: loud\n", nil, []string{"log.level", "loud"}},
		{"bad uri", "", []string{"CHATD_STORAGE_MONGODB_URI=postgres://x"}, []string{"storage.mongodb_uri"}},
		{"short repair grace", "", []string{"CHATD_STORAGE_MONGODB_URI=mongodb://db", "CHATD_STORAGE_MONGODB_REPAIR_GRACE=30s"},
			[]string{"storage.mongodb_repair_grace", "at least 1m"}},
		{"bad domain", "domain: 'a@b'\n", nil, []string{"domain"}},
		{"profiler not on loopback", "", []string{"CHATD_LOG_PPROF_LISTEN=0.0.0.0:6060"}, []string{"log.pprof_listen", "loopback"}},
		{"bad denied peer", "", []string{"CHATD_TURN_DENIED_PEERS=10.0.0.0/8,10.1"}, []string{"turn", `"10.1"`}},
		{"negative per-address bound", "", []string{"CHATD_XMPP_MAX_UNAUTHENTICATED_PER_ADDRESS=-1"}, []string{"xmpp.max_unauthenticated_per_address"}},
		{"half tls", "tls:\n  cert_file: /x.pem\n", nil, []string{"tls.cert_file"}},
		{"muc history", "muc:\n  history_default: 200\n", nil, []string{"muc.history_default", "muc.history_max"}},
		{"several at once", "api:\n  session_ttl: x\n  signature_window: y\n", nil, []string{"api.session_ttl", "api.signature_window"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = writeFile(t, tc.file)
			}
			_, err := Load(path, tc.env)
			if err == nil {
				t.Fatal("Load accepted an invalid configuration")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// TestExampleDocumentsEveryKey keeps chatd.example.yaml complete: it must load,
// and every key must appear in it with its environment twin named.
func TestExampleDocumentsEveryKey(t *testing.T) {
	const example = "../chatd.example.yaml"
	if _, err := Load(example, nil); err != nil {
		t.Fatalf("the example does not load: %v", err)
	}
	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, key := range Keys() {
		leaf := key[strings.LastIndex(key, ".")+1:]
		if !strings.Contains(text, leaf+":") {
			t.Errorf("chatd.example.yaml does not set %s", key)
		}
		if !strings.Contains(text, EnvName(key)) {
			t.Errorf("chatd.example.yaml does not name %s for %s", EnvName(key), key)
		}
	}
}
