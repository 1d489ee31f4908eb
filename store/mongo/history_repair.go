package mongo

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// RepairReport counts the documents RepairHistory deleted.
type RepairReport struct {
	// Scanned is the number of pending documents examined.
	Scanned int
	// Orphaned are pending documents (any kind) of messages that do not
	// exist: a SaveMessages interrupted before the message, or a
	// DeleteMessages interrupted after it.
	Orphaned int
	// Read are "unread" documents of messages their recipient has read
	// (no "read" document): a mark interrupted between its two deletes.
	Read int
	// Hidden are "unread" documents of messages their recipient has
	// hidden: a HideMessages interrupted between its two writes.
	Hidden int
}

// Removed is the number of documents deleted.
func (r RepairReport) Removed() int { return r.Orphaned + r.Read + r.Hidden }

// repairBatch bounds the pending documents RepairHistory holds and looks up
// at once.
const repairBatch = 1000

// RepairHistory deletes the pending documents that interrupted history
// writes left behind (see "What is not atomic" in DB.History), so that every
// user's unread counters equal RecountUnread again:
//
//   - pending documents of any kind whose message does not exist, inserted
//     more than grace ago (SaveMessages inserts them before the message, so
//     younger ones may belong to a save under way);
//   - "unread" documents of an existing message whose recipient has no
//     "read" document for it, inserted more than grace ago (SaveMessages
//     inserts "unread" before "read");
//   - "unread" documents of an existing message their recipient has hidden,
//     of any age (deleting them is HideMessages' own second write).
//
// A document written by a chatd from before insertion times were recorded
// is aged by its message's date_sent (less a minute: see legacySlack).
// Hidden messages' documents are deleted as the pass read them (by _id and
// insertion time), so one saved again meanwhile stays.
// grace must exceed the longest a history call can take and the clock
// differences between the chatd nodes sharing the database; 0 is right
// only while no node writes.
//
// It may run while chatd serves: it reads the pending documents through a
// cursor, looks each batch up with $in queries (the message first, then the
// "read" document: a message seen stored had its "read" documents inserted
// before it) and deletes by _id, the first two kinds only while still older
// than grace (a document deleted and inserted again meanwhile stays). It
// holds one batch in memory.
//
// One race remains: SaveMessages keeps the pending documents an earlier,
// interrupted save of the same message id left, so a client retrying such
// a save more than grace after the interruption, in the instant the pass
// deletes those documents, may get the message stored with part of its
// recipients' state gone: shown as read or delivered, or a counter one
// below RecountUnread until the recipient reads the message.
//
// The report counts what was deleted, also when an error stops the pass.
func (db *DB) RepairHistory(ctx context.Context, grace time.Duration) (RepairReport, error) {
	return db.repairHistory(ctx, grace, repairBatch)
}

