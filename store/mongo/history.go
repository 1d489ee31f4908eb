package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"chatd/history"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// History returns the history.Store of db.
//
// # Collections
//
// dialogs holds one document per dialog (_id the dialog id), its occupants
// in occupants_ids, its custom data as a subdocument and its last message
// fields. A private dialog of two users and a room name are unique within
// an application through the placeholder scheme of the user logins (see the
// package documentation): k_pair holds "<low id>:<high id>" for a private
// dialog and k_room the room name when there is one, and otherwise a
// subdocument naming the dialog, a type the real values never have; plain
// unique indexes on (app_id, k_pair) and (app_id, k_room) do the rest.
//
// messages holds one document per message (_id the message id) with its
// recipients, fixed when it is stored, and the types of its attachments
// again as a plain array (attachment_types) for attachments.type queries.
// Keys of custom fields (dialog data, message parameters, attachments) are
// stored escaped, so that any key a client chooses can be stored and
// queried (see escapeKey).
//
// Everything that is per user is kept in documents that are only ever
// inserted and deleted, never updated:
//
//   - pending: per message and recipient, up to three documents with _id
//     "<message>:<user>:<kind>": kind "read" while the recipient has not
//     read the message, "delivered" while it was not delivered to them, and
//     "unread" while it counts as unread (not read and not deleted for the
//     recipient). A message's read and delivered marks are its recipients
//     without such a document. Each records when it was inserted (at, unix
//     seconds) for RepairHistory. The user's unread counter in a dialog is
//     the number of their "unread" documents there, as long as the user is an
//     occupant of the dialog and has not hidden it (store/sqlite drops the
//     counter of a user who leaves and recounts it on return; keeping the
//     documents and not counting them while the user is away gives the same
//     numbers).
//   - hidden_messages: _id "<message>:<user>" for a message deleted for one
//     user only.
//   - dialog_flags: _id "<dialog>:<user>:hidden" while a user has hidden a
//     dialog, "<dialog>:<user>:muted" while a user has turned its
//     notifications off.
//
// # Exact counters without transactions
//
// Neither server gives a transaction (FerretDB 1.24 has none), and FerretDB
// does not apply an update atomically either: its update and findAndModify
// select the matching documents, apply the operators in memory and write
// each document back whole by _id, without checking the filter again and
// counting it as modified even when the write hit nothing. Two racing
// UpdateMany({…, read_ids: {$ne: u}}, {$addToSet: {read_ids: u}}) can
// therefore both count the same message, a conditional UpdateOne per
// message is no better, two racing $inc lose one increment, and two users
// marking the same message lose one mark. So no counted state here is ever
// updated. What both servers do apply exactly is an insert with a given _id
// (the unique _id index admits one) and a delete: MongoDB deletes each
// document atomically and counts what it deleted; FerretDB 1.24 selects the
// matching _ids and runs one DELETE … WHERE _id IN (…), whose affected-row
// count is what it reports. Documents that never change cannot be missed by
// its missing re-check. Each state change of a (message, recipient) pair is
// then the removal of one document, and the removal that succeeds is the
// one that counts:
//
//   - SaveMessages inserts a message's "unread" documents, then its "read"
//     and "delivered" documents, and only then the message. A message is not
//     visible before its per-recipient state is complete, so nothing can
//     hide, delete or mark it by id half-stored. (Marking by range —
//     MarkUpTo, MarkMessages with nil ids, HideDialog — selects pending
//     documents, so it may mark a message in the instant before it becomes
//     visible; it is then stored already read, as if marked right after.)
//   - Marking read finds the user's "read" documents in the selection,
//     deletes them (the deleted count is the number newly read: of two
//     markers of the same message, only one deletes its document) and then
//     their "unread" documents. Because
//     "unread" is inserted before "read", whoever sees a "read" document
//     also finds its "unread" document, if any, to delete.
//   - Hiding a message inserts its hidden_messages document and deletes the
//     user's "unread" document; hidden messages keep their read state.
//   - Deleting a message deletes it, then all its pending and hidden
//     documents.
//
// So on both servers, once concurrent writers are done, every "unread"
// document belongs to a stored message whose recipient has not read it and
// not hidden it, and every such message has one: the counters equal
// RecountUnread. Two racing markers of one message count it once; a
// marker racing a deleter counts it at most once and the deleter removes
// its "unread" documents. While writes are under way a counter may briefly
// lag a write that has returned on another connection (never more than the
// writes in flight).
//
// # What is not atomic
//
// A call that makes several writes can be interrupted (process killed,
// connection lost) between them:
//
//   - SaveMessages between the pending documents and the message: the
//     recipients' counters include a message that does not exist (the
//     counter exceeds RecountUnread). Saving the same id again (a client
//     retry) completes it; otherwise the pending documents of a message that
//     does not exist are garbage, which RepairHistory deletes once they are
//     older than its grace period (it describes the race with a late
//     retry). A failed insert of the message deletes them itself. After the
//     message: the dialog stays hidden from users who hid it, and its last
//     message fields miss the message, until the next message.
//   - DeleteMessages between deleting the message and its pending
//     documents: the same garbage. Between that and moving the dialog's last
//     message: the dialog shows a deleted last message until its next
//     message or deletion.
//   - MarkMessages, MarkUpTo and HideDialog between deleting "read" and
//     "unread" documents: the counter exceeds RecountUnread; marking again
//     does not repair it (the "read" documents are gone), RepairHistory
//     deletes such "unread" documents once they are older than its grace
//     period. HideMessages between its two writes: the counter includes a
//     hidden message, until RepairHistory deletes its "unread" document.
//   - UpdateDialog after replacing the occupants, before removing the
//     flags of users who left: those users' hidden and muted settings
//     survive their leaving.
//   - EditMessage between the message and the dialog: the dialog shows the
//     old text as its last message.
//   - DeleteDialog after deleting the dialog: its messages and per-user
//     documents remain, neither listed nor counted (the dialog is gone), but
//     Message still finds such a message by id.
//
// RecountUnread finds every such difference: it counts, from the messages
// and their "read" and hidden_messages documents, what the "unread"
// documents should be. RepairHistory removes the differences these
// interruptions leave in the counters: chatd runs it in the background
// shortly after it starts on MongoDB, with the grace period
// storage.mongodb_repair_grace (10 minutes by default), and `chatd
// repair-history` runs it on demand. The other leftovers above do not touch
// the counters and are not repaired.
//
// Two concurrent DeleteMessages of one message may both return it as
// existing; store/sqlite returns it from one of them only.
//
// # Costs
//
// A counter is counted, not read: UnreadCounts and FindDialogs group the
// user's "unread" documents by dialog (on MongoDB a scan of the index
// (app_id, user_id, kind, dialog_id), proportional to the user's unread
// messages). Marking by range reads the user's pending documents of the
// dialog in the range (proportional to what is still unread or
// undelivered, not to the dialog's length). FindMessages leaves out the
// viewer's hidden messages of the dialog by listing their ids. A stored
// message costs its document plus three small documents per recipient,
// which go away as the recipient receives and reads it.
//
// Dialog and message documents are updated (UpdateDialog, EditMessage, and
// a dialog's last message fields when messages are stored or deleted). On
// MongoDB each such update is atomic and sets only its fields; the last
// message fields only ever move to a newer message (date_sent, then id)
// when one is stored, and a deletion moves them back only from a message
// it deleted, then applies any message stored meanwhile. On FerretDB 1.24
// concurrent updates of one document are last-writer-wins over the whole
// document: a message stored while the dialog is being updated may undo
// the update, or lose its place as the last message. Counters never depend
// on those documents.
func (db *DB) History() history.Store { return historyStore{db} }

