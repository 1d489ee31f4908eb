package mongo

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"chatd/account"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Accounts returns the account.Store of db.
func (db *DB) Accounts() account.Store { return accounts{db} }

type accounts struct{ db *DB }

var _ account.Store = accounts{}

type appDoc struct {
	ID         int64         `bson:"_id"`
	Name       string        `bson:"name"`
	AuthKey    string        `bson:"auth_key"`
	AuthSecret string        `bson:"auth_secret"`
	CreatedAt  bson.DateTime `bson:"created_at"`
}

func (d *appDoc) app() *account.Application {
	return &account.Application{ID: d.ID, Name: d.Name, AuthKey: d.AuthKey, AuthSecret: d.AuthSecret,
		CreatedAt: fromDate(d.CreatedAt)}
}

func (a accounts) CreateApp(ctx context.Context, app *account.Application) error {
	id, err := a.db.insertWithID(ctx, a.db.apps, "apps", func(id int64) any {
		return appDoc{ID: id, Name: app.Name, AuthKey: app.AuthKey, AuthSecret: app.AuthSecret, CreatedAt: date(app.CreatedAt)}
	}, nil)
	if err != nil {
		return err
	}
	app.ID = id
	return nil
}

func (a accounts) App(ctx context.Context, id int64) (*account.Application, error) {
	var d appDoc
	if err := a.db.apps.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		return nil, notFound(err, "app")
	}
	return d.app(), nil
}

func (a accounts) Apps(ctx context.Context) ([]*account.Application, error) {
	var docs []appDoc
	if err := findAll(ctx, a.db.apps, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}), &docs); err != nil {
		return nil, err
	}
	var out []*account.Application
	for i := range docs {
		out = append(out, docs[i].app())
	}
	return out, nil
}

// findAll decodes every document c holds that matches filter into out. The
// callers convert the documents into a nil slice when there are none, as
// store/sqlite returns.
func findAll(ctx context.Context, c *mongo.Collection, filter any, opts *options.FindOptionsBuilder, out any) error {
	cur, err := c.Find(ctx, filter, opts)
	if err != nil {
		return fmt.Errorf("mongo: find in %s: %w", c.Name(), err)
	}
	if err := cur.All(ctx, out); err != nil {
		return fmt.Errorf("mongo: reading %s: %w", c.Name(), err)
	}
	return nil
}

type keysDoc struct {
	StoredKey []byte `bson:"stored_key"`
	ServerKey []byte `bson:"server_key"`
}

type credDoc struct {
	Salt       []byte  `bson:"salt"`
	Iterations int     `bson:"iterations"`
	SHA1       keysDoc `bson:"sha1"`
	SHA256     keysDoc `bson:"sha256"`
}

func toCredDoc(c *account.Credentials) *credDoc {
	if c == nil {
		return nil
	}
	return &credDoc{
		Salt:       c.Salt,
		Iterations: c.Iterations,
		SHA1:       keysDoc{c.SHA1.StoredKey, c.SHA1.ServerKey},
		SHA256:     keysDoc{c.SHA256.StoredKey, c.SHA256.ServerKey},
	}
}

func (d *credDoc) credentials() *account.Credentials {
	if d == nil {
		return nil
	}
	return &account.Credentials{
		Salt:       d.Salt,
		Iterations: d.Iterations,
		SHA1:       account.ScramKeys{StoredKey: d.SHA1.StoredKey, ServerKey: d.SHA1.ServerKey},
		SHA256:     account.ScramKeys{StoredKey: d.SHA256.StoredKey, ServerKey: d.SHA256.ServerKey},
	}
}

