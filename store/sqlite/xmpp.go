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
func bumpVersion(ctx context.Context, tx txn, owner xmpp.UserRef) (int64, error) {
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
	err = x.db.tx(ctx, func(tx txn) error {
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
	err := x.db.tx(ctx, func(tx txn) error {
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

func (x xmppStore) PushOffline(ctx context.Context, owner xmpp.UserRef, msg *xmpp.OfflineMessage, limit int) error {
	return x.db.tx(ctx, func(tx txn) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM offline_messages WHERE app_id = ? AND user_id = ?`,
			owner.App, owner.User).Scan(&n); err != nil {
			return err
		}
		if n >= limit {
			return xmpp.ErrOfflineFull
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO offline_messages(app_id, user_id, stamp, data) VALUES(?,?,?,?)`,
			owner.App, owner.User, msg.Stamp.UnixMilli(), msg.Data)
		if err != nil {
			return err
		}
		msg.Seq, err = res.LastInsertId()
		return err
	})
}

func (x xmppStore) OfflineMessages(ctx context.Context, owner xmpp.UserRef, max int) ([]xmpp.OfflineMessage, error) {
	rows, err := x.db.r.QueryContext(ctx, `SELECT seq, stamp, data FROM offline_messages WHERE app_id = ? AND user_id = ?
		ORDER BY seq LIMIT ?`, owner.App, owner.User, max)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []xmpp.OfflineMessage
	for rows.Next() {
		var (
			m     xmpp.OfflineMessage
			stamp int64
		)
		if err := rows.Scan(&m.Seq, &stamp, &m.Data); err != nil {
			return nil, err
		}
		m.Stamp = time.UnixMilli(stamp).UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

func (x xmppStore) DeleteOffline(ctx context.Context, owner xmpp.UserRef, upTo int64) error {
	_, err := x.db.w.ExecContext(ctx, `DELETE FROM offline_messages WHERE app_id = ? AND user_id = ? AND seq <= ?`,
		owner.App, owner.User, upTo)
	return err
}

func (x xmppStore) PrivacyLists(ctx context.Context, owner xmpp.UserRef) ([]xmpp.PrivacyList, string, error) {
	var def string
	err := x.db.r.QueryRowContext(ctx, `SELECT name FROM privacy_defaults WHERE app_id = ? AND user_id = ?`,
		owner.App, owner.User).Scan(&def)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, "", err
	}
	rows, err := x.db.r.QueryContext(ctx, `SELECT name, items FROM privacy_lists WHERE app_id = ? AND user_id = ? ORDER BY name`,
		owner.App, owner.User)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []xmpp.PrivacyList
	for rows.Next() {
		var (
			l     xmpp.PrivacyList
			items string
		)
		if err := rows.Scan(&l.Name, &items); err != nil {
			return nil, "", err
		}
		if err := json.Unmarshal([]byte(items), &l.Items); err != nil {
			return nil, "", err
		}
		out = append(out, l)
	}
	return out, def, rows.Err()
}

func (x xmppStore) PutPrivacyList(ctx context.Context, owner xmpp.UserRef, list xmpp.PrivacyList) error {
	items, err := json.Marshal(list.Items)
	if err != nil {
		return err
	}
	if list.Items == nil {
		items = []byte("[]")
	}
	_, err = x.db.w.ExecContext(ctx, `INSERT INTO privacy_lists(app_id, user_id, name, items) VALUES(?,?,?,?)
		ON CONFLICT(app_id, user_id, name) DO UPDATE SET items = excluded.items`, owner.App, owner.User, list.Name, string(items))
	return err
}

func (x xmppStore) DeletePrivacyList(ctx context.Context, owner xmpp.UserRef, name string) error {
	return x.db.tx(ctx, func(tx txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM privacy_lists WHERE app_id = ? AND user_id = ? AND name = ?`,
			owner.App, owner.User, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return account.ErrNotFound
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM privacy_defaults WHERE app_id = ? AND user_id = ? AND name = ?`,
			owner.App, owner.User, name)
		return err
	})
}

func (x xmppStore) SetDefaultPrivacyList(ctx context.Context, owner xmpp.UserRef, name string) error {
	return x.db.tx(ctx, func(tx txn) error {
		if name == "" {
			_, err := tx.ExecContext(ctx, `DELETE FROM privacy_defaults WHERE app_id = ? AND user_id = ?`, owner.App, owner.User)
			return err
		}
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM privacy_lists WHERE app_id = ? AND user_id = ? AND name = ?`,
			owner.App, owner.User, name).Scan(&one); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return account.ErrNotFound
			}
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO privacy_defaults(app_id, user_id, name) VALUES(?,?,?)
			ON CONFLICT(app_id, user_id) DO UPDATE SET name = excluded.name`, owner.App, owner.User, name)
		return err
	})
}
