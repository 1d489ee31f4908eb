// Package mongo is chatd's MongoDB storage backend (official driver,
// go.mongodb.org/mongo-driver/v2). It behaves exactly like store/sqlite; the
// conformance suite in store/storetest holds both to that.
//
// # Collections
//
// One database holds the collections apps, users, sessions, nonces,
// api_keys and counters for account.Store, roster_items,
// roster_versions and last_activity for xmpp.Store (see DB.XMPP), and
// dialogs, dialog_flags, messages, pending and hidden_messages for
// history.Store (see DB.History). Every record with an integer id (apps, users,
// sessions, API keys) keeps that id in _id. Nonces use the string
// "<app id>:<key>" as _id, so recording a nonce is a single insert that the
// _id index accepts once. Times are BSON dates truncated to whole seconds
// (UTC), the resolution of the QuickBlox API and of store/sqlite; a zero
// time.Time is stored as the Unix epoch, as store/sqlite stores 0, so filters
// and orders on times treat "never" identically in both backends.
//
// # Identifiers
//
// Ids come from the counters collection: one document per sequence
// ({_id: "users", seq: n}) advanced with an upserting findAndModify $inc
// that returns the new value. Ids are never reused; a failed insert leaves a
// gap. The record is then inserted with that _id; should the _id already be
// taken (FerretDB does not apply findAndModify atomically, so two concurrent
// callers may be handed the same value), the insert is retried with a fresh
// id.
//
// # Uniqueness
//
// Login, email, facebook_id, twitter_id and external_user_id are unique
// within an application when set. MongoDB would express that with partial
// unique indexes, which FerretDB 1.24 (the engine the tests embed) lacks.
// Instead each user carries one key field per unique attribute (k_login,
// k_email, k_facebook_id, k_twitter_id, k_external_user_id) holding the value
// when it is set and otherwise a placeholder unique to the user: the user's
// id in a BSON type the attribute never has (an int64 for the string
// attributes, a string for external_user_id), so a placeholder can never equal
// a real value. A plain unique compound index on (app_id, k_<attribute>) per
// attribute then enforces exactly "unique when set". The index is the only
// guard: no check-then-write race can admit a duplicate.
//
// FerretDB's duplicate-key errors do not name the index, and it reports a
// unique violation on update as an internal error instead of code 11000. So
// when the server rejects a user write, the backend asks which unique value
// is held by another user of the application and returns
// *account.DuplicateError naming the first such field (login, email,
// facebook_id, twitter_id, external_user_id). If none is held any more (the
// other user changed or went away meanwhile) a duplicate-key failure is
// retried.
//
// FerretDB 1.24 also lacks transactions, $lookup, positional updates, $pull
// with a condition and TTL indexes; the backend uses none of them. Expired
// sessions and nonces are removed by DeleteExpired, not by the server.
//
// # Concurrency
//
// A DB and its stores are safe for concurrent use; the driver's client
// pools connections. Each account.Store method is a single-document atomic
// write on MongoDB, except DeleteUserSessions and DeleteExpired (which delete
// many documents, each atomically) and FindUsers (a find and a count that are
// not one snapshot, as in store/sqlite). A roster change is two
// single-document writes, the item and then the version; DB.XMPP documents
// what that guarantees. Most history.Store methods make several writes,
// ordered so that unread counters stay exact without transactions even on
// FerretDB; DB.History documents how, and what an interrupted call leaves.
// There are no multi-document transactions. On FerretDB 1.24 an update is a read followed by a
// whole-document write, so two concurrent updates of the same document are
// last-writer-wins; on MongoDB field updates do not interfere.
package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"chatd/account"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
)

// DB is an open chatd database on a MongoDB server.
type DB struct {
	client   *mongo.Client
	db       *mongo.Database
	apps     *mongo.Collection
	users    *mongo.Collection
	sessions *mongo.Collection
	nonces   *mongo.Collection
	apiKeys  *mongo.Collection
	counters *mongo.Collection

	rosterItems     *mongo.Collection
	rosterVersions  *mongo.Collection
	lastActivity    *mongo.Collection
	offline         *mongo.Collection
	privacyLists    *mongo.Collection
	privacyDefaults *mongo.Collection

	dialogs        *mongo.Collection
	dialogFlags    *mongo.Collection
	messages       *mongo.Collection
	pending        *mongo.Collection
	hiddenMessages *mongo.Collection
}

