package sqlite

import (
	"context"
	"errors"
	"strings"
	"sync"

	"chatd/history"
)

// A batch of messages is stored with a few statements per batch rather than
// seven per message: a statement costs more in database/sql and the driver
// than the b-tree work of one row. Each statement takes its rows as a
// multi-row VALUES list (or an IN list) of bound parameters, in chunks of the
// sizes below so that a few prepared statements serve every batch size.
//
// The writes of a message depend on its dialog only, so they are grouped by
// dialog: the dialogs are read once, the unread counter of each (dialog,
// recipient) rises once by the number of messages, and the last message of
// a dialog is written once, as the messages one after another would leave
// it. Duplicates and missing dialogs are found by reading first, so that
// nothing has to be undone; anything else going wrong sends the batch to the
// per-message way (saveStmts), which reports each message's own error.

var chunkSizes = [...]int{64, 16, 4, 1}

// chunks calls fn for consecutive runs [lo, hi) of n rows, each run of a
// size in chunkSizes.
func chunks(n int, fn func(lo, hi int) error) error {
	for lo := 0; lo < n; {
		k := 1
		for _, c := range chunkSizes {
			if n-lo >= c {
				k = c
				break
			}
		}
		if err := fn(lo, lo+k); err != nil {
			return err
		}
		lo += k
	}
	return nil
}

// rowsQuery is a query with a list of rows: its text for k rows replaces
// "%rows" with k groups of row (such as "(?,?)" or "?"), joined by commas.
type rowsQuery struct {
	text, row string
	once      sync.Once
	byK       map[int]string
}

func (q *rowsQuery) sql(k int) string {
	q.once.Do(func() {
		q.byK = make(map[int]string, len(chunkSizes))
		for _, c := range chunkSizes {
			rows := strings.TrimSuffix(strings.Repeat(q.row+",", c), ",")
			q.byK[c] = strings.Replace(q.text, "%rows", rows, 1)
		}
	})
	return q.byK[k]
}

var (
	saveDialogsQuery = &rowsQuery{text: `SELECT d.id, d.app_id, d.last_message_date_sent, d.last_message_id,
		EXISTS (SELECT 1 FROM dialog_members m WHERE m.dialog_id = d.id AND m.hidden = 1)
		FROM dialogs d WHERE d.id IN (%rows)`, row: "?"}
	saveExistingQuery = &rowsQuery{text: `SELECT id FROM messages WHERE id IN (%rows)`, row: "?"}
	saveInsertQuery   = &rowsQuery{text: `INSERT OR IGNORE INTO messages(id, app_id, dialog_id, text, date_sent, sender_id,
		recipient_id, attachments, custom, markable, created_at, updated_at) VALUES %rows`, row: "(?,?,?,?,?,?,?,?,?,?,?,?)"}
	saveRecipientsQuery = &rowsQuery{text: `INSERT OR IGNORE INTO message_users(message_id, user_id, dialog_id, recipient)
		VALUES %rows`, row: "(?,?,?,1)"}
	saveCountersQuery = &rowsQuery{text: `UPDATE OR IGNORE dialog_members SET unread = unread + v.column3
		FROM (VALUES %rows) AS v
		WHERE dialog_members.dialog_id = v.column1 AND dialog_members.user_id = v.column2 AND dialog_members.occupant = 1`,
		row: "(?,?,?)"}
	saveUnhideQuery = &rowsQuery{text: `UPDATE OR IGNORE dialog_members SET hidden = 0 WHERE dialog_id IN (%rows) AND hidden = 1`,
		row: "?"}
	saveLastQuery = &rowsQuery{text: `UPDATE OR IGNORE dialogs SET last_message = v.column2, last_message_id = v.column3,
		last_message_date_sent = v.column4, last_message_user_id = v.column5, updated_at = max(updated_at, v.column6)
		FROM (VALUES %rows) AS v WHERE dialogs.id = v.column1`, row: "(?,?,?,?,?,?)"}
	saveLastTSQuery = &rowsQuery{text: `UPDATE OR IGNORE dialog_members SET last_ts = v.column2 FROM (VALUES %rows) AS v
		WHERE dialog_members.dialog_id = v.column1 AND dialog_members.last_ts != v.column2`, row: "(?,?)"}
)

