// Package sqlite is chatd's embedded storage backend: one SQLite database file
// (pure Go, modernc.org/sqlite) in WAL mode.
//
// A DB holds two connection pools on the same file: a single writer
// connection, so writes queue in Go instead of failing with SQLITE_BUSY, and
// a pool of readers that run alongside it (WAL lets readers see the last
// committed state while a write is in progress). Every method is safe for
// concurrent use. Times are stored as Unix seconds (UTC), the resolution the
// QuickBlox API exposes.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// writerCacheKiB is the writer's page cache. SQLite's default (2 MiB) is
// less than a group commit of messages touches in a store of some size:
// the writer then wrote pages to the WAL before the commit and read them
// back.
const writerCacheKiB = 32 << 10

// readerCacheKiB is each reader's page cache (and the checkpointer's):
// with the database memory-mapped it holds little more than page headers.
const readerCacheKiB = 8 << 10

// foldFunc names the SQL function that folds the case of text for ctn, the
// case-insensitive substring match. SQLite's lower() folds ASCII letters
// only, and a ctn must match "Ärger" with "ärger" as MongoDB's
// case-insensitive match does. Registered with the driver for every
// connection it opens; no index or stored value depends on it.
const foldFunc = "chatd_fold"

func init() {
	sqlite.MustRegisterDeterministicScalarFunction(foldFunc, 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		switch v := args[0].(type) {
		case string:
			return foldCase(v), nil
		case []byte:
			return foldCase(string(v)), nil
		}
		return args[0], nil // NULL, a number: nothing to fold
	})
}

// foldCase maps every letter of s to one representative of its case
// orbit under Unicode simple case folding, as MongoDB's (PCRE's)
// case-insensitive match compares: Σ, σ and ς fold alike, so do K, k and
// the Kelvin sign, S, s and ſ, while İ stays apart from i. strings.ToLower
// differs on exactly these (it leaves ς and ſ, and lowers İ to i). The
// representative is the orbit's lowest code point (an ASCII letter's
// capital), so two strings fold alike where they are equal letter by letter
// whatever the case; a letter is never expanded (ß is not ss), as in
// MongoDB.
func foldCase(s string) string {
	return strings.Map(func(r rune) rune {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			return r
		}
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, s)
}

// containsSQL is the condition "col contains the parameter, whatever the
// case".
func containsSQL(col string) string {
	return "instr(" + foldFunc + "(" + col + "), " + foldFunc + "(?)) > 0"
}

// DB is an open chatd database.
type DB struct {
	w    *pool // the one writer connection
	r    *pool // readers
	ckpt *checkpointer
	from int // the schema version found on opening
}

// Open opens (creating if needed) the database at path and brings its schema
// up to date.
func Open(path string) (*DB, error) {
	// dsn is the connection string: mode "ro" for readers, a page cache of
	// cacheKiB, extra pragmas (the writer's).
	dsn := func(mode string, cacheKiB int, extra ...string) string {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Add("_pragma", "foreign_keys(ON)")
		// History pages read rows scattered over the file (a dialog's
		// messages interleave with every other dialog's): reading them
		// through a memory map rather than a read call each cut a page of
		// 100 messages from 2.4 to 1.5 ms of CPU (BENCHMARKS.md).
		q.Add("_pragma", "mmap_size(1073741824)")
		q.Add("_pragma", fmt.Sprintf("cache_size(%d)", -cacheKiB))
		for _, p := range extra {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		if mode != "" {
			q.Set("mode", mode)
		}
		return "file:" + path + "?" + q.Encode()
	}
	w, err := sql.Open("sqlite", dsn("", writerCacheKiB, fmt.Sprintf("wal_autocheckpoint(%d)", walBackstop)))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	from, err := migrate(context.Background(), w, migrations)
	if err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn("ro", readerCacheKiB))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0)*2)
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxIdleTime(0)
	c, err := sql.Open("sqlite", dsn("", readerCacheKiB))
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	c.SetMaxOpenConns(1)
	c.SetMaxIdleConns(1)
	c.SetConnMaxIdleTime(0)
	db := &DB{w: newPool(w), r: newPool(r), ckpt: newCheckpointer(c), from: from}
	db.w.wrote = db.ckpt.wrote
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error {
	return errors.Join(db.ckpt.close(), db.r.Close(), db.w.Close())
}