// userDoc is a stored user. The k_ fields back the unique indexes (see the
// package documentation); they are written, never read.
type userDoc struct {
	ID             int64         `bson:"_id"`
	AppID          int64         `bson:"app_id"`
	Login          string        `bson:"login"`
	Email          string        `bson:"email"`
	FullName       string        `bson:"full_name"`
	Phone          string        `bson:"phone"`
	Website        string        `bson:"website"`
	ExternalUserID int64         `bson:"external_user_id"`
	FacebookID     string        `bson:"facebook_id"`
	TwitterID      string        `bson:"twitter_id"`
	BlobID         int64         `bson:"blob_id"`
	CustomData     string        `bson:"custom_data"`
	Tags           []string      `bson:"tags"`
	CreatedAt      bson.DateTime `bson:"created_at"`
	UpdatedAt      bson.DateTime `bson:"updated_at"`
	LastRequestAt  bson.DateTime `bson:"last_request_at"`
	Credentials    credDoc       `bson:"credentials"`

	KLogin          any `bson:"k_login"`
	KEmail          any `bson:"k_email"`
	KFacebookID     any `bson:"k_facebook_id"`
	KTwitterID      any `bson:"k_twitter_id"`
	KExternalUserID any `bson:"k_external_user_id"`
}

// uniqueKey is the value of a k_ field: the attribute when set, else a
// placeholder unique to the user and of another BSON type than the attribute
// (an int64 id for string attributes, a string id for external_user_id).
func uniqueKey(v string, id int64) any {
	if v == "" {
		return id
	}
	return v
}

func uniqueIntKey(v, id int64) any {
	if v == 0 {
		return strconv.FormatInt(id, 10)
	}
	return v
}

func toUserDoc(u *account.User, id int64) *userDoc {
	tags := u.Tags
	if tags == nil {
		tags = []string{}
	}
	return &userDoc{
		ID:              id,
		AppID:           u.AppID,
		Login:           u.Login,
		Email:           u.Email,
		FullName:        u.FullName,
		Phone:           u.Phone,
		Website:         u.Website,
		ExternalUserID:  u.ExternalUserID,
		FacebookID:      u.FacebookID,
		TwitterID:       u.TwitterID,
		BlobID:          u.BlobID,
		CustomData:      u.CustomData,
		Tags:            tags,
		CreatedAt:       date(u.CreatedAt),
		UpdatedAt:       date(u.UpdatedAt),
		LastRequestAt:   date(u.LastRequestAt),
		Credentials:     *toCredDoc(&u.Credentials),
		KLogin:          uniqueKey(u.Login, id),
		KEmail:          uniqueKey(u.Email, id),
		KFacebookID:     uniqueKey(u.FacebookID, id),
		KTwitterID:      uniqueKey(u.TwitterID, id),
		KExternalUserID: uniqueIntKey(u.ExternalUserID, id),
	}
}

func (d *userDoc) user() *account.User {
	u := &account.User{
		ID:             d.ID,
		AppID:          d.AppID,
		Login:          d.Login,
		Email:          d.Email,
		FullName:       d.FullName,
		Phone:          d.Phone,
		Website:        d.Website,
		ExternalUserID: d.ExternalUserID,
		FacebookID:     d.FacebookID,
		TwitterID:      d.TwitterID,
		BlobID:         d.BlobID,
		CustomData:     d.CustomData,
		CreatedAt:      fromDate(d.CreatedAt),
		UpdatedAt:      fromDate(d.UpdatedAt),
		LastRequestAt:  fromDate(d.LastRequestAt),
		Credentials:    *d.Credentials.credentials(),
	}
	if len(d.Tags) > 0 {
		u.Tags = d.Tags
	}
	return u
}

// uniqueAttrs lists the unique user attributes in the order a conflict is
// reported in, with the k_ field that indexes each.
var uniqueAttrs = []struct {
	field string
	key   string
	value func(*account.User) (v any, set bool)
}{
	{"login", "k_login", func(u *account.User) (any, bool) { return u.Login, u.Login != "" }},
	{"email", "k_email", func(u *account.User) (any, bool) { return u.Email, u.Email != "" }},
	{"facebook_id", "k_facebook_id", func(u *account.User) (any, bool) { return u.FacebookID, u.FacebookID != "" }},
	{"twitter_id", "k_twitter_id", func(u *account.User) (any, bool) { return u.TwitterID, u.TwitterID != "" }},
	{"external_user_id", "k_external_user_id", func(u *account.User) (any, bool) { return u.ExternalUserID, u.ExternalUserID != 0 }},
}

