package mongo

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"chatd/xmpp"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// XMPP returns the xmpp.Store of db.
//
// # Collections
//
// roster_items holds one document per (application, user, contact JID),
// with _id "<app id>:<user id>:<jid>" (the two integers make the key
// unambiguous whatever the JID holds), so putting an item is one replace of
// a known _id. roster_versions holds one document per user that has ever
// changed its roster, _id "<app id>:<user id>", whose ver field counts the
// changes. last_activity holds one document per user, with the same _id.
// Every document also carries app_id and user_id.
//
// # Roster versions
//
// PutRosterItem and DeleteRosterItem write the item first and then advance
// the owner's version with an upserting findAndModify $inc that returns the
// new value; Roster reads the version first and then the items. There is no
// transaction, but with this order the items Roster returns always include
// every change whose version is at most the version it returns (they may
// also include later changes, whose versions are higher): a client caching
// the roster under that version misses nothing. Should the version write
// fail after the item write succeeded, the call reports the error and the
// change is versioned by the next one.
//
// On MongoDB the $inc is a single-document atomic update, so every
// successful call is handed a distinct version, higher than the version of
// every call for the same user that completed before it started, even when
// calls for one user overlap (as they may once several chatd nodes share a
// database). FerretDB 1.24 applies findAndModify as a read followed by a
// whole-document write, so there overlapping calls for the same user may be
// handed the same version, and a lost increment can make a later call repeat
// a version already handed out. As long as the calls for one user never
// overlap (one chatd node: xmpp.Server serialises the changes of one user's
// roster) every successful call gets a strictly higher version on both.
// Calls for different users never interfere: each has its own document.
func (db *DB) XMPP() xmpp.Store { return xmppStore{db} }

type xmppStore struct{ db *DB }

var _ xmpp.Store = xmppStore{}

type rosterItemDoc struct {
	ID           string   `bson:"_id"`
	AppID        int64    `bson:"app_id"`
	UserID       int64    `bson:"user_id"`
	JID          string   `bson:"jid"`
	Name         string   `bson:"name"`
	Subscription string   `bson:"subscription"`
	Ask          bool     `bson:"ask"`
	PendingIn    bool     `bson:"pending_in"`
	Listed       bool     `bson:"listed"`
	Groups       []string `bson:"groups"`
}

func (d *rosterItemDoc) item() xmpp.RosterItem {
	it := xmpp.RosterItem{
		JID:          d.JID,
		Name:         d.Name,
		Subscription: d.Subscription,
		Ask:          d.Ask,
		PendingIn:    d.PendingIn,
		Listed:       d.Listed,
		Groups:       d.Groups,
	}
	if len(it.Groups) == 0 {
		it.Groups = nil
	}
	return it
}

// userKey is the _id of a user's roster_versions and last_activity documents.
func userKey(u xmpp.UserRef) string {
	return strconv.FormatInt(u.App, 10) + ":" + strconv.FormatInt(u.User, 10)
}

// itemKey is the _id of a roster item.
func itemKey(u xmpp.UserRef, jid string) string { return userKey(u) + ":" + jid }

func ownerFilter(u xmpp.UserRef) bson.D {
	return bson.D{{Key: "app_id", Value: u.App}, {Key: "user_id", Value: u.User}}
}

func byID(id string) bson.D { return bson.D{{Key: "_id", Value: id}} }

func (x xmppStore) Roster(ctx context.Context, owner xmpp.UserRef) ([]xmpp.RosterItem, int64, error) {
	// The version first: see the documentation of XMPP.
	var v struct {
		Ver int64 `bson:"ver"`
	}
	err := x.db.rosterVersions.FindOne(ctx, byID(userKey(owner))).Decode(&v)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return nil, 0, fmt.Errorf("mongo: roster version: %w", err)
	}
	var docs []rosterItemDoc
	err = findAll(ctx, x.db.rosterItems, ownerFilter(owner), options.Find().SetSort(bson.D{{Key: "jid", Value: 1}}), &docs)
	if err != nil {
		return nil, 0, err
	}
	var out []xmpp.RosterItem
	for i := range docs {
		out = append(out, docs[i].item())
	}
	return out, v.Ver, nil
}

