package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"chatd/history"
	"chatd/internal/oid"
)

// History returns the history.Store of db.
//
// Layout: dialogs (occupants also kept as JSON for rendering), one
// dialog_members row per occupant (and per public-group viewer who changed a
// setting) holding the unread counter, messages, and one message_users row
// per (message, recipient) with its read, delivered and hidden flags, plus
// rows for non-recipients who hid a message. The unread counter of a member
// equals the number of its message_users rows with recipient=1, read=0,
// hidden=0; every write below keeps that true inside its transaction.
func (db *DB) History() history.Store { return historyStore{db} }

type historyStore struct{ db *DB }

var _ history.Store = historyStore{}

const dialogColumns = `d.id, d.app_id, d.type, d.name, d.photo, d.owner_id, d.occupants, d.admins, d.room_name,
	d.join_required, d.data, d.last_message, d.last_message_id, d.last_message_date_sent, d.last_message_user_id,
	d.created_at, d.updated_at`

func scanDialog(row interface{ Scan(...any) error }, extra ...any) (*history.Dialog, error) {
	var (
		d                       history.Dialog
		occupants, admins, data string
		room                    sql.NullString
		created, updated        int64
	)
	dest := []any{&d.ID, &d.AppID, &d.Type, &d.Name, &d.Photo, &d.OwnerID, &occupants, &admins, &room,
		&d.JoinRequired, &data, &d.LastMessage, &d.LastMessageID, &d.LastMessageDateSent, &d.LastMessageUserID,
		&created, &updated}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, history.ErrNotFound
		}
		return nil, err
	}
	var err error
	if d.Occupants, err = intList(occupants); err != nil {
		return nil, err
	}
	if d.AdminIDs, err = intList(admins); err != nil {
		return nil, err
	}
	if data != "{}" {
		if err := json.Unmarshal([]byte(data), &d.Data); err != nil {
			return nil, err
		}
	}
	if len(d.Data) == 0 {
		d.Data = nil
	}
	d.RoomName = room.String
	d.CreatedAt, d.UpdatedAt = fromUnix(created), fromUnix(updated)
	return &d, nil
}

// intList reads a JSON array of integers such as "[1,2,3]" (how id lists
// are stored) without the reflection of encoding/json.
func intList(s string) ([]int64, error) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, fmt.Errorf("sqlite: not an id list: %q", s)
	}
	s = s[1 : len(s)-1]
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := make([]int64, 0, strings.Count(s, ",")+1)
	for part := range strings.SplitSeq(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(part), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("sqlite: not an id list: %q", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("sqlite: encoding " + err.Error())
	}
	return string(b)
}

func ids64(v []int64) []int64 {
	if v == nil {
		return []int64{}
	}
	return v
}

func pairKey(d *history.Dialog) any {
	if d.Type != history.Private || len(d.Occupants) != 2 {
		return nil
	}
	return strconv.FormatInt(d.Occupants[0], 10) + ":" + strconv.FormatInt(d.Occupants[1], 10)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func dataText(m map[string]string) string {
	if m == nil {
		return "{}"
	}
	return jsonText(m)
}

func (h historyStore) CreateDialog(ctx context.Context, d *history.Dialog) error {
	return h.db.tx(ctx, func(tx txn) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO dialogs(id, app_id, type, name, photo, owner_id, occupants, admins,
			room_name, pair_key, join_required, data, created_at, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			d.ID, d.AppID, d.Type, d.Name, d.Photo, d.OwnerID, jsonText(ids64(d.Occupants)), jsonText(ids64(d.AdminIDs)),
			nullable(d.RoomName), pairKey(d), d.JoinRequired, dataText(d.Data), unix(d.CreatedAt), unix(d.UpdatedAt))
		if err != nil {
			if uniqueViolation(err) != "" {
				return history.ErrDuplicate
			}
			return err
		}
		for _, u := range d.Occupants {
			if _, err := tx.ExecContext(ctx, `INSERT INTO dialog_members(dialog_id, user_id, app_id, occupant)
				VALUES(?,?,?,1)`, d.ID, u, d.AppID); err != nil {
				return err
			}
		}
		return nil
	})
}

func (h historyStore) Dialog(ctx context.Context, app int64, id string) (*history.Dialog, error) {
	return scanDialog(h.db.r.QueryRowContext(ctx, `SELECT `+dialogColumns+` FROM dialogs d WHERE d.app_id = ? AND d.id = ?`, app, id))
}

func (h historyStore) PrivateDialog(ctx context.Context, app, a, b int64) (*history.Dialog, error) {
	lo, hi := min(a, b), max(a, b)
	key := strconv.FormatInt(lo, 10) + ":" + strconv.FormatInt(hi, 10)
	return scanDialog(h.db.r.QueryRowContext(ctx, `SELECT `+dialogColumns+` FROM dialogs d WHERE d.app_id = ? AND d.pair_key = ?`, app, key))
}

func (h historyStore) RoomDialog(ctx context.Context, app int64, name string) (*history.Dialog, error) {
	return scanDialog(h.db.r.QueryRowContext(ctx, `SELECT `+dialogColumns+` FROM dialogs d WHERE d.app_id = ? AND d.room_name = ?`, app, name))
}

