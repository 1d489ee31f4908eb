package mongo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"chatd/history"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Documents of the history store; see DB.History for the layout.

type dialogDoc struct {
	ID           string        `bson:"_id"`
	AppID        int64         `bson:"app_id"`
	Type         int           `bson:"type"`
	Name         string        `bson:"name"`
	Photo        string        `bson:"photo"`
	UserID       int64         `bson:"user_id"`
	Occupants    []int64       `bson:"occupants_ids"`
	Admins       []int64       `bson:"admin_ids"`
	RoomName     string        `bson:"room_name"`
	JoinRequired bool          `bson:"join_required"`
	Data         bson.D        `bson:"data"`
	CreatedAt    bson.DateTime `bson:"created_at"`
	UpdatedAt    bson.DateTime `bson:"updated_at"`

	LastMessage         string `bson:"last_message"`
	LastMessageID       string `bson:"last_message_id"`
	LastMessageDateSent int64  `bson:"last_message_date_sent"`
	LastMessageUserID   int64  `bson:"last_message_user_id"`

	// Unique keys (see DB.History); written, never read.
	KPair any `bson:"k_pair"`
	KRoom any `bson:"k_room"`
}

func toDialogDoc(d *history.Dialog) *dialogDoc {
	doc := &dialogDoc{
		ID:           d.ID,
		AppID:        d.AppID,
		Type:         int(d.Type),
		Name:         d.Name,
		Photo:        d.Photo,
		UserID:       d.OwnerID,
		Occupants:    ids64(d.Occupants),
		Admins:       ids64(d.AdminIDs),
		RoomName:     d.RoomName,
		JoinRequired: d.JoinRequired,
		Data:         encodeStrings(d.Data),
		CreatedAt:    date(d.CreatedAt),
		UpdatedAt:    date(d.UpdatedAt),
		// The placeholder of a dialog without a value: a document, a
		// BSON type the real values (strings) never have, naming the
		// dialog, so no two placeholders are equal.
		KPair: bson.D{{Key: "dialog", Value: d.ID}},
		KRoom: bson.D{{Key: "dialog", Value: d.ID}},
	}
	if d.Type == history.Private && len(d.Occupants) == 2 {
		doc.KPair = pairKey(d.Occupants[0], d.Occupants[1])
	}
	if d.RoomName != "" {
		doc.KRoom = d.RoomName
	}
	return doc
}

// pairKey identifies the private dialog of two users, in either order.
func pairKey(a, b int64) string {
	return strconv.FormatInt(min(a, b), 10) + ":" + strconv.FormatInt(max(a, b), 10)
}

func (d *dialogDoc) dialog() *history.Dialog {
	return &history.Dialog{
		ID:                  d.ID,
		AppID:               d.AppID,
		Type:                history.DialogType(d.Type),
		Name:                d.Name,
		Photo:               d.Photo,
		OwnerID:             d.UserID,
		Occupants:           ids64(d.Occupants),
		AdminIDs:            ids64(d.Admins),
		RoomName:            d.RoomName,
		JoinRequired:        d.JoinRequired,
		Data:                decodeStrings(d.Data),
		LastMessage:         d.LastMessage,
		LastMessageID:       d.LastMessageID,
		LastMessageDateSent: d.LastMessageDateSent,
		LastMessageUserID:   d.LastMessageUserID,
		CreatedAt:           fromDate(d.CreatedAt),
		UpdatedAt:           fromDate(d.UpdatedAt),
	}
}

// ids64 returns v, or an empty slice for nil (occupant and admin lists are
// never nil, as store/sqlite returns them).
func ids64(v []int64) []int64 {
	if v == nil {
		return []int64{}
	}
	return v
}