// userConflict returns a *account.DuplicateError naming the first unique
// attribute of u that another user (not self) of its application holds, or
// nil if there is none.
func (a accounts) userConflict(ctx context.Context, u *account.User, self int64) error {
	for _, attr := range uniqueAttrs {
		v, set := attr.value(u)
		if !set {
			continue
		}
		err := a.db.users.FindOne(ctx, bson.D{
			{Key: "app_id", Value: u.AppID},
			{Key: attr.key, Value: v},
			{Key: "_id", Value: bson.D{{Key: "$ne", Value: self}}},
		}, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
		switch {
		case err == nil:
			return &account.DuplicateError{Field: attr.field}
		case !errors.Is(err, mongo.ErrNoDocuments):
			return fmt.Errorf("mongo: checking %s of user: %w", attr.field, err)
		}
	}
	return nil
}

func (a accounts) CreateUser(ctx context.Context, u *account.User) error {
	id, err := a.db.insertWithID(ctx, a.db.users, "users", func(id int64) any { return toUserDoc(u, id) },
		func(ctx context.Context) error { return a.userConflict(ctx, u, 0) })
	if err != nil {
		return err
	}
	u.ID = id
	return nil
}

func (a accounts) findUser(ctx context.Context, filter bson.D) (*account.User, error) {
	var d userDoc
	err := a.db.users.FindOne(ctx, filter, options.FindOne().SetSort(bson.D{{Key: "_id", Value: 1}})).Decode(&d)
	if err != nil {
		return nil, notFound(err, "user")
	}
	return d.user(), nil
}

func (a accounts) User(ctx context.Context, appID, id int64) (*account.User, error) {
	return a.findUser(ctx, bson.D{{Key: "_id", Value: id}, {Key: "app_id", Value: appID}})
}

// userFields maps the user fields to the stored field names.
var userFields = map[account.UserField]string{
	account.FieldID:             "_id",
	account.FieldLogin:          "login",
	account.FieldEmail:          "email",
	account.FieldFullName:       "full_name",
	account.FieldPhone:          "phone",
	account.FieldWebsite:        "website",
	account.FieldExternalUserID: "external_user_id",
	account.FieldFacebookID:     "facebook_id",
	account.FieldTwitterID:      "twitter_id",
	account.FieldBlobID:         "blob_id",
	account.FieldTags:           "tags",
	account.FieldCreatedAt:      "created_at",
	account.FieldUpdatedAt:      "updated_at",
	account.FieldLastRequestAt:  "last_request_at",
}

// queryValue converts a lookup or filter value of a field of the given kind
// to its stored form.
func queryValue(f account.UserField, kind account.Kind, v any) (any, error) {
	switch kind {
	case account.KindInt:
		switch n := v.(type) {
		case int64:
			return n, nil
		case int:
			return int64(n), nil
		case int32:
			return int64(n), nil
		}
	case account.KindString, account.KindTags:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case account.KindTime:
		if t, ok := v.(time.Time); ok {
			return date(t), nil
		}
	}
	return nil, fmt.Errorf("mongo: value %v (%T) does not fit user field %s", v, v, f)
}

func (a accounts) UserBy(ctx context.Context, appID int64, field account.UserField, value any) (*account.User, error) {
	name, ok := userFields[field]
	kind, _ := account.FieldKind(field)
	if !ok || kind == account.KindTags {
		return nil, fmt.Errorf("mongo: cannot look users up by %s", field)
	}
	if s, ok := value.(string); ok && s == "" {
		return nil, account.ErrNotFound
	}
	if n, ok := value.(int64); ok && n == 0 && field == account.FieldExternalUserID {
		return nil, account.ErrNotFound // 0 is "no external id", not one
	}
	v, err := queryValue(field, kind, value)
	if err != nil {
		return nil, err
	}
	// A set unique attribute equals its k_ field, which is indexed.
	for _, attr := range uniqueAttrs {
		if attr.field == string(field) && v != "" && v != int64(0) {
			name = attr.key
		}
	}
	return a.findUser(ctx, bson.D{{Key: "app_id", Value: appID}, {Key: name, Value: v}})
}

func (a accounts) UpdateUser(ctx context.Context, u *account.User, fields []string) error {
	doc := toUserDoc(u, u.ID)
	if fields == nil {
		fields = account.UserAttrs
	}
	// Only the named attributes (with their uniqueness keys) and updated_at.
	set := bson.D{{Key: "updated_at", Value: doc.UpdatedAt}}
	for _, f := range fields {
		switch f {
		case "login":
			set = append(set, bson.E{Key: "login", Value: doc.Login}, bson.E{Key: "k_login", Value: doc.KLogin})
		case "email":
			set = append(set, bson.E{Key: "email", Value: doc.Email}, bson.E{Key: "k_email", Value: doc.KEmail})
		case "full_name":
			set = append(set, bson.E{Key: "full_name", Value: doc.FullName})
		case "phone":
			set = append(set, bson.E{Key: "phone", Value: doc.Phone})
		case "website":
			set = append(set, bson.E{Key: "website", Value: doc.Website})
		case "external_user_id":
			set = append(set, bson.E{Key: "external_user_id", Value: doc.ExternalUserID},
				bson.E{Key: "k_external_user_id", Value: doc.KExternalUserID})
		case "facebook_id":
			set = append(set, bson.E{Key: "facebook_id", Value: doc.FacebookID}, bson.E{Key: "k_facebook_id", Value: doc.KFacebookID})
		case "twitter_id":
			set = append(set, bson.E{Key: "twitter_id", Value: doc.TwitterID}, bson.E{Key: "k_twitter_id", Value: doc.KTwitterID})
		case "blob_id":
			set = append(set, bson.E{Key: "blob_id", Value: doc.BlobID})
		case "custom_data":
			set = append(set, bson.E{Key: "custom_data", Value: doc.CustomData})
		case "tags":
			set = append(set, bson.E{Key: "tags", Value: doc.Tags})
		case "credentials":
			set = append(set, bson.E{Key: "credentials", Value: doc.Credentials})
		default:
			return fmt.Errorf("mongo: no user attribute %q", f)
		}
	}
	filter := bson.D{{Key: "_id", Value: u.ID}, {Key: "app_id", Value: u.AppID}}
	for attempt := 1; ; attempt++ {
		res, err := a.db.users.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: set}})
		if err == nil {
			if res.MatchedCount == 0 {
				return account.ErrNotFound
			}
			return nil
		}
		if !isServerError(err) || attempt == maxAttempts {
			return fmt.Errorf("mongo: update user: %w", err)
		}
		// FerretDB reports a unique index violation on update as an
		// internal error, MongoDB as a duplicate key: ask which value is
		// taken whatever the server's reason.
		if err := a.userConflict(ctx, u, u.ID); err != nil {
			return err
		}
		if !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("mongo: update user: %w", err)
		}
	}
}