func (h historyStore) UpdateDialog(ctx context.Context, d *history.Dialog) error {
	return h.db.tx(ctx, func(tx txn) error {
		var old string
		if err := tx.QueryRowContext(ctx, `SELECT occupants FROM dialogs WHERE app_id = ? AND id = ?`, d.AppID, d.ID).Scan(&old); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return history.ErrNotFound
			}
			return err
		}
		var before []int64
		if err := json.Unmarshal([]byte(old), &before); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE dialogs SET name = ?, photo = ?, occupants = ?, admins = ?,
			join_required = ?, data = ?, updated_at = ? WHERE app_id = ? AND id = ?`,
			d.Name, d.Photo, jsonText(ids64(d.Occupants)), jsonText(ids64(d.AdminIDs)), d.JoinRequired,
			dataText(d.Data), unix(d.UpdatedAt), d.AppID, d.ID); err != nil {
			return err
		}
		now := map[int64]bool{}
		for _, u := range d.Occupants {
			now[u] = true
		}
		for _, u := range before {
			if !now[u] {
				// A former occupant's counter goes; it is recounted from the
				// messages should the user come back.
				if _, err := tx.ExecContext(ctx, `DELETE FROM dialog_members WHERE dialog_id = ? AND user_id = ?`, d.ID, u); err != nil {
					return err
				}
			}
		}
		for _, u := range d.Occupants {
			if _, err := tx.ExecContext(ctx, `INSERT INTO dialog_members(dialog_id, user_id, app_id, occupant, unread, last_ts)
				VALUES(?, ?, ?, 1, (SELECT count(*) FROM message_users WHERE dialog_id = ? AND user_id = ? AND recipient = 1
					AND read = 0 AND hidden = 0), (SELECT last_message_date_sent FROM dialogs WHERE id = ?))
				ON CONFLICT(dialog_id, user_id) DO UPDATE SET occupant = 1`, d.ID, u, d.AppID, d.ID, u, d.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

func (h historyStore) DeleteDialog(ctx context.Context, app int64, id string) error {
	return h.db.tx(ctx, func(tx txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM dialogs WHERE app_id = ? AND id = ?`, app, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return history.ErrNotFound
		}
		for _, q := range []string{
			`DELETE FROM dialog_members WHERE dialog_id = ?`,
			`DELETE FROM message_users WHERE dialog_id = ?`,
			`DELETE FROM messages WHERE dialog_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// condSQL compiles typed conditions to SQL over the given columns.
type condSQL struct {
	where []string
	args  []any
}

func (c *condSQL) add(expr string, args ...any) {
	c.where = append(c.where, expr)
	c.args = append(c.args, args...)
}

// distinct is the number of different values: "all" is satisfied when
// that many of them are present.
func distinct(vals []any) int {
	seen := map[any]bool{}
	for _, v := range vals {
		seen[v] = true
	}
	return len(seen)
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

func compare(c *condSQL, col string, cond history.Cond) error {
	v := cond.Values[0]
	switch cond.Op {
	case history.OpEq:
		c.add(col+" = ?", v)
	case history.OpNe:
		c.add(col+" != ?", v)
	case history.OpLt:
		c.add(col+" < ?", v)
	case history.OpLte:
		c.add(col+" <= ?", v)
	case history.OpGt:
		c.add(col+" > ?", v)
	case history.OpGte:
		c.add(col+" >= ?", v)
	case history.OpIn:
		c.add(col+" IN ("+placeholders(len(cond.Values))+")", cond.Values...)
	case history.OpNin:
		c.add(col+" NOT IN ("+placeholders(len(cond.Values))+")", cond.Values...)
	case history.OpContains:
		c.add(containsSQL(col), v)
	default:
		return fmt.Errorf("sqlite: operator %s does not apply to %s", cond.Op, cond.Field)
	}
	return nil
}

var dialogColumn = map[string]string{
	"_id": "d.id", "type": "d.type", "name": "d.name", "user_id": "d.owner_id", "photo": "d.photo",
	"last_message_date_sent": "d.last_message_date_sent", "last_message_user_id": "d.last_message_user_id",
	"last_message": "d.last_message", "created_at": "d.created_at", "updated_at": "d.updated_at",
}

func dialogConds(q history.DialogQuery) (*condSQL, error) {
	c := &condSQL{}
	for _, cond := range q.Conds {
		switch {
		case cond.Field == "occupants_ids":
			sub := `(SELECT count(*) FROM dialog_members x WHERE x.dialog_id = d.id AND x.occupant = 1 AND x.user_id IN (` +
				placeholders(len(cond.Values)) + `))`
			switch cond.Op {
			case history.OpAll:
				c.add(sub+" = "+strconv.Itoa(distinct(cond.Values)), cond.Values...)
			case history.OpIn, history.OpEq:
				c.add(sub+" > 0", cond.Values...)
			case history.OpNin, history.OpNe:
				c.add(sub+" = 0", cond.Values...)
			default:
				return nil, fmt.Errorf("sqlite: operator %s does not apply to occupants_ids", cond.Op)
			}
		case strings.HasPrefix(cond.Field, "data."):
			name := strings.TrimPrefix(cond.Field, "data.")
			if strings.ContainsAny(name, `"\`) {
				return nil, &history.QueryError{Msg: "bad data field name " + name}
			}
			if err := compare(c, `json_extract(d.data, '$."`+name+`"')`, cond); err != nil {
				return nil, err
			}
		default:
			col, ok := dialogColumn[cond.Field]
			if !ok {
				return nil, fmt.Errorf("sqlite: unknown dialog field %s", cond.Field)
			}
			if err := compare(c, col, cond); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

