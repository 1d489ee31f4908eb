package muc

import (
	"chatd/xmpp"
	"strconv"
	"strings"
)

// roomKey names a room: its application and the part of its local part
// after "<app>_" (history.Dialog.RoomName).
type roomKey struct {
	app  int64
	name string
}

// parseRoom reads a room JID's local part, <application_id>_<name>.
func parseRoom(local string) (roomKey, bool) {
	i := strings.IndexByte(local, '_')
	if i <= 0 || i == len(local)-1 {
		return roomKey{}, false
	}
	app, err := strconv.ParseInt(local[:i], 10, 64)
	if err != nil || app <= 0 || local[0] == '+' {
		return roomKey{}, false
	}
	return roomKey{app: app, name: local[i+1:]}, true
}

// nick is a user's nickname in every room: the user id.
func nick(user int64) string { return strconv.FormatInt(user, 10) }

// parseNick reads a nickname back into a user id.
func parseNick(s string) (int64, bool) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || s[0] == '+' {
		return 0, false
	}
	return id, true
}

// maxRoomName bounds the names of rooms created by joining: the name
// becomes the dialog's, which QuickBlox limits to 200 characters.
const maxRoomName = 200

// roomJID returns the bare JID of a room.
func (svc *Service) roomJID(k roomKey) string {
	return strconv.FormatInt(k.app, 10) + "_" + k.name + "@" + svc.domain
}

// userJID returns a user's bare JID.
func (svc *Service) userJID(app, user int64) string {
	return xmpp.UserJID(xmpp.UserRef{App: app, User: user}, svc.srv.Domain()).String()
}