type historyStore struct{ db *DB }

var _ history.Store = historyStore{}

func byKey(id string) bson.D { return bson.D{{Key: "_id", Value: id}} }

// anyOf is the condition {$in: v}.
func anyOf(v any) bson.D { return bson.D{{Key: "$in", Value: v}} }

// histNotFound maps "no documents" to history.ErrNotFound.
func histNotFound(err error, what string) error {
	if errors.Is(err, mongo.ErrNoDocuments) {
		return history.ErrNotFound
	}
	return fmt.Errorf("mongo: %s: %w", what, err)
}

func set(v []string) map[string]bool {
	m := make(map[string]bool, len(v))
	for _, s := range v {
		m[s] = true
	}
	return m
}

// deleteChunk bounds the number of keys in one delete command.
const deleteChunk = 1000

// deleteKeys deletes the documents of c with the given _ids (that also
// match the extra conditions, if any) and returns how many it deleted.
func deleteKeys(ctx context.Context, c *mongo.Collection, keys []string, extra ...bson.E) (int, error) {
	n := 0
	for chunk := range slices.Chunk(keys, deleteChunk) {
		res, err := c.DeleteMany(ctx, append(bson.D{{Key: "_id", Value: anyOf(chunk)}}, extra...))
		if err != nil {
			return n, fmt.Errorf("mongo: delete from %s: %w", c.Name(), err)
		}
		n += int(res.DeletedCount)
	}
	return n, nil
}

func deleteWhere(ctx context.Context, c *mongo.Collection, filter bson.D) error {
	if _, err := c.DeleteMany(ctx, filter); err != nil {
		return fmt.Errorf("mongo: delete from %s: %w", c.Name(), err)
	}
	return nil
}

// keysIn returns which of keys are _ids of documents of c.
func keysIn(ctx context.Context, c *mongo.Collection, keys []string) (map[string]bool, error) {
	found, err := stringsOf(ctx, c, bson.D{{Key: "_id", Value: anyOf(keys)}}, "_id")
	return set(found), err
}