// migrations are applied in order; PRAGMA user_version records how many ran.
// Append only: never edit a migration that has shipped.
var migrations = []string{
	// 1: accounts
	`CREATE TABLE apps (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		name TEXT NOT NULL,
		auth_key TEXT NOT NULL,
		auth_secret TEXT NOT NULL,
		created_at INTEGER NOT NULL
	);
	CREATE TABLE users (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		app_id INTEGER NOT NULL REFERENCES apps(id),
		login TEXT NOT NULL DEFAULT '',
		email TEXT NOT NULL DEFAULT '',
		full_name TEXT NOT NULL DEFAULT '',
		phone TEXT NOT NULL DEFAULT '',
		website TEXT NOT NULL DEFAULT '',
		external_user_id INTEGER NOT NULL DEFAULT 0,
		facebook_id TEXT NOT NULL DEFAULT '',
		twitter_id TEXT NOT NULL DEFAULT '',
		blob_id INTEGER NOT NULL DEFAULT 0,
		custom_data TEXT NOT NULL DEFAULT '',
		tags TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL,
		last_request_at INTEGER NOT NULL DEFAULT 0,
		credentials BLOB NOT NULL
	);
	CREATE UNIQUE INDEX users_login ON users(app_id, login) WHERE login != '';
	CREATE UNIQUE INDEX users_email ON users(app_id, email) WHERE email != '';
	CREATE UNIQUE INDEX users_facebook_id ON users(app_id, facebook_id) WHERE facebook_id != '';
	CREATE UNIQUE INDEX users_twitter_id ON users(app_id, twitter_id) WHERE twitter_id != '';
	CREATE UNIQUE INDEX users_external_user_id ON users(app_id, external_user_id) WHERE external_user_id != 0;
	CREATE INDEX users_phone ON users(app_id, phone);
	CREATE INDEX users_created ON users(app_id, created_at);
	CREATE TABLE sessions (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		object_id TEXT NOT NULL,
		app_id INTEGER NOT NULL,
		user_id INTEGER NOT NULL,
		token_hash TEXT NOT NULL UNIQUE,
		token_keys BLOB,
		nonce INTEGER NOT NULL,
		ts INTEGER NOT NULL,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL,
		expires_at INTEGER NOT NULL
	);
	CREATE INDEX sessions_user ON sessions(app_id, user_id);
	CREATE INDEX sessions_expiry ON sessions(expires_at);
	CREATE TABLE nonces (
		app_id INTEGER NOT NULL,
		key TEXT NOT NULL,
		expires_at INTEGER NOT NULL,
		PRIMARY KEY (app_id, key)
	) WITHOUT ROWID;
	CREATE INDEX nonces_expiry ON nonces(expires_at);
	CREATE TABLE api_keys (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		app_id INTEGER NOT NULL REFERENCES apps(id),
		name TEXT NOT NULL,
		key_hash TEXT NOT NULL UNIQUE,
		created_at INTEGER NOT NULL
	);`,
	// 2: XMPP rosters and last activity
	`CREATE TABLE roster_items (
		app_id INTEGER NOT NULL,
		user_id INTEGER NOT NULL,
		jid TEXT NOT NULL,
		name TEXT NOT NULL DEFAULT '',
		subscription TEXT NOT NULL,
		ask INTEGER NOT NULL DEFAULT 0,
		pending_in INTEGER NOT NULL DEFAULT 0,
		listed INTEGER NOT NULL DEFAULT 0,
		groups TEXT NOT NULL DEFAULT '[]',
		PRIMARY KEY (app_id, user_id, jid)
	) WITHOUT ROWID;
	CREATE TABLE roster_versions (
		app_id INTEGER NOT NULL,
		user_id INTEGER NOT NULL,
		ver INTEGER NOT NULL,
		PRIMARY KEY (app_id, user_id)
	) WITHOUT ROWID;
	CREATE TABLE last_activity (
		app_id INTEGER NOT NULL,
		user_id INTEGER NOT NULL,
		at INTEGER NOT NULL,
		status TEXT NOT NULL,
		PRIMARY KEY (app_id, user_id)
	) WITHOUT ROWID;`,
	// 3: chat history
	`CREATE TABLE dialogs (
		id TEXT PRIMARY KEY,
		app_id INTEGER NOT NULL,
		type INTEGER NOT NULL,
		name TEXT NOT NULL DEFAULT '',
		photo TEXT NOT NULL DEFAULT '',
		owner_id INTEGER NOT NULL,
		occupants TEXT NOT NULL DEFAULT '[]',
		admins TEXT NOT NULL DEFAULT '[]',
		room_name TEXT,
		pair_key TEXT,
		join_required INTEGER NOT NULL DEFAULT 0,
		data TEXT NOT NULL DEFAULT '{}',
		last_message TEXT NOT NULL DEFAULT '',
		last_message_id TEXT NOT NULL DEFAULT '',
		last_message_date_sent INTEGER NOT NULL DEFAULT 0,
		last_message_user_id INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL
	);
	CREATE UNIQUE INDEX dialogs_pair ON dialogs(app_id, pair_key) WHERE pair_key IS NOT NULL;
	CREATE UNIQUE INDEX dialogs_room ON dialogs(app_id, room_name) WHERE room_name IS NOT NULL;
	CREATE INDEX dialogs_type ON dialogs(app_id, type);
	CREATE TABLE dialog_members (
		dialog_id TEXT NOT NULL,
		user_id INTEGER NOT NULL,
		app_id INTEGER NOT NULL,
		occupant INTEGER NOT NULL DEFAULT 0,
		unread INTEGER NOT NULL DEFAULT 0,
		notifications INTEGER NOT NULL DEFAULT 1,
		hidden INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (dialog_id, user_id)
	) WITHOUT ROWID;
	CREATE INDEX dialog_members_user ON dialog_members(app_id, user_id, occupant);
	CREATE TABLE messages (
		id TEXT PRIMARY KEY,
		app_id INTEGER NOT NULL,
		dialog_id TEXT NOT NULL,
		text TEXT NOT NULL DEFAULT '',
		date_sent INTEGER NOT NULL,
		sender_id INTEGER NOT NULL,
		recipient_id INTEGER NOT NULL DEFAULT 0,
		attachments TEXT NOT NULL DEFAULT '[]',
		custom TEXT NOT NULL DEFAULT '{}',
		markable INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL
	);
	CREATE INDEX messages_dialog ON messages(dialog_id, date_sent, id);
	CREATE TABLE message_users (
		message_id TEXT NOT NULL,
		user_id INTEGER NOT NULL,
		dialog_id TEXT NOT NULL,
		recipient INTEGER NOT NULL DEFAULT 0,
		read INTEGER NOT NULL DEFAULT 0,
		delivered INTEGER NOT NULL DEFAULT 0,
		hidden INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (message_id, user_id)
	) WITHOUT ROWID;
	CREATE INDEX message_users_unread ON message_users(dialog_id, user_id, read);`,
	// 4: offline messages and privacy lists
	`CREATE TABLE offline_messages (
		seq INTEGER PRIMARY KEY AUTOINCREMENT,
		app_id INTEGER NOT NULL,
		user_id INTEGER NOT NULL,
		stamp INTEGER NOT NULL,
		data BLOB NOT NULL
	);
	CREATE INDEX offline_messages_user ON offline_messages(app_id, user_id, seq);
	CREATE TABLE privacy_lists (
		app_id INTEGER NOT NULL,
		user_id INTEGER NOT NULL,
		name TEXT NOT NULL,
		items TEXT NOT NULL,
		PRIMARY KEY (app_id, user_id, name)
	) WITHOUT ROWID;
	CREATE TABLE privacy_defaults (
		app_id INTEGER NOT NULL,
		user_id INTEGER NOT NULL,
		name TEXT NOT NULL,
		PRIMARY KEY (app_id, user_id)
	) WITHOUT ROWID;`,
	// 5: the dialog list reads its order from an index of each member's
	// row (the dialog's last message time, copied at write time).
	`ALTER TABLE dialog_members ADD COLUMN last_ts INTEGER NOT NULL DEFAULT 0;
	UPDATE dialog_members SET last_ts = coalesce((SELECT d.last_message_date_sent FROM dialogs d WHERE d.id = dialog_id), 0);
	CREATE INDEX dialog_members_list ON dialog_members(app_id, user_id, occupant, hidden, last_ts, dialog_id);
	CREATE INDEX dialogs_public ON dialogs(app_id, type, last_message_date_sent, id);`,
	// 6: whether a user ever hid a message of a dialog, so listing can skip
	// the per-message check when not.
	`ALTER TABLE dialog_members ADD COLUMN hid INTEGER NOT NULL DEFAULT 0;
	UPDATE dialog_members SET hid = 1 WHERE EXISTS (SELECT 1 FROM message_users h
		WHERE h.dialog_id = dialog_members.dialog_id AND h.user_id = dialog_members.user_id AND h.hidden = 1);`,
	// 7: only public groups are listed by dialogs_public, so that a message
	// to any other dialog does not rewrite its entry there.
	`DROP INDEX dialogs_public;
	CREATE INDEX dialogs_public ON dialogs(app_id, last_message_date_sent, id) WHERE type = 1;`,
	// 8: messages, and each recipient's marks of them, are stored in the
	// order a dialog's history is read, so that a page of one dialog is a
	// few neighbouring pages of the file rather than one page per message
	// found through an index, and one more per message for its marks
	// (BENCHMARKS.md). A user's marks in a dialog (unread counts, marking
	// all read) are read from message_users_unread alone: it covers them.
	`CREATE TABLE messages_by_dialog (
		id TEXT NOT NULL,
		app_id INTEGER NOT NULL,
		dialog_id TEXT NOT NULL,
		text TEXT NOT NULL DEFAULT '',
		date_sent INTEGER NOT NULL,
		sender_id INTEGER NOT NULL,
		recipient_id INTEGER NOT NULL DEFAULT 0,
		attachments TEXT NOT NULL DEFAULT '[]',
		custom TEXT NOT NULL DEFAULT '{}',
		markable INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (dialog_id, date_sent, id)
	) WITHOUT ROWID;
	INSERT INTO messages_by_dialog SELECT id, app_id, dialog_id, text, date_sent, sender_id, recipient_id, attachments,
		custom, markable, created_at, updated_at FROM messages;
	DROP TABLE messages;
	ALTER TABLE messages_by_dialog RENAME TO messages;
	CREATE UNIQUE INDEX messages_id ON messages(id);
	CREATE TABLE message_users_by_dialog (
		message_id TEXT NOT NULL,
		user_id INTEGER NOT NULL,
		dialog_id TEXT NOT NULL,
		recipient INTEGER NOT NULL DEFAULT 0,
		read INTEGER NOT NULL DEFAULT 0,
		delivered INTEGER NOT NULL DEFAULT 0,
		hidden INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (dialog_id, message_id, user_id)
	) WITHOUT ROWID;
	INSERT INTO message_users_by_dialog SELECT message_id, user_id, dialog_id, recipient, read, delivered, hidden
		FROM message_users;
	DROP TABLE message_users;
	ALTER TABLE message_users_by_dialog RENAME TO message_users;
	CREATE INDEX message_users_unread ON message_users(dialog_id, user_id, read, recipient, hidden, delivered);`,
}