func (h historyStore) FindDialogs(ctx context.Context, app, user int64, q history.DialogQuery) ([]*history.Dialog, int, error) {
	conds, err := dialogConds(q)
	if err != nil {
		return nil, 0, err
	}
	extra := ""
	if len(conds.where) > 0 {
		extra = " AND " + strings.Join(conds.where, " AND ")
	}
	// Two branches, each on its own index: the dialogs the user occupies
	// (dialog_members, whose last_ts copies the dialog's last message time)
	// and the public groups (dialogs_public).
	members := `FROM dialog_members m JOIN dialogs d ON d.id = m.dialog_id
		WHERE m.app_id = ? AND m.user_id = ? AND m.occupant = 1 AND m.hidden = 0` + extra
	membersArgs := append([]any{app, user}, conds.args...)
	public := `FROM dialogs d LEFT JOIN dialog_members m ON m.dialog_id = d.id AND m.user_id = ?
		WHERE d.app_id = ? AND d.type = 1 AND coalesce(m.hidden, 0) = 0` + extra
	publicArgs := append([]any{user, app}, conds.args...)
	var nm, np int
	countMembers := `SELECT count(*) ` + members
	if extra == "" {
		// Without conditions on the dialogs the count needs only the
		// index of the user's memberships (a dialog's members are deleted
		// with it), not a lookup of each dialog: a user of 1,000 dialogs
		// costs 1,000 fewer.
		countMembers = `SELECT count(*) FROM dialog_members m
			WHERE m.app_id = ? AND m.user_id = ? AND m.occupant = 1 AND m.hidden = 0`
	}
	if err := h.db.r.QueryRowContext(ctx, countMembers, membersArgs...).Scan(&nm); err != nil {
		return nil, 0, err
	}
	if err := h.db.r.QueryRowContext(ctx, `SELECT count(*) `+public, publicArgs...).Scan(&np); err != nil {
		return nil, 0, err
	}
	if q.Count {
		return nil, nm + np, nil
	}
	limit := q.Limit
	if limit <= 0 {
		limit = history.DefaultLimit
	}
	sortCol, desc := "last_message_date_sent", true
	if q.Sort != "" {
		sortCol, desc = strings.TrimPrefix(dialogColumn[q.Sort], "d."), q.Desc
	}
	dir := " ASC"
	if desc {
		dir = " DESC"
	}
	// The default order, and sorting by the last message, follow the
	// indexes; other orders sort the candidates.
	memberOrder, publicOrder := "d."+sortCol+dir+", d.id"+dir, "d."+sortCol+dir+", d.id"+dir
	if sortCol == "last_message_date_sent" {
		memberOrder = "m.last_ts" + dir + ", m.dialog_id" + dir
	}
	want := q.Skip + limit
	read := func(query string, args []any) ([]*history.Dialog, error) {
		rows, err := h.db.r.QueryContext(ctx, query, append(args, want)...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []*history.Dialog
		for rows.Next() {
			var unread int
			d, err := scanDialog(rows, &unread)
			if err != nil {
				return nil, err
			}
			d.UnreadCount = unread
			out = append(out, d)
		}
		return out, rows.Err()
	}
	var all []*history.Dialog
	if nm > 0 {
		ds, err := read(`SELECT `+dialogColumns+`, m.unread `+members+` ORDER BY `+memberOrder+` LIMIT ?`, membersArgs)
		if err != nil {
			return nil, 0, err
		}
		all = ds
	}
	if np > 0 {
		ds, err := read(`SELECT `+dialogColumns+`, 0 `+public+` ORDER BY `+publicOrder+` LIMIT ?`, publicArgs)
		if err != nil {
			return nil, 0, err
		}
		all = append(all, ds...)
		slices.SortStableFunc(all, func(a, b *history.Dialog) int { return compareDialogs(a, b, sortCol, desc) })
	}
	if q.Skip >= len(all) {
		return nil, nm + np, nil
	}
	all = all[q.Skip:]
	if len(all) > limit {
		all = all[:limit]
	}
	return all, nm + np, nil
}

// compareDialogs orders two dialogs by a sort column, then id, as the SQL
// does.
func compareDialogs(a, b *history.Dialog, col string, desc bool) int {
	var c int
	switch col {
	case "last_message_date_sent":
		c = cmp.Compare(a.LastMessageDateSent, b.LastMessageDateSent)
	case "type":
		c = cmp.Compare(a.Type, b.Type)
	case "name":
		c = strings.Compare(a.Name, b.Name)
	case "owner_id":
		c = cmp.Compare(a.OwnerID, b.OwnerID)
	case "created_at":
		c = a.CreatedAt.Compare(b.CreatedAt)
	case "updated_at":
		c = a.UpdatedAt.Compare(b.UpdatedAt)
	}
	if c == 0 {
		c = strings.Compare(a.ID, b.ID)
	}
	if desc {
		return -c
	}
	return c
}

func (h historyStore) HideDialog(ctx context.Context, app int64, id string, user int64) error {
	return h.db.tx(ctx, func(tx txn) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO dialog_members(dialog_id, user_id, app_id, hidden, last_ts)
			VALUES(?,?,?,1, (SELECT last_message_date_sent FROM dialogs WHERE id = ?))
			ON CONFLICT(dialog_id, user_id) DO UPDATE SET hidden = 1, unread = 0`, id, user, app, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE message_users SET read = 1, delivered = 1
			WHERE dialog_id = ? AND user_id = ? AND recipient = 1 AND read = 0`, id, user)
		return err
	})
}

