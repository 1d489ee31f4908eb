// Package config reads chatd's configuration: one YAML file (optional) and
// CHATD_* environment variables over it.
//
// Every key has an environment twin by one rule: CHATD_ followed by the key's
// path upper-cased, with "_" for "." (storage.mongodb_uri is
// CHATD_STORAGE_MONGODB_URI). Lists are comma-separated in the environment.
// Defaults live in Default, checks in Validate; an unknown key (in the file or
// as a CHATD_ variable) or an invalid value stops the start with a message
// naming the key. Variables starting with CHATD_TEST_ belong to the test
// suites and are ignored here.
//
// The file's shape is this package's own; the parts' Config structs are built
// from it by the methods in parts.go, so no part imports config.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration. Durations are strings in Go's syntax
// ("30s", "2h"); sizes are numbers of bytes.
type Config struct {
	// Domain is the XMPP domain: users are <user_id>-<app_id>@Domain and
	// rooms live on muc.Domain. QuickBlox clients set it as endpoints.chat.
	Domain string `yaml:"domain"`
	// DataDir holds the SQLite database and the generated TLS certificate.
	DataDir string  `yaml:"data_dir"`
	Log     Log     `yaml:"log"`
	Storage Storage `yaml:"storage"`
	TLS     TLS     `yaml:"tls"`
	API     API     `yaml:"api"`
	XMPP    XMPP    `yaml:"xmpp"`
	Chat    Chat    `yaml:"chat"`
	MUC     MUC     `yaml:"muc"`
	TURN    TURN    `yaml:"turn"`
	Runtime Runtime `yaml:"runtime"`
}

// Runtime tunes Go's garbage collector for a server whose memory is mostly
// its connections' long-lived state (see internal/gcpolicy).
type Runtime struct {
	// GCPercent is how far, in percent of the live heap, the heap may grow
	// before the next collection once the live heap is large (Go's GOGC,
	// which is 100 by default). Lower holds less memory per connection and
	// collects more often.
	GCPercent int `yaml:"gc_percent"`
	// GCHeadroomMB is the least the heap may grow, in MiB, however small the
	// live heap: a small server under message load does not collect
	// constantly.
	GCHeadroomMB int `yaml:"gc_headroom_mb"`
}

// XMPP configures the client-to-server listeners and sessions.
type XMPP struct {
	// Listen is the TCP address (STARTTLS); empty disables it.
	Listen string `yaml:"listen"`
	// TLSListen is the direct TLS address (XEP-0368); empty disables it.
	TLSListen string `yaml:"tls_listen"`
	// WebSocketListen is the RFC 7395 address; empty disables it.
	WebSocketListen string `yaml:"websocket_listen"`
	// WebSocketTLS serves wss:// (true) or ws:// (false, behind a TLS proxy).
	WebSocketTLS bool `yaml:"websocket_tls"`
	// WebSocketPath is the HTTP path of the WebSocket endpoint ("/": any).
	WebSocketPath string `yaml:"websocket_path"`
	// RequireTLS refuses authentication on TCP before STARTTLS.
	RequireTLS bool `yaml:"require_tls"`
	// ResourceConflict is replace, reject or rename.
	ResourceConflict string `yaml:"resource_conflict"`
	// MaxStanzaBytes bounds one stanza from a client.
	MaxStanzaBytes int `yaml:"max_stanza_bytes"`
	// MaxQueueBytes bounds a session's outbound queue together with what
	// it wrote that the client has not acknowledged (XEP-0198).
	MaxQueueBytes int `yaml:"max_queue_bytes"`
	// MaxSessionsPerUser bounds the resources one user has bound at once;
	// 0: no bound.
	MaxSessionsPerUser int `yaml:"max_sessions_per_user"`
	// MaxUnauthenticatedPerAddress bounds the connections one address
	// (IPv4, or an IPv6 /64) holds before authenticating; 0: no bound.
	MaxUnauthenticatedPerAddress int `yaml:"max_unauthenticated_per_address"`
	// WriteTimeout bounds each write to a client.
	WriteTimeout string `yaml:"write_timeout"`
	// PingInterval: a silent session is pinged after this long.
	PingInterval string `yaml:"ping_interval"`
	// PingTimeout: a pinged session silent this much longer is closed.
	PingTimeout string `yaml:"ping_timeout"`
	// StanzaRate and StanzaBurst bound the stanzas per second one session
	// may send (a token bucket); faster clients are slowed down.
	StanzaRate  int `yaml:"stanza_rate"`
	StanzaBurst int `yaml:"stanza_burst"`
	// ByteRate bounds the bytes of stanzas one session may send per
	// second (a burst of four max_stanza_bytes); 0: no bound.
	ByteRate int `yaml:"byte_rate"`
}