// Schema reports the schema version the database had when it was opened and
// the one it has now; they differ when Open upgraded it. Some upgrades
// rewrite large tables (BENCHMARKS.md gives how long one took).
func (db *DB) Schema() (found, now int) { return db.from, len(migrations) }

// migrate brings db up to the last of steps and returns the version it
// found.
func migrate(ctx context.Context, db *sql.DB, steps []string) (int, error) {
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, fmt.Errorf("sqlite: reading schema version: %w", err)
	}
	if version > len(steps) {
		return 0, fmt.Errorf("sqlite: database schema version %d is newer than this chatd (%d)", version, len(steps))
	}
	for i := version; i < len(steps); i++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, steps[i]); err != nil {
			tx.Rollback()
			return 0, fmt.Errorf("sqlite: migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1)); err != nil {
			tx.Rollback()
			return 0, err
		}
		if err := tx.Commit(); err != nil {
			return 0, fmt.Errorf("sqlite: migration %d: %w", i+1, err)
		}
	}
	return version, nil
}

// tx runs fn in a write transaction.
func (db *DB) tx(ctx context.Context, fn func(txn) error) error {
	if err := db.w.preparePending(ctx); err != nil {
		return err
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(txn{Tx: tx, p: db.w}); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	db.ckpt.wrote()
	return nil
}

// uniqueViolation returns the column of a UNIQUE constraint failure, or "".
func uniqueViolation(err error) string {
	var se *sqlite.Error
	if !errors.As(err, &se) || se.Code() != sqlite3.SQLITE_CONSTRAINT_UNIQUE && se.Code() != sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
		return ""
	}
	// "UNIQUE constraint failed: users.app_id, users.login"
	msg := se.Error()
	if i := strings.LastIndex(msg, "."); i >= 0 {
		col := msg[i+1:]
		if j := strings.IndexAny(col, " )"); j >= 0 {
			col = col[:j]
		}
		return col
	}
	return "unknown"
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func fromUnix(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(n, 0).UTC()
}