func (x xmppStore) RosterItem(ctx context.Context, owner xmpp.UserRef, jid string) (*xmpp.RosterItem, error) {
	var d rosterItemDoc
	if err := x.db.rosterItems.FindOne(ctx, byID(itemKey(owner, jid))).Decode(&d); err != nil {
		return nil, notFound(err, "roster item")
	}
	it := d.item()
	return &it, nil
}

func (x xmppStore) PutRosterItem(ctx context.Context, owner xmpp.UserRef, it xmpp.RosterItem) (int64, error) {
	groups := it.Groups
	if groups == nil {
		groups = []string{}
	}
	d := &rosterItemDoc{
		ID:           itemKey(owner, it.JID),
		AppID:        owner.App,
		UserID:       owner.User,
		JID:          it.JID,
		Name:         it.Name,
		Subscription: it.Subscription,
		Ask:          it.Ask,
		PendingIn:    it.PendingIn,
		Listed:       it.Listed,
		Groups:       groups,
	}
	err := upsert(func() error {
		_, err := x.db.rosterItems.ReplaceOne(ctx, byID(d.ID), d, options.Replace().SetUpsert(true))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("mongo: put roster item: %w", err)
	}
	return x.bumpVersion(ctx, owner)
}

func (x xmppStore) DeleteRosterItem(ctx context.Context, owner xmpp.UserRef, jid string) (int64, error) {
	if _, err := x.db.rosterItems.DeleteOne(ctx, byID(itemKey(owner, jid))); err != nil {
		return 0, fmt.Errorf("mongo: delete roster item: %w", err)
	}
	return x.bumpVersion(ctx, owner)
}

// bumpVersion advances the owner's roster version and returns the new value.
func (x xmppStore) bumpVersion(ctx context.Context, owner xmpp.UserRef) (int64, error) {
	var v struct {
		Ver int64 `bson:"ver"`
	}
	// No projection: FerretDB 1.24 rejects one on findAndModify, and the
	// document is small.
	opts := options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)
	update := bson.D{
		{Key: "$inc", Value: bson.D{{Key: "ver", Value: int64(1)}}},
		{Key: "$setOnInsert", Value: ownerFilter(owner)},
	}
	err := upsert(func() error {
		return x.db.rosterVersions.FindOneAndUpdate(ctx, byID(userKey(owner)), update, opts).Decode(&v)
	})
	if err != nil {
		return 0, fmt.Errorf("mongo: roster version: %w", err)
	}
	return v.Ver, nil
}

type lastActivityDoc struct {
	At     bson.DateTime `bson:"at"`
	Status string        `bson:"status"`
}

func (x xmppStore) SetLastActivity(ctx context.Context, owner xmpp.UserRef, at time.Time, status string) error {
	update := bson.D{
		{Key: "$set", Value: bson.D{{Key: "at", Value: date(at)}, {Key: "status", Value: status}}},
		{Key: "$setOnInsert", Value: ownerFilter(owner)},
	}
	err := upsert(func() error {
		_, err := x.db.lastActivity.UpdateOne(ctx, byID(userKey(owner)), update, options.UpdateOne().SetUpsert(true))
		return err
	})
	if err != nil {
		return fmt.Errorf("mongo: set last activity: %w", err)
	}
	return nil
}

func (x xmppStore) LastActivity(ctx context.Context, owner xmpp.UserRef) (time.Time, string, error) {
	var d lastActivityDoc
	if err := x.db.lastActivity.FindOne(ctx, byID(userKey(owner))).Decode(&d); err != nil {
		return time.Time{}, "", notFound(err, "last activity")
	}
	return fromDate(d.At), d.Status, nil
}

// upsert runs an upserting write of one document chosen by _id. Two first
// upserts of the same _id race to insert it and the loser fails with a
// duplicate-key error (FerretDB always lets them race; MongoDB retries such
// an upsert itself); the write is then repeated, and finds the document.
func upsert(write func() error) error {
	for attempt := 1; ; attempt++ {
		err := write()
		if err == nil || !mongo.IsDuplicateKeyError(err) || attempt == maxAttempts {
			return err
		}
	}
}
