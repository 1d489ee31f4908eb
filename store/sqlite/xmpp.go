package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"chatd/account"
	"chatd/xmpp"
)

// XMPP returns the xmpp.Store of db.
func (db *DB) XMPP() xmpp.Store { return xmppStore{db} }

type xmppStore struct{ db *DB }

var _ xmpp.Store = xmppStore{}

const rosterColumns = `jid, name, subscription, ask, pending_in, listed, groups`

func scanRosterItem(row interface{ Scan(...any) error }) (*xmpp.RosterItem, error) {
	var (
		it     xmpp.RosterItem
		groups string
	)
	if err := row.Scan(&it.JID, &it.Name, &it.Subscription, &it.Ask, &it.PendingIn, &it.Listed, &groups); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, account.ErrNotFound
		}
		return nil, err
	}
	if err := json.Unmarshal([]byte(groups), &it.Groups); err != nil {
		return nil, err
	}
	if len(it.Groups) == 0 {
		it.Groups = nil
	}
	return &it, nil
}

func (x xmppStore) Roster(ctx context.Context, owner xmpp.UserRef) ([]xmpp.RosterItem, int64, error) {
	var ver int64
	err := x.db.r.QueryRowContext(ctx, `SELECT ver FROM roster_versions WHERE app_id = ? AND user_id = ?`,
		owner.App, owner.User).Scan(&ver)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, 0, err
	}
	rows, err := x.db.r.QueryContext(ctx, `SELECT `+rosterColumns+` FROM roster_items
		WHERE app_id = ? AND user_id = ? ORDER BY jid`, owner.App, owner.User)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []xmpp.RosterItem
	for rows.Next() {
		it, err := scanRosterItem(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, *it)
	}
	return out, ver, rows.Err()
}

func (x xmppStore) RosterItem(ctx context.Context, owner xmpp.UserRef, jid string) (*xmpp.RosterItem, error) {
	return scanRosterItem(x.db.r.QueryRowContext(ctx, `SELECT `+rosterColumns+` FROM roster_items
		WHERE app_id = ? AND user_id = ? AND jid = ?`, owner.App, owner.User, jid))
}

// bumpVersion increments the owner's roster version within tx.
func bumpVersion(ctx context.Context, tx *sql.Tx, owner xmpp.UserRef) (int64, error) {
	var ver int64
	err := tx.QueryRowContext(ctx, `INSERT INTO roster_versions(app_id, user_id, ver) VALUES(?, ?, 1)
		ON CONFLICT(app_id, user_id) DO UPDATE SET ver = ver + 1 RETURNING ver`, owner.App, owner.User).Scan(&ver)
	return ver, err
}

func (x xmppStore) PutRosterItem(ctx context.Context, owner xmpp.UserRef, it xmpp.RosterItem) (int64, error) {
	groups, err := json.Marshal(it.Groups)
	if err != nil {
		return 0, err
	}
	if it.Groups == nil {
		groups = []byte("[]")
	}
	var ver int64
	err = x.db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO roster_items(app_id, user_id, `+rosterColumns+`)
			VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT(app_id, user_id, jid) DO UPDATE SET name = excluded.name,
			subscription = excluded.subscription, ask = excluded.ask, pending_in = excluded.pending_in,
			listed = excluded.listed, groups = excluded.groups`,
			owner.App, owner.User, it.JID, it.Name, it.Subscription, it.Ask, it.PendingIn, it.Listed, string(groups))
		if err != nil {
			return err
		}
		ver, err = bumpVersion(ctx, tx, owner)
		return err
	})
	return ver, err
}

func (x xmppStore) DeleteRosterItem(ctx context.Context, owner xmpp.UserRef, jid string) (int64, error) {
	var ver int64
	err := x.db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM roster_items WHERE app_id = ? AND user_id = ? AND jid = ?`,
			owner.App, owner.User, jid); err != nil {
			return err
		}
		var err error
		ver, err = bumpVersion(ctx, tx, owner)
		return err
	})
	return ver, err
}

func (x xmppStore) SetLastActivity(ctx context.Context, owner xmpp.UserRef, at time.Time, status string) error {
	_, err := x.db.w.ExecContext(ctx, `INSERT INTO last_activity(app_id, user_id, at, status) VALUES(?,?,?,?)
		ON CONFLICT(app_id, user_id) DO UPDATE SET at = excluded.at, status = excluded.status`,
		owner.App, owner.User, unix(at), status)
	return err
}

func (x xmppStore) LastActivity(ctx context.Context, owner xmpp.UserRef) (time.Time, string, error) {
	var (
		at     int64
		status string
	)
	err := x.db.r.QueryRowContext(ctx, `SELECT at, status FROM last_activity WHERE app_id = ? AND user_id = ?`,
		owner.App, owner.User).Scan(&at, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, "", account.ErrNotFound
	}
	return fromUnix(at), status, err
}