func (a accounts) DeleteUser(ctx context.Context, appID, id int64) error {
	res, err := a.db.users.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "app_id", Value: appID}})
	if err != nil {
		return fmt.Errorf("mongo: delete user: %w", err)
	}
	if res.DeletedCount == 0 {
		return account.ErrNotFound
	}
	return nil
}

func (a accounts) TouchUser(ctx context.Context, appID, id int64, at time.Time) error {
	res, err := a.db.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "app_id", Value: appID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "last_request_at", Value: date(at)}}}})
	if err != nil {
		return fmt.Errorf("mongo: touch user: %w", err)
	}
	if res.MatchedCount == 0 {
		return account.ErrNotFound
	}
	return nil
}

func (a accounts) FindUsers(ctx context.Context, appID int64, q account.UserQuery) ([]*account.User, int, error) {
	filter := bson.D{{Key: "app_id", Value: appID}}
	var conds bson.A
	for _, f := range q.Filters {
		c, err := userCondition(f)
		if err != nil {
			return nil, 0, err
		}
		conds = append(conds, c)
	}
	if len(conds) > 0 {
		filter = append(filter, bson.E{Key: "$and", Value: conds})
	}
	total, err := a.db.users.CountDocuments(ctx, filter)
	if err != nil {
		return nil, 0, fmt.Errorf("mongo: count users: %w", err)
	}
	order := "_id"
	if q.OrderBy != "" {
		name, ok := userFields[q.OrderBy]
		if !ok || q.OrderBy == account.FieldTags {
			return nil, 0, fmt.Errorf("mongo: cannot order users by %s", q.OrderBy)
		}
		order = name
	}
	dir := 1
	if q.OrderDesc {
		dir = -1
	}
	sort := bson.D{{Key: order, Value: dir}}
	if order != "_id" {
		sort = append(sort, bson.E{Key: "_id", Value: dir})
	}
	opts := options.Find().SetSort(sort).SetSkip(int64(max(q.Offset, 0)))
	if q.Limit > 0 {
		opts.SetLimit(int64(q.Limit))
	}
	var docs []userDoc
	if err := findAll(ctx, a.db.users, filter, opts, &docs); err != nil {
		return nil, 0, err
	}
	var users []*account.User
	for i := range docs {
		users = append(users, docs[i].user())
	}
	return users, int(total), nil
}

