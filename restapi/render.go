package restapi

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"chatd/account"
	"chatd/history"
)

// isoLayout is how QuickBlox writes times: "2019-08-27T20:19:08Z".
const isoLayout = "2006-01-02T15:04:05Z"

// nullString is a string that is JSON null when empty.
type nullString string

func (s nullString) MarshalJSON() ([]byte, error) {
	if s == "" {
		return []byte("null"), nil
	}
	return marshal(string(s))
}

// nullInt is an integer that is JSON null when zero.
type nullInt int64

func (n nullInt) MarshalJSON() ([]byte, error) {
	if n == 0 {
		return []byte("null"), nil
	}
	return strconv.AppendInt(nil, int64(n), 10), nil
}

// isoTime is a UTC time in isoLayout, JSON null when zero.
type isoTime time.Time

func (t isoTime) MarshalJSON() ([]byte, error) {
	tt := time.Time(t)
	if tt.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + tt.UTC().Format(isoLayout) + `"`), nil
}

// userJSON is a user as QuickBlox renders it (compat §5), fields in its
// order. It never carries credentials.
type userJSON struct {
	ID                      int64      `json:"id"`
	FullName                nullString `json:"full_name"`
	Email                   nullString `json:"email"`
	Login                   nullString `json:"login"`
	Phone                   nullString `json:"phone"`
	Website                 nullString `json:"website"`
	CreatedAt               isoTime    `json:"created_at"`
	UpdatedAt               isoTime    `json:"updated_at"`
	LastRequestAt           isoTime    `json:"last_request_at"`
	ExternalUserID          nullInt    `json:"external_user_id"`
	FacebookID              nullString `json:"facebook_id"`
	TwitterID               nullString `json:"twitter_id"`
	BlobID                  nullInt    `json:"blob_id"`
	CustomData              nullString `json:"custom_data"`
	AgeOver16               bool       `json:"age_over16"`
	AllowStatisticsAnalysis bool       `json:"allow_statistics_analysis"`
	AllowSalesActivities    bool       `json:"allow_sales_activities"`
	ParentsContacts         string     `json:"parents_contacts"`
	UserTags                nullString `json:"user_tags"`
}

func renderUser(u *account.User) userJSON {
	return userJSON{
		ID:             u.ID,
		FullName:       nullString(u.FullName),
		Email:          nullString(u.Email),
		Login:          nullString(u.Login),
		Phone:          nullString(u.Phone),
		Website:        nullString(u.Website),
		CreatedAt:      isoTime(u.CreatedAt),
		UpdatedAt:      isoTime(u.UpdatedAt),
		LastRequestAt:  isoTime(u.LastRequestAt),
		ExternalUserID: nullInt(u.ExternalUserID),
		FacebookID:     nullString(u.FacebookID),
		TwitterID:      nullString(u.TwitterID),
		BlobID:         nullInt(u.BlobID),
		CustomData:     nullString(u.CustomData),
		UserTags:       nullString(strings.Join(u.Tags, ",")),
	}
}

// userBody is {"user":{…}}, the wrapper of a single user.
type userBody struct {
	User userJSON `json:"user"`
}

func oneUser(u *account.User) userBody { return userBody{renderUser(u)} }

// userPage is a paged user list: {"current_page","per_page","total_entries","items":[{"user":…}]}.
type userPage struct {
	CurrentPage  int        `json:"current_page"`
	PerPage      int        `json:"per_page"`
	TotalEntries int        `json:"total_entries"`
	Items        []userBody `json:"items"`
}

func pageOfUsers(pg page, total int, users []*account.User) userPage {
	out := userPage{CurrentPage: pg.page, PerPage: pg.perPage, TotalEntries: total, Items: make([]userBody, 0, len(users))}
	for _, u := range users {
		out.Items = append(out.Items, oneUser(u))
	}
	return out
}

