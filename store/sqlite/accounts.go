package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"chatd/account"
)

// Accounts returns the account.Store of db.
func (db *DB) Accounts() account.Store { return accounts{db} }

type accounts struct{ db *DB }

var _ account.Store = accounts{}

func (a accounts) CreateApp(ctx context.Context, app *account.Application) error {
	res, err := a.db.w.ExecContext(ctx,
		`INSERT INTO apps(name, auth_key, auth_secret, created_at) VALUES(?,?,?,?)`,
		app.Name, app.AuthKey, app.AuthSecret, unix(app.CreatedAt))
	if err != nil {
		return err
	}
	app.ID, err = res.LastInsertId()
	return err
}

func scanApp(row interface{ Scan(...any) error }) (*account.Application, error) {
	var (
		app account.Application
		at  int64
	)
	if err := row.Scan(&app.ID, &app.Name, &app.AuthKey, &app.AuthSecret, &at); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, account.ErrNotFound
		}
		return nil, err
	}
	app.CreatedAt = fromUnix(at)
	return &app, nil
}

func (a accounts) App(ctx context.Context, id int64) (*account.Application, error) {
	return scanApp(a.db.r.QueryRowContext(ctx, `SELECT id, name, auth_key, auth_secret, created_at FROM apps WHERE id = ?`, id))
}

func (a accounts) Apps(ctx context.Context) ([]*account.Application, error) {
	rows, err := a.db.r.QueryContext(ctx, `SELECT id, name, auth_key, auth_secret, created_at FROM apps ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*account.Application
	for rows.Next() {
		app, err := scanApp(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, app)
	}
	return out, rows.Err()
}

const userColumns = `id, app_id, login, email, full_name, phone, website, external_user_id, facebook_id,
	twitter_id, blob_id, custom_data, tags, created_at, updated_at, last_request_at, credentials`

func scanUser(row interface{ Scan(...any) error }) (*account.User, error) {
	var (
		u                account.User
		tags             string
		created, updated int64
		lastRequest      int64
		credentials      []byte
	)
	err := row.Scan(&u.ID, &u.AppID, &u.Login, &u.Email, &u.FullName, &u.Phone, &u.Website, &u.ExternalUserID,
		&u.FacebookID, &u.TwitterID, &u.BlobID, &u.CustomData, &tags, &created, &updated, &lastRequest, &credentials)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, account.ErrNotFound
		}
		return nil, err
	}
	u.Tags = decodeTags(tags)
	u.CreatedAt, u.UpdatedAt, u.LastRequestAt = fromUnix(created), fromUnix(updated), fromUnix(lastRequest)
	if err := json.Unmarshal(credentials, &u.Credentials); err != nil {
		return nil, fmt.Errorf("sqlite: user %d credentials: %w", u.ID, err)
	}
	return &u, nil
}

// Tags are stored as ",a,b," so that one tag matches with instr(tags, ',a,').
func encodeTags(tags []string) string {
	if len(tags) == 0 {
		return ""
	}
	return "," + strings.Join(tags, ",") + ","
}

func decodeTags(s string) []string {
	s = strings.Trim(s, ",")
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func userArgs(u *account.User) ([]any, error) {
	cred, err := json.Marshal(u.Credentials)
	if err != nil {
		return nil, err
	}
	return []any{u.AppID, u.Login, u.Email, u.FullName, u.Phone, u.Website, u.ExternalUserID, u.FacebookID,
		u.TwitterID, u.BlobID, u.CustomData, encodeTags(u.Tags), unix(u.CreatedAt), unix(u.UpdatedAt),
		unix(u.LastRequestAt), cred}, nil
}

func duplicate(err error) error {
	if col := uniqueViolation(err); col != "" {
		return &account.DuplicateError{Field: col}
	}
	return err
}

func (a accounts) CreateUser(ctx context.Context, u *account.User) error {
	args, err := userArgs(u)
	if err != nil {
		return err
	}
	res, err := a.db.w.ExecContext(ctx, `INSERT INTO users(app_id, login, email, full_name, phone, website,
		external_user_id, facebook_id, twitter_id, blob_id, custom_data, tags, created_at, updated_at,
		last_request_at, credentials) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, args...)
	if err != nil {
		return duplicate(err)
	}
	u.ID, err = res.LastInsertId()
	return err
}