func (h historyStore) UnhideDialog(ctx context.Context, app int64, id string, user int64) error {
	_, err := h.db.w.ExecContext(ctx, `UPDATE dialog_members SET hidden = 0
		WHERE dialog_id = ? AND user_id = ? AND app_id = ? AND hidden = 1`, id, user, app)
	return err
}

func (h historyStore) Notifications(ctx context.Context, app int64, id string, user int64) (bool, error) {
	var on bool
	err := h.db.r.QueryRowContext(ctx, `SELECT notifications FROM dialog_members WHERE dialog_id = ? AND user_id = ?`,
		id, user).Scan(&on)
	if errors.Is(err, sql.ErrNoRows) {
		return true, nil
	}
	return on, err
}

func (h historyStore) SetNotifications(ctx context.Context, app int64, id string, user int64, enabled bool) error {
	_, err := h.db.w.ExecContext(ctx, `INSERT INTO dialog_members(dialog_id, user_id, app_id, notifications, last_ts)
		VALUES(?,?,?,?, coalesce((SELECT last_message_date_sent FROM dialogs WHERE id = ?), 0))
		ON CONFLICT(dialog_id, user_id) DO UPDATE SET notifications = excluded.notifications`, id, user, app, enabled, id)
	return err
}

// SaveMessages stores a batch in one transaction (the group commit); each
// message succeeds or fails on its own. The batch is first stored a few
// statements for all its messages (saveBatch), which leaves out duplicates
// and messages to missing dialogs; should anything else fail, that
// transaction is rolled back and the batch is stored again message by
// message, with one savepoint each, so that only the failing messages are
// left out.
func (h historyStore) SaveMessages(ctx context.Context, msgs []*history.Message) []error {
	errs := make([]error, len(msgs))
	// The statements run without the deadline: the driver would watch it
	// with a goroutine per statement. The transaction still ends with it.
	err := h.db.tx(ctx, func(tx txn) error { return saveBatch(context.WithoutCancel(ctx), tx, msgs, errs) })
	if err == nil {
		for _, err := range errs {
			if err != nil {
				return errs
			}
		}
		return nil
	}
	clear(errs)
	if ctx.Err() != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	err = h.db.tx(ctx, func(tx txn) error {
		stmts, err := prepareSave(ctx, tx)
		if err != nil {
			return err
		}
		defer stmts.close()
		for i, m := range msgs {
			if _, err := tx.ExecContext(ctx, "SAVEPOINT msg"); err != nil {
				return err
			}
			if err := stmts.save(ctx, m); err != nil {
				errs[i] = err
				if _, err := tx.ExecContext(ctx, "ROLLBACK TO msg"); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, "RELEASE msg"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

type saveStmts struct {
	dialog, insert, recipient, counters, unhide, last, lastTS *sql.Stmt
}

func prepareSave(ctx context.Context, tx txn) (*saveStmts, error) {
	var s saveStmts
	for _, p := range []struct {
		dst *(*sql.Stmt)
		sql string
	}{
		{&s.dialog, `SELECT type FROM dialogs WHERE app_id = ? AND id = ?`},
		{&s.insert, `INSERT INTO messages(id, app_id, dialog_id, text, date_sent, sender_id, recipient_id, attachments,
			custom, markable, created_at, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)`},
		// One statement each for all recipients, however many (a big group's
		// message would otherwise cost two statements per occupant).
		{&s.recipient, `INSERT INTO message_users(message_id, user_id, dialog_id, recipient)
			SELECT ?, value, ?, 1 FROM json_each(?)`},
		{&s.counters, `UPDATE dialog_members SET unread = unread + 1 WHERE dialog_id = ? AND occupant = 1
			AND user_id IN (SELECT value FROM json_each(?))`},
		{&s.unhide, `UPDATE dialog_members SET hidden = 0 WHERE dialog_id = ? AND hidden = 1`},
		{&s.last, `UPDATE dialogs SET last_message = ?, last_message_id = ?, last_message_date_sent = ?,
			last_message_user_id = ?, updated_at = max(updated_at, ?)
			WHERE id = ? AND (last_message_date_sent < ? OR (last_message_date_sent = ? AND last_message_id < ?))`},
		{&s.lastTS, `UPDATE dialog_members SET last_ts = ? WHERE dialog_id = ? AND last_ts != ?`},
	} {
		st, err := tx.PrepareContext(ctx, p.sql)
		if err != nil {
			s.close()
			return nil, err
		}
		*p.dst = st
	}
	return &s, nil
}

func (s *saveStmts) close() {
	for _, st := range []*sql.Stmt{s.dialog, s.insert, s.recipient, s.counters, s.unhide, s.last, s.lastTS} {
		if st != nil {
			st.Close()
		}
	}
}

func attachmentsText(a []history.Attachment) string {
	if a == nil {
		return "[]"
	}
	return jsonText(a)
}

func (s *saveStmts) save(ctx context.Context, m *history.Message) error {
	var typ int
	if err := s.dialog.QueryRowContext(ctx, m.AppID, m.DialogID).Scan(&typ); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return history.ErrNotFound
		}
		return err
	}
	if _, err := s.insert.ExecContext(ctx, m.ID, m.AppID, m.DialogID, m.Text, m.DateSent, m.SenderID, m.RecipientID,
		attachmentsText(m.Attachments), dataText(m.Custom), m.Markable, unix(m.CreatedAt), unix(m.UpdatedAt)); err != nil {
		if uniqueViolation(err) != "" {
			return history.ErrDuplicate
		}
		return err
	}
	if len(m.Recipients) > 0 {
		recipients := jsonText(m.Recipients)
		if _, err := s.recipient.ExecContext(ctx, m.ID, m.DialogID, recipients); err != nil {
			return err
		}
		if _, err := s.counters.ExecContext(ctx, m.DialogID, recipients); err != nil {
			return err
		}
	}
	if _, err := s.unhide.ExecContext(ctx, m.DialogID); err != nil {
		return err
	}
	res, err := s.last.ExecContext(ctx, lastText(m), m.ID, m.DateSent, m.SenderID, unix(m.CreatedAt), m.DialogID,
		m.DateSent, m.DateSent, m.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		_, err = s.lastTS.ExecContext(ctx, m.DateSent, m.DialogID, m.DateSent)
	}
	return err
}

// lastText is what a dialog shows as its last message: the text, or the
// attachment's type in brackets for a message with none.
func lastText(m *history.Message) string {
	if m.Text != "" || len(m.Attachments) == 0 {
		return m.Text
	}
	return "[" + m.Attachments[0]["type"] + "]"
}

const messageColumns = `m.id, m.app_id, m.dialog_id, m.text, m.date_sent, m.sender_id, m.recipient_id, m.attachments,
	m.custom, m.markable, m.created_at, m.updated_at`

func scanMessage(row interface{ Scan(...any) error }, extra ...any) (*history.Message, error) {
	var (
		m                   history.Message
		attachments, custom string
		created, updated    int64
	)
	if err := row.Scan(append([]any{&m.ID, &m.AppID, &m.DialogID, &m.Text, &m.DateSent, &m.SenderID, &m.RecipientID,
		&attachments, &custom, &m.Markable, &created, &updated}, extra...)...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, history.ErrNotFound
		}
		return nil, err
	}
	if attachments != "[]" {
		if err := json.Unmarshal([]byte(attachments), &m.Attachments); err != nil {
			return nil, err
		}
	}
	if len(m.Attachments) == 0 {
		m.Attachments = nil
	}
	if custom != "{}" {
		if err := json.Unmarshal([]byte(custom), &m.Custom); err != nil {
			return nil, err
		}
	}
	if len(m.Custom) == 0 {
		m.Custom = nil
	}
	m.CreatedAt, m.UpdatedAt = fromUnix(created), fromUnix(updated)
	m.ReadIDs = []int64{m.SenderID}
	m.DeliveredIDs = []int64{m.SenderID}
	return &m, nil
}

// loadMarks fills recipients and read/delivered marks of messages of one
// dialog. A recipient's marks are stored in the order of (dialog, message
// id), and ids are made from the time: when the messages are a run of the
// dialog's history in date order (contiguous) whose ids follow their dates,
// their marks are one range of rows, read in one pass. Otherwise (a page
// with filters, sorted by something else, or with ids a client chose out of
// step with the dates) the range could hold much of the dialog, and each
// message's marks are looked up instead.
func (h historyStore) loadMarks(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, dialog string, msgs []*history.Message, contiguous bool) error {
	if len(msgs) == 0 {
		return nil
	}
	byID := make(map[string]*history.Message, len(msgs))
	for _, m := range msgs {
		byID[m.ID] = m
	}
	const marks = `SELECT message_id, user_id, read, delivered FROM message_users WHERE dialog_id = ? AND recipient = 1`
	var (
		rows *sql.Rows
		err  error
	)
	if len(msgs) == 1 || contiguous && idsFollowDates(msgs) {
		lo, hi := msgs[0].ID, msgs[len(msgs)-1].ID
		if lo > hi {
			lo, hi = hi, lo
		}
		rows, err = q.QueryContext(ctx, marks+` AND message_id BETWEEN ? AND ?`, dialog, lo, hi)
	} else {
		args := make([]any, 0, len(msgs)+1)
		args = append(args, dialog)
		for _, m := range msgs {
			args = append(args, m.ID)
		}
		rows, err = q.QueryContext(ctx, marks+` AND message_id IN (`+placeholders(len(msgs))+`)`, args...)
	}
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id              string
			user            int64
			read, delivered bool
		)
		if err := rows.Scan(&id, &user, &read, &delivered); err != nil {
			return err
		}
		m := byID[id]
		if m == nil {
			continue // in the range, not on the page
		}
		m.Recipients = append(m.Recipients, user)
		if read {
			m.ReadIDs = append(m.ReadIDs, user)
		}
		if delivered {
			m.DeliveredIDs = append(m.DeliveredIDs, user)
		}
	}
	return rows.Err()
}

