package mongo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"chatd/account"
	"chatd/xmpp"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Offline messages: one document per message in offline_messages, its _id
// a sequence number from the "offline" counter (so arrival order is _id
// order). The limit is checked with a count before the insert, so
// concurrent pushes for one user may overshoot it by their number.

type offlineDoc struct {
	Seq    int64         `bson:"_id"`
	AppID  int64         `bson:"app_id"`
	UserID int64         `bson:"user_id"`
	Stamp  bson.DateTime `bson:"stamp"`
	Data   []byte        `bson:"data"`
}

func (x xmppStore) PushOffline(ctx context.Context, owner xmpp.UserRef, msg *xmpp.OfflineMessage, limit int) error {
	n, err := x.db.offline.CountDocuments(ctx, ownerFilter(owner))
	if err != nil {
		return fmt.Errorf("mongo: count offline messages: %w", err)
	}
	if n >= int64(limit) {
		return xmpp.ErrOfflineFull
	}
	seq, err := x.db.insertWithID(ctx, x.db.offline, "offline", func(id int64) any {
		return offlineDoc{Seq: id, AppID: owner.App, UserID: owner.User,
			Stamp: bson.DateTime(msg.Stamp.UnixMilli()), Data: msg.Data}
	}, nil)
	if err != nil {
		return err
	}
	msg.Seq = seq
	return nil
}

func (x xmppStore) OfflineMessages(ctx context.Context, owner xmpp.UserRef, max int) ([]xmpp.OfflineMessage, error) {
	cur, err := x.db.offline.Find(ctx, ownerFilter(owner),
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(max)))
	if err != nil {
		return nil, fmt.Errorf("mongo: offline messages: %w", err)
	}
	var docs []offlineDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongo: offline messages: %w", err)
	}
	out := make([]xmpp.OfflineMessage, len(docs))
	for i, d := range docs {
		out[i] = xmpp.OfflineMessage{Seq: d.Seq, Stamp: d.Stamp.Time().UTC(), Data: d.Data}
	}
	return out, nil
}

func (x xmppStore) DeleteOffline(ctx context.Context, owner xmpp.UserRef, upTo int64) error {
	f := append(ownerFilter(owner), bson.E{Key: "_id", Value: bson.D{{Key: "$lte", Value: upTo}}})
	if _, err := x.db.offline.DeleteMany(ctx, f); err != nil {
		return fmt.Errorf("mongo: delete offline messages: %w", err)
	}
	return nil
}

// Privacy lists: one document per list in privacy_lists (_id
// "<app>:<user>:<name>", the items as JSON text), and the default list's
// name in privacy_defaults (_id "<app>:<user>").

type privacyDoc struct {
	ID     string `bson:"_id"`
	AppID  int64  `bson:"app_id"`
	UserID int64  `bson:"user_id"`
	Name   string `bson:"name"`
	Items  string `bson:"items"`
}

func listKey(owner xmpp.UserRef, name string) string {
	return strconv.FormatInt(owner.App, 10) + ":" + strconv.FormatInt(owner.User, 10) + ":" + name
}

func (x xmppStore) PrivacyLists(ctx context.Context, owner xmpp.UserRef) ([]xmpp.PrivacyList, string, error) {
	var def struct {
		Name string `bson:"name"`
	}
	err := x.db.privacyDefaults.FindOne(ctx, byID(userKey(owner))).Decode(&def)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return nil, "", fmt.Errorf("mongo: default privacy list: %w", err)
	}
	cur, err := x.db.privacyLists.Find(ctx, ownerFilter(owner), options.Find().SetSort(bson.D{{Key: "name", Value: 1}}))
	if err != nil {
		return nil, "", fmt.Errorf("mongo: privacy lists: %w", err)
	}
	var docs []privacyDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, "", fmt.Errorf("mongo: privacy lists: %w", err)
	}
	out := make([]xmpp.PrivacyList, len(docs))
	for i, d := range docs {
		out[i].Name = d.Name
		if err := json.Unmarshal([]byte(d.Items), &out[i].Items); err != nil {
			return nil, "", fmt.Errorf("mongo: privacy list %s: %w", d.Name, err)
		}
	}
	return out, def.Name, nil
}

func (x xmppStore) PutPrivacyList(ctx context.Context, owner xmpp.UserRef, list xmpp.PrivacyList) error {
	items, err := json.Marshal(list.Items)
	if err != nil {
		return err
	}
	if list.Items == nil {
		items = []byte("[]")
	}
	doc := privacyDoc{ID: listKey(owner, list.Name), AppID: owner.App, UserID: owner.User, Name: list.Name, Items: string(items)}
	err = upsert(func() error {
		_, err := x.db.privacyLists.ReplaceOne(ctx, byID(doc.ID), doc, options.Replace().SetUpsert(true))
		return err
	})
	if err != nil {
		return fmt.Errorf("mongo: put privacy list: %w", err)
	}
	return nil
}

func (x xmppStore) DeletePrivacyList(ctx context.Context, owner xmpp.UserRef, name string) error {
	res, err := x.db.privacyLists.DeleteOne(ctx, byID(listKey(owner, name)))
	if err != nil {
		return fmt.Errorf("mongo: delete privacy list: %w", err)
	}
	if res.DeletedCount == 0 {
		return account.ErrNotFound
	}
	if _, err := x.db.privacyDefaults.DeleteOne(ctx, bson.D{{Key: "_id", Value: userKey(owner)}, {Key: "name", Value: name}}); err != nil {
		return fmt.Errorf("mongo: clear default privacy list: %w", err)
	}
	return nil
}

func (x xmppStore) SetDefaultPrivacyList(ctx context.Context, owner xmpp.UserRef, name string) error {
	if name == "" {
		if _, err := x.db.privacyDefaults.DeleteOne(ctx, byID(userKey(owner))); err != nil {
			return fmt.Errorf("mongo: clear default privacy list: %w", err)
		}
		return nil
	}
	if err := x.db.privacyLists.FindOne(ctx, byID(listKey(owner, name))).Err(); err != nil {
		return notFound(err, "privacy list")
	}
	err := upsert(func() error {
		_, err := x.db.privacyDefaults.ReplaceOne(ctx, byID(userKey(owner)),
			bson.D{{Key: "app_id", Value: owner.App}, {Key: "user_id", Value: owner.User}, {Key: "name", Value: name}},
			options.Replace().SetUpsert(true))
		return err
	})
	if err != nil {
		return fmt.Errorf("mongo: set default privacy list: %w", err)
	}
	return nil
}
