package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"chatd/account"
	"chatd/config"
	"chatd/history"
	"chatd/store/mongo"
	"chatd/store/sqlite"
	"chatd/xmpp"
)

// Stores are the domain stores of the configured backend.
type Stores struct {
	Accounts account.Store
	XMPP     xmpp.Store
	History  history.Store
	Close    func(context.Context) error
	// RepairHistory deletes what interrupted history writes left behind
	// once it is older than grace (see mongo.DB.RepairHistory); nil when
	// the backend needs no repair (SQLite writes are transactions).
	RepairHistory func(ctx context.Context, grace time.Duration) (mongo.RepairReport, error)
}

// OpenStorage opens the configured backend: MongoDB when
// storage.mongodb_uri is set, SQLite in the data directory otherwise.
func OpenStorage(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Stores, error) {
	if cfg.Storage.MongoDBURI != "" {
		db, err := mongo.Open(ctx, cfg.Storage.MongoDBURI, cfg.Storage.MongoDBDatabase)
		if err != nil {
			return nil, err
		}
		log.Info("storage: MongoDB", "database", cfg.Storage.MongoDBDatabase)
		return &Stores{Accounts: db.Accounts(), XMPP: db.XMPP(), History: db.History(), Close: db.Close,
			RepairHistory: db.RepairHistory}, nil
	}
	path := cfg.SQLiteFile()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	t0 := time.Now()
	db, err := sqlite.Open(path)
	if err != nil {
		return nil, err
	}
	if found, now := db.Schema(); found != 0 && found != now {
		log.Info("storage: SQLite schema upgraded", "from", found, "to", now, "took", time.Since(t0).Round(time.Millisecond))
	}
	log.Info("storage: SQLite", "file", path)
	return &Stores{
		Accounts: db.Accounts(),
		XMPP:     db.XMPP(),
		History:  db.History(),
		Close:    func(context.Context) error { return db.Close() },
	}, nil
}