// idSlack is how far an id's time may stray from its message's date_sent
// for idsFollowDates: the range of a page's ids then spans its dates and at
// most this much on either side.
const idSlack = 60 // seconds

// idsFollowDates reports whether the messages' ids all rise or all fall, and
// each id's time is within idSlack of its message's date_sent.
func idsFollowDates(msgs []*history.Message) bool {
	up, down := true, true
	for i, m := range msgs {
		if d := oid.Time(m.ID).Unix() - m.DateSent; d > idSlack || d < -idSlack {
			return false
		}
		if i == 0 {
			continue
		}
		switch cmp.Compare(msgs[i-1].ID, m.ID) {
		case -1:
			down = false
		case 1:
			up = false
		}
	}
	return up || down
}

const notHidden = ` AND NOT EXISTS (SELECT 1 FROM message_users h WHERE h.dialog_id = m.dialog_id AND h.message_id = m.id
	AND h.user_id = ? AND h.hidden = 1)`

func (h historyStore) Message(ctx context.Context, app int64, id string, viewer int64) (*history.Message, error) {
	q := `SELECT ` + messageColumns + ` FROM messages m WHERE m.app_id = ? AND m.id = ?`
	args := []any{app, id}
	if viewer != 0 {
		q += notHidden
		args = append(args, viewer)
	}
	m, err := scanMessage(h.db.r.QueryRowContext(ctx, q, args...))
	if err != nil {
		return nil, err
	}
	return m, h.loadMarks(ctx, h.db.r, m.DialogID, []*history.Message{m}, true)
}

