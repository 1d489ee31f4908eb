package account

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// UserInput carries the attributes of a user create or update; nil fields are
// left as they are (or empty on create). OldPassword is required to change a
// password.
type UserInput struct {
	Login          *string
	Email          *string
	FullName       *string
	Phone          *string
	Website        *string
	FacebookID     *string
	TwitterID      *string
	CustomData     *string
	ExternalUserID *int64
	BlobID         *int64
	Tags           *[]string
	Password       *string
	OldPassword    *string
}

// UserAttrs are the attributes Store.UpdateUser may be asked to write, by
// their stored names.
var UserAttrs = []string{"login", "email", "full_name", "phone", "website", "external_user_id", "facebook_id",
	"twitter_id", "blob_id", "custom_data", "tags", "credentials"}

// changed names the attributes an update sets.
func (in UserInput) changed() []string {
	var out []string
	add := func(name string, set bool) {
		if set {
			out = append(out, name)
		}
	}
	add("login", in.Login != nil)
	add("email", in.Email != nil)
	add("full_name", in.FullName != nil)
	add("phone", in.Phone != nil)
	add("website", in.Website != nil)
	add("external_user_id", in.ExternalUserID != nil)
	add("facebook_id", in.FacebookID != nil)
	add("twitter_id", in.TwitterID != nil)
	add("blob_id", in.BlobID != nil)
	add("custom_data", in.CustomData != nil)
	add("tags", in.Tags != nil)
	add("credentials", in.Password != nil)
	return out
}

// Limits on user attributes.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 128
	maxFieldLen    = 255
	maxCustomData  = 64 << 10
)

// msgNotUTF8 is the validation message for text that is not UTF-8. Every
// attribute and credential of a user is text: a form value escaped byte by
// byte (%FF) is refused rather than stored, where MongoDB would refuse it
// later or JSON would render it as U+FFFD, and a user could not then be
// found or log in by what they sent.
const msgNotUTF8 = "is not valid UTF-8"

// checkUTF8 adds a validation error for field when s is not UTF-8.
func checkUTF8(field, s string, verr *ValidationError) {
	if !utf8.ValidString(s) {
		verr.add(field, msgNotUTF8)
	}
}

// CreateUser validates and stores a new user of an application.
func (s *Service) CreateUser(ctx context.Context, appID int64, in UserInput) (*User, error) {
	if _, err := s.App(ctx, appID); err != nil {
		return nil, err
	}
	now := s.now()
	u := &User{AppID: appID, CreatedAt: now, UpdatedAt: now}
	verr := &ValidationError{}
	apply(u, in, verr)
	if u.Login == "" && u.Email == "" {
		verr.add("base", "login or email is required")
	}
	if in.Password == nil {
		verr.add("password", "can't be blank")
	} else {
		checkPassword(*in.Password, verr)
	}
	if err := verr.orNil(); err != nil {
		return nil, err
	}
	u.Credentials = DeriveCredentials(*in.Password, NewSalt(), s.cfg.Iterations)
	if err := s.store.CreateUser(ctx, u); err != nil {
		return nil, duplicateAsValidation(err)
	}
	return u, nil
}

// UpdateUser changes a user's attributes. Only the user may update itself; a
// new password needs the old one. The salt is kept, so session tokens stay
// valid as XMPP passwords.
func (s *Service) UpdateUser(ctx context.Context, p *Principal, id int64, in UserInput) (*User, error) {
	if p.UserID == 0 {
		return nil, ErrNeedUser
	}
	if p.UserID != id {
		return nil, ErrForbidden
	}
	u, err := s.store.User(ctx, p.App.ID, id)
	if err != nil {
		return nil, err
	}
	verr := &ValidationError{}
	apply(u, in, verr)
	if u.Login == "" && u.Email == "" {
		verr.add("base", "login or email is required")
	}
	if in.Password != nil {
		checkPassword(*in.Password, verr)
		if in.OldPassword == nil || !u.Credentials.Matches(*in.OldPassword) {
			verr.add("old_password", "is incorrect")
		}
	}
	if err := verr.orNil(); err != nil {
		return nil, err
	}
	if in.Password != nil {
		u.Credentials = DeriveCredentials(*in.Password, u.Credentials.Salt, s.cfg.Iterations)
	}
	u.UpdatedAt = s.now()
	// Only what this request changes: a concurrent update of other
	// attributes (a password change from another device) is not undone.
	if err := s.store.UpdateUser(ctx, u, in.changed()); err != nil {
		return nil, duplicateAsValidation(err)
	}
	return u, nil
}

