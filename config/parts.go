package config

import (
	"path/filepath"

	"chatd/account"
)

// Account returns the account service's configuration.
func (c *Config) Account() account.Config {
	return account.Config{
		SessionTTL:      mustDuration(c.API.SessionTTL),
		SignatureWindow: mustDuration(c.API.SignatureWindow),
	}
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