// stringsOf returns the string field name of every document matching
// filter.
func stringsOf(ctx context.Context, c *mongo.Collection, filter any, field string) ([]string, error) {
	cur, err := c.Find(ctx, filter, options.Find().SetProjection(bson.D{{Key: field, Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("mongo: find in %s: %w", c.Name(), err)
	}
	defer cur.Close(ctx)
	var out []string
	for cur.Next(ctx) {
		s, ok := cur.Current.Lookup(field).StringValueOK()
		if !ok {
			return nil, fmt.Errorf("mongo: %s in %s is not a string", field, c.Name())
		}
		out = append(out, s)
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("mongo: reading %s: %w", c.Name(), err)
	}
	return out, nil
}

func (h historyStore) CreateDialog(ctx context.Context, d *history.Dialog) error {
	if _, err := h.db.dialogs.InsertOne(ctx, toDialogDoc(d)); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return history.ErrDuplicate
		}
		return fmt.Errorf("mongo: create dialog: %w", err)
	}
	return nil
}

func (h historyStore) findDialog(ctx context.Context, filter bson.D) (*history.Dialog, error) {
	var d dialogDoc
	if err := h.db.dialogs.FindOne(ctx, filter).Decode(&d); err != nil {
		return nil, histNotFound(err, "dialog")
	}
	return d.dialog(), nil
}

func (h historyStore) Dialog(ctx context.Context, app int64, id string) (*history.Dialog, error) {
	return h.findDialog(ctx, bson.D{{Key: "_id", Value: id}, {Key: "app_id", Value: app}})
}

func (h historyStore) PrivateDialog(ctx context.Context, app, a, b int64) (*history.Dialog, error) {
	return h.findDialog(ctx, bson.D{{Key: "app_id", Value: app}, {Key: "k_pair", Value: pairKey(a, b)}})
}

func (h historyStore) RoomDialog(ctx context.Context, app int64, name string) (*history.Dialog, error) {
	return h.findDialog(ctx, bson.D{{Key: "app_id", Value: app}, {Key: "k_room", Value: name}})
}

func (h historyStore) UpdateDialog(ctx context.Context, d *history.Dialog) error {
	set := bson.D{
		{Key: "name", Value: d.Name},
		{Key: "photo", Value: d.Photo},
		{Key: "occupants_ids", Value: ids64(d.Occupants)},
		{Key: "admin_ids", Value: ids64(d.AdminIDs)},
		{Key: "join_required", Value: d.JoinRequired},
		{Key: "data", Value: encodeStrings(d.Data)},
		{Key: "updated_at", Value: date(d.UpdatedAt)},
	}
	// No projection: FerretDB 1.24 rejects one on findAndModify.
	var old dialogDoc
	err := h.db.dialogs.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: d.ID}, {Key: "app_id", Value: d.AppID}},
		bson.D{{Key: "$set", Value: set}}, options.FindOneAndUpdate().SetReturnDocument(options.Before)).Decode(&old)
	if err != nil {
		return histNotFound(err, "update dialog")
	}
	// Users who left lose their settings; their "unread" documents stay
	// and count again should they come back, as store/sqlite recounts.
	var gone []int64
	for _, u := range old.Occupants {
		if !slices.Contains(d.Occupants, u) {
			gone = append(gone, u)
		}
	}
	if len(gone) > 0 {
		return deleteWhere(ctx, h.db.dialogFlags, bson.D{{Key: "dialog_id", Value: d.ID}, {Key: "user_id", Value: anyOf(gone)}})
	}
	return nil
}

func (h historyStore) DeleteDialog(ctx context.Context, app int64, id string) error {
	// The dialog first: a message stored meanwhile sees it gone and
	// removes itself (see SaveMessages).
	res, err := h.db.dialogs.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "app_id", Value: app}})
	if err != nil {
		return fmt.Errorf("mongo: delete dialog: %w", err)
	}
	if res.DeletedCount == 0 {
		return history.ErrNotFound
	}
	for _, c := range []*mongo.Collection{h.db.messages, h.db.pending, h.db.hiddenMessages, h.db.dialogFlags} {
		if err := deleteWhere(ctx, c, bson.D{{Key: "dialog_id", Value: id}}); err != nil {
			return err
		}
	}
	return nil
}

// flagged returns the dialogs the user has set flag on.
func (h historyStore) flagged(ctx context.Context, app, user int64, flag string) ([]string, error) {
	return stringsOf(ctx, h.db.dialogFlags, bson.D{{Key: "app_id", Value: app}, {Key: "user_id", Value: user},
		{Key: "flag", Value: flag}}, "dialog_id")
}

