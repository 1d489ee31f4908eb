package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Validate checks every value and how values fit together; it returns every
// problem found, each naming its key.
func (c *Config) Validate() error {
	v := &validator{}
	if c.Domain == "" || strings.ContainsAny(c.Domain, "@/ :") {
		v.bad("domain", "must be a bare domain name such as chat.example.com, got %q", c.Domain)
	}
	v.nonEmpty("data_dir", c.DataDir)
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "text", "json")
	v.addr("log.pprof_listen", c.Log.PprofListen, true)
	v.atLeast("runtime.gc_percent", c.Runtime.GCPercent, 10)
	v.atLeast("runtime.gc_headroom_mb", c.Runtime.GCHeadroomMB, 0)
	if host, _, err := net.SplitHostPort(c.Log.PprofListen); err == nil {
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			v.bad("log.pprof_listen", "must be a loopback address (the profiler has no authentication), got %q", c.Log.PprofListen)
		}
	}
	if c.Storage.MongoDBURI != "" {
		if u, err := url.Parse(c.Storage.MongoDBURI); err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") {
			v.bad("storage.mongodb_uri", "must be a mongodb:// or mongodb+srv:// URI")
		}
		v.nonEmpty("storage.mongodb_database", c.Storage.MongoDBDatabase)
		v.duration("storage.mongodb_repair_grace", c.Storage.MongoDBRepairGrace, time.Minute)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		v.bad("tls.cert_file", "tls.cert_file and tls.key_file must be set together")
	}
	if c.TLS.CertFile == "" && len(c.TLS.Hosts) == 0 {
		v.bad("tls.hosts", "the generated certificate needs at least one host")
	}
	v.addr("api.listen", c.API.Listen, true)
	v.addr("api.http_listen", c.API.HTTPListen, true)
	if c.API.Listen == "" && c.API.HTTPListen == "" {
		v.bad("api.listen", "api.listen and api.http_listen cannot both be empty")
	}
	v.duration("api.session_ttl", c.API.SessionTTL, time.Minute)
	v.duration("api.signature_window", c.API.SignatureWindow, time.Second)
	if c.API.MaxBodyBytes < 1024 {
		v.bad("api.max_body_bytes", "must be at least 1024, got %d", c.API.MaxBodyBytes)
	}
	if len(c.API.CORSOrigins) == 0 {
		v.bad("api.cors_origins", "must list at least one origin (\"*\" for any)")
	}
	if t := c.API.AdminToken; t != "" && len(t) < 16 {
		v.bad("api.admin_token", "must be at least 16 characters when set")
	}
	if err := c.RESTAPI().Validate(); err != nil {
		v.errs = append(v.errs, fmt.Errorf("config: api: %w", err))
	}
	v.addr("xmpp.listen", c.XMPP.Listen, true)
	v.addr("xmpp.tls_listen", c.XMPP.TLSListen, true)
	v.addr("xmpp.websocket_listen", c.XMPP.WebSocketListen, true)
	if c.XMPP.WebSocketPath == "" || c.XMPP.WebSocketPath[0] != '/' {
		v.bad("xmpp.websocket_path", "must start with /, got %q", c.XMPP.WebSocketPath)
	}
	v.oneOf("xmpp.resource_conflict", c.XMPP.ResourceConflict, "replace", "reject", "rename")
	v.atLeast("xmpp.max_stanza_bytes", c.XMPP.MaxStanzaBytes, 4096)
	v.atLeast("xmpp.max_queue_bytes", c.XMPP.MaxQueueBytes, 2*c.XMPP.MaxStanzaBytes)
	v.atLeast("xmpp.max_unauthenticated_per_address", c.XMPP.MaxUnauthenticatedPerAddress, 0)
	v.atLeast("xmpp.max_sessions_per_user", c.XMPP.MaxSessionsPerUser, 0)
	v.atLeast("turn.max_unallocated_per_address", c.TURN.MaxUnallocatedPerAddress, 0)
	v.duration("xmpp.write_timeout", c.XMPP.WriteTimeout, time.Second)
	v.duration("xmpp.ping_interval", c.XMPP.PingInterval, time.Second)
	v.duration("xmpp.ping_timeout", c.XMPP.PingTimeout, time.Second)
	v.atLeast("xmpp.stanza_rate", c.XMPP.StanzaRate, 1)
	v.atLeast("xmpp.stanza_burst", c.XMPP.StanzaBurst, 1)
	v.atLeast("xmpp.byte_rate", c.XMPP.ByteRate, 0)
	v.atLeast("chat.max_occupants", c.Chat.MaxOccupants, 2)
	v.atLeast("muc.max_broadcast_occupants", c.MUC.MaxBroadcastOccupants, 1)
	v.atLeast("muc.history_default", c.MUC.HistoryDefault, 0)
	v.atLeast("muc.history_max", c.MUC.HistoryMax, 1)
	if c.MUC.HistoryDefault > c.MUC.HistoryMax {
		v.bad("muc.history_default", "(%d) cannot be higher than muc.history_max (%d)", c.MUC.HistoryDefault, c.MUC.HistoryMax)
	}
	if c.TURN.Enabled {
		v.duration("turn.credential_ttl", c.TURN.CredentialTTL, time.Minute)
		v.duration("turn.allocation_lifetime", c.TURN.AllocationLifetime, time.Minute)
		if _, err := c.TURNConfig(""); err != nil {
			v.errs = append(v.errs, fmt.Errorf("config: turn: %w", err))
		}
	}
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) bad(key, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...)))
}

func (v *validator) nonEmpty(key, s string) {
	if strings.TrimSpace(s) == "" {
		v.bad(key, "must not be empty")
	}
}

func (v *validator) oneOf(key, s string, allowed ...string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	v.bad(key, "must be one of %s, got %q", strings.Join(allowed, ", "), s)
}

func (v *validator) addr(key, s string, optional bool) {
	if s == "" {
		if !optional {
			v.bad(key, "must not be empty")
		}
		return
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		v.bad(key, "must be host:port or :port, got %q", s)
	}
}

func (v *validator) atLeast(key string, n, least int) {
	if n < least {
		v.bad(key, "must be at least %d, got %d", least, n)
	}
}

func (v *validator) duration(key, s string, least time.Duration) {
	d, err := time.ParseDuration(s)
	if err != nil {
		v.bad(key, "not a duration (use Go syntax such as 30s or 2h): %q", s)
		return
	}
	if d < least {
		v.bad(key, "must be at least %s, got %s", least, s)
	}
}

// mustDuration parses a duration that Validate has accepted.
func mustDuration(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic("config: unvalidated duration " + s)
	}
	return d
}
