package restapi

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"chatd/account"
)

// isoLayout is how QuickBlox writes times: "2019-08-27T20:19:08Z".
const isoLayout = "2006-01-02T15:04:05Z"

// nullString is a string that is JSON null when empty.
type nullString string

func (s nullString) MarshalJSON() ([]byte, error) {
	if s == "" {
		return []byte("null"), nil
	}
	// Like json.Marshal, but leaving <, > and & alone as writeJSON does.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(string(s)); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
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