// Chat configures chat history.
type Chat struct {
	// JoinRequired is is_join_required for group dialogs created without it.
	JoinRequired bool `yaml:"join_required"`
	// MaxOccupants bounds the occupants of a group dialog.
	MaxOccupants int `yaml:"max_occupants"`
}

// MUC configures the group chat service on muc.<domain>.
type MUC struct {
	// MaxBroadcastOccupants: in a room with more occupants, joins and
	// leaves are not broadcast and joiners get only their own presence.
	MaxBroadcastOccupants int `yaml:"max_broadcast_occupants"`
	// HistoryDefault is how many stored messages a join without a
	// <history/> element gets (0: none).
	HistoryDefault int `yaml:"history_default"`
	// HistoryMax caps the messages replayed on any join.
	HistoryMax int `yaml:"history_max"`
	// CreateByJoin lets XMPP clients create a room (a group dialog) by
	// joining one that does not exist.
	CreateByJoin bool `yaml:"create_by_join"`
}

// TURN configures the embedded TURN server.
type TURN struct {
	// Enabled runs the TURN server with chatd.
	Enabled bool `yaml:"enabled"`
	// Realm is the long-term credential realm.
	Realm string `yaml:"realm"`
	// UDPListen, TCPListen and TLSListen are the listener addresses ("off"
	// disables one).
	UDPListen string `yaml:"udp_listen"`
	TCPListen string `yaml:"tcp_listen"`
	TLSListen string `yaml:"tls_listen"`
	// RelayAddress is the IPv4 address advertised for relays (the public
	// address, or the NAT's external one); empty picks this host's first
	// global address.
	RelayAddress string `yaml:"relay_address"`
	// RelayBind is the local address relay sockets bind to.
	RelayBind string `yaml:"relay_bind"`
	// MinPort and MaxPort bound the relay ports.
	MinPort int `yaml:"min_port"`
	MaxPort int `yaml:"max_port"`
	// Secret is the TURN REST shared secret; empty: generated on first start
	// and kept in <data_dir>/turn.secret.
	Secret string `yaml:"secret"`
	// CredentialTTL is how long issued credentials are valid.
	CredentialTTL string `yaml:"credential_ttl"`
	// MaxAllocationsPerUser caps one user's simultaneous allocations.
	MaxAllocationsPerUser int `yaml:"max_allocations_per_user"`
	// AllocationLifetime is the longest an allocation may live.
	AllocationLifetime string `yaml:"allocation_lifetime"`
	// MaxUnallocatedPerAddress bounds the TCP and TLS connections one
	// address holds without an allocation; 0: no bound.
	MaxUnallocatedPerAddress int `yaml:"max_unallocated_per_address"`
	// PublicHost is the host put in issued TURN URIs; empty: relay_address.
	PublicHost string `yaml:"public_host"`
	// AllowLoopbackPeers lets clients relay to loopback addresses (for
	// development and tests; a production relay refuses them, as coturn
	// does).
	AllowLoopbackPeers bool `yaml:"allow_loopback_peers"`
	// DeniedPeers lists CIDR prefixes clients may not relay to, such as
	// the private networks around a server on the internet.
	DeniedPeers []string `yaml:"denied_peers"`
}

// Log configures logging to standard error.
type Log struct {
	// Level is one of debug, info, warn, error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
	// PprofListen is the address of a plain-HTTP listener serving Go's
	// profiles (/debug/pprof/); empty disables it. It has no authentication,
	// so it must be a loopback address.
	PprofListen string `yaml:"pprof_listen"`
}

// Storage chooses the backend.
type Storage struct {
	// MongoDBURI selects MongoDB when set; when empty chatd keeps everything
	// in SQLite in the data directory.
	MongoDBURI string `yaml:"mongodb_uri"`
	// MongoDBDatabase is the database name on MongoDB.
	MongoDBDatabase string `yaml:"mongodb_database"`
	// MongoDBRepairGrace is how old the leftovers of interrupted history
	// writes must be for the repair pass a minute after each start (and
	// chatd repair-history's default) to delete them: longer than any
	// request takes plus the clock differences between the nodes.
	MongoDBRepairGrace string `yaml:"mongodb_repair_grace"`
	// SQLiteFile is the SQLite database; empty means <data_dir>/chatd.db.
	SQLiteFile string `yaml:"sqlite_file"`
}

// TLS configures the certificate every TLS listener serves.
type TLS struct {
	// CertFile and KeyFile are PEM files. When both are empty chatd generates
	// a self-signed certificate in <data_dir>/tls on first start and reuses it.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Hosts are the names and addresses the generated certificate covers.
	Hosts []string `yaml:"hosts"`
}

