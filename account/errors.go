package account

import (
	"errors"
	"strings"
)

// Errors returned by the Service and by Store implementations. Callers test
// them with errors.Is; restapi and xmpp each map them to the wire in one
// place.
var (
	// ErrNotFound: no such application, user, session or API key.
	ErrNotFound = errors.New("account: not found")
	// ErrNoSession: the token is missing, unknown or expired.
	ErrNoSession = errors.New("account: required session does not exist")
	// ErrBadCredentials: login, email or password do not match.
	ErrBadCredentials = errors.New("account: unauthorized")
	// ErrBadSignature: the request signature or auth_key is wrong.
	ErrBadSignature = errors.New("account: unexpected signature")
	// ErrStaleTimestamp: the signed timestamp is outside the accepted window.
	ErrStaleTimestamp = errors.New("account: timestamp is out of the accepted window")
	// ErrNonceReused: the same signed request (application, timestamp, nonce
	// and signature) was used before.
	ErrNonceReused = errors.New("account: nonce has already been used")
	// ErrForbidden: the caller may not do this.
	ErrForbidden = errors.New("account: forbidden")
	// ErrNeedUser: the call needs a user session, not an application session.
	ErrNeedUser = errors.New("account: a user session is required")
)

// DuplicateError is returned by a Store when a unique field (login, email,
// facebook_id, twitter_id, external_user_id) already belongs to another user of
// the application.
type DuplicateError struct{ Field string }

func (e *DuplicateError) Error() string { return "account: " + e.Field + " has already been taken" }

// FieldError is one invalid field of a record.
type FieldError struct {
	Field   string
	Message string
}

// ValidationError lists every invalid field of a record; restapi renders it
// as a 422 with {"errors":{"field":["message"]}}.
type ValidationError struct{ Fields []FieldError }

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("account: invalid ")
	for i, f := range e.Fields {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(f.Field + " " + f.Message)
	}
	return b.String()
}

func (e *ValidationError) add(field, msg string) { e.Fields = append(e.Fields, FieldError{field, msg}) }

func (e *ValidationError) orNil() error {
	if e == nil || len(e.Fields) == 0 {
		return nil
	}
	return e
}
