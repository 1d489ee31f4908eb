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
	if c.Storage.MongoDBURI != "" {
		if u, err := url.Parse(c.Storage.MongoDBURI); err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") {
			v.bad("storage.mongodb_uri", "must be a mongodb:// or mongodb+srv:// URI")
		}
		v.nonEmpty("storage.mongodb_database", c.Storage.MongoDBDatabase)
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