// API configures the REST API.
type API struct {
	// Listen is the HTTPS address; empty disables HTTPS.
	Listen string `yaml:"listen"`
	// HTTPListen is an optional plain-HTTP address, for setups behind a TLS
	// proxy; empty disables it.
	HTTPListen string `yaml:"http_listen"`
	// SessionTTL is how long a session lives after its last request.
	SessionTTL string `yaml:"session_ttl"`
	// SignatureWindow is how far a session request's timestamp may be from
	// the server clock.
	SignatureWindow string `yaml:"signature_window"`
	// MaxBodyBytes bounds request bodies; larger ones get 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// CORSOrigins are the origins browsers may call the API from; "*" for any.
	CORSOrigins []string `yaml:"cors_origins"`
	// AdminToken enables the admin API (/admin/…, /metrics) for requests
	// with "Authorization: Bearer <token>"; empty disables it.
	AdminToken string `yaml:"admin_token"`
}

// Default returns the configuration chatd runs with when nothing is set:
// every default is here.
func Default() Config {
	return Config{
		Domain:  "localhost",
		DataDir: "./data",
		Log:     Log{Level: "info", Format: "text"},
		Runtime: Runtime{GCPercent: 50, GCHeadroomMB: 64},
		Storage: Storage{MongoDBDatabase: "chatd", MongoDBRepairGrace: "10m"},
		TLS:     TLS{Hosts: []string{"localhost", "127.0.0.1", "::1"}},
		API: API{
			Listen:          ":8443",
			SessionTTL:      "2h",
			SignatureWindow: "1h",
			MaxBodyBytes:    1 << 20,
			CORSOrigins:     []string{"*"},
		},
		XMPP: XMPP{
			Listen:                       ":5222",
			TLSListen:                    ":5223",
			WebSocketListen:              ":5291",
			WebSocketTLS:                 true,
			WebSocketPath:                "/",
			RequireTLS:                   true,
			ResourceConflict:             "replace",
			MaxStanzaBytes:               256 << 10,
			MaxQueueBytes:                1 << 20,
			MaxUnauthenticatedPerAddress: 100,
			MaxSessionsPerUser:           50,
			WriteTimeout:                 "15s",
			PingInterval:                 "60s",
			PingTimeout:                  "30s",
			StanzaRate:                   500,
			StanzaBurst:                  1000,
			ByteRate:                     1 << 20,
		},
		Chat: Chat{MaxOccupants: 5000},
		MUC:  MUC{MaxBroadcastOccupants: 500, HistoryDefault: 20, HistoryMax: 100, CreateByJoin: true},
		TURN: TURN{
			Enabled:                  true,
			Realm:                    "chatd",
			UDPListen:                ":3478",
			TCPListen:                ":3478",
			TLSListen:                ":5349",
			RelayBind:                "0.0.0.0",
			MinPort:                  49152,
			MaxPort:                  65535,
			CredentialTTL:            "24h",
			MaxAllocationsPerUser:    10,
			AllocationLifetime:       "12h",
			MaxUnallocatedPerAddress: 100,
		},
	}
}

// Load returns the defaults overlaid with the YAML file at path (when path is
// not empty) and then with the CHATD_* variables of environ, validated.
func Load(path string, environ []string) (*Config, error) {
	cfg := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := decodeYAML(data, &cfg); err != nil {
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func decodeYAML(data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// EnvName returns the environment variable of a key path such as
// "storage.mongodb_uri".
func EnvName(key string) string {
	return "CHATD_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// field is one settable leaf of the configuration.
type field struct {
	key string
	v   reflect.Value
}

// fields lists every leaf of cfg with its key path.
func fields(cfg *Config) []field {
	var out []field
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			name := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			key := name
			if prefix != "" {
				key = prefix + "." + name
			}
			if fv := v.Field(i); fv.Kind() == reflect.Struct {
				walk(key, fv)
			} else {
				out = append(out, field{key, fv})
			}
		}
	}
	walk("", reflect.ValueOf(cfg).Elem())
	return out
}

// Keys returns every configuration key path, in declaration order.
func Keys() []string {
	var cfg Config
	var out []string
	for _, f := range fields(&cfg) {
		out = append(out, f.key)
	}
	return out
}

func applyEnv(cfg *Config, environ []string) error {
	byEnv := map[string]field{}
	for _, f := range fields(cfg) {
		byEnv[EnvName(f.key)] = f
	}
	var errs []error
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "CHATD_") || strings.HasPrefix(name, "CHATD_TEST_") {
			continue
		}
		f, ok := byEnv[name]
		if !ok {
			errs = append(errs, fmt.Errorf("config: unknown environment variable %s", name))
			continue
		}
		if err := set(f.v, value); err != nil {
			errs = append(errs, fmt.Errorf("config: %s (%s): %w", f.key, name, err))
		}
	}
	return errors.Join(errs...)
}

func set(v reflect.Value, s string) error {
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("not a boolean: %q", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer: %q", s)
		}
		v.SetInt(n)
	case reflect.Slice:
		var items []string
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("unsupported kind %s", v.Kind())
	}
	return nil
}
