package xmpp

import (
	"errors"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"
)

// JID is a parsed, normalised Jabber ID.
type JID struct {
	Local, Domain, Resource string
}

// ParseJID parses and normalises s (RFC 7622). The common form chatd issues,
// <digits>-<digits>@domain[/resource] in ASCII, takes a fast path; anything
// else goes through the full PRECIS preparation.
func ParseJID(s string) (JID, error) {
	if j, ok := fastJID(s); ok {
		return j, nil
	}
	local, domain, resource, err := jid.SplitString(s)
	if err != nil {
		return JID{}, err
	}
	j, err := jid.New(local, domain, resource)
	if err != nil {
		return JID{}, err
	}
	if d := j.Domainpart(); d == "" || !labels(d) {
		return JID{}, errors.New("xmpp: the domainpart has an empty label")
	}
	return JID{j.Localpart(), j.Domainpart(), j.Resourcepart()}, nil
}

// fastJID accepts JIDs whose local and domain parts are lower-case ASCII
// letters, digits, '-', '_' and '.', and whose resource is printable ASCII;
// PRECIS leaves those unchanged.
func fastJID(s string) (JID, bool) {
	var j JID
	rest := s
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		j.Resource = rest[i+1:]
		rest = rest[:i]
		if j.Resource == "" || len(j.Resource) > 1023 {
			return j, false
		}
		for k := 0; k < len(j.Resource); k++ {
			if c := j.Resource[k]; c < 0x21 || c > 0x7e {
				return j, false
			}
		}
	}
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		j.Local = rest[:i]
		rest = rest[i+1:]
		if !simple(j.Local) || len(j.Local) > 1023 {
			return j, false
		}
	}
	j.Domain = strings.TrimSuffix(rest, ".")
	if !simple(j.Domain) || len(j.Domain) > 1023 || !labels(j.Domain) {
		return j, false
	}
	return j, true
}

// labels reports whether a domain's dot-separated labels are all non-empty.
func labels(d string) bool {
	return d[0] != '.' && d[len(d)-1] != '.' && !strings.Contains(d, "..")
}

func simple(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// String returns the JID's text form.
func (j JID) String() string {
	n := len(j.Domain)
	if j.Local != "" {
		n += len(j.Local) + 1
	}
	if j.Resource != "" {
		n += len(j.Resource) + 1
	}
	var b strings.Builder
	b.Grow(n)
	if j.Local != "" {
		b.WriteString(j.Local)
		b.WriteByte('@')
	}
	b.WriteString(j.Domain)
	if j.Resource != "" {
		b.WriteByte('/')
		b.WriteString(j.Resource)
	}
	return b.String()
}

// Bare returns the JID without its resource.
func (j JID) Bare() JID { return JID{Local: j.Local, Domain: j.Domain} }

// IsZero reports whether j is empty.
func (j JID) IsZero() bool { return j.Domain == "" }

// IsBare reports whether j has no resource.
func (j JID) IsBare() bool { return j.Resource == "" }

// UserRef names a user of an application.
type UserRef struct {
	App  int64
	User int64
}

// hash spreads users over lock stripes and router shards (ids are assigned
// by the server, so no seed is needed against chosen collisions).
func (u UserRef) hash() uint64 {
	h := uint64(u.User)*0x9E3779B97F4A7C15 ^ uint64(u.App)*0xC2B2AE3D27D4EB4F
	return h ^ h>>29
}

// UserJID returns the bare JID of a user: <user_id>-<app_id>@domain.
func UserJID(u UserRef, domain string) JID {
	return JID{Local: strconv.FormatInt(u.User, 10) + "-" + strconv.FormatInt(u.App, 10), Domain: domain}
}

// ParseUserLocal reads a local part of the form <user_id>-<app_id>.
func ParseUserLocal(local string) (UserRef, bool) {
	i := strings.IndexByte(local, '-')
	if i <= 0 || i == len(local)-1 {
		return UserRef{}, false
	}
	user, err1 := strconv.ParseInt(local[:i], 10, 64)
	app, err2 := strconv.ParseInt(local[i+1:], 10, 64)
	if err1 != nil || err2 != nil || user <= 0 || app <= 0 || local[0] == '+' || local[i+1] == '+' {
		return UserRef{}, false
	}
	return UserRef{App: app, User: user}, true
}
