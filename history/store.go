package history

import (
	"context"
	"errors"
	"time"
)

// Errors of the history package; restapi and xmpp each map them once.
var (
	// ErrNotFound: no such dialog or message (or not visible to the caller).
	ErrNotFound = errors.New("history: not found")
	// ErrForbidden: the caller may not do this.
	ErrForbidden = errors.New("history: forbidden")
	// ErrDuplicate: a dialog or message with that identity exists.
	ErrDuplicate = errors.New("history: already exists")
)

// ValidationError is an invalid input; its text names the field.
type ValidationError struct {
	Field string
	Msg   string
}

func (e *ValidationError) Error() string { return "history: " + e.Field + " " + e.Msg }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Msg: sprintf(format, args...)}
}

// Mark is a per-user state a message can have for its recipients.
type Mark int

// Marks.
const (
	Delivered Mark = iota + 1
	Read
)

// Store keeps dialogs, messages and the per-user state (unread counters,
// notification settings, dialogs hidden by a user, messages deleted for a
// user). Implementations (store/sqlite, store/mongo) pass storetest and are
// safe for concurrent use. Every method is scoped to an application; nothing
// of one application is visible through another's id.
type Store interface {
	// CreateDialog stores a new dialog. A second private dialog for the
	// same pair, or a second dialog with the same RoomName, is
	// ErrDuplicate.
	CreateDialog(ctx context.Context, d *Dialog) error
	// Dialog returns a dialog without per-user fields.
	Dialog(ctx context.Context, app int64, id string) (*Dialog, error)
	// PrivateDialog returns the private dialog of a pair of users.
	PrivateDialog(ctx context.Context, app, a, b int64) (*Dialog, error)
	// RoomDialog returns the group dialog whose RoomName is name.
	RoomDialog(ctx context.Context, app int64, name string) (*Dialog, error)
	// UpdateDialog replaces the dialog's name, photo, occupants, admins,
	// join requirement, data and updated_at. Users no longer occupants lose
	// their per-user state (and unread counts) in the dialog.
	UpdateDialog(ctx context.Context, d *Dialog) error
	// DeleteDialog removes a dialog with its messages and per-user state.
	DeleteDialog(ctx context.Context, app int64, id string) error
	// FindDialogs returns the dialogs visible to user (an occupant, or any
	// public group) that the user has not hidden, matching q, with the
	// user's unread count filled in, and the number of matches.
	FindDialogs(ctx context.Context, app, user int64, q DialogQuery) ([]*Dialog, int, error)
	// HideDialog hides a dialog from a user until a new message arrives in
	// it; the user's unread messages in it are marked read.
	HideDialog(ctx context.Context, app int64, id string, user int64) error
	// UnhideDialog shows a dialog the user hid again, as a new message
	// would, without changing the user's unread count in it; a dialog not
	// hidden stays as it is.
	UnhideDialog(ctx context.Context, app int64, id string, user int64) error
	// Notifications returns whether the user gets push alerts for the
	// dialog (true unless turned off).
	Notifications(ctx context.Context, app int64, id string, user int64) (bool, error)
	SetNotifications(ctx context.Context, app int64, id string, user int64, enabled bool) error

	// SaveMessages stores messages, each atomically with its effects: the
	// recipients' unread counters rise, the dialog is shown again to those
	// who hid it, and the dialog's last message fields follow the message
	// when it is the newest. The i-th error is about the i-th message
	// (ErrDuplicate for an id in use, ErrNotFound for a dialog that does not
	// exist); a nil slice means all were stored.
	SaveMessages(ctx context.Context, msgs []*Message) []error
	// Message returns a message unless it was deleted for everyone or, when
	// viewer is not 0, for the viewer.
	Message(ctx context.Context, app int64, id string, viewer int64) (*Message, error)
	// FindMessages returns messages of a dialog matching q, without those
	// deleted for viewer.
	FindMessages(ctx context.Context, app int64, dialog string, viewer int64, q MessageQuery) ([]*Message, error)
	// CountMessages returns how many messages FindMessages would find
	// with q's limit and skip left out.
	CountMessages(ctx context.Context, app int64, dialog string, viewer int64, q MessageQuery) (int, error)
	// MarkMessages adds user to the read (or delivered) marks of the given
	// messages of the dialog (every message when ids is nil) that have the
	// user among their recipients, and lowers the unread counter by the
	// number newly read. It returns that number.
	MarkMessages(ctx context.Context, app int64, dialog string, user int64, ids []string, mark Mark) (int, error)
	// MarkUpTo marks every message of the dialog up to and including the
	// given one (by date_sent, then id) as MarkMessages does.
	MarkUpTo(ctx context.Context, app int64, dialog string, user int64, upTo string, mark Mark) (int, error)
	// EditMessage replaces a message's text and updated_at.
	EditMessage(ctx context.Context, app int64, id, text string, at time.Time) error
	// HideMessages deletes messages for one user only (they stay for the
	// others) and returns the ids that existed.
	HideMessages(ctx context.Context, app int64, user int64, ids []string) ([]string, error)
	// DeleteMessages deletes messages for everyone and returns the ids that
	// existed. Unread counters of their recipients drop accordingly; the
	// dialog's last message fields move to the newest remaining message.
	DeleteMessages(ctx context.Context, app int64, ids []string) ([]string, error)
	// UnreadCounts returns the user's unread counters for the given dialogs
	// (every dialog visible to the user when ids is nil) and their total.
	UnreadCounts(ctx context.Context, app, user int64, dialogs []string) (map[string]int, int, error)
	// RecountUnread computes a user's unread count in a dialog from the
	// messages themselves, ignoring the counter (for checks and repair).
	RecountUnread(ctx context.Context, app int64, dialog string, user int64) (int, error)
}