// DeleteUser deletes a user and its sessions. Only the user may delete itself.
func (s *Service) DeleteUser(ctx context.Context, p *Principal, id int64) error {
	if p.UserID == 0 {
		return ErrNeedUser
	}
	if p.UserID != id {
		return ErrForbidden
	}
	if err := s.store.DeleteUser(ctx, p.App.ID, id); err != nil {
		return err
	}
	err := s.store.DeleteUserSessions(ctx, p.App.ID, id)
	s.mu.RLock()
	hooks := s.userDeleted
	s.mu.RUnlock()
	for _, fn := range hooks {
		fn(p.App.ID, id)
	}
	return err
}

// OnUserDeleted registers fn to run after a user is deleted (the XMPP
// server ends the user's connections).
func (s *Service) OnUserDeleted(fn func(appID, userID int64)) {
	s.mu.Lock()
	s.userDeleted = append(s.userDeleted, fn)
	s.mu.Unlock()
}

// User returns a user of the application.
func (s *Service) User(ctx context.Context, appID, id int64) (*User, error) {
	return s.store.User(ctx, appID, id)
}

// UserBy finds a user of the application by a unique attribute (login, email,
// facebook_id, twitter_id, external_user_id) or by phone.
func (s *Service) UserBy(ctx context.Context, appID int64, field UserField, value string) (*User, error) {
	switch field {
	case FieldLogin, FieldFacebookID, FieldTwitterID, FieldPhone:
		return s.store.UserBy(ctx, appID, field, strings.TrimSpace(value))
	case FieldEmail:
		return s.store.UserBy(ctx, appID, field, normalizeEmail(value))
	case FieldExternalUserID:
		n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		if err != nil || n == 0 {
			return nil, ErrNotFound // 0 is "no external id", not one
		}
		return s.store.UserBy(ctx, appID, field, n)
	}
	return nil, ErrNotFound
}

// FindUsers runs a user query within an application.
func (s *Service) FindUsers(ctx context.Context, appID int64, q UserQuery) ([]*User, int, error) {
	return s.store.FindUsers(ctx, appID, q)
}

// CreateUserAdmin creates a user for an operator (the admin CLI and the admin
// API), with the same rules as CreateUser.
func (s *Service) CreateUserAdmin(ctx context.Context, appID int64, login, password string) (*User, error) {
	return s.CreateUser(ctx, appID, UserInput{Login: &login, Password: &password})
}

// MaxFilterValues bounds the values of one user query's filters together (a
// long in list), so that every backend can answer it (SQLite binds at most
// 32,766 values to a statement).
const MaxFilterValues = 1000

// ParseFilter builds a typed filter from its text form: field, operator and a
// value (a comma list for in and between). The value is converted according to
// the field's kind; an unknown field or operator, or a value of the wrong
// kind, is a *ValidationError naming it.
func ParseFilter(field, op, value string) (Filter, error) {
	f := Filter{Field: UserField(field), Op: Op(op)}
	kind, ok := FieldKind(f.Field)
	if !ok {
		return f, &ValidationError{Fields: []FieldError{{"filter", "unknown field " + field}}}
	}
	parts := []string{value}
	switch f.Op {
	case OpEq, OpNe, OpGt, OpLt, OpGe, OpLe, OpContains:
		if kind == KindTags && (f.Op == OpEq || f.Op == OpNe) {
			parts = splitList(value) // a set of tags: "a,b" is a and b
		}
	case OpIn:
		parts = splitList(value)
	case OpBetween:
		parts = splitList(value)
		if len(parts) != 2 {
			return f, &ValidationError{Fields: []FieldError{{"filter", "between needs two values"}}}
		}
	default:
		return f, &ValidationError{Fields: []FieldError{{"filter", "unknown operator " + op}}}
	}
	if f.Op == OpContains && kind != KindString {
		return f, &ValidationError{Fields: []FieldError{{"filter", "ctn applies to string fields only"}}}
	}
	if kind == KindTags && f.Op != OpEq && f.Op != OpNe && f.Op != OpIn {
		return f, &ValidationError{Fields: []FieldError{{"filter", "only eq, ne and in apply to " + field}}}
	}
	if len(parts) == 0 {
		return f, &ValidationError{Fields: []FieldError{{"filter", "missing value for " + field}}}
	}
	if len(parts) > MaxFilterValues {
		return f, &ValidationError{Fields: []FieldError{{"filter", fmt.Sprintf("at most %d values", MaxFilterValues)}}}
	}
	for _, p := range parts {
		v, err := parseValue(kind, strings.TrimSpace(p))
		if err != nil {
			return f, &ValidationError{Fields: []FieldError{{"filter", "bad value for " + field + ": " + p}}}
		}
		f.Values = append(f.Values, v)
	}
	return f, nil
}