var comparisons = map[account.Op]string{
	account.OpEq: "$eq",
	account.OpNe: "$ne",
	account.OpGt: "$gt",
	account.OpLt: "$lt",
	account.OpGe: "$gte",
	account.OpLe: "$lte",
}

// userCondition translates one filter into a query document.
func userCondition(f account.Filter) (bson.D, error) {
	name, ok := userFields[f.Field]
	kind, _ := account.FieldKind(f.Field)
	if !ok {
		return nil, fmt.Errorf("mongo: unknown user field %s", f.Field)
	}
	if len(f.Values) == 0 {
		return nil, fmt.Errorf("mongo: filter on %s has no value", f.Field)
	}
	vals := make(bson.A, len(f.Values))
	for i, v := range f.Values {
		var err error
		if vals[i], err = queryValue(f.Field, kind, v); err != nil {
			return nil, err
		}
	}
	cond := func(expr bson.D) bson.D { return bson.D{{Key: name, Value: expr}} }
	if kind == account.KindTags {
		// The user has all of the tags (eq), lacks one of them (ne), or
		// has any of them (in).
		switch f.Op {
		case account.OpEq:
			return cond(bson.D{{Key: "$all", Value: vals}}), nil
		case account.OpNe:
			return bson.D{{Key: "$nor", Value: bson.A{cond(bson.D{{Key: "$all", Value: vals}})}}}, nil
		case account.OpIn:
			return cond(bson.D{{Key: "$in", Value: vals}}), nil
		}
		return nil, fmt.Errorf("mongo: operator %s does not apply to tags", f.Op)
	}
	if f.Op != account.OpNe && f.Op != account.OpContains && account.Nullable(f.Field) {
		// No value is stored as the zero value, which the comparison
		// itself would take for one.
		var none any
		switch kind {
		case account.KindInt:
			none = int64(0)
		case account.KindTime:
			none = date(time.Time{})
		default:
			none = ""
		}
		compare := cond
		cond = func(expr bson.D) bson.D { return compare(append(bson.D{{Key: "$ne", Value: none}}, expr...)) }
	}
	if op, ok := comparisons[f.Op]; ok {
		return cond(bson.D{{Key: op, Value: vals[0]}}), nil
	}
	switch f.Op {
	case account.OpBetween:
		if len(vals) != 2 {
			return nil, fmt.Errorf("mongo: between on %s needs two values", f.Field)
		}
		return cond(bson.D{{Key: "$gte", Value: vals[0]}, {Key: "$lte", Value: vals[1]}}), nil
	case account.OpIn:
		return cond(bson.D{{Key: "$in", Value: vals}}), nil
	case account.OpContains:
		if kind != account.KindString {
			return nil, fmt.Errorf("mongo: ctn applies to string fields only, not %s", f.Field)
		}
		return cond(bson.D{{Key: "$regex", Value: regexp.QuoteMeta(vals[0].(string))}, {Key: "$options", Value: "i"}}), nil
	}
	return nil, fmt.Errorf("mongo: unknown operator %s", f.Op)
}

type sessionDoc struct {
	ID        int64         `bson:"_id"`
	ObjectID  string        `bson:"object_id"`
	AppID     int64         `bson:"app_id"`
	UserID    int64         `bson:"user_id"`
	TokenHash string        `bson:"token_hash"`
	TokenKeys *credDoc      `bson:"token_keys"`
	Nonce     int64         `bson:"nonce"`
	Timestamp int64         `bson:"ts"`
	CreatedAt bson.DateTime `bson:"created_at"`
	UpdatedAt bson.DateTime `bson:"updated_at"`
	ExpiresAt bson.DateTime `bson:"expires_at"`
}