type messageDoc struct {
	ID          string   `bson:"_id"`
	AppID       int64    `bson:"app_id"`
	DialogID    string   `bson:"dialog_id"`
	Text        string   `bson:"message"`
	DateSent    int64    `bson:"date_sent"`
	SenderID    int64    `bson:"sender_id"`
	RecipientID int64    `bson:"recipient_id"`
	Attachments []bson.D `bson:"attachments"`
	// The types of the attachments that have one, for attachments.type
	// queries: FerretDB 1.24 does not apply $ne, $nin and $all to a path
	// into an array of documents.
	AttachmentTypes []string      `bson:"attachment_types"`
	Custom          bson.D        `bson:"custom"`
	Markable        bool          `bson:"markable"`
	Recipients      []int64       `bson:"recipients"`
	CreatedAt       bson.DateTime `bson:"created_at"`
	UpdatedAt       bson.DateTime `bson:"updated_at"`
}

func toMessageDoc(m *history.Message) *messageDoc {
	atts := make([]bson.D, 0, len(m.Attachments))
	types := []string{}
	for _, a := range m.Attachments {
		atts = append(atts, encodeStrings(a))
		if t, ok := a["type"]; ok {
			types = append(types, t)
		}
	}
	return &messageDoc{
		ID:              m.ID,
		AppID:           m.AppID,
		DialogID:        m.DialogID,
		Text:            m.Text,
		DateSent:        m.DateSent,
		SenderID:        m.SenderID,
		RecipientID:     m.RecipientID,
		Attachments:     atts,
		AttachmentTypes: types,
		Custom:          encodeStrings(m.Custom),
		Markable:        m.Markable,
		Recipients:      ids64(m.Recipients),
		CreatedAt:       date(m.CreatedAt),
		UpdatedAt:       date(m.UpdatedAt),
	}
}

// message converts the document; unread and undelivered hold the
// recipients whose read and delivery marks are still pending.
func (d *messageDoc) message(unread, undelivered map[int64]bool) *history.Message {
	m := &history.Message{
		ID:           d.ID,
		AppID:        d.AppID,
		DialogID:     d.DialogID,
		Text:         d.Text,
		DateSent:     d.DateSent,
		SenderID:     d.SenderID,
		RecipientID:  d.RecipientID,
		Custom:       decodeStrings(d.Custom),
		Markable:     d.Markable,
		ReadIDs:      []int64{d.SenderID},
		DeliveredIDs: []int64{d.SenderID},
		CreatedAt:    fromDate(d.CreatedAt),
		UpdatedAt:    fromDate(d.UpdatedAt),
	}
	for _, a := range d.Attachments {
		m.Attachments = append(m.Attachments, history.Attachment(decodeStrings(a)))
	}
	if len(d.Recipients) > 0 {
		m.Recipients = slices.Sorted(slices.Values(d.Recipients))
	}
	for _, r := range m.Recipients {
		if !unread[r] {
			m.ReadIDs = append(m.ReadIDs, r)
		}
		if !undelivered[r] {
			m.DeliveredIDs = append(m.DeliveredIDs, r)
		}
	}
	return m
}

// lastText is what a dialog shows as its last message: the text, or the
// first attachment's type in brackets for a message with none (as
// store/sqlite computes it).
func (d *messageDoc) lastText() string {
	if d.Text != "" || len(d.Attachments) == 0 {
		return d.Text
	}
	for _, e := range d.Attachments[0] {
		if e.Key == "type" {
			s, _ := e.Value.(string)
			return "[" + s + "]"
		}
	}
	return "[]"
}

// Kinds of pending documents.
const (
	pendingRead      = "read"      // the recipient has not read the message
	pendingDelivered = "delivered" // the message was not delivered to the recipient
	pendingUnread    = "unread"    // one unit of the recipient's unread counter
)

// pendingDoc is a per-recipient state of a message that ends with a mark;
// inserted with the message, deleted (never changed) when it ends.
type pendingDoc struct {
	ID        string `bson:"_id"`
	AppID     int64  `bson:"app_id"`
	DialogID  string `bson:"dialog_id"`
	MessageID string `bson:"message_id"`
	UserID    int64  `bson:"user_id"`
	Kind      string `bson:"kind"`
	DateSent  int64  `bson:"date_sent"`
	// At is when the document was inserted (unix seconds, the inserting
	// server's clock), so that RepairHistory can tell a write that may
	// still be under way from one that was interrupted; documents written
	// before it existed have none and count as old.
	At int64 `bson:"at,omitempty"`
}