// Open connects to the MongoDB server at uri (a mongodb:// or mongodb+srv://
// connection string), checks that it answers and creates the indexes chatd
// needs in database, when they do not exist yet.
func Open(ctx context.Context, uri, database string) (*DB, error) {
	if database == "" {
		return nil, errors.New("mongo: no database name")
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return nil, fmt.Errorf("mongo: connect: %w", err)
	}
	if err := client.Ping(ctx, readpref.Primary()); err != nil {
		client.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("mongo: ping: %w", err)
	}
	d := client.Database(database)
	db := &DB{
		client:   client,
		db:       d,
		apps:     d.Collection("apps"),
		users:    d.Collection("users"),
		sessions: d.Collection("sessions"),
		nonces:   d.Collection("nonces"),
		apiKeys:  d.Collection("api_keys"),
		counters: d.Collection("counters"),

		rosterItems:     d.Collection("roster_items"),
		rosterVersions:  d.Collection("roster_versions"),
		lastActivity:    d.Collection("last_activity"),
		offline:         d.Collection("offline_messages"),
		privacyLists:    d.Collection("privacy_lists"),
		privacyDefaults: d.Collection("privacy_defaults"),

		dialogs:        d.Collection("dialogs"),
		dialogFlags:    d.Collection("dialog_flags"),
		messages:       d.Collection("messages"),
		pending:        d.Collection("pending"),
		hiddenMessages: d.Collection("hidden_messages"),
	}
	if err := db.createIndexes(ctx); err != nil {
		client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	return db, nil
}

// Close disconnects from the server.
func (db *DB) Close(ctx context.Context) error {
	if err := db.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("mongo: disconnect: %w", err)
	}
	return nil
}

func index(name string, unique bool, keys ...string) mongo.IndexModel {
	k := bson.D{}
	for _, key := range keys {
		k = append(k, bson.E{Key: key, Value: 1})
	}
	o := options.Index().SetName(name)
	if unique {
		o.SetUnique(true)
	}
	return mongo.IndexModel{Keys: k, Options: o}
}

// createIndexes creates every index under a fixed name. Creating an index
// that exists with the same name and keys is a no-op, so Open may run any
// number of times. Append only; an index whose keys change needs a new name.
func (db *DB) createIndexes(ctx context.Context) error {
	all := []struct {
		c       *mongo.Collection
		indexes []mongo.IndexModel
	}{
		{db.users, []mongo.IndexModel{
			index("uniq_login", true, "app_id", "k_login"),
			index("uniq_email", true, "app_id", "k_email"),
			index("uniq_facebook_id", true, "app_id", "k_facebook_id"),
			index("uniq_twitter_id", true, "app_id", "k_twitter_id"),
			index("uniq_external_user_id", true, "app_id", "k_external_user_id"),
			index("app_phone", false, "app_id", "phone"),
			index("app_created", false, "app_id", "created_at"),
		}},
		{db.sessions, []mongo.IndexModel{
			index("uniq_token_hash", true, "token_hash"),
			index("app_user", false, "app_id", "user_id"),
			index("expires", false, "expires_at"),
		}},
		{db.nonces, []mongo.IndexModel{
			index("expires", false, "expires_at"),
		}},
		{db.apiKeys, []mongo.IndexModel{
			index("uniq_key_hash", true, "key_hash"),
			index("app", false, "app_id"),
		}},
		{db.rosterItems, []mongo.IndexModel{
			index("owner_jid", false, "app_id", "user_id", "jid"),
		}},
		{db.offline, []mongo.IndexModel{
			index("owner_seq", false, "app_id", "user_id", "_id"),
		}},
		{db.privacyLists, []mongo.IndexModel{
			index("owner_name", false, "app_id", "user_id", "name"),
		}},
		{db.dialogs, []mongo.IndexModel{
			index("uniq_pair", true, "app_id", "k_pair"),
			index("uniq_room", true, "app_id", "k_room"),
			index("app_occupants", false, "app_id", "occupants_ids"),
			index("app_type", false, "app_id", "type"),
		}},
		{db.dialogFlags, []mongo.IndexModel{
			index("user_flag", false, "app_id", "user_id", "flag"),
			index("dialog", false, "dialog_id"),
		}},
		{db.messages, []mongo.IndexModel{
			index("dialog_sent", false, "dialog_id", "date_sent", "_id"),
		}},
		{db.pending, []mongo.IndexModel{
			index("user_kind", false, "app_id", "user_id", "kind", "dialog_id"),
			index("dialog_user", false, "dialog_id", "user_id", "kind", "date_sent", "message_id"),
			index("message", false, "message_id"),
		}},
		{db.hiddenMessages, []mongo.IndexModel{
			index("dialog_user", false, "dialog_id", "user_id"),
			index("message", false, "message_id"),
		}},
	}
	// One index per command: FerretDB 1.24 panics on a createIndexes
	// command naming more than one index that already exists.
	for _, c := range all {
		for _, ix := range c.indexes {
			if _, err := c.c.Indexes().CreateOne(ctx, ix); err != nil {
				return fmt.Errorf("mongo: creating indexes on %s: %w", c.c.Name(), err)
			}
		}
	}
	return nil
}

