package xmpp

import (
	"context"
	"time"
)

// Subscription states of a roster item (RFC 6121 §2.1.2.5).
const (
	SubNone = "none"
	SubTo   = "to"
	SubFrom = "from"
	SubBoth = "both"
)

// RosterItem is one contact of a user's roster, with its subscription state.
// Listed is false for a contact the user never added that has only asked to
// subscribe (RFC 6121 "None + Pending In"): such an item is kept to remember
// the request but is not part of the roster the user sees.
type RosterItem struct {
	JID          string // bare JID of the contact
	Name         string
	Subscription string
	Ask          bool // a subscription request to the contact is pending ("Pending Out")
	PendingIn    bool // the contact asked to subscribe and awaits an answer
	Listed       bool
	Groups       []string
}

// Store keeps what the XMPP server persists per user. Implementations live in
// store/sqlite and store/mongo and pass storetest.
type Store interface {
	// Roster returns every item of the owner's roster (Listed or not) and
	// the roster version.
	Roster(ctx context.Context, owner UserRef) ([]RosterItem, int64, error)
	// RosterItem returns one item, or account.ErrNotFound.
	RosterItem(ctx context.Context, owner UserRef, jid string) (*RosterItem, error)
	// PutRosterItem inserts or replaces an item and returns the new roster
	// version.
	PutRosterItem(ctx context.Context, owner UserRef, item RosterItem) (int64, error)
	// DeleteRosterItem removes an item (no error if absent) and returns the
	// new roster version.
	DeleteRosterItem(ctx context.Context, owner UserRef, jid string) (int64, error)
	// SetLastActivity records when the user's last session ended and the
	// status it left with (XEP-0012).
	SetLastActivity(ctx context.Context, owner UserRef, at time.Time, status string) error
	// LastActivity returns what SetLastActivity recorded, or
	// account.ErrNotFound.
	LastActivity(ctx context.Context, owner UserRef) (time.Time, string, error)
}
