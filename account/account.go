package account

import (
	"context"
	"time"
)

// Application is a tenant: its users, dialogs and messages are invisible to
// every other application. Clients identify it by ID and AuthKey and sign
// session requests with AuthSecret.
type Application struct {
	ID         int64
	Name       string
	AuthKey    string
	AuthSecret string
	CreatedAt  time.Time
}

// ScramKeys are the SCRAM StoredKey and ServerKey (RFC 5802) of one secret
// for one hash function.
type ScramKeys struct {
	StoredKey []byte
	ServerKey []byte
}

// Credentials hold what verifying a secret needs under PLAIN, SCRAM-SHA-1 and
// SCRAM-SHA-256: one salt and iteration count, and the keys derived with them.
type Credentials struct {
	Salt       []byte
	Iterations int
	SHA1       ScramKeys
	SHA256     ScramKeys
}

// User is a user of an application, in the QuickBlox user model. Zero values
// stand for null: an ExternalUserID or BlobID of 0, an empty string, a zero
// LastRequestAt.
type User struct {
	ID             int64
	AppID          int64
	Login          string
	Email          string
	FullName       string
	Phone          string
	Website        string
	ExternalUserID int64
	FacebookID     string
	TwitterID      string
	BlobID         int64
	CustomData     string
	Tags           []string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	LastRequestAt  time.Time
	Credentials    Credentials
}

// Session is a REST session. UserID is 0 for an application session. The
// token itself is never stored: TokenHash is its SHA-256 in hex, and
// TokenKeys, set while the session belongs to a user, are SCRAM keys derived
// from the token with that user's salt.
type Session struct {
	ID        int64
	ObjectID  string
	AppID     int64
	UserID    int64
	TokenHash string
	TokenKeys *Credentials
	Nonce     int64
	Timestamp int64
	CreatedAt time.Time
	UpdatedAt time.Time
	ExpiresAt time.Time
}

// APIKey lets a server-side integration act for any user of its application
// (Authorization: ApiKey <key>, On-Behalf-Of: <user_id>). Only the SHA-256 of
// the key is stored.
type APIKey struct {
	ID        int64
	AppID     int64
	Name      string
	KeyHash   string
	CreatedAt time.Time
}

// UserField names a user attribute that lookups, filters and orders use.
type UserField string

// The user fields that can be looked up, filtered and ordered on.
const (
	FieldID             UserField = "id"
	FieldLogin          UserField = "login"
	FieldEmail          UserField = "email"
	FieldFullName       UserField = "full_name"
	FieldPhone          UserField = "phone"
	FieldWebsite        UserField = "website"
	FieldExternalUserID UserField = "external_user_id"
	FieldFacebookID     UserField = "facebook_id"
	FieldTwitterID      UserField = "twitter_id"
	FieldBlobID         UserField = "blob_id"
	FieldTags           UserField = "user_tags"
	FieldCreatedAt      UserField = "created_at"
	FieldUpdatedAt      UserField = "updated_at"
	FieldLastRequestAt  UserField = "last_request_at"
)

// Op is a comparison in a user filter.
type Op string

// Filter operators. OpContains is a case-insensitive substring match on a
// string field.
//
// A user's tags are a set, in no order: on FieldTags, OpEq with one or more
// tags ("user_tags eq a,b") matches the users having all of them, OpNe
// those lacking at least one of them (the users OpEq does not match), and
// OpIn those having any of them. A tag is matched whole ("a" is not in
// "ab").
const (
	OpEq       Op = "eq"
	OpNe       Op = "ne"
	OpGt       Op = "gt"
	OpLt       Op = "lt"
	OpGe       Op = "ge"
	OpLe       Op = "le"
	OpBetween  Op = "between"
	OpIn       Op = "in"
	OpContains Op = "ctn"
)

// Kind is the type of a user field's values.
type Kind int

// Value kinds.
const (
	KindInt Kind = iota
	KindString
	KindTime
	KindTags
)

// FieldKind returns the kind of a filterable field and whether it is one.
func FieldKind(f UserField) (Kind, bool) {
	switch f {
	case FieldID, FieldExternalUserID, FieldBlobID:
		return KindInt, true
	case FieldLogin, FieldEmail, FieldFullName, FieldPhone, FieldWebsite, FieldFacebookID, FieldTwitterID:
		return KindString, true
	case FieldCreatedAt, FieldUpdatedAt, FieldLastRequestAt:
		return KindTime, true
	case FieldTags:
		return KindTags, true
	}
	return 0, false
}

