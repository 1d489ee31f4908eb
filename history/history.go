// Package history is chat history in the QuickBlox model: dialogs (public
// group, group, private), the messages stored in them, who received and read
// each message, and exact unread counters per dialog and user.
//
// Unread counting is defined, not approximated: every stored message keeps
// its recipients (the dialog's occupants other than the sender when it was
// stored), and a user's unread count in a dialog is the number of messages
// that have the user among their recipients, are not in the user's read
// marks, and are deleted neither for everyone nor for the user. Backends
// keep a counter per (dialog, user) in step with that definition in the same
// write that changes it; Store.RecountUnread computes it from the messages,
// and the conformance suite holds both equal under concurrent writers.
//
// Public group dialogs (type 1) have no occupant list, so their messages have
// no recipients and no unread counts (QuickBlox does not count them either).
//
// The Service owns the rules (who may see, change or delete what; when a
// private dialog is created; how client times are accepted) and a group
// committer that stores concurrently recorded messages in one write, so a
// message is durable before anyone is told about it. A Service is safe for
// concurrent use.
package history

import (
	"time"
)

// DialogType is the kind of a dialog.
type DialogType int

// Dialog types, as QuickBlox numbers them.
const (
	PublicGroup DialogType = 1
	Group       DialogType = 2
	Private     DialogType = 3
)

// Valid reports whether t is a known type.
func (t DialogType) Valid() bool { return t >= PublicGroup && t <= Private }

// Dialog is a conversation. Occupants are sorted ascending and include the
// owner for group and private dialogs; public groups have none.
type Dialog struct {
	ID        string
	AppID     int64
	Type      DialogType
	Name      string
	Photo     string
	OwnerID   int64
	Occupants []int64
	AdminIDs  []int64
	// RoomName is the local part of the XMPP room after "<app>_": the
	// dialog id for dialogs made over REST, the name a client chose for
	// rooms made by joining. Empty for private dialogs.
	RoomName string
	// JoinRequired: group members must join the room to send and receive
	// (XEP-0045 semantics); otherwise the server delivers to every
	// occupant's bare JID. Public groups always require joining.
	JoinRequired bool
	// Data holds custom fields ("class_name" among them), as strings.
	Data map[string]string

	LastMessage         string
	LastMessageID       string
	LastMessageDateSent int64 // unix seconds; 0 when there is no message
	LastMessageUserID   int64

	CreatedAt time.Time
	UpdatedAt time.Time

	// Per requesting user, filled by queries that have a viewer.
	UnreadCount int
}

// HasOccupant reports whether user is an occupant.
func (d *Dialog) HasOccupant(user int64) bool {
	for _, o := range d.Occupants {
		if o == user {
			return true
		}
	}
	return false
}

// Attachment is one attachment of a message: id, type, url, name, size,
// uid, content-type, width, height, duration, data… all as strings, as sent.
type Attachment map[string]string

// Message is a stored chat message.
type Message struct {
	ID          string
	AppID       int64
	DialogID    string
	Text        string
	DateSent    int64 // unix seconds
	SenderID    int64
	RecipientID int64 // the other occupant of a private dialog; 0 otherwise
	Attachments []Attachment
	// Custom holds every other parameter the sender set, as strings.
	Custom   map[string]string
	Markable bool
	// Recipients are the dialog's occupants other than the sender when the
	// message was stored: the users who count it as unread until they read
	// it.
	Recipients   []int64
	ReadIDs      []int64 // users who read it (the sender always)
	DeliveredIDs []int64 // users who received it (the sender always)
	CreatedAt    time.Time
	UpdatedAt    time.Time
}