// sessionJSON is a session as QuickBlox renders it (compat §4.1).
type sessionJSON struct {
	ObjectID      string  `json:"_id"`
	ApplicationID int64   `json:"application_id"`
	CreatedAt     isoTime `json:"created_at"`
	DeviceID      int64   `json:"device_id"`
	Nonce         int64   `json:"nonce"`
	Token         string  `json:"token"`
	Timestamp     int64   `json:"ts"`
	UpdatedAt     isoTime `json:"updated_at"`
	UserID        int64   `json:"user_id"`
	ID            int64   `json:"id"`
}

// sessionBody is {"session":{…}}.
type sessionBody struct {
	Session sessionJSON `json:"session"`
}

func renderSession(p *account.Principal) sessionBody {
	s := p.Session
	return sessionBody{sessionJSON{
		ObjectID:      s.ObjectID,
		ApplicationID: s.AppID,
		CreatedAt:     isoTime(s.CreatedAt),
		Nonce:         s.Nonce,
		Token:         p.Token,
		Timestamp:     s.Timestamp,
		UpdatedAt:     isoTime(s.UpdatedAt),
		UserID:        p.UserID,
		ID:            s.ID,
	}}
}

// dialogJSON is a dialog as QuickBlox renders it (compat §6.1), fields in
// its order.
type dialogJSON struct {
	ID                  string            `json:"_id"`
	UserID              int64             `json:"user_id"`
	CreatedAt           isoTime           `json:"created_at"`
	UpdatedAt           isoTime           `json:"updated_at"`
	Type                int               `json:"type"`
	Name                nullString        `json:"name"`
	Photo               nullString        `json:"photo"`
	XMPPRoomJID         nullString        `json:"xmpp_room_jid"`
	OccupantsIDs        []int64           `json:"occupants_ids"`
	AdminIDs            []int64           `json:"admin_ids"`
	LastMessage         nullString        `json:"last_message"`
	LastMessageDateSent nullInt           `json:"last_message_date_sent"`
	LastMessageID       nullString        `json:"last_message_id"`
	LastMessageUserID   nullInt           `json:"last_message_user_id"`
	UnreadMessagesCount int               `json:"unread_messages_count"`
	IsJoinRequired      *int              `json:"is_join_required"`
	Data                map[string]string `json:"data,omitempty"`
}

// renderDialog renders d for the user whose unread count d carries; rooms
// are on muc.<domain>.
func renderDialog(d *history.Dialog, domain string) dialogJSON {
	out := dialogJSON{
		ID:                  d.ID,
		UserID:              d.OwnerID,
		CreatedAt:           isoTime(d.CreatedAt),
		UpdatedAt:           isoTime(d.UpdatedAt),
		Type:                int(d.Type),
		Name:                nullString(d.Name),
		Photo:               nullString(d.Photo),
		OccupantsIDs:        sortedInts(d.Occupants),
		AdminIDs:            sortedInts(d.AdminIDs),
		LastMessage:         nullString(d.LastMessage),
		LastMessageDateSent: nullInt(d.LastMessageDateSent),
		LastMessageID:       nullString(d.LastMessageID),
		LastMessageUserID:   nullInt(d.LastMessageUserID),
		UnreadMessagesCount: d.UnreadCount,
	}
	if d.Type == history.PublicGroup {
		out.OccupantsIDs = []int64{}
	}
	if d.Type != history.Private && d.RoomName != "" {
		out.XMPPRoomJID = nullString(strconv.FormatInt(d.AppID, 10) + "_" + d.RoomName + "@muc." + domain)
	}
	if d.Type == history.Group {
		j := 0
		if d.JoinRequired {
			j = 1
		}
		out.IsJoinRequired = &j
	}
	if len(d.Data) > 0 {
		out.Data = d.Data
	}
	return out
}

// sortedInts returns a sorted copy of ids without duplicates, never nil.
func sortedInts(ids []int64) []int64 {
	out := append([]int64{}, ids...)
	slices.Sort(out)
	return slices.Compact(out)
}