// unreadByDialog counts the user's "unread" documents per dialog, in the
// given dialogs (all when dialogs is nil).
func (h historyStore) unreadByDialog(ctx context.Context, app, user int64, dialogs []string) (map[string]int, error) {
	match := bson.D{{Key: "app_id", Value: app}, {Key: "user_id", Value: user}, {Key: "kind", Value: pendingUnread}}
	if dialogs != nil {
		match = append(match, bson.E{Key: "dialog_id", Value: anyOf(dialogs)})
	}
	cur, err := h.db.pending.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: match}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$dialog_id"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("mongo: count unread: %w", err)
	}
	var rows []struct {
		Dialog string `bson:"_id"`
		N      int    `bson:"n"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("mongo: count unread: %w", err)
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r.Dialog] = r.N
	}
	return out, nil
}

func (h historyStore) FindDialogs(ctx context.Context, app, user int64, q history.DialogQuery) ([]*history.Dialog, int, error) {
	conds, err := dialogConds(q.Conds)
	if err != nil {
		return nil, 0, err
	}
	hidden, err := h.flagged(ctx, app, user, flagHidden)
	if err != nil {
		return nil, 0, err
	}
	filter := bson.D{
		{Key: "app_id", Value: app},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: "occupants_ids", Value: user}},
			bson.D{{Key: "type", Value: int(history.PublicGroup)}},
		}},
	}
	if len(hidden) > 0 {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$nin", Value: hidden}}})
	}
	filter = and(filter, conds)
	total, err := h.db.dialogs.CountDocuments(ctx, filter)
	if err != nil {
		return nil, 0, fmt.Errorf("mongo: count dialogs: %w", err)
	}
	if q.Count {
		return nil, int(total), nil
	}
	opts, err := findPage(bson.D{{Key: "last_message_date_sent", Value: -1}, {Key: "_id", Value: -1}},
		dialogField, "dialogs", q.Sort, q.Desc, q.Limit, q.Skip)
	if err != nil {
		return nil, 0, err
	}
	var docs []dialogDoc
	if err := findAll(ctx, h.db.dialogs, filter, opts, &docs); err != nil {
		return nil, 0, err
	}
	var occupied []string
	for i := range docs {
		if slices.Contains(docs[i].Occupants, user) {
			occupied = append(occupied, docs[i].ID)
		}
	}
	unread := map[string]int{}
	if len(occupied) > 0 {
		if unread, err = h.unreadByDialog(ctx, app, user, occupied); err != nil {
			return nil, 0, err
		}
	}
	var out []*history.Dialog
	for i := range docs {
		d := docs[i].dialog()
		if slices.Contains(docs[i].Occupants, user) {
			d.UnreadCount = unread[d.ID]
		}
		out = append(out, d)
	}
	return out, int(total), nil
}

// setFlag inserts a dialog flag; one that is already set stays.
func (h historyStore) setFlag(ctx context.Context, app int64, dialog string, user int64, flag string) error {
	_, err := h.db.dialogFlags.InsertOne(ctx, &flagDoc{ID: flagKey(dialog, user, flag), AppID: app, DialogID: dialog,
		UserID: user, Flag: flag})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("mongo: set %s: %w", flag, err)
	}
	return nil
}

func (h historyStore) HideDialog(ctx context.Context, app int64, id string, user int64) error {
	if err := h.setFlag(ctx, app, id, user, flagHidden); err != nil {
		return err
	}
	// Every unread message becomes read and delivered.
	_, err := h.mark(ctx, app, id, user, pendingRead, nil, true)
	return err
}

func (h historyStore) UnhideDialog(ctx context.Context, app int64, id string, user int64) error {
	return deleteWhere(ctx, h.db.dialogFlags, bson.D{{Key: "_id", Value: flagKey(id, user, flagHidden)}, {Key: "app_id", Value: app}})
}

func (h historyStore) Notifications(ctx context.Context, app int64, id string, user int64) (bool, error) {
	n, err := h.db.dialogFlags.CountDocuments(ctx, bson.D{{Key: "_id", Value: flagKey(id, user, flagMuted)},
		{Key: "app_id", Value: app}})
	if err != nil {
		return false, fmt.Errorf("mongo: notifications: %w", err)
	}
	return n == 0, nil
}

func (h historyStore) SetNotifications(ctx context.Context, app int64, id string, user int64, enabled bool) error {
	if !enabled {
		return h.setFlag(ctx, app, id, user, flagMuted)
	}
	return deleteWhere(ctx, h.db.dialogFlags, bson.D{{Key: "_id", Value: flagKey(id, user, flagMuted)}, {Key: "app_id", Value: app}})
}

// SaveMessages stores a batch: see DB.History for the order of the writes
// and what it guarantees. Each message succeeds or fails on its own.
func (h historyStore) SaveMessages(ctx context.Context, msgs []*history.Message) []error {
	s := &saveBatch{h: h, msgs: msgs, errs: make([]error, len(msgs))}
	if err := s.run(ctx); err != nil {
		for i := range s.errs {
			if s.errs[i] == nil {
				s.errs[i] = err
			}
		}
		return s.errs
	}
	for _, err := range s.errs {
		if err != nil {
			return s.errs
		}
	}
	return nil
}

type saveBatch struct {
	h    historyStore
	msgs []*history.Message
	errs []error
	// live are the indexes of the messages still being stored.
	live []int
	// ours are the pending documents this call inserted, per message.
	ours map[int][]*pendingDoc
}

// drop removes the failed messages from live.
func (s *saveBatch) drop() {
	s.live = slices.DeleteFunc(s.live, func(i int) bool { return s.errs[i] != nil })
}

func (s *saveBatch) run(ctx context.Context) error {
	db := s.h.db
	// Dialogs must exist in the message's application.
	var dialogIDs []string
	for _, m := range s.msgs {
		if !slices.Contains(dialogIDs, m.DialogID) {
			dialogIDs = append(dialogIDs, m.DialogID)
		}
	}
	apps, err := s.dialogApps(ctx, dialogIDs)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, m := range s.msgs {
		switch app, ok := apps[m.DialogID]; {
		case !ok || app != m.AppID:
			s.errs[i] = history.ErrNotFound
		case seen[m.ID]:
			s.errs[i] = history.ErrDuplicate
		default:
			seen[m.ID] = true
			s.live = append(s.live, i)
		}
	}
	// An id in use is refused before anything is written: its pending
	// documents would otherwise revive marks of the stored message.
	ids := make([]string, 0, len(s.live))
	for _, i := range s.live {
		ids = append(ids, s.msgs[i].ID)
	}
	if len(ids) > 0 {
		taken, err := s.h.existing(ctx, 0, ids, true)
		if err != nil {
			return err
		}
		for _, i := range s.live {
			if _, ok := taken[s.msgs[i].ID]; ok {
				s.errs[i] = history.ErrDuplicate
			}
		}
		s.drop()
	}
	// Pending documents: "unread" before "read" (see DB.History).
	s.ours = map[int][]*pendingDoc{}
	if err := s.insertPending(ctx, pendingUnread); err != nil {
		return err
	}
	if err := s.insertPending(ctx, pendingRead, pendingDelivered); err != nil {
		return err
	}
	// The messages.
	docs := make([]any, len(s.live))
	ids = ids[:0]
	for j, i := range s.live {
		docs[j] = toMessageDoc(s.msgs[i])
		ids = append(ids, s.msgs[i].ID)
	}
	dup, errs, err := insertEach(ctx, db.messages, docs)
	if err != nil {
		// Some may be stored: take back the pending documents only of
		// those found missing. Should that fail too, they stay (garbage,
		// which RecountUnread shows, rather than stored messages without
		// their unread state, which nothing would show).
		if found, err2 := s.h.existing(ctx, 0, ids, true); err2 == nil {
			var missing []int
			for _, i := range s.live {
				if _, ok := found[s.msgs[i].ID]; !ok {
					missing = append(missing, i)
				}
			}
			s.undo(ctx, missing, false)
		}
		return err
	}
	var lost []int
	for j, i := range s.live {
		switch {
		case dup[j]:
			// Stored meanwhile by another call with the same id.
			s.errs[i] = history.ErrDuplicate
			lost = append(lost, i)
		case errs[j] != nil:
			s.errs[i] = errs[j]
			lost = append(lost, i)
		}
	}
	if len(lost) > 0 {
		s.undo(ctx, lost, true)
		s.drop()
	}
	if len(s.live) == 0 {
		return nil
	}
	// A dialog deleted meanwhile takes its new messages with it: its
	// deletion removed the dialog before the messages, so either it saw
	// ours or we see it gone.
	var stored []string
	for _, i := range s.live {
		if !slices.Contains(stored, s.msgs[i].DialogID) {
			stored = append(stored, s.msgs[i].DialogID)
		}
	}
	exist, err := stringsOf(ctx, db.dialogs, bson.D{{Key: "_id", Value: anyOf(stored)}}, "_id")
	if err != nil {
		return err
	}
	var orphans []int
	for _, i := range s.live {
		if !slices.Contains(exist, s.msgs[i].DialogID) {
			orphans = append(orphans, i)
		}
	}
	if len(orphans) > 0 {
		var ids []string
		for _, i := range orphans {
			ids = append(ids, s.msgs[i].ID)
			s.errs[i] = history.ErrNotFound
		}
		if err := deleteWhere(ctx, db.messages, bson.D{{Key: "_id", Value: anyOf(ids)}}); err != nil {
			return err
		}
		if err := deleteWhere(ctx, db.pending, bson.D{{Key: "message_id", Value: anyOf(ids)}}); err != nil {
			return err
		}
		s.drop()
		if len(s.live) == 0 {
			return nil
		}
	}
	// Show the dialogs again to whoever hid them.
	if err := deleteWhere(ctx, db.dialogFlags, bson.D{{Key: "dialog_id", Value: anyOf(exist)}, {Key: "flag", Value: flagHidden}}); err != nil {
		return err
	}
	// Last message fields, message by message in batch order, as
	// store/sqlite applies them.
	models := make([]mongo.WriteModel, 0, len(s.live))
	for _, i := range s.live {
		f, u := lastIfNewer(toMessageDoc(s.msgs[i]))
		models = append(models, mongo.NewUpdateOneModel().SetFilter(f).SetUpdate(u))
	}
	if _, err := db.dialogs.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(true)); err != nil {
		return fmt.Errorf("mongo: last message: %w", err)
	}
	return nil
}

// dialogApps returns the application of each existing dialog among ids.
func (s *saveBatch) dialogApps(ctx context.Context, ids []string) (map[string]int64, error) {
	var docs []struct {
		ID    string `bson:"_id"`
		AppID int64  `bson:"app_id"`
	}
	opts := options.Find().SetProjection(bson.D{{Key: "app_id", Value: 1}})
	if err := findAll(ctx, s.h.db.dialogs, bson.D{{Key: "_id", Value: anyOf(ids)}}, opts, &docs); err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(docs))
	for _, d := range docs {
		out[d.ID] = d.AppID
	}
	return out, nil
}

// insertPending inserts the pending documents of the given kinds for every
// live message and recipient. A document already there (left by an
// interrupted save of the same id) is kept; a message whose documents
// cannot be written fails, and what it inserted is removed.
func (s *saveBatch) insertPending(ctx context.Context, kinds ...string) error {
	var (
		docs  []any
		owner []int
	)
	now := time.Now().Unix()
	for _, i := range s.live {
		m := s.msgs[i]
		for _, r := range m.Recipients {
			for _, k := range kinds {
				docs = append(docs, &pendingDoc{ID: pendingKey(m.ID, r, k), AppID: m.AppID, DialogID: m.DialogID,
					MessageID: m.ID, UserID: r, Kind: k, DateSent: m.DateSent, At: now})
				owner = append(owner, i)
			}
		}
	}
	dup, errs, err := insertEach(ctx, s.h.db.pending, docs)
	if err != nil {
		// Any of them may be in: take back all of them.
		for j, d := range docs {
			s.ours[owner[j]] = append(s.ours[owner[j]], d.(*pendingDoc))
		}
		s.undo(ctx, s.live, false)
		return err
	}
	var failed []int
	for j, d := range docs {
		i := owner[j]
		switch {
		case errs[j] != nil:
			if s.errs[i] == nil {
				s.errs[i] = errs[j]
				failed = append(failed, i)
			}
		case !dup[j]:
			s.ours[i] = append(s.ours[i], d.(*pendingDoc))
		}
	}
	if len(failed) > 0 {
		s.undo(ctx, failed, false)
		s.drop()
	}
	return nil
}

// undo deletes the pending documents this call inserted for the given
// messages, which were not stored. When another call may have stored a
// message with the same id meanwhile (winners), documents that are also
// that message's (same dialog, the user among its recipients) stay. Best
// effort, and done even when ctx is cancelled: a failure leaves garbage
// that DB.History describes.
func (s *saveBatch) undo(ctx context.Context, idx []int, winners bool) {
	ctx = context.WithoutCancel(ctx)
	var won map[string]*messageDoc
	if winners {
		var ids []string
		for _, i := range idx {
			ids = append(ids, s.msgs[i].ID)
		}
		var docs []messageDoc
		if err := findAll(ctx, s.h.db.messages, bson.D{{Key: "_id", Value: anyOf(ids)}}, nil, &docs); err != nil {
			return
		}
		won = map[string]*messageDoc{}
		for k := range docs {
			won[docs[k].ID] = &docs[k]
		}
	}
	var keys []string
	for _, i := range idx {
		w := won[s.msgs[i].ID]
		for _, d := range s.ours[i] {
			if w != nil && w.DialogID == d.DialogID && slices.Contains(w.Recipients, d.UserID) {
				continue
			}
			keys = append(keys, d.ID)
		}
		delete(s.ours, i)
	}
	_, _ = deleteKeys(ctx, s.h.db.pending, keys)
}

// lastIfNewer is the update that makes m the last message of its dialog
// when it is newer (date_sent, then id) than the current one.
func lastIfNewer(m *messageDoc) (filter, update bson.D) {
	filter = bson.D{
		{Key: "_id", Value: m.DialogID},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: "last_message_date_sent", Value: bson.D{{Key: "$lt", Value: m.DateSent}}}},
			bson.D{{Key: "last_message_date_sent", Value: m.DateSent}, {Key: "last_message_id", Value: bson.D{{Key: "$lt", Value: m.ID}}}},
		}},
	}
	update = bson.D{
		{Key: "$set", Value: lastFields(m)},
		{Key: "$max", Value: bson.D{{Key: "updated_at", Value: m.CreatedAt}}},
	}
	return filter, update
}

// lastFields are the last message fields for m (nil: no message).
func lastFields(m *messageDoc) bson.D {
	if m == nil {
		return bson.D{{Key: "last_message", Value: ""}, {Key: "last_message_id", Value: ""},
			{Key: "last_message_date_sent", Value: int64(0)}, {Key: "last_message_user_id", Value: int64(0)}}
	}
	return bson.D{{Key: "last_message", Value: m.lastText()}, {Key: "last_message_id", Value: m.ID},
		{Key: "last_message_date_sent", Value: m.DateSent}, {Key: "last_message_user_id", Value: m.SenderID}}
}

// marksOf returns, per message, the recipients whose read and delivery
// marks are pending.
func (h historyStore) marksOf(ctx context.Context, ids []string) (unread, undelivered map[string]map[int64]bool, err error) {
	unread, undelivered = map[string]map[int64]bool{}, map[string]map[int64]bool{}
	if len(ids) == 0 {
		return unread, undelivered, nil
	}
	var docs []pendingDoc
	filter := bson.D{{Key: "message_id", Value: anyOf(ids)}, {Key: "kind", Value: anyOf(bson.A{pendingRead, pendingDelivered})}}
	if err := findAll(ctx, h.db.pending, filter, nil, &docs); err != nil {
		return nil, nil, err
	}
	for _, d := range docs {
		m := unread
		if d.Kind == pendingDelivered {
			m = undelivered
		}
		if m[d.MessageID] == nil {
			m[d.MessageID] = map[int64]bool{}
		}
		m[d.MessageID][d.UserID] = true
	}
	return unread, undelivered, nil
}

func (h historyStore) messagesOf(ctx context.Context, docs []messageDoc) ([]*history.Message, error) {
	ids := make([]string, len(docs))
	for i := range docs {
		ids[i] = docs[i].ID
	}
	unread, undelivered, err := h.marksOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	var out []*history.Message
	for i := range docs {
		out = append(out, docs[i].message(unread[docs[i].ID], undelivered[docs[i].ID]))
	}
	return out, nil
}

func (h historyStore) Message(ctx context.Context, app int64, id string, viewer int64) (*history.Message, error) {
	var d messageDoc
	if err := h.db.messages.FindOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "app_id", Value: app}}).Decode(&d); err != nil {
		return nil, histNotFound(err, "message")
	}
	if viewer != 0 {
		n, err := h.db.hiddenMessages.CountDocuments(ctx, byKey(hiddenKey(id, viewer)))
		if err != nil {
			return nil, fmt.Errorf("mongo: message: %w", err)
		}
		if n > 0 {
			return nil, history.ErrNotFound
		}
	}
	out, err := h.messagesOf(ctx, []messageDoc{d})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// messageFilter selects the messages of a dialog that match conds, without
// those deleted for viewer.
func (h historyStore) messageFilter(ctx context.Context, app int64, dialog string, viewer int64, conds []history.Cond) (bson.D, error) {
	match, err := messageConds(conds)
	if err != nil {
		return nil, err
	}
	hidden, err := stringsOf(ctx, h.db.hiddenMessages, bson.D{{Key: "dialog_id", Value: dialog},
		{Key: "user_id", Value: viewer}}, "message_id")
	if err != nil {
		return nil, err
	}
	filter := bson.D{{Key: "app_id", Value: app}, {Key: "dialog_id", Value: dialog}}
	if len(hidden) > 0 {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$nin", Value: hidden}}})
	}
	return and(filter, match), nil
}

func (h historyStore) FindMessages(ctx context.Context, app int64, dialog string, viewer int64, q history.MessageQuery) ([]*history.Message, error) {
	filter, err := h.messageFilter(ctx, app, dialog, viewer, q.Conds)
	if err != nil {
		return nil, err
	}
	opts, err := findPage(bson.D{{Key: "date_sent", Value: 1}, {Key: "_id", Value: 1}},
		messageField, "messages", q.Sort, q.Desc, q.Limit, q.Skip)
	if err != nil {
		return nil, err
	}
	var docs []messageDoc
	if err := findAll(ctx, h.db.messages, filter, opts, &docs); err != nil {
		return nil, err
	}
	return h.messagesOf(ctx, docs)
}

func (h historyStore) CountMessages(ctx context.Context, app int64, dialog string, viewer int64, q history.MessageQuery) (int, error) {
	filter, err := h.messageFilter(ctx, app, dialog, viewer, q.Conds)
	if err != nil {
		return 0, err
	}
	n, err := h.db.messages.CountDocuments(ctx, filter)
	if err != nil {
		return 0, fmt.Errorf("mongo: count messages: %w", err)
	}
	return int(n), nil
}

func markKind(mark history.Mark) string {
	if mark == history.Read {
		return pendingRead
	}
	return pendingDelivered
}

// mark ends the user's pending documents of the given kind in the dialog
// that match sel (every one when sel is nil) and returns how many it ended.
// Ending a read also ends the "unread" documents of the same messages, and
// with delivered also their delivery.
func (h historyStore) mark(ctx context.Context, app int64, dialog string, user int64, kind string, sel bson.D, delivered bool) (int, error) {
	filter := append(bson.D{{Key: "app_id", Value: app}, {Key: "dialog_id", Value: dialog},
		{Key: "user_id", Value: user}, {Key: "kind", Value: kind}}, sel...)
	ids, err := stringsOf(ctx, h.db.pending, filter, "message_id")
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	n, err := deleteKeys(ctx, h.db.pending, pendingKeys(ids, user, kind))
	if err != nil {
		return 0, err
	}
	if kind == pendingRead {
		// Every message seen with a "read" document had its "unread"
		// document inserted before it, if it has one.
		if _, err := deleteKeys(ctx, h.db.pending, pendingKeys(ids, user, pendingUnread)); err != nil {
			return 0, err
		}
		if delivered {
			if _, err := deleteKeys(ctx, h.db.pending, pendingKeys(ids, user, pendingDelivered)); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (h historyStore) MarkMessages(ctx context.Context, app int64, dialog string, user int64, ids []string, mark history.Mark) (int, error) {
	var sel bson.D
	if ids != nil {
		if len(ids) == 0 {
			return 0, nil
		}
		sel = bson.D{{Key: "message_id", Value: anyOf(ids)}}
	}
	return h.mark(ctx, app, dialog, user, markKind(mark), sel, false)
}

func (h historyStore) MarkUpTo(ctx context.Context, app int64, dialog string, user int64, upTo string, mark history.Mark) (int, error) {
	var m struct {
		DateSent int64 `bson:"date_sent"`
	}
	err := h.db.messages.FindOne(ctx, bson.D{{Key: "_id", Value: upTo}, {Key: "app_id", Value: app}, {Key: "dialog_id", Value: dialog}},
		options.FindOne().SetProjection(bson.D{{Key: "date_sent", Value: 1}})).Decode(&m)
	if err != nil {
		return 0, histNotFound(err, "mark up to")
	}
	sel := bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "date_sent", Value: bson.D{{Key: "$lt", Value: m.DateSent}}}},
		bson.D{{Key: "date_sent", Value: m.DateSent}, {Key: "message_id", Value: bson.D{{Key: "$lte", Value: upTo}}}},
	}}}
	return h.mark(ctx, app, dialog, user, markKind(mark), sel, false)
}

func (h historyStore) EditMessage(ctx context.Context, app int64, id, text string, at time.Time) error {
	res, err := h.db.messages.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "app_id", Value: app}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "message", Value: text}, {Key: "updated_at", Value: date(at)}}}})
	if err != nil {
		return fmt.Errorf("mongo: edit message: %w", err)
	}
	if res.MatchedCount == 0 {
		return history.ErrNotFound
	}
	// As store/sqlite: the dialog shows the new text as it is.
	_, err = h.db.dialogs.UpdateMany(ctx, bson.D{{Key: "app_id", Value: app}, {Key: "last_message_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "last_message", Value: text}}}})
	if err != nil {
		return fmt.Errorf("mongo: edit message: %w", err)
	}
	return nil
}

// existing returns the dialog of each message among ids that exists in app
// (in any application with anyApp).
func (h historyStore) existing(ctx context.Context, app int64, ids []string, anyApp bool) (map[string]string, error) {
	var docs []struct {
		ID       string `bson:"_id"`
		DialogID string `bson:"dialog_id"`
	}
	filter := bson.D{{Key: "_id", Value: anyOf(ids)}}
	if !anyApp {
		filter = append(filter, bson.E{Key: "app_id", Value: app})
	}
	opts := options.Find().SetProjection(bson.D{{Key: "dialog_id", Value: 1}})
	if err := findAll(ctx, h.db.messages, filter, opts, &docs); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(docs))
	for _, d := range docs {
		out[d.ID] = d.DialogID
	}
	return out, nil
}

func (h historyStore) HideMessages(ctx context.Context, app int64, user int64, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	found, err := h.existing(ctx, app, ids, false)
	if err != nil || len(found) == 0 {
		return nil, err
	}
	var (
		docs []any
		msgs []string
	)
	for id, dialog := range found {
		docs = append(docs, &hiddenDoc{ID: hiddenKey(id, user), AppID: app, DialogID: dialog, MessageID: id, UserID: user})
		msgs = append(msgs, id)
	}
	_, errs, err := insertEach(ctx, h.db.hiddenMessages, docs)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if _, err := deleteKeys(ctx, h.db.pending, pendingKeys(msgs, user, pendingUnread)); err != nil {
		return nil, err
	}
	// A message deleted meanwhile leaves no hidden_messages document
	// behind: its deletion came before this check or after the insert.
	if again, err := h.existing(ctx, app, msgs, false); err == nil && len(again) < len(found) {
		var gone []string
		for _, id := range msgs {
			if _, ok := again[id]; !ok {
				gone = append(gone, hiddenKey(id, user))
			}
		}
		if _, err := deleteKeys(ctx, h.db.hiddenMessages, gone); err != nil {
			return nil, err
		}
	}
	var done []string
	for _, id := range ids {
		if _, ok := found[id]; ok {
			done = append(done, id)
		}
	}
	return done, nil
}

func (h historyStore) DeleteMessages(ctx context.Context, app int64, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	found, err := h.existing(ctx, app, ids, false)
	if err != nil || len(found) == 0 {
		return nil, err
	}
	var msgs, dialogs []string
	for id, dialog := range found {
		msgs = append(msgs, id)
		if !slices.Contains(dialogs, dialog) {
			dialogs = append(dialogs, dialog)
		}
	}
	if _, err := deleteKeys(ctx, h.db.messages, msgs); err != nil {
		return nil, err
	}
	for _, c := range []*mongo.Collection{h.db.pending, h.db.hiddenMessages} {
		if err := deleteWhere(ctx, c, bson.D{{Key: "message_id", Value: anyOf(msgs)}}); err != nil {
			return nil, err
		}
	}
	slices.Sort(dialogs)
	for _, d := range dialogs {
		if err := h.moveLast(ctx, d); err != nil {
			return nil, err
		}
	}
	var done []string
	for _, id := range ids {
		if _, ok := found[id]; ok && !slices.Contains(done, id) {
			done = append(done, id)
		}
	}
	return done, nil
}

// newest returns the newest message of a dialog, or nil.
func (h historyStore) newest(ctx context.Context, dialog string) (*messageDoc, error) {
	var m messageDoc
	err := h.db.messages.FindOne(ctx, bson.D{{Key: "dialog_id", Value: dialog}},
		options.FindOne().SetSort(bson.D{{Key: "date_sent", Value: -1}, {Key: "_id", Value: -1}})).Decode(&m)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mongo: newest message: %w", err)
	}
	return &m, nil
}

// moveLast moves a dialog's last message fields off a deleted message to
// the newest remaining one. It replaces only a last message that no longer
// exists, so a newer message stored meanwhile keeps its place; one stored
// meanwhile that lost to the deleted message is applied afterwards.
func (h historyStore) moveLast(ctx context.Context, dialog string) error {
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		var d struct {
			Last string `bson:"last_message_id"`
		}
		err := h.db.dialogs.FindOne(ctx, byKey(dialog), options.FindOne().SetProjection(bson.D{{Key: "last_message_id", Value: 1}})).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("mongo: last message: %w", err)
		}
		if d.Last == "" {
			return nil
		}
		n, err := h.db.messages.CountDocuments(ctx, byKey(d.Last))
		if err != nil {
			return fmt.Errorf("mongo: last message: %w", err)
		}
		if n > 0 {
			return nil
		}
		m, err := h.newest(ctx, dialog)
		if err != nil {
			return err
		}
		res, err := h.db.dialogs.UpdateOne(ctx, bson.D{{Key: "_id", Value: dialog}, {Key: "last_message_id", Value: d.Last}},
			bson.D{{Key: "$set", Value: lastFields(m)}})
		if err != nil {
			return fmt.Errorf("mongo: last message: %w", err)
		}
		if res.MatchedCount == 0 {
			continue // changed meanwhile: look again
		}
		again, err := h.newest(ctx, dialog)
		if err != nil {
			return err
		}
		if again != nil && (m == nil || again.ID != m.ID) {
			f, u := lastIfNewer(again)
			if _, err := h.db.dialogs.UpdateOne(ctx, f, u); err != nil {
				return fmt.Errorf("mongo: last message: %w", err)
			}
		}
		return nil
	}
	return fmt.Errorf("mongo: last message of dialog %s keeps changing", dialog)
}

func (h historyStore) UnreadCounts(ctx context.Context, app, user int64, dialogs []string) (map[string]int, int, error) {
	unread, err := h.unreadByDialog(ctx, app, user, nil)
	if err != nil {
		return nil, 0, err
	}
	hidden, err := h.flagged(ctx, app, user, flagHidden)
	if err != nil {
		return nil, 0, err
	}
	// The dialogs that count: the user's, not hidden. Only those with
	// unread messages matter for the total.
	filter := bson.D{{Key: "app_id", Value: app}, {Key: "occupants_ids", Value: user}}
	if dialogs != nil {
		ids := slices.Clone(dialogs)
		for d := range unread {
			ids = append(ids, d)
		}
		filter = append(filter, bson.E{Key: "_id", Value: anyOf(ids)})
	}
	mine, err := stringsOf(ctx, h.db.dialogs, filter, "_id")
	if err != nil {
		return nil, 0, err
	}
	hid := set(hidden)
	wanted := set(dialogs)
	out := map[string]int{}
	total := 0
	for _, d := range mine {
		if hid[d] {
			continue
		}
		total += unread[d]
		if dialogs == nil || wanted[d] {
			out[d] = unread[d]
		}
	}
	return out, total, nil
}

func (h historyStore) RecountUnread(ctx context.Context, app int64, dialog string, user int64) (int, error) {
	// The user's unread messages: stored, with the user among their
	// recipients and a "read" document, not hidden by the user.
	unread, err := stringsOf(ctx, h.db.pending, bson.D{{Key: "app_id", Value: app}, {Key: "dialog_id", Value: dialog},
		{Key: "user_id", Value: user}, {Key: "kind", Value: pendingRead}}, "message_id")
	if err != nil || len(unread) == 0 {
		return 0, err
	}
	hidden, err := stringsOf(ctx, h.db.hiddenMessages, bson.D{{Key: "dialog_id", Value: dialog},
		{Key: "user_id", Value: user}}, "message_id")
	if err != nil {
		return 0, err
	}
	hid := set(hidden)
	unread = slices.DeleteFunc(unread, func(id string) bool { return hid[id] })
	if len(unread) == 0 {
		return 0, nil
	}
	n, err := h.db.messages.CountDocuments(ctx, bson.D{{Key: "_id", Value: anyOf(unread)}, {Key: "app_id", Value: app},
		{Key: "dialog_id", Value: dialog}, {Key: "recipients", Value: user}})
	if err != nil {
		return 0, fmt.Errorf("mongo: recount unread: %w", err)
	}
	return int(n), nil
}