func (a accounts) User(ctx context.Context, appID, id int64) (*account.User, error) {
	return scanUser(a.db.r.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE app_id = ? AND id = ?`, appID, id))
}

var userColumn = map[account.UserField]string{
	account.FieldID:             "id",
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

func (a accounts) UserBy(ctx context.Context, appID int64, field account.UserField, value any) (*account.User, error) {
	col, ok := userColumn[field]
	if !ok || field == account.FieldTags {
		return nil, fmt.Errorf("sqlite: cannot look users up by %s", field)
	}
	if s, ok := value.(string); ok && s == "" {
		return nil, account.ErrNotFound
	}
	if n, ok := value.(int64); ok && n == 0 && field == account.FieldExternalUserID {
		return nil, account.ErrNotFound // 0 is "no external id", not one
	}
	return scanUser(a.db.r.QueryRowContext(ctx,
		`SELECT `+userColumns+` FROM users WHERE app_id = ? AND `+col+` = ? ORDER BY id LIMIT 1`, appID, sqlValue(value)))
}

func (a accounts) UpdateUser(ctx context.Context, u *account.User, fields []string) error {
	cred, err := json.Marshal(u.Credentials)
	if err != nil {
		return err
	}
	values := map[string]any{"login": u.Login, "email": u.Email, "full_name": u.FullName, "phone": u.Phone,
		"website": u.Website, "external_user_id": u.ExternalUserID, "facebook_id": u.FacebookID,
		"twitter_id": u.TwitterID, "blob_id": u.BlobID, "custom_data": u.CustomData, "tags": encodeTags(u.Tags),
		"credentials": cred}
	if fields == nil {
		fields = account.UserAttrs
	}
	set := "updated_at = ?"
	args := []any{unix(u.UpdatedAt)}
	for _, f := range fields {
		v, ok := values[f]
		if !ok {
			return fmt.Errorf("sqlite: no user attribute %q", f)
		}
		set += ", " + f + " = ?"
		args = append(args, v)
	}
	res, err := a.db.w.ExecContext(ctx, `UPDATE users SET `+set+` WHERE app_id = ? AND id = ?`, append(args, u.AppID, u.ID)...)
	if err != nil {
		return duplicate(err)
	}
	return affected(res)
}

func affected(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return account.ErrNotFound
	}
	return nil
}

func (a accounts) DeleteUser(ctx context.Context, appID, id int64) error {
	res, err := a.db.w.ExecContext(ctx, `DELETE FROM users WHERE app_id = ? AND id = ?`, appID, id)
	if err != nil {
		return err
	}
	return affected(res)
}

func (a accounts) TouchUser(ctx context.Context, appID, id int64, at time.Time) error {
	res, err := a.db.w.ExecContext(ctx, `UPDATE users SET last_request_at = ? WHERE app_id = ? AND id = ?`, unix(at), appID, id)
	if err != nil {
		return err
	}
	return affected(res)
}

func sqlValue(v any) any {
	if t, ok := v.(time.Time); ok {
		return unix(t)
	}
	return v
}

func (a accounts) FindUsers(ctx context.Context, appID int64, q account.UserQuery) ([]*account.User, int, error) {
	where := []string{"app_id = ?"}
	args := []any{appID}
	for _, f := range q.Filters {
		col, ok := userColumn[f.Field]
		if !ok {
			return nil, 0, fmt.Errorf("sqlite: unknown user field %s", f.Field)
		}
		cond, fargs, err := userCondition(col, f)
		if err != nil {
			return nil, 0, err
		}
		where = append(where, cond)
		args = append(args, fargs...)
	}
	clause := strings.Join(where, " AND ")
	var total int
	if err := a.db.r.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE `+clause, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	order := "id"
	if q.OrderBy != "" {
		col, ok := userColumn[q.OrderBy]
		if !ok || q.OrderBy == account.FieldTags {
			return nil, 0, fmt.Errorf("sqlite: cannot order users by %s", q.OrderBy)
		}
		order = col
	}
	dir := " ASC"
	if q.OrderDesc {
		dir = " DESC"
	}
	orderBy := order + dir
	if order != "id" {
		orderBy += ", id" + dir
	}
	limit := q.Limit
	if limit <= 0 {
		limit = -1
	}
	rows, err := a.db.r.QueryContext(ctx, `SELECT `+userColumns+` FROM users WHERE `+clause+` ORDER BY `+orderBy+
		` LIMIT ? OFFSET ?`, append(args, limit, q.Offset)...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []*account.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, u)
	}
	return out, total, rows.Err()
}