// repairHistory is RepairHistory looking up size documents at a time.
func (db *DB) repairHistory(ctx context.Context, grace time.Duration, size int) (RepairReport, error) {
	var rep RepairReport
	cutoff := time.Now().Add(-grace).Unix()
	// Every "unread" document (a hidden message's counts at any age) and
	// the old ones of the other kinds.
	filter := bson.D{{Key: "$or", Value: append(bson.A{bson.D{{Key: "kind", Value: pendingUnread}}}, olderThan(cutoff)...)}}
	opts := options.Find().SetBatchSize(int32(size)).SetProjection(bson.D{{Key: "message_id", Value: 1},
		{Key: "user_id", Value: 1}, {Key: "kind", Value: 1}, {Key: "at", Value: 1}, {Key: "date_sent", Value: 1}})
	cur, err := db.pending.Find(ctx, filter, opts)
	if err != nil {
		return rep, fmt.Errorf("mongo: repair: find in %s: %w", db.pending.Name(), err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	batch := make([]pendingDoc, 0, size)
	for cur.Next(ctx) {
		var d pendingDoc
		if err := cur.Decode(&d); err != nil {
			return rep, fmt.Errorf("mongo: repair: reading %s: %w", db.pending.Name(), err)
		}
		batch = append(batch, d)
		if len(batch) == size {
			if err := db.repairBatch(ctx, batch, cutoff, &rep); err != nil {
				return rep, err
			}
			batch = batch[:0]
		}
	}
	if err := cur.Err(); err != nil {
		return rep, fmt.Errorf("mongo: repair: reading %s: %w", db.pending.Name(), err)
	}
	if len(batch) > 0 {
		if err := db.repairBatch(ctx, batch, cutoff, &rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// repairBatch deletes the garbage among docs (see RepairHistory): those
// inserted before cutoff (unix seconds) count as old.
func (db *DB) repairBatch(ctx context.Context, docs []pendingDoc, cutoff int64, rep *RepairReport) error {
	rep.Scanned += len(docs)
	var ids []string
	seen := map[string]bool{}
	for _, d := range docs {
		if !seen[d.MessageID] {
			seen[d.MessageID] = true
			ids = append(ids, d.MessageID)
		}
	}
	exists, err := keysIn(ctx, db.messages, ids)
	if err != nil {
		return err
	}
	var orphans, hiddenKeys []string
	var unread []pendingDoc // "unread" documents of stored messages
	for _, d := range docs {
		switch {
		case !exists[d.MessageID]:
			if d.before(cutoff) {
				orphans = append(orphans, d.ID)
			}
		case d.Kind == pendingUnread:
			unread = append(unread, d)
			hiddenKeys = append(hiddenKeys, hiddenKey(d.MessageID, d.UserID))
		}
	}
	var hid []pendingDoc
	var readKeys []string
	var old []pendingDoc
	if len(unread) > 0 {
		hidden, err := keysIn(ctx, db.hiddenMessages, hiddenKeys)
		if err != nil {
			return err
		}
		for _, d := range unread {
			switch {
			case hidden[hiddenKey(d.MessageID, d.UserID)]:
				hid = append(hid, d)
			case d.before(cutoff):
				old = append(old, d)
				readKeys = append(readKeys, pendingKey(d.MessageID, d.UserID, pendingRead))
			}
		}
	}
	// Looked up after the messages: a message found stored had its "read"
	// documents inserted before it, so a missing one was deleted by a mark.
	var read []string
	if len(old) > 0 {
		stillUnread, err := keysIn(ctx, db.pending, readKeys)
		if err != nil {
			return err
		}
		for i, d := range old {
			if !stillUnread[readKeys[i]] {
				read = append(read, d.ID)
			}
		}
	}
	n, err := deleteOlder(ctx, db.pending, orphans, cutoff)
	rep.Orphaned += n
	if err != nil {
		return err
	}
	n, err = deleteOlder(ctx, db.pending, read, cutoff)
	rep.Read += n
	if err != nil {
		return err
	}
	n, err = deleteAsSeen(ctx, db.pending, hid)
	rep.Hidden += n
	return err
}

// deleteOlder deletes the pending documents with the given _ids that were
// inserted before cutoff (see olderThan): one deleted and inserted again
// meanwhile stays.
func deleteOlder(ctx context.Context, c *mongo.Collection, keys []string, cutoff int64) (int, error) {
	return deleteKeys(ctx, c, keys, bson.E{Key: "$or", Value: olderThan(cutoff)})
}

// deleteAsSeen deletes the pending documents as the pass read them: each by
// its _id and insertion time, so that one deleted and inserted again since
// (its message deleted and the same id saved again) stays.
func deleteAsSeen(ctx context.Context, c *mongo.Collection, docs []pendingDoc) (int, error) {
	byAt := map[int64][]string{}
	for _, d := range docs {
		byAt[d.At] = append(byAt[d.At], d.ID)
	}
	n := 0
	for at, keys := range byAt {
		same := bson.E{Key: "at", Value: at}
		if at == 0 {
			same.Value = bson.D{{Key: "$exists", Value: false}}
		}
		k, err := deleteKeys(ctx, c, keys, same)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// legacySlack is how much earlier than cutoff the date_sent of a pending
// document without an insertion time (written by a chatd from before they
// had one) must be for it to count as inserted before cutoff. Its message's
// date_sent is the server's time when it was saved, or the client's within
// history's clock skew of it; during a rolling upgrade such a chatd may be
// saving it right now.
const legacySlack = 60 // seconds

// before reports whether d was inserted before cutoff (unix seconds): by
// its insertion time, or by its message's date_sent when it has none.
func (d pendingDoc) before(cutoff int64) bool {
	if d.At != 0 {
		return d.At < cutoff
	}
	return d.DateSent < cutoff-legacySlack
}

// olderThan are the conditions ($or) for a pending document inserted before
// cutoff (unix seconds), as pendingDoc.before tells.
func olderThan(cutoff int64) bson.A {
	return bson.A{
		bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: cutoff}}}},
		bson.D{{Key: "at", Value: bson.D{{Key: "$exists", Value: false}}},
			{Key: "date_sent", Value: bson.D{{Key: "$lt", Value: cutoff - legacySlack}}}},
	}
}
