package muc

import (
	"context"
	"errors"

	"chatd/history"
	"chatd/xmpp"
)

// The stanza errors the service answers with. Each carries its legacy code
// (xmpp.NewStanzaError adds it when rendered), which the QuickBlox SDK reads.
var (
	errItemNotFound     = xmpp.NewStanzaError("cancel", "item-not-found", "no such room")
	errJIDMalformed     = xmpp.NewStanzaError("modify", "jid-malformed", "a room nickname is required")
	errRegistration     = xmpp.NewStanzaError("auth", "registration-required", "not an occupant of this dialog")
	errNotJoined        = xmpp.NewStanzaError("modify", "not-acceptable", "join the room first")
	errNotMember        = xmpp.NewStanzaError("auth", "forbidden", "not an occupant of this dialog")
	errNotOwner         = xmpp.NewStanzaError("auth", "forbidden", "only the room owner may do this")
	errNotModerator     = xmpp.NewStanzaError("auth", "forbidden", "only a moderator may do this")
	errBadRequest       = xmpp.NewStanzaError("modify", "bad-request", "")
	errServiceUnavail   = xmpp.NewStanzaError("cancel", "service-unavailable", "")
	errFeatureNotImpl   = xmpp.NewStanzaError("cancel", "feature-not-implemented", "")
	errCreateRestricted = xmpp.NewStanzaError("cancel", "not-allowed", "rooms are not created by joining here: create the group dialog over REST")
	errCreateNotAllowed = xmpp.NewStanzaError("cancel", "not-allowed", "this room name cannot be created by joining")
	errOccupantNotFound = xmpp.NewStanzaError("cancel", "item-not-found", "no such occupant in the room")
	errNoNode           = xmpp.NewStanzaError("cancel", "item-not-found", "no such node")
	errInternal         = xmpp.NewStanzaError("cancel", "internal-server-error", "")
)

// stanzaError is the one mapping from the errors of history and of this
// package to stanza errors.
func stanzaError(err error) *xmpp.StanzaError {
	var se *xmpp.StanzaError
	var ve *history.ValidationError
	switch {
	case errors.As(err, &se):
		return se
	case errors.Is(err, history.ErrNotFound):
		return errItemNotFound
	case errors.Is(err, history.ErrForbidden):
		return xmpp.NewStanzaError("auth", "forbidden", "not allowed by the dialog's rules")
	case errors.As(err, &ve):
		return xmpp.NewStanzaError("modify", "not-acceptable", ve.Error())
	case errors.Is(err, history.ErrDuplicate):
		return xmpp.NewStanzaError("cancel", "conflict", "the message id is taken by another message")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return xmpp.NewStanzaError("wait", "remote-server-timeout", "")
	}
	return errInternal
}