// execRows runs q over rows of args, width arguments a row, and returns the
// number of rows changed.
func execRows(ctx context.Context, tx txn, q *rowsQuery, width int, args []any) (int64, error) {
	var changed int64
	err := chunks(len(args)/width, func(lo, hi int) error {
		res, err := tx.ExecContext(ctx, q.sql(hi-lo), args[lo*width:hi*width]...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		changed += n
		return err
	})
	return changed, err
}

// insertRows inserts rows with q, an INSERT OR IGNORE, and fails unless all
// were inserted.
func insertRows(ctx context.Context, tx txn, q *rowsQuery, width int, args []any) error {
	n, err := execRows(ctx, tx, q, width, args)
	if err == nil && n != int64(len(args)/width) {
		err = errNotInserted
	}
	return err
}

// errNotInserted: a row of a batch hit a constraint its checks did not
// foresee (the batch is then stored message by message, which tells which).
var errNotInserted = errors.New("sqlite: a row of the batch was not inserted")

// update runs q, an UPDATE, over rows of args, width arguments a row.
func update(ctx context.Context, tx txn, q *rowsQuery, width int, args []any) error {
	_, err := execRows(ctx, tx, q, width, args)
	return err
}

// queryRows runs q over rows of args (one argument a row) and calls fn with
// each result row.
func queryRows(ctx context.Context, tx txn, q *rowsQuery, args []any, dest []any, fn func() error) error {
	return chunks(len(args), func(lo, hi int) error {
		rows, err := tx.QueryContext(ctx, q.sql(hi-lo), args[lo:hi]...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			if err := fn(); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// saveDialog is what a batch needs of a dialog.
type saveDialog struct {
	app      int64
	hidden   bool // a member hid the dialog
	lastDate int64
	lastID   string
	stored   bool             // a message of the batch was stored in it
	last     *history.Message // the batch's message that is now its last one
	updated  int64            // the latest created_at of the messages that became its last
}

type memberKey struct {
	dialog string
	user   int64
}

// saveBatch stores msgs, setting errs[i] to ErrNotFound or ErrDuplicate for
// a message not stored; any error it returns is about the whole batch (the
// transaction is then rolled back).
func saveBatch(ctx context.Context, tx txn, msgs []*history.Message, errs []error) error {
	dialogs := make(map[string]*saveDialog)
	var args []any
	for _, m := range msgs {
		if _, ok := dialogs[m.DialogID]; !ok {
			dialogs[m.DialogID] = nil
			args = append(args, m.DialogID)
		}
	}
	var (
		id string
		d  saveDialog
	)
	if err := queryRows(ctx, tx, saveDialogsQuery, args, []any{&id, &d.app, &d.lastDate, &d.lastID, &d.hidden}, func() error {
		dialogs[id] = &saveDialog{app: d.app, hidden: d.hidden, lastDate: d.lastDate, lastID: d.lastID}
		return nil
	}); err != nil {
		return err
	}
	args = args[:0]
	for i, m := range msgs {
		if d := dialogs[m.DialogID]; d == nil || d.app != m.AppID {
			errs[i] = history.ErrNotFound
			continue
		}
		args = append(args, m.ID)
	}
	taken := make(map[string]bool)
	if err := queryRows(ctx, tx, saveExistingQuery, args, []any{&id}, func() error {
		taken[id] = true
		return nil
	}); err != nil {
		return err
	}

	args = args[:0]
	var recipients []any
	counters := make(map[memberKey]int)
	var members []memberKey // counters' keys in the order met
	for i, m := range msgs {
		if errs[i] != nil {
			continue
		}
		if taken[m.ID] {
			errs[i] = history.ErrDuplicate
			continue
		}
		taken[m.ID] = true
		args = append(args, m.ID, m.AppID, m.DialogID, m.Text, m.DateSent, m.SenderID, m.RecipientID,
			attachmentsText(m.Attachments), dataText(m.Custom), m.Markable, unix(m.CreatedAt), unix(m.UpdatedAt))
		for _, u := range m.Recipients {
			recipients = append(recipients, m.ID, u, m.DialogID)
			k := memberKey{m.DialogID, u}
			if counters[k] == 0 {
				members = append(members, k)
			}
			counters[k]++
		}
		d := dialogs[m.DialogID]
		d.stored = true
		// The dialog's last message follows the message when it is newer,
		// by date_sent then id.
		if m.DateSent > d.lastDate || m.DateSent == d.lastDate && m.ID > d.lastID {
			d.lastDate, d.lastID, d.last = m.DateSent, m.ID, m
			d.updated = max(d.updated, unix(m.CreatedAt))
		}
	}
	if err := insertRows(ctx, tx, saveInsertQuery, 12, args); err != nil {
		return err
	}
	if err := insertRows(ctx, tx, saveRecipientsQuery, 3, recipients); err != nil {
		return err
	}
	args = args[:0]
	for _, k := range members {
		args = append(args, k.dialog, k.user, counters[k])
	}
	if err := update(ctx, tx, saveCountersQuery, 3, args); err != nil {
		return err
	}
	var unhide, last, lastTS []any
	seen := make(map[string]bool, len(dialogs))
	for _, m := range msgs {
		d := dialogs[m.DialogID]
		if d == nil || !d.stored || seen[m.DialogID] {
			continue
		}
		seen[m.DialogID] = true
		if d.hidden {
			unhide = append(unhide, m.DialogID)
		}
		if l := d.last; l != nil {
			last = append(last, m.DialogID, lastText(l), l.ID, l.DateSent, l.SenderID, d.updated)
			lastTS = append(lastTS, m.DialogID, l.DateSent)
		}
	}
	if err := update(ctx, tx, saveUnhideQuery, 1, unhide); err != nil {
		return err
	}
	if err := update(ctx, tx, saveLastQuery, 6, last); err != nil {
		return err
	}
	return update(ctx, tx, saveLastTSQuery, 2, lastTS)
}