// maxAttempts bounds the retries of an insert whose fresh id was taken, or
// of a write whose conflicting value went away before it could be named.
const maxAttempts = 10

// nextID advances the counter named name and returns its new value.
func (db *DB) nextID(ctx context.Context, name string) (int64, error) {
	opts := options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)
	var doc struct {
		Seq int64 `bson:"seq"`
	}
	for attempt := 1; ; attempt++ {
		err := db.counters.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: name}},
			bson.D{{Key: "$inc", Value: bson.D{{Key: "seq", Value: int64(1)}}}}, opts).Decode(&doc)
		if err == nil {
			return doc.Seq, nil
		}
		// Two first upserts of one counter race on its _id; the loser
		// increments the winner's document on the next attempt.
		if !mongo.IsDuplicateKeyError(err) || attempt == maxAttempts {
			return 0, fmt.Errorf("mongo: next %s id: %w", name, err)
		}
	}
}

// insertWithID inserts the document build returns for a fresh id of the
// counter named seq. On a duplicate-key error it calls conflict, which
// returns the error to report when a unique value other than _id is taken,
// or nil to try again with a new id.
func (db *DB) insertWithID(ctx context.Context, c *mongo.Collection, seq string, build func(id int64) any,
	conflict func(ctx context.Context) error) (int64, error) {
	for attempt := 1; ; attempt++ {
		id, err := db.nextID(ctx, seq)
		if err != nil {
			return 0, err
		}
		_, err = c.InsertOne(ctx, build(id))
		if err == nil {
			return id, nil
		}
		if !mongo.IsDuplicateKeyError(err) || attempt == maxAttempts {
			return 0, fmt.Errorf("mongo: insert into %s: %w", c.Name(), err)
		}
		if conflict != nil {
			if err := conflict(ctx); err != nil {
				return 0, err
			}
		}
	}
}

// isServerError reports whether the server (rather than the network or the
// driver) rejected an operation.
func isServerError(err error) bool {
	var se mongo.ServerError
	return errors.As(err, &se)
}

// date converts a time to its stored form: whole seconds, the zero time as
// the Unix epoch.
func date(t time.Time) bson.DateTime {
	if t.IsZero() {
		return 0
	}
	return bson.DateTime(t.Unix() * 1000)
}

// fromDate is the inverse of date.
func fromDate(d bson.DateTime) time.Time {
	if d == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(d)).UTC()
}

// notFound maps the driver's "no documents" to account.ErrNotFound.
func notFound(err error, what string) error {
	if errors.Is(err, mongo.ErrNoDocuments) {
		return account.ErrNotFound
	}
	return fmt.Errorf("mongo: %s: %w", what, err)
}
