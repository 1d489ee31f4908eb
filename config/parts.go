package config

import (
	"path/filepath"
	"time"

	"chatd/account"
	"chatd/history"
	"chatd/muc"
	"chatd/restapi"
	"chatd/turn"
	"chatd/xmpp"
)

// The parts' configurations, built from a validated Config.

// Account returns the account service's configuration.
func (c *Config) Account() account.Config {
	return account.Config{
		SessionTTL:      mustDuration(c.API.SessionTTL),
		SignatureWindow: mustDuration(c.API.SignatureWindow),
	}
}

// RESTAPI returns the REST API's configuration.
func (c *Config) RESTAPI() restapi.Config {
	return restapi.Config{MaxBodyBytes: c.API.MaxBodyBytes, CORSOrigins: c.API.CORSOrigins, XMPPDomain: c.Domain,
		AdminToken: c.API.AdminToken}
}

// XMPPConfig returns the XMPP server's configuration.
func (c *Config) XMPPConfig() xmpp.Config {
	return xmpp.Config{
		Domain:                       c.Domain,
		Listen:                       c.XMPP.Listen,
		TLSListen:                    c.XMPP.TLSListen,
		WebSocketListen:              c.XMPP.WebSocketListen,
		WebSocketTLS:                 c.XMPP.WebSocketTLS,
		WebSocketPath:                c.XMPP.WebSocketPath,
		RequireTLS:                   c.XMPP.RequireTLS,
		ResourceConflict:             c.XMPP.ResourceConflict,
		MaxStanzaBytes:               c.XMPP.MaxStanzaBytes,
		MaxQueueBytes:                c.XMPP.MaxQueueBytes,
		MaxUnauthenticatedPerAddress: noBoundIfZero(c.XMPP.MaxUnauthenticatedPerAddress),
		MaxSessionsPerUser:           noBoundIfZero(c.XMPP.MaxSessionsPerUser),
		WriteTimeout:                 mustDuration(c.XMPP.WriteTimeout),
		PingInterval:                 mustDuration(c.XMPP.PingInterval),
		PingTimeout:                  mustDuration(c.XMPP.PingTimeout),
		StanzaRate:                   float64(c.XMPP.StanzaRate),
		StanzaBurst:                  c.XMPP.StanzaBurst,
		ByteRate:                     noBoundIfZero(c.XMPP.ByteRate),
	}
}

// History returns chat history's configuration.
func (c *Config) History() history.Config {
	return history.Config{JoinRequiredDefault: c.Chat.JoinRequired, MaxOccupants: c.Chat.MaxOccupants}
}

// MUCConfig returns the group chat service's configuration.
func (c *Config) MUCConfig() muc.Config {
	def := c.MUC.HistoryDefault
	if def == 0 {
		def = -1 // muc.Config reads 0 as "the default"; the key's 0 means none
	}
	return muc.Config{MaxBroadcastOccupants: c.MUC.MaxBroadcastOccupants, DefaultHistory: def, MaxHistory: c.MUC.HistoryMax,
		NoCreateByJoin: !c.MUC.CreateByJoin}
}

// TURNConfig returns the TURN server's configuration with the given secret
// (the configured one wins when set), validated.
func (c *Config) TURNConfig(secret string) (turn.Config, error) {
	if c.TURN.Secret != "" {
		secret = c.TURN.Secret
	}
	if secret == "" {
		secret = "validation-placeholder"
	}
	parse := func(s string) time.Duration {
		d, _ := time.ParseDuration(s)
		return d
	}
	tc := turn.Config{
		Enabled:                  c.TURN.Enabled,
		Realm:                    c.TURN.Realm,
		UDPAddr:                  c.TURN.UDPListen,
		TCPAddr:                  c.TURN.TCPListen,
		TLSAddr:                  c.TURN.TLSListen,
		RelayAddress:             c.TURN.RelayAddress,
		RelayBind:                c.TURN.RelayBind,
		MinPort:                  c.TURN.MinPort,
		MaxPort:                  c.TURN.MaxPort,
		Secret:                   secret,
		CredentialTTL:            parse(c.TURN.CredentialTTL),
		MaxAllocationsPerUser:    c.TURN.MaxAllocationsPerUser,
		AllocationLifetime:       parse(c.TURN.AllocationLifetime),
		PublicHost:               c.TURN.PublicHost,
		AllowLoopbackPeers:       c.TURN.AllowLoopbackPeers,
		DeniedPeers:              c.TURN.DeniedPeers,
		MaxUnallocatedPerAddress: noBoundIfZero(c.TURN.MaxUnallocatedPerAddress),
	}.WithDefaults()
	return tc, tc.Validate()
}

// SQLiteFile returns the SQLite database path.
func (c *Config) SQLiteFile() string {
	if c.Storage.SQLiteFile != "" {
		return c.Storage.SQLiteFile
	}
	return filepath.Join(c.DataDir, "chatd.db")
}

// TLSDir is where a generated certificate is kept.
func (c *Config) TLSDir() string { return filepath.Join(c.DataDir, "tls") }

// TURNSecretFile is where a generated TURN secret is kept.
func (c *Config) TURNSecretFile() string { return filepath.Join(c.DataDir, "turn.secret") }

// RepairGrace is storage.mongodb_repair_grace.
func (c *Config) RepairGrace() time.Duration { return mustDuration(c.Storage.MongoDBRepairGrace) }

// noBoundIfZero turns a file's 0 ("no bound") into the packages' -1 (their
// 0 takes the default).
func noBoundIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