func pendingKey(message string, user int64, kind string) string {
	return message + ":" + strconv.FormatInt(user, 10) + ":" + kind
}

func pendingKeys(messages []string, user int64, kind string) []string {
	keys := make([]string, len(messages))
	for i, m := range messages {
		keys[i] = pendingKey(m, user, kind)
	}
	return keys
}

// hiddenDoc records that a user deleted a message for themselves.
type hiddenDoc struct {
	ID        string `bson:"_id"`
	AppID     int64  `bson:"app_id"`
	DialogID  string `bson:"dialog_id"`
	MessageID string `bson:"message_id"`
	UserID    int64  `bson:"user_id"`
}

func hiddenKey(message string, user int64) string {
	return message + ":" + strconv.FormatInt(user, 10)
}

// Dialog flags.
const (
	flagHidden = "hidden" // the user hid the dialog
	flagMuted  = "muted"  // the user turned notifications off
)

type flagDoc struct {
	ID       string `bson:"_id"`
	AppID    int64  `bson:"app_id"`
	DialogID string `bson:"dialog_id"`
	UserID   int64  `bson:"user_id"`
	Flag     string `bson:"flag"`
}

func flagKey(dialog string, user int64, flag string) string {
	return dialog + ":" + strconv.FormatInt(user, 10) + ":" + flag
}

// Keys of custom fields (dialog data, message parameters, attachments) are
// chosen by clients; MongoDB cannot query a key holding '.' or starting with
// '$', and FerretDB refuses to store one. escapeKey writes '%', '.', NUL and
// a leading '$' as %XX and the empty key as "%" (which escaping never
// produces otherwise), so every key is stored and data.<key> queries reach
// it, and any other key stays readable as is.
func escapeKey(k string) string {
	if k == "" {
		return "%"
	}
	if !strings.ContainsAny(k, "%.\x00") && k[0] != '$' {
		return k
	}
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c == '%' || c == '.' || c == 0 || (i == 0 && c == '$') {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func unescapeKey(k string) string {
	if k == "%" {
		return ""
	}
	if !strings.Contains(k, "%") {
		return k
	}
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		if k[i] == '%' && i+2 < len(k) {
			if n, err := strconv.ParseUint(k[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(k[i])
	}
	return b.String()
}

// encodeStrings stores a string map as a document with escaped keys, in key
// order; never nil.
func encodeStrings(m map[string]string) bson.D {
	d := make(bson.D, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		d = append(d, bson.E{Key: escapeKey(k), Value: m[k]})
	}
	return d
}

// decodeStrings is the inverse of encodeStrings; nil for no fields.
func decodeStrings(d bson.D) map[string]string {
	if len(d) == 0 {
		return nil
	}
	m := make(map[string]string, len(d))
	for _, e := range d {
		s, _ := e.Value.(string)
		m[unescapeKey(e.Key)] = s
	}
	return m
}

// isDuplicate reports whether a write error is a unique-index violation.
func isDuplicate(code int) bool { return code == 11000 || code == 11001 || code == 12582 }

// insertEach inserts docs unordered and reports, per document, whether it
// was already there (dup) or failed otherwise (errs). err is set, and dup
// and errs are not, when the whole command failed: then any document may
// or may not have been inserted.
func insertEach(ctx context.Context, c *mongo.Collection, docs []any) (dup []bool, errs []error, err error) {
	dup = make([]bool, len(docs))
	errs = make([]error, len(docs))
	if len(docs) == 0 {
		return dup, errs, nil
	}
	_, err = c.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil {
		return dup, errs, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return nil, nil, fmt.Errorf("mongo: insert into %s: %w", c.Name(), err)
	}
	for _, we := range bwe.WriteErrors {
		if we.Index < 0 || we.Index >= len(docs) {
			return nil, nil, fmt.Errorf("mongo: insert into %s: %w", c.Name(), err)
		}
		if isDuplicate(we.Code) {
			dup[we.Index] = true
		} else {
			errs[we.Index] = fmt.Errorf("mongo: insert into %s: %w", c.Name(), we.WriteError)
		}
	}
	return dup, errs, nil
}