func userCondition(col string, f account.Filter) (string, []any, error) {
	if len(f.Values) == 0 {
		return "", nil, fmt.Errorf("sqlite: filter on %s has no value", f.Field)
	}
	if f.Field == account.FieldTags {
		// The user has all of the tags (eq), lacks one of them (ne), or
		// has any of them (in).
		var has []string
		var args []any
		for _, v := range f.Values {
			has = append(has, "instr(tags, ?) > 0")
			args = append(args, ","+fmt.Sprint(v)+",")
		}
		switch f.Op {
		case account.OpEq:
			return "(" + strings.Join(has, " AND ") + ")", args, nil
		case account.OpNe:
			return "NOT (" + strings.Join(has, " AND ") + ")", args, nil
		case account.OpIn:
			return "(" + strings.Join(has, " OR ") + ")", args, nil
		}
		return "", nil, fmt.Errorf("sqlite: operator %s does not apply to tags", f.Op)
	}
	cond, args, err := valueCondition(col, f)
	if err != nil || f.Op == account.OpNe || f.Op == account.OpContains || !account.Nullable(f.Field) {
		return cond, args, err
	}
	// No value is stored as the zero value, which the comparison itself
	// would take for one.
	var none any = int64(0) // ints, and times (see unix)
	if kind, _ := account.FieldKind(f.Field); kind == account.KindString {
		none = ""
	}
	return "(" + col + " != ? AND " + cond + ")", append([]any{none}, args...), nil
}

// valueCondition is the condition of a filter on a field other than tags,
// comparing values as stored.
func valueCondition(col string, f account.Filter) (string, []any, error) {
	v := sqlValue(f.Values[0])
	switch f.Op {
	case account.OpEq:
		return col + " = ?", []any{v}, nil
	case account.OpNe:
		return col + " != ?", []any{v}, nil
	case account.OpGt:
		return col + " > ?", []any{v}, nil
	case account.OpLt:
		return col + " < ?", []any{v}, nil
	case account.OpGe:
		return col + " >= ?", []any{v}, nil
	case account.OpLe:
		return col + " <= ?", []any{v}, nil
	case account.OpBetween:
		if len(f.Values) != 2 {
			return "", nil, fmt.Errorf("sqlite: between on %s needs two values", f.Field)
		}
		return col + " BETWEEN ? AND ?", []any{v, sqlValue(f.Values[1])}, nil
	case account.OpIn:
		args := make([]any, len(f.Values))
		for i, x := range f.Values {
			args[i] = sqlValue(x)
		}
		return col + " IN (" + strings.TrimSuffix(strings.Repeat("?,", len(args)), ",") + ")", args, nil
	case account.OpContains:
		return containsSQL(col), []any{v}, nil
	}
	return "", nil, fmt.Errorf("sqlite: unknown operator %s", f.Op)
}

const sessionColumns = `id, object_id, app_id, user_id, token_hash, token_keys, nonce, ts, created_at, updated_at, expires_at`

func scanSession(row interface{ Scan(...any) error }) (*account.Session, error) {
	var (
		s                         account.Session
		keys                      []byte
		created, updated, expires int64
	)
	err := row.Scan(&s.ID, &s.ObjectID, &s.AppID, &s.UserID, &s.TokenHash, &keys, &s.Nonce, &s.Timestamp,
		&created, &updated, &expires)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, account.ErrNotFound
		}
		return nil, err
	}
	if len(keys) > 0 {
		s.TokenKeys = new(account.Credentials)
		if err := json.Unmarshal(keys, s.TokenKeys); err != nil {
			return nil, fmt.Errorf("sqlite: session %d keys: %w", s.ID, err)
		}
	}
	s.CreatedAt, s.UpdatedAt, s.ExpiresAt = fromUnix(created), fromUnix(updated), fromUnix(expires)
	return &s, nil
}

func encodeKeys(c *account.Credentials) ([]byte, error) {
	if c == nil {
		return nil, nil
	}
	return json.Marshal(c)
}

func (a accounts) CreateSession(ctx context.Context, s *account.Session) error {
	keys, err := encodeKeys(s.TokenKeys)
	if err != nil {
		return err
	}
	res, err := a.db.w.ExecContext(ctx, `INSERT INTO sessions(object_id, app_id, user_id, token_hash, token_keys,
		nonce, ts, created_at, updated_at, expires_at) VALUES(?,?,?,?,?,?,?,?,?,?)`,
		s.ObjectID, s.AppID, s.UserID, s.TokenHash, keys, s.Nonce, s.Timestamp,
		unix(s.CreatedAt), unix(s.UpdatedAt), unix(s.ExpiresAt))
	if err != nil {
		return err
	}
	s.ID, err = res.LastInsertId()
	return err
}