// dialogPage is {"total_entries","skip","limit","items":[…]}.
type dialogPage struct {
	TotalEntries int          `json:"total_entries"`
	Skip         int          `json:"skip"`
	Limit        int          `json:"limit"`
	Items        []dialogJSON `json:"items"`
}

// deleteResultJSON answers a delete of several dialogs or messages.
type deleteResultJSON struct {
	SuccessfullyDeleted idList `json:"SuccessfullyDeleted"`
	NotFound            idList `json:"NotFound"`
	WrongPermissions    idList `json:"WrongPermissions"`
}

type idList struct {
	IDs []string `json:"ids"`
}

func renderDeleteResult(r history.DeleteResult) deleteResultJSON {
	ids := func(s []string) idList { return idList{append([]string{}, s...)} }
	return deleteResultJSON{ids(r.Deleted), ids(r.NotFound), ids(r.WrongPermissions)}
}

// messageJSON is a message as QuickBlox renders it (compat §6.3), fields in
// the order of its real data, then markable, then the custom parameters as
// top-level strings (sorted; never one named like a standard field).
type messageJSON struct {
	ID           string               `json:"_id"`
	ChatDialogID string               `json:"chat_dialog_id"`
	Message      nullString           `json:"message"`
	DateSent     int64                `json:"date_sent"`
	SenderID     int64                `json:"sender_id"`
	RecipientID  int64                `json:"recipient_id"`
	Read         int                  `json:"read"`
	ReadIDs      []int64              `json:"read_ids"`
	DeliveredIDs []int64              `json:"delivered_ids"`
	Attachments  []history.Attachment `json:"attachments"`
	CreatedAt    isoTime              `json:"created_at"`
	UpdatedAt    isoTime              `json:"updated_at"`
	DialogID     string               `json:"dialog_id"`
	Markable     int                  `json:"markable,omitempty"`

	custom map[string]string
}

// messageKeys are the keys a message renders on its own; custom parameters
// never take them.
var messageKeys = map[string]bool{
	"_id": true, "chat_dialog_id": true, "message": true, "date_sent": true, "sender_id": true,
	"recipient_id": true, "read": true, "read_ids": true, "delivered_ids": true, "attachments": true,
	"created_at": true, "updated_at": true, "dialog_id": true, "markable": true,
}

func (m messageJSON) MarshalJSON() ([]byte, error) {
	type plain messageJSON // no MarshalJSON: no recursion
	b, err := marshal(plain(m))
	if err != nil {
		return nil, err
	}
	b = b[:len(b)-1] // reopen the object
	for _, k := range slices.Sorted(maps.Keys(m.custom)) {
		if messageKeys[k] {
			continue
		}
		key, _ := marshal(k)
		value, _ := marshal(m.custom[k])
		b = append(append(append(append(b, ','), key...), ':'), value...)
	}
	return append(b, '}'), nil
}

// marshal is json.Marshal leaving <, > and & alone, as writeJSON does.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func renderMessage(m *history.Message) messageJSON {
	out := messageJSON{
		ID:           m.ID,
		ChatDialogID: m.DialogID,
		Message:      nullString(m.Text),
		DateSent:     m.DateSent,
		SenderID:     m.SenderID,
		RecipientID:  m.RecipientID,
		ReadIDs:      sortedInts(m.ReadIDs),
		DeliveredIDs: sortedInts(m.DeliveredIDs),
		Attachments:  append([]history.Attachment{}, m.Attachments...),
		CreatedAt:    isoTime(m.CreatedAt),
		UpdatedAt:    isoTime(m.UpdatedAt),
		DialogID:     m.DialogID,
		custom:       m.Custom,
	}
	if m.RecipientID != 0 && slices.Contains(m.ReadIDs, m.RecipientID) {
		out.Read = 1
	}
	if m.Markable {
		out.Markable = 1
	}
	return out
}

// messagePage is {"skip","limit","items":[…]} (no total, as QuickBlox).
type messagePage struct {
	Skip  int           `json:"skip"`
	Limit int           `json:"limit"`
	Items []messageJSON `json:"items"`
}
