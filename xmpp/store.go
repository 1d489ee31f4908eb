package xmpp

import (
	"context"
	"errors"
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

// OfflineMessage is a message kept for a user with no available resource
// (XEP-0160), as the stanza it will be delivered as.
type OfflineMessage struct {
	Seq   int64 // assigned by the store; increases in arrival order
	Stamp time.Time
	Data  []byte // the stanza's XML
}

// PrivacyItem is one rule of a privacy list (XEP-0016). Type is "jid",
// "group", "subscription" or "" (matches everything); Kinds lists the stanza
// kinds it applies to ("message", "iq", "presence-in", "presence-out"),
// empty meaning all.
type PrivacyItem struct {
	Type  string   `json:"type,omitempty"`
	Value string   `json:"value,omitempty"`
	Allow bool     `json:"allow"`
	Order int64    `json:"order"`
	Kinds []string `json:"kinds,omitempty"`
}

// PrivacyList is a named, ordered list of rules.
type PrivacyList struct {
	Name  string
	Items []PrivacyItem
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

	// PushOffline keeps a message for the owner unless the owner already
	// has limit messages waiting (then ErrOfflineFull). It sets msg.Seq.
	PushOffline(ctx context.Context, owner UserRef, msg *OfflineMessage, limit int) error
	// OfflineMessages returns up to max waiting messages, oldest first.
	OfflineMessages(ctx context.Context, owner UserRef, max int) ([]OfflineMessage, error)
	// DeleteOffline removes the owner's waiting messages up to and
	// including seq.
	DeleteOffline(ctx context.Context, owner UserRef, upTo int64) error

	// PrivacyLists returns the owner's privacy lists (sorted by name) and
	// the name of the default one ("" for none).
	PrivacyLists(ctx context.Context, owner UserRef) ([]PrivacyList, string, error)
	// PutPrivacyList stores or replaces a list.
	PutPrivacyList(ctx context.Context, owner UserRef, list PrivacyList) error
	// DeletePrivacyList removes a list (account.ErrNotFound if absent); the
	// default is cleared when it named the list.
	DeletePrivacyList(ctx context.Context, owner UserRef, name string) error
	// SetDefaultPrivacyList names the default list ("" for none); the list
	// must exist (account.ErrNotFound).
	SetDefaultPrivacyList(ctx context.Context, owner UserRef, name string) error
}

// ErrOfflineFull is returned by Store.PushOffline when the user's offline
// storage is at its limit.
var ErrOfflineFull = errors.New("xmpp: offline storage is full")