// Nullable reports whether a user may have no value for the filterable
// field f, which the zero value stands for (see User): every field but id,
// created_at, updated_at and user_tags. A user without a value for f
// matches no filter on f but OpNe (nor OpContains, having no text): it is
// not less than anything, nor equal to 0 or to the epoch.
func Nullable(f UserField) bool {
	switch f {
	case FieldID, FieldCreatedAt, FieldUpdatedAt, FieldTags:
		return false
	}
	_, ok := FieldKind(f)
	return ok
}

// Filter is one typed condition of a user query. Values hold int64, string or
// time.Time according to the field's Kind (strings for FieldTags): one value,
// two for OpBetween, one or more for OpIn and, on FieldTags, for OpEq and
// OpNe.
type Filter struct {
	Field  UserField
	Op     Op
	Values []any
}

// UserQuery selects users of one application. Backends apply every filter
// (all must hold), order by OrderBy (FieldID when empty) and page with Limit
// and Offset; they also return the number of matches before paging.
type UserQuery struct {
	Filters   []Filter
	OrderBy   UserField
	OrderDesc bool
	Limit     int
	Offset    int
}

// Store keeps applications, users, sessions and API keys. Implementations
// must be safe for concurrent use and return ErrNotFound, *DuplicateError and
// ErrNonceReused as documented.
type Store interface {
	// CreateApp stores app and sets its ID.
	CreateApp(ctx context.Context, app *Application) error
	App(ctx context.Context, id int64) (*Application, error)
	Apps(ctx context.Context) ([]*Application, error)

	// CreateUser stores u and sets its ID, or returns *DuplicateError.
	CreateUser(ctx context.Context, u *User) error
	User(ctx context.Context, appID, id int64) (*User, error)
	// UserBy finds the user of appID whose field equals value; for a field
	// that is not unique (phone) the user with the lowest id.
	UserBy(ctx context.Context, appID int64, field UserField, value any) (*User, error)
	// UpdateUser writes the named attributes of u (UserAttrs; all of them
	// when fields is nil) and its updated_at, matched by AppID and ID, or
	// returns ErrNotFound or *DuplicateError. What is not named stays as
	// stored, so two updates of different attributes made at once both
	// take effect.
	UpdateUser(ctx context.Context, u *User, fields []string) error
	DeleteUser(ctx context.Context, appID, id int64) error
	FindUsers(ctx context.Context, appID int64, q UserQuery) (users []*User, total int, err error)
	// TouchUser sets last_request_at.
	TouchUser(ctx context.Context, appID, id int64, at time.Time) error

	// CreateSession stores s and sets its ID.
	CreateSession(ctx context.Context, s *Session) error
	SessionByToken(ctx context.Context, tokenHash string) (*Session, error)
	// UpdateSession replaces UserID, TokenKeys, UpdatedAt and ExpiresAt.
	UpdateSession(ctx context.Context, s *Session) error
	// RefreshSession sets only UpdatedAt and ExpiresAt (the sliding expiry),
	// leaving the user and token keys as a login or logout made meanwhile
	// left them.
	RefreshSession(ctx context.Context, tokenHash string, updatedAt, expiresAt time.Time) error
	DeleteSession(ctx context.Context, tokenHash string) error
	// UserSessions returns the sessions of a user that expire after now.
	UserSessions(ctx context.Context, appID, userID int64, now time.Time) ([]*Session, error)
	DeleteUserSessions(ctx context.Context, appID, userID int64) error
	// DeleteExpired removes the sessions and nonces whose expiry is at or
	// before now.
	DeleteExpired(ctx context.Context, now time.Time) error
	// UseNonce records a nonce key until expires (the first instant it may
	// be forgotten), or returns ErrNonceReused when it is already recorded.
	UseNonce(ctx context.Context, appID int64, key string, expires time.Time) error

	// CreateAPIKey stores k and sets its ID.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	APIKeyByHash(ctx context.Context, keyHash string) (*APIKey, error)
	APIKeys(ctx context.Context, appID int64) ([]*APIKey, error)
	DeleteAPIKey(ctx context.Context, appID, id int64) error
}