func (d *sessionDoc) session() *account.Session {
	return &account.Session{
		ID:        d.ID,
		ObjectID:  d.ObjectID,
		AppID:     d.AppID,
		UserID:    d.UserID,
		TokenHash: d.TokenHash,
		TokenKeys: d.TokenKeys.credentials(),
		Nonce:     d.Nonce,
		Timestamp: d.Timestamp,
		CreatedAt: fromDate(d.CreatedAt),
		UpdatedAt: fromDate(d.UpdatedAt),
		ExpiresAt: fromDate(d.ExpiresAt),
	}
}

// taken returns an error naming what when c holds a document whose field
// equals value, and nil when it holds none.
func taken(ctx context.Context, c *mongo.Collection, field string, value any, what string) error {
	err := c.FindOne(ctx, bson.D{{Key: field, Value: value}}, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	switch {
	case err == nil:
		return fmt.Errorf("mongo: %s is already stored", what)
	case errors.Is(err, mongo.ErrNoDocuments):
		return nil
	}
	return fmt.Errorf("mongo: checking %s: %w", what, err)
}

func (a accounts) CreateSession(ctx context.Context, s *account.Session) error {
	id, err := a.db.insertWithID(ctx, a.db.sessions, "sessions", func(id int64) any {
		return &sessionDoc{
			ID:        id,
			ObjectID:  s.ObjectID,
			AppID:     s.AppID,
			UserID:    s.UserID,
			TokenHash: s.TokenHash,
			TokenKeys: toCredDoc(s.TokenKeys),
			Nonce:     s.Nonce,
			Timestamp: s.Timestamp,
			CreatedAt: date(s.CreatedAt),
			UpdatedAt: date(s.UpdatedAt),
			ExpiresAt: date(s.ExpiresAt),
		}
	}, func(ctx context.Context) error {
		return taken(ctx, a.db.sessions, "token_hash", s.TokenHash, "session token hash")
	})
	if err != nil {
		return err
	}
	s.ID = id
	return nil
}

func (a accounts) SessionByToken(ctx context.Context, tokenHash string) (*account.Session, error) {
	var d sessionDoc
	if err := a.db.sessions.FindOne(ctx, bson.D{{Key: "token_hash", Value: tokenHash}}).Decode(&d); err != nil {
		return nil, notFound(err, "session")
	}
	return d.session(), nil
}

func (a accounts) UpdateSession(ctx context.Context, s *account.Session) error {
	res, err := a.db.sessions.UpdateOne(ctx, bson.D{{Key: "token_hash", Value: s.TokenHash}},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "user_id", Value: s.UserID},
			{Key: "token_keys", Value: toCredDoc(s.TokenKeys)},
			{Key: "updated_at", Value: date(s.UpdatedAt)},
			{Key: "expires_at", Value: date(s.ExpiresAt)},
		}}})
	if err != nil {
		return fmt.Errorf("mongo: update session: %w", err)
	}
	if res.MatchedCount == 0 {
		return account.ErrNotFound
	}
	return nil
}

func (a accounts) RefreshSession(ctx context.Context, tokenHash string, updatedAt, expiresAt time.Time) error {
	res, err := a.db.sessions.UpdateOne(ctx, bson.D{{Key: "token_hash", Value: tokenHash}},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "updated_at", Value: date(updatedAt)},
			{Key: "expires_at", Value: date(expiresAt)},
		}}})
	if err != nil {
		return fmt.Errorf("mongo: refresh session: %w", err)
	}
	if res.MatchedCount == 0 {
		return account.ErrNotFound
	}
	return nil
}

func (a accounts) DeleteSession(ctx context.Context, tokenHash string) error {
	res, err := a.db.sessions.DeleteOne(ctx, bson.D{{Key: "token_hash", Value: tokenHash}})
	if err != nil {
		return fmt.Errorf("mongo: delete session: %w", err)
	}
	if res.DeletedCount == 0 {
		return account.ErrNotFound
	}
	return nil
}