var messageColumn = map[string]string{
	"_id": "m.id", "message": "m.text", "date_sent": "m.date_sent", "sender_id": "m.sender_id",
	"recipient_id": "m.recipient_id", "created_at": "m.created_at", "updated_at": "m.updated_at",
}

// messageWhere is the WHERE clause over messages m selecting the messages
// of a dialog that match conds, without those deleted for viewer; hid tells
// whether viewer deleted any there.
func (h historyStore) messageWhere(ctx context.Context, app int64, dialog string, viewer int64, conds []history.Cond) (where string, args []any, hid bool, err error) {
	c := &condSQL{}
	for _, cond := range conds {
		if cond.Field == "attachments.type" {
			sub := `(SELECT count(DISTINCT json_extract(a.value, '$.type')) FROM json_each(m.attachments) a
				WHERE json_extract(a.value, '$.type') IN (` + placeholders(len(cond.Values)) + `))`
			switch cond.Op {
			case history.OpEq, history.OpIn:
				c.add(sub+" > 0", cond.Values...)
			case history.OpNe, history.OpNin:
				c.add(sub+" = 0", cond.Values...)
			case history.OpAll:
				c.add(sub+" = "+strconv.Itoa(distinct(cond.Values)), cond.Values...)
			default:
				return "", nil, false, fmt.Errorf("sqlite: operator %s does not apply to attachments.type", cond.Op)
			}
			continue
		}
		col, ok := messageColumn[cond.Field]
		if !ok {
			return "", nil, false, fmt.Errorf("sqlite: unknown message field %s", cond.Field)
		}
		if err := compare(c, col, cond); err != nil {
			return "", nil, false, err
		}
	}
	where = `m.app_id = ? AND m.dialog_id = ?`
	args = []any{app, dialog}
	if viewer != 0 {
		// Most users never hide a message of a dialog; only for those who did
		// is each message checked.
		err := h.db.r.QueryRowContext(ctx, `SELECT hid FROM dialog_members WHERE dialog_id = ? AND user_id = ?`,
			dialog, viewer).Scan(&hid)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return "", nil, false, err
		}
		if hid {
			where += notHidden
			args = append(args, viewer)
		}
	}
	args = append(args, c.args...)
	if len(c.where) > 0 {
		where += " AND " + strings.Join(c.where, " AND ")
	}
	return where, args, hid, nil
}