func (a accounts) SessionByToken(ctx context.Context, tokenHash string) (*account.Session, error) {
	return scanSession(a.db.r.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE token_hash = ?`, tokenHash))
}

func (a accounts) UpdateSession(ctx context.Context, s *account.Session) error {
	keys, err := encodeKeys(s.TokenKeys)
	if err != nil {
		return err
	}
	res, err := a.db.w.ExecContext(ctx, `UPDATE sessions SET user_id = ?, token_keys = ?, updated_at = ?,
		expires_at = ? WHERE token_hash = ?`, s.UserID, keys, unix(s.UpdatedAt), unix(s.ExpiresAt), s.TokenHash)
	if err != nil {
		return err
	}
	return affected(res)
}

func (a accounts) RefreshSession(ctx context.Context, tokenHash string, updatedAt, expiresAt time.Time) error {
	res, err := a.db.w.ExecContext(ctx, `UPDATE sessions SET updated_at = ?, expires_at = ? WHERE token_hash = ?`,
		unix(updatedAt), unix(expiresAt), tokenHash)
	if err != nil {
		return err
	}
	return affected(res)
}

func (a accounts) DeleteSession(ctx context.Context, tokenHash string) error {
	res, err := a.db.w.ExecContext(ctx, `DELETE FROM sessions WHERE token_hash = ?`, tokenHash)
	if err != nil {
		return err
	}
	return affected(res)
}

func (a accounts) UserSessions(ctx context.Context, appID, userID int64, now time.Time) ([]*account.Session, error) {
	rows, err := a.db.r.QueryContext(ctx, `SELECT `+sessionColumns+` FROM sessions
		WHERE app_id = ? AND user_id = ? AND expires_at > ? ORDER BY id`, appID, userID, unix(now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*account.Session
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func (a accounts) DeleteUserSessions(ctx context.Context, appID, userID int64) error {
	_, err := a.db.w.ExecContext(ctx, `DELETE FROM sessions WHERE app_id = ? AND user_id = ?`, appID, userID)
	return err
}

func (a accounts) DeleteExpired(ctx context.Context, now time.Time) error {
	return a.db.tx(ctx, func(tx txn) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, unix(now)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM nonces WHERE expires_at <= ?`, unix(now))
		return err
	})
}

func (a accounts) UseNonce(ctx context.Context, appID int64, key string, expires time.Time) error {
	_, err := a.db.w.ExecContext(ctx, `INSERT INTO nonces(app_id, key, expires_at) VALUES(?,?,?)`, appID, key, unix(expires))
	if err != nil && uniqueViolation(err) != "" {
		return account.ErrNonceReused
	}
	return err
}

func (a accounts) CreateAPIKey(ctx context.Context, k *account.APIKey) error {
	res, err := a.db.w.ExecContext(ctx, `INSERT INTO api_keys(app_id, name, key_hash, created_at) VALUES(?,?,?,?)`,
		k.AppID, k.Name, k.KeyHash, unix(k.CreatedAt))
	if err != nil {
		return err
	}
	k.ID, err = res.LastInsertId()
	return err
}

func scanAPIKey(row interface{ Scan(...any) error }) (*account.APIKey, error) {
	var (
		k  account.APIKey
		at int64
	)
	if err := row.Scan(&k.ID, &k.AppID, &k.Name, &k.KeyHash, &at); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, account.ErrNotFound
		}
		return nil, err
	}
	k.CreatedAt = fromUnix(at)
	return &k, nil
}

func (a accounts) APIKeyByHash(ctx context.Context, keyHash string) (*account.APIKey, error) {
	return scanAPIKey(a.db.r.QueryRowContext(ctx, `SELECT id, app_id, name, key_hash, created_at FROM api_keys WHERE key_hash = ?`, keyHash))
}

func (a accounts) APIKeys(ctx context.Context, appID int64) ([]*account.APIKey, error) {
	rows, err := a.db.r.QueryContext(ctx, `SELECT id, app_id, name, key_hash, created_at FROM api_keys WHERE app_id = ? ORDER BY id`, appID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*account.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

func (a accounts) DeleteAPIKey(ctx context.Context, appID, id int64) error {
	res, err := a.db.w.ExecContext(ctx, `DELETE FROM api_keys WHERE app_id = ? AND id = ?`, appID, id)
	if err != nil {
		return err
	}
	return affected(res)
}