func (a accounts) UserSessions(ctx context.Context, appID, userID int64, now time.Time) ([]*account.Session, error) {
	var docs []sessionDoc
	err := findAll(ctx, a.db.sessions, bson.D{
		{Key: "app_id", Value: appID},
		{Key: "user_id", Value: userID},
		{Key: "expires_at", Value: bson.D{{Key: "$gt", Value: date(now)}}},
	}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}), &docs)
	if err != nil {
		return nil, err
	}
	var out []*account.Session
	for i := range docs {
		out = append(out, docs[i].session())
	}
	return out, nil
}

func (a accounts) DeleteUserSessions(ctx context.Context, appID, userID int64) error {
	_, err := a.db.sessions.DeleteMany(ctx, bson.D{{Key: "app_id", Value: appID}, {Key: "user_id", Value: userID}})
	if err != nil {
		return fmt.Errorf("mongo: delete user sessions: %w", err)
	}
	return nil
}

func (a accounts) DeleteExpired(ctx context.Context, now time.Time) error {
	expired := bson.D{{Key: "expires_at", Value: bson.D{{Key: "$lte", Value: date(now)}}}}
	if _, err := a.db.sessions.DeleteMany(ctx, expired); err != nil {
		return fmt.Errorf("mongo: delete expired sessions: %w", err)
	}
	if _, err := a.db.nonces.DeleteMany(ctx, expired); err != nil {
		return fmt.Errorf("mongo: delete expired nonces: %w", err)
	}
	return nil
}

func (a accounts) UseNonce(ctx context.Context, appID int64, key string, expires time.Time) error {
	_, err := a.db.nonces.InsertOne(ctx, bson.D{
		{Key: "_id", Value: strconv.FormatInt(appID, 10) + ":" + key},
		{Key: "app_id", Value: appID},
		{Key: "key", Value: key},
		{Key: "expires_at", Value: date(expires)},
	})
	switch {
	case mongo.IsDuplicateKeyError(err):
		return account.ErrNonceReused
	case err != nil:
		return fmt.Errorf("mongo: use nonce: %w", err)
	}
	return nil
}

type apiKeyDoc struct {
	ID        int64         `bson:"_id"`
	AppID     int64         `bson:"app_id"`
	Name      string        `bson:"name"`
	KeyHash   string        `bson:"key_hash"`
	CreatedAt bson.DateTime `bson:"created_at"`
}

func (d *apiKeyDoc) apiKey() *account.APIKey {
	return &account.APIKey{ID: d.ID, AppID: d.AppID, Name: d.Name, KeyHash: d.KeyHash, CreatedAt: fromDate(d.CreatedAt)}
}

func (a accounts) CreateAPIKey(ctx context.Context, k *account.APIKey) error {
	id, err := a.db.insertWithID(ctx, a.db.apiKeys, "api_keys", func(id int64) any {
		return &apiKeyDoc{ID: id, AppID: k.AppID, Name: k.Name, KeyHash: k.KeyHash, CreatedAt: date(k.CreatedAt)}
	}, func(ctx context.Context) error {
		return taken(ctx, a.db.apiKeys, "key_hash", k.KeyHash, "API key hash")
	})
	if err != nil {
		return err
	}
	k.ID = id
	return nil
}

func (a accounts) APIKeyByHash(ctx context.Context, keyHash string) (*account.APIKey, error) {
	var d apiKeyDoc
	if err := a.db.apiKeys.FindOne(ctx, bson.D{{Key: "key_hash", Value: keyHash}}).Decode(&d); err != nil {
		return nil, notFound(err, "API key")
	}
	return d.apiKey(), nil
}

func (a accounts) APIKeys(ctx context.Context, appID int64) ([]*account.APIKey, error) {
	var docs []apiKeyDoc
	err := findAll(ctx, a.db.apiKeys, bson.D{{Key: "app_id", Value: appID}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}), &docs)
	if err != nil {
		return nil, err
	}
	var out []*account.APIKey
	for i := range docs {
		out = append(out, docs[i].apiKey())
	}
	return out, nil
}

func (a accounts) DeleteAPIKey(ctx context.Context, appID, id int64) error {
	res, err := a.db.apiKeys.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "app_id", Value: appID}})
	if err != nil {
		return fmt.Errorf("mongo: delete API key: %w", err)
	}
	if res.DeletedCount == 0 {
		return account.ErrNotFound
	}
	return nil
}