func (h historyStore) FindMessages(ctx context.Context, app int64, dialog string, viewer int64, q history.MessageQuery) ([]*history.Message, error) {
	where, args, hid, err := h.messageWhere(ctx, app, dialog, viewer, q.Conds)
	if err != nil {
		return nil, err
	}
	order := "m.date_sent ASC, m.id ASC"
	if q.Sort != "" {
		dir := " ASC"
		if q.Desc {
			dir = " DESC"
		}
		order = messageColumn[q.Sort] + dir + ", m.id" + dir
	}
	limit := q.Limit
	if limit <= 0 {
		limit = history.DefaultLimit
	}
	rows, err := h.db.r.QueryContext(ctx, `SELECT `+messageColumns+` FROM messages m WHERE `+where+` ORDER BY `+order+
		` LIMIT ? OFFSET ?`, append(args, limit, q.Skip)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*history.Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// The marks are a second read: a message deleted in between comes
	// without its recipients' marks, as it goes.
	contiguous := len(q.Conds) == 0 && (q.Sort == "" || q.Sort == "date_sent") && !hid
	return out, h.loadMarks(ctx, h.db.r, dialog, out, contiguous)
}

func (h historyStore) CountMessages(ctx context.Context, app int64, dialog string, viewer int64, q history.MessageQuery) (int, error) {
	where, args, _, err := h.messageWhere(ctx, app, dialog, viewer, q.Conds)
	if err != nil {
		return 0, err
	}
	var n int
	err = h.db.r.QueryRowContext(ctx, `SELECT count(*) FROM messages m WHERE `+where, args...).Scan(&n)
	return n, err
}

// markSQL returns the column a mark sets.
func markColumn(mark history.Mark) string {
	if mark == history.Read {
		return "read"
	}
	return "delivered"
}

// applyMark sets the mark on the selected rows and, for read marks, lowers
// the unread counter by the rows that counted.
func applyMark(ctx context.Context, tx txn, dialog string, user int64, mark history.Mark, filter string, args ...any) (int, error) {
	col := markColumn(mark)
	rows, err := tx.QueryContext(ctx, `UPDATE message_users SET `+col+` = 1 WHERE dialog_id = ? AND user_id = ?
		AND recipient = 1 AND `+col+` = 0`+filter+` RETURNING hidden`, append([]any{dialog, user}, args...)...)
	if err != nil {
		return 0, err
	}
	n, counted := 0, 0
	for rows.Next() {
		var hidden bool
		if err := rows.Scan(&hidden); err != nil {
			rows.Close()
			return 0, err
		}
		n++
		if !hidden {
			counted++
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if mark == history.Read && counted > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE dialog_members SET unread = max(0, unread - ?)
			WHERE dialog_id = ? AND user_id = ? AND occupant = 1`, counted, dialog, user); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func (h historyStore) MarkMessages(ctx context.Context, app int64, dialog string, user int64, ids []string, mark history.Mark) (int, error) {
	var n int
	err := h.db.tx(ctx, func(tx txn) error {
		filter := ""
		var args []any
		if ids != nil {
			if len(ids) == 0 {
				return nil
			}
			filter = ` AND message_id IN (` + placeholders(len(ids)) + `)`
			for _, id := range ids {
				args = append(args, id)
			}
		}
		var err error
		n, err = applyMark(ctx, tx, dialog, user, mark, filter, args...)
		return err
	})
	return n, err
}

func (h historyStore) MarkUpTo(ctx context.Context, app int64, dialog string, user int64, upTo string, mark history.Mark) (int, error) {
	var n int
	err := h.db.tx(ctx, func(tx txn) error {
		var ds int64
		if err := tx.QueryRowContext(ctx, `SELECT date_sent FROM messages WHERE app_id = ? AND dialog_id = ? AND id = ?`,
			app, dialog, upTo).Scan(&ds); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return history.ErrNotFound
			}
			return err
		}
		var err error
		// Each of the user's unmarked messages is checked by id, so that
		// marking costs what is still unmarked, not the dialog's length.
		n, err = applyMark(ctx, tx, dialog, user, mark, ` AND EXISTS (SELECT 1 FROM messages m
			WHERE m.id = message_users.message_id AND (m.date_sent < ? OR (m.date_sent = ? AND m.id <= ?)))`, ds, ds, upTo)
		return err
	})
	return n, err
}

func (h historyStore) EditMessage(ctx context.Context, app int64, id, text string, at time.Time) error {
	return h.db.tx(ctx, func(tx txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages SET text = ?, updated_at = ? WHERE app_id = ? AND id = ?`,
			text, unix(at), app, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return history.ErrNotFound
		}
		_, err = tx.ExecContext(ctx, `UPDATE dialogs SET last_message = ? WHERE app_id = ? AND last_message_id = ?`, text, app, id)
		return err
	})
}