// ParseTime reads a time given as unix seconds, RFC 3339, "2006-01-02 15:04:05"
// or a date.
func ParseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04:05 MST", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("account: not a time: " + s)
}

func parseValue(kind Kind, s string) (any, error) {
	switch kind {
	case KindInt:
		return strconv.ParseInt(s, 10, 64)
	case KindTime:
		return ParseTime(s)
	}
	return s, nil
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// SplitTags splits a comma-separated tag list, trimming and dropping empty
// and repeated tags.
func SplitTags(s string) []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range splitList(s) {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

func apply(u *User, in UserInput, verr *ValidationError) {
	str := func(name string, dst *string, v *string) {
		if v == nil {
			return
		}
		s := strings.TrimSpace(*v)
		checkUTF8(name, s, verr)
		if utf8.RuneCountInString(s) > maxFieldLen {
			verr.add(name, "is too long (maximum is 255 characters)")
		}
		*dst = s
	}
	str("login", &u.Login, in.Login)
	str("full_name", &u.FullName, in.FullName)
	str("phone", &u.Phone, in.Phone)
	str("website", &u.Website, in.Website)
	str("facebook_id", &u.FacebookID, in.FacebookID)
	str("twitter_id", &u.TwitterID, in.TwitterID)
	if in.Email != nil {
		// Checked before lowering: strings.ToLower turns each invalid
		// byte into U+FFFD.
		checkUTF8("email", *in.Email, verr)
		u.Email = normalizeEmail(*in.Email)
		if utf8.ValidString(*in.Email) && u.Email != "" && !validEmail(u.Email) {
			verr.add("email", "is invalid")
		}
	}
	if in.CustomData != nil {
		checkUTF8("custom_data", *in.CustomData, verr)
		if len(*in.CustomData) > maxCustomData {
			verr.add("custom_data", "is too long")
		}
		u.CustomData = *in.CustomData
	}
	if in.ExternalUserID != nil {
		u.ExternalUserID = *in.ExternalUserID
	}
	if in.BlobID != nil {
		u.BlobID = *in.BlobID
	}
	if in.Tags != nil {
		u.Tags = nil
		for _, t := range *in.Tags {
			u.Tags = append(u.Tags, SplitTags(t)...)
		}
		if !utf8.ValidString(strings.Join(u.Tags, "")) {
			verr.add("tag_list", msgNotUTF8)
		}
		u.Tags = SplitTags(strings.Join(u.Tags, ","))
	}
	if strings.ContainsAny(u.Login, "\x00") {
		verr.add("login", "is invalid")
	}
}

func checkPassword(pw string, verr *ValidationError) {
	if !utf8.ValidString(pw) {
		verr.add("password", msgNotUTF8)
		return
	}
	switch n := utf8.RuneCountInString(pw); {
	case n < MinPasswordLen:
		verr.add("password", "is too short (minimum is 8 characters)")
	case n > MaxPasswordLen:
		verr.add("password", "is too long (maximum is 128 characters)")
	}
}

func normalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func validEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	return at > 0 && at < len(s)-1 && !strings.ContainsAny(s, " \t\r\n")
}

func duplicateAsValidation(err error) error {
	var dup *DuplicateError
	if errors.As(err, &dup) {
		return &ValidationError{Fields: []FieldError{{dup.Field, "has already been taken"}}}
	}
	return err
}

// UserExists reports whether a user of the application exists (for chat
// history's occupant checks).
func (s *Service) UserExists(ctx context.Context, appID, id int64) (bool, error) {
	_, err := s.store.User(ctx, appID, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