func (h historyStore) HideMessages(ctx context.Context, app int64, user int64, ids []string) ([]string, error) {
	var done []string
	err := h.db.tx(ctx, func(tx txn) error {
		done = nil
		for _, id := range ids {
			var dialog string
			if err := tx.QueryRowContext(ctx, `SELECT dialog_id FROM messages WHERE app_id = ? AND id = ?`, app, id).Scan(&dialog); err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					continue
				}
				return err
			}
			var recipient, read, hidden bool
			err := tx.QueryRowContext(ctx, `SELECT recipient, read, hidden FROM message_users
				WHERE dialog_id = ? AND message_id = ? AND user_id = ?`, dialog, id, user).Scan(&recipient, &read, &hidden)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO dialog_members(dialog_id, user_id, app_id, hid, last_ts)
				VALUES(?, ?, ?, 1, coalesce((SELECT last_message_date_sent FROM dialogs WHERE id = ?), 0))
				ON CONFLICT(dialog_id, user_id) DO UPDATE SET hid = 1`, dialog, user, app, dialog); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO message_users(message_id, user_id, dialog_id, hidden) VALUES(?,?,?,1)
				ON CONFLICT(dialog_id, message_id, user_id) DO UPDATE SET hidden = 1`, id, user, dialog); err != nil {
				return err
			}
			if recipient && !read && !hidden {
				if _, err := tx.ExecContext(ctx, `UPDATE dialog_members SET unread = max(0, unread - 1)
					WHERE dialog_id = ? AND user_id = ? AND occupant = 1`, dialog, user); err != nil {
					return err
				}
			}
			done = append(done, id)
		}
		return nil
	})
	return done, err
}

func (h historyStore) DeleteMessages(ctx context.Context, app int64, ids []string) ([]string, error) {
	var done []string
	err := h.db.tx(ctx, func(tx txn) error {
		done = nil
		touched := map[string]bool{}
		for _, id := range ids {
			var dialog string
			if err := tx.QueryRowContext(ctx, `SELECT dialog_id FROM messages WHERE app_id = ? AND id = ?`, app, id).Scan(&dialog); err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					continue
				}
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE dialog_members SET unread = max(0, unread - 1)
				WHERE dialog_id = ? AND occupant = 1 AND user_id IN (SELECT user_id FROM message_users
					WHERE dialog_id = ? AND message_id = ? AND recipient = 1 AND read = 0 AND hidden = 0)`,
				dialog, dialog, id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM message_users WHERE dialog_id = ? AND message_id = ?`,
				dialog, id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE id = ?`, id); err != nil {
				return err
			}
			touched[dialog] = true
			done = append(done, id)
		}
		for dialog := range touched {
			// The last message may be gone: take the newest remaining one.
			if _, err := tx.ExecContext(ctx, `UPDATE dialogs SET
				last_message = coalesce((SELECT CASE WHEN m.text != '' OR m.attachments = '[]' THEN m.text
					ELSE '[' || coalesce(json_extract(m.attachments, '$[0].type'), '') || ']' END
					FROM messages m WHERE m.dialog_id = dialogs.id ORDER BY m.date_sent DESC, m.id DESC LIMIT 1), ''),
				last_message_id = coalesce((SELECT m.id FROM messages m WHERE m.dialog_id = dialogs.id
					ORDER BY m.date_sent DESC, m.id DESC LIMIT 1), ''),
				last_message_date_sent = coalesce((SELECT m.date_sent FROM messages m WHERE m.dialog_id = dialogs.id
					ORDER BY m.date_sent DESC, m.id DESC LIMIT 1), 0),
				last_message_user_id = coalesce((SELECT m.sender_id FROM messages m WHERE m.dialog_id = dialogs.id
					ORDER BY m.date_sent DESC, m.id DESC LIMIT 1), 0)
				WHERE id = ?`, dialog); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE dialog_members SET last_ts =
				(SELECT last_message_date_sent FROM dialogs WHERE id = ?) WHERE dialog_id = ?`, dialog, dialog); err != nil {
				return err
			}
		}
		return nil
	})
	return done, err
}

func (h historyStore) UnreadCounts(ctx context.Context, app, user int64, dialogs []string) (map[string]int, int, error) {
	out := map[string]int{}
	var total int
	if err := h.db.r.QueryRowContext(ctx, `SELECT coalesce(sum(unread), 0) FROM dialog_members
		WHERE app_id = ? AND user_id = ? AND occupant = 1 AND hidden = 0`, app, user).Scan(&total); err != nil {
		return nil, 0, err
	}
	q := `SELECT dialog_id, unread FROM dialog_members WHERE app_id = ? AND user_id = ? AND occupant = 1 AND hidden = 0`
	args := []any{app, user}
	if dialogs != nil {
		if len(dialogs) == 0 {
			return out, total, nil
		}
		q += ` AND dialog_id IN (` + placeholders(len(dialogs)) + `)`
		for _, d := range dialogs {
			args = append(args, d)
		}
	}
	rows, err := h.db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id string
			n  int
		)
		if err := rows.Scan(&id, &n); err != nil {
			return nil, 0, err
		}
		out[id] = n
	}
	return out, total, rows.Err()
}

func (h historyStore) RecountUnread(ctx context.Context, app int64, dialog string, user int64) (int, error) {
	var n int
	err := h.db.r.QueryRowContext(ctx, `SELECT count(*) FROM message_users u JOIN messages m ON m.id = u.message_id
		WHERE m.app_id = ? AND u.dialog_id = ? AND u.user_id = ? AND u.recipient = 1 AND u.read = 0 AND u.hidden = 0`,
		app, dialog, user).Scan(&n)
	return n, err
}
