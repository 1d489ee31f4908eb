package muc

import (
	"context"
	"slices"
	"strconv"

	"chatd/history"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

// result builds an IQ result from a room or the service.
func result(req *stanza.Element, from string, payload *stanza.Element) *stanza.Element {
	r := stanza.New("iq", stanza.NSClient, "type", "result", "id", req.Attr("id"), "from", from)
	if payload != nil {
		r.Append(payload)
	}
	return r
}

// serviceIQ answers IQs to muc.<domain>: service discovery.
func (svc *Service) serviceIQ(ctx context.Context, from xmpp.Sender, el *stanza.Element) {
	typ := el.Attr("type")
	if from.Session == nil || typ == "result" || typ == "error" {
		return
	}
	q := el.FirstElement()
	switch {
	case q == nil:
		svc.reply(from, el, errBadRequest)
	case q.Space == nsDiscoInfo && q.Name == "query" && typ == "get" && q.Attr("node") == "":
		res := stanza.New("query", nsDiscoInfo).Append(
			stanza.New("identity", nsDiscoInfo, "category", "conference", "type", "text", "name", "Chat rooms"))
		for _, f := range []string{nsDiscoInfo, nsDiscoItems, nsMUC, nsPing} {
			res.Append(stanza.New("feature", nsDiscoInfo, "var", f))
		}
		from.Session.Send(result(el, svc.domain, res))
	case q.Space == nsDiscoItems && q.Name == "query" && typ == "get" && q.Attr("node") == "":
		from.Session.Send(result(el, svc.domain, svc.liveRooms(from.User)))
	case q.Space == nsPing && q.Name == "ping" && typ == "get":
		from.Session.Send(result(el, svc.domain, nil))
	default:
		svc.reply(from, el, errServiceUnavail)
	}
}

// liveRooms lists the rooms of the user's application that have occupants
// and that the user may enter: the service does not enumerate every dialog.
func (svc *Service) liveRooms(u xmpp.UserRef) *stanza.Element {
	svc.mu.Lock()
	var rooms []*room
	for k, r := range svc.rooms {
		if k.app == u.App {
			rooms = append(rooms, r)
		}
	}
	svc.mu.Unlock()
	slices.SortFunc(rooms, func(a, b *room) int {
		if a.jid < b.jid {
			return -1
		}
		if a.jid > b.jid {
			return 1
		}
		return 0
	})
	q := stanza.New("query", nsDiscoItems)
	for _, r := range rooms {
		r.mu.Lock()
		d, n := r.dialog, len(r.occupants)
		r.mu.Unlock()
		if d != nil && n > 0 && admitted(d, u.User) {
			q.Append(stanza.New("item", nsDiscoItems, "jid", r.jid, "name", d.Name))
		}
	}
	return q
}

// iq answers IQs to a room or an occupant.
func (svc *Service) iq(ctx context.Context, from xmpp.Sender, el *stanza.Element, k roomKey, toNick string) {
	typ := el.Attr("type")
	if from.Session == nil || typ == "result" || typ == "error" {
		return
	}
	if typ != "get" && typ != "set" {
		svc.reply(from, el, errBadRequest)
		return
	}
	q := el.FirstElement()
	if q == nil {
		svc.reply(from, el, errBadRequest)
		return
	}
	r, d, joined, ok := svc.target(ctx, from, el, k)
	if !ok {
		return
	}
	user := from.User.User
	roomJID := svc.roomJID(k)
	if !admitted(d, user) && !joined {
		// A members-only room is hidden from those who are not members.
		svc.reply(from, el, errItemNotFound)
		return
	}
	if toNick != "" {
		// XEP-0410 self-ping: answered while the session is in the room.
		switch {
		case q.Space == nsPing && q.Name == "ping" && toNick == nick(user) && joined:
			from.Session.Send(result(el, roomJID+"/"+toNick, nil))
		case !joined && (q.Space == nsDiscoInfo || q.Space == nsDiscoItems):
			// XEP-0045 §6.6: a non-occupant's disco request to an
			// occupant JID.
			svc.reply(from, el, errBadRequest)
		case !joined:
			svc.reply(from, el, errNotJoined)
		default:
			svc.reply(from, el, errFeatureNotImpl)
		}
		return
	}
	switch key := q.Space + " " + q.Name; {
	case key == nsDiscoInfo+" query" && typ == "get":
		switch q.Attr("node") {
		case "":
			from.Session.Send(result(el, roomJID, svc.roomInfo(r, d)))
		case nodeReservedNick:
			// XEP-0045 §7.12: nicks are locked down to the user id.
			from.Session.Send(result(el, roomJID, stanza.New("query", nsDiscoInfo, "node", nodeReservedNick).Append(
				stanza.New("identity", nsDiscoInfo, "category", "conference", "type", "text", "name", nick(user)))))
		default:
			svc.reply(from, el, errNoNode)
		}
	case key == nsDiscoItems+" query" && typ == "get":
		from.Session.Send(result(el, roomJID, svc.roomItems(r, roomJID)))
	case key == nsPing+" ping" && typ == "get":
		from.Session.Send(result(el, roomJID, nil))
	case key == nsMUCOwner+" query":
		svc.ownerIQ(ctx, from, el, q, d, roomJID)
	case key == nsMUCAdmin+" query":
		svc.adminIQ(ctx, from, el, q, r, d, roomJID)
	default:
		svc.reply(from, el, errServiceUnavail)
	}
}

// nodeReservedNick is the disco#info node of a user's reserved nick in a
// room (XEP-0045 §7.12).
const nodeReservedNick = "x-roomuser-item"

// roomInfo is a room's disco#info (XEP-0045 §6.4).
func (svc *Service) roomInfo(r *room, d *history.Dialog) *stanza.Element {
	n := 0
	if r != nil {
		r.mu.Lock()
		n = len(r.occupants)
		r.mu.Unlock()
	}
	q := stanza.New("query", nsDiscoInfo).Append(
		stanza.New("identity", nsDiscoInfo, "category", "conference", "type", "text", "name", d.Name))
	features := []string{nsMUC, nsDiscoInfo, nsDiscoItems, "muc_persistent", "muc_nonanonymous", "muc_unmoderated",
		"muc_unsecured"}
	if d.Type == history.PublicGroup {
		features = append(features, "muc_open", "muc_public")
	} else {
		features = append(features, "muc_membersonly", "muc_hidden")
	}
	for _, f := range features {
		q.Append(stanza.New("feature", nsDiscoInfo, "var", f))
	}
	form := stanza.New("x", nsData, "type", "result").Append(
		formField("FORM_TYPE", "hidden", "", "http://jabber.org/protocol/muc#roominfo"),
		formField("muc#roominfo_occupants", "text-single", "Number of occupants", strconv.Itoa(n)),
		formField("muc#roominfo_subject", "text-single", "Subject", d.Name),
		formField("muc#roomconfig_roomname", "text-single", "Name", d.Name),
		formField("muc#roomconfig_changesubject", "boolean", "Occupants may change the subject", boolStr(d.Type == history.Group)),
	)
	return q.Append(form)
}

// roomItems lists the online occupants, as the QuickBlox SDK's
// listOnlineUsers reads them: <item jid='room/<id>' name='<id>'/>.
func (svc *Service) roomItems(r *room, roomJID string) *stanza.Element {
	q := stanza.New("query", nsDiscoItems)
	if r == nil {
		return q
	}
	for _, u := range r.occupantIDs() {
		q.Append(stanza.New("item", nsDiscoItems, "jid", roomJID+"/"+nick(u), "name", nick(u)))
	}
	return q
}

func formField(v, typ, label string, values ...string) *stanza.Element {
	f := stanza.New("field", nsData, "var", v, "type", typ)
	if label != "" {
		f.SetAttr("label", label)
	}
	for _, val := range values {
		f.Append(stanza.New("value", nsData).AppendText(val))
	}
	return f
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// formValues reads a submitted data form.
func formValues(x *stanza.Element) map[string][]string {
	out := map[string][]string{}
	for _, f := range x.Elements() {
		if f.Name != "field" || f.Attr("var") == "" {
			continue
		}
		var vals []string
		for _, v := range f.Elements() {
			if v.Name == "value" {
				vals = append(vals, v.Content())
			}
		}
		out[f.Attr("var")] = vals
	}
	return out
}

func formBool(v []string) (bool, bool) {
	if len(v) != 1 {
		return false, false
	}
	switch v[0] {
	case "1", "true":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}

// The configuration form field chatd adds: the dialog's is_join_required.
const fieldJoinRequired = "chatd#is_join_required"

// ownerIQ handles the owner use cases (XEP-0045 §10): the configuration
// form, mapped onto the dialog's fields, and destroying the room, which
// deletes the dialog for everyone.
func (svc *Service) ownerIQ(ctx context.Context, from xmpp.Sender, el, q *stanza.Element, d *history.Dialog, roomJID string) {
	user := from.User.User
	if user != d.OwnerID {
		svc.reply(from, el, errNotOwner)
		return
	}
	if el.Attr("type") == "get" {
		from.Session.Send(result(el, roomJID, stanza.New("query", nsMUCOwner).Append(svc.configForm(d))))
		return
	}
	if req := q.Child("destroy", nsMUCOwner); req != nil {
		note, ok := destroyNote(req)
		if !ok {
			svc.reply(from, el, xmpp.NewStanzaError("modify", "jid-malformed", "the alternate venue is not a JID"))
			return
		}
		// The occupants are told by destroy, which observe calls while
		// the dialog is deleted, on this goroutine.
		k := roomKey{app: d.AppID, name: d.RoomName}
		svc.mu.Lock()
		svc.destroying[k] = note
		svc.mu.Unlock()
		res, err := svc.hist.DeleteDialogs(ctx, d.AppID, user, []string{d.ID}, true)
		svc.mu.Lock()
		if svc.destroying[k] == note {
			delete(svc.destroying, k)
		}
		svc.mu.Unlock()
		switch {
		case err != nil:
			svc.reply(from, el, stanzaError(err))
		case len(res.Deleted) == 0:
			svc.reply(from, el, errNotOwner)
		default:
			from.Session.Send(result(el, roomJID, nil))
		}
		return
	}
	x := q.Child("x", nsData)
	if x == nil {
		svc.reply(from, el, errBadRequest)
		return
	}
	switch x.Attr("type") {
	case "cancel":
		from.Session.Send(result(el, roomJID, nil))
		return
	case "submit":
	default:
		svc.reply(from, el, errBadRequest)
		return
	}
	// Fields that do not map onto the dialog are fixed by its type and
	// ignored (an empty form creates an instant room, §10.1.2).
	vals := formValues(x)
	var up history.DialogUpdate
	if v, ok := vals["muc#roomconfig_roomname"]; ok && len(v) == 1 && v[0] != d.Name {
		name := v[0]
		up.Name = &name
	}
	if jr, ok := formBool(vals[fieldJoinRequired]); ok && d.Type == history.Group && jr != d.JoinRequired {
		up.JoinRequired = &jr
	}
	if up.Name != nil || up.JoinRequired != nil {
		if _, err := svc.hist.UpdateDialog(ctx, d.AppID, user, d.ID, up); err != nil {
			svc.reply(from, el, stanzaError(err))
			return
		}
	}
	from.Session.Send(result(el, roomJID, nil))
}

// destroyNote is the <destroy/> the occupants of a room its owner
// destroys get: the alternate venue (jid), its password and the reason the
// owner gave. It reports false for a malformed venue.
func destroyNote(req *stanza.Element) (*stanza.Element, bool) {
	note := stanza.New("destroy", nsMUCUser)
	if v := req.Attr("jid"); v != "" {
		j, err := xmpp.ParseJID(v)
		if err != nil {
			return nil, false
		}
		note.SetAttr("jid", j.String())
	}
	for _, n := range []string{"password", "reason"} {
		if c := req.Child(n, nsMUCOwner); c != nil {
			note.Append(stanza.New(n, nsMUCUser).AppendText(c.Content()))
		}
	}
	return note, true
}

// configForm is the room configuration form (XEP-0045 §10.2); only the
// name and, for groups, is_join_required can change.
func (svc *Service) configForm(d *history.Dialog) *stanza.Element {
	x := stanza.New("x", nsData, "type", "form").Append(
		stanza.New("title", nsData).AppendText("Configuration of "+d.Name),
		stanza.New("instructions", nsData).AppendText("The room is chat dialog "+d.ID+
			"; its name can be changed, its other settings follow the dialog's type."),
		formField("FORM_TYPE", "hidden", "", "http://jabber.org/protocol/muc#roomconfig"),
		formField("muc#roomconfig_roomname", "text-single", "Name", d.Name),
		formField("muc#roomconfig_persistentroom", "boolean", "Persistent (the room lives as long as its dialog)", "1"),
		formField("muc#roomconfig_publicroom", "boolean", "Public (a public group dialog)", boolStr(d.Type == history.PublicGroup)),
		formField("muc#roomconfig_membersonly", "boolean", "Members only (the dialog's occupants)", boolStr(d.Type == history.Group)),
		formField("muc#roomconfig_moderatedroom", "boolean", "Moderated", "0"),
		formField("muc#roomconfig_passwordprotectedroom", "boolean", "Password protected", "0"),
		formField("muc#roomconfig_changesubject", "boolean", "Occupants may change the subject (the name)", boolStr(d.Type == history.Group)),
		formField("muc#roomconfig_whois", "list-single", "Real JIDs are shown to", "anyone"),
		formField("muc#roomconfig_roomowners", "jid-multi", "Owner", svc.userJID(d.AppID, d.OwnerID)),
	)
	if d.Type == history.Group {
		x.Append(formField(fieldJoinRequired, "boolean", "Occupants must join to send and receive (is_join_required)",
			boolStr(d.JoinRequired)))
	}
	return x
}

// adminIQ handles the admin use cases (XEP-0045 §9): affiliation and role
// lists, and changes mapped onto the dialog's occupants (member: push_all,
// none or outcast: pull_all, under the dialog's rules) and kicks.
func (svc *Service) adminIQ(ctx context.Context, from xmpp.Sender, el, q *stanza.Element, r *room, d *history.Dialog, roomJID string) {
	user := from.User.User
	items := make([]*stanza.Element, 0, 1)
	for _, c := range q.Elements() {
		if c.Name == "item" && c.Space == nsMUCAdmin {
			items = append(items, c)
		}
	}
	if len(items) == 0 {
		svc.reply(from, el, errBadRequest)
		return
	}
	if el.Attr("type") == "get" {
		res, err := svc.adminList(r, d, items[0])
		if err != nil {
			svc.reply(from, el, stanzaError(err))
			return
		}
		from.Session.Send(result(el, roomJID, res))
		return
	}
	var up history.DialogUpdate
	var kicks []int64
	for _, it := range items {
		// An item changes an affiliation or a role, never both, of a user
		// it names (XEP-0045 §17.4).
		aff, rl := it.Attr("affiliation"), it.Attr("role")
		if (aff == "") == (rl == "") || (it.Attr("jid") == "" && it.Attr("nick") == "") {
			svc.reply(from, el, xmpp.NewStanzaError("modify", "bad-request", "an item names a user by jid or nick and sets either an affiliation or a role"))
			return
		}
		target, ok := svc.itemUser(it, d.AppID)
		if !ok {
			svc.reply(from, el, xmpp.NewStanzaError("modify", "jid-malformed", "name a user of this application by jid or nick"))
			return
		}
		if aff != "" {
			if d.Type != history.Group {
				svc.reply(from, el, xmpp.NewStanzaError("cancel", "not-allowed", "a public group has no member list"))
				return
			}
			switch {
			case target == user && target == d.OwnerID && aff != "owner":
				// The only owner cannot revoke its ownership (§10.6).
				svc.reply(from, el, xmpp.NewStanzaError("cancel", "conflict", "the owner is the room's only owner"))
				return
			case target == user && aff == "outcast" && role(affiliation(d, user)) == "moderator":
				// Admins and owners cannot ban themselves (§9.1).
				svc.reply(from, el, xmpp.NewStanzaError("cancel", "conflict", "an admin cannot ban itself"))
				return
			case target == d.OwnerID && aff != "owner":
				svc.reply(from, el, xmpp.NewStanzaError("cancel", "not-allowed", "the owner stays the owner"))
				return
			}
			switch aff {
			case "member":
				up.PushAll = append(up.PushAll, target)
			case "none", "outcast":
				up.PullAll = append(up.PullAll, target)
			default:
				svc.reply(from, el, xmpp.NewStanzaError("cancel", "not-allowed", "owners and admins come from the dialog"))
				return
			}
			continue
		}
		if rl != "none" {
			svc.reply(from, el, xmpp.NewStanzaError("cancel", "not-allowed", "roles follow affiliations; only kicking is supported"))
			return
		}
		if role(affiliation(d, user)) != "moderator" {
			svc.reply(from, el, errNotModerator)
			return
		}
		if role(affiliation(d, target)) == "moderator" {
			svc.reply(from, el, xmpp.NewStanzaError("cancel", "not-allowed", "a moderator cannot be kicked"))
			return
		}
		kicks = append(kicks, target)
	}
	if len(up.PushAll) > 0 || len(up.PullAll) > 0 {
		// Kicks of removed occupants follow from the dialog change (observe).
		if _, err := svc.hist.UpdateDialog(ctx, d.AppID, user, d.ID, up); err != nil {
			svc.reply(from, el, stanzaError(err))
			return
		}
	}
	if r != nil {
		for _, target := range kicks {
			svc.kick(r, target, user)
		}
	}
	from.Session.Send(result(el, roomJID, nil))
}

// itemUser reads the user an admin item names, by jid or nick.
func (svc *Service) itemUser(it *stanza.Element, app int64) (int64, bool) {
	if j := it.Attr("jid"); j != "" {
		return svc.localUser(j, app)
	}
	return parseNick(it.Attr("nick"))
}

// adminList answers an affiliation or role list request.
func (svc *Service) adminList(r *room, d *history.Dialog, req *stanza.Element) (*stanza.Element, error) {
	q := stanza.New("query", nsMUCAdmin)
	add := func(u int64, aff, rl string) {
		it := stanza.New("item", nsMUCAdmin, "affiliation", aff, "jid", svc.userJID(d.AppID, u), "nick", nick(u))
		if rl != "" {
			it.SetAttr("role", rl)
		}
		q.Append(it)
	}
	if aff := req.Attr("affiliation"); aff != "" {
		var users []int64
		switch aff {
		case "owner":
			if admitted(d, d.OwnerID) {
				users = []int64{d.OwnerID}
			}
		case "admin":
			users = d.AdminIDs
		case "member":
			if d.Type == history.Group {
				for _, o := range d.Occupants {
					if affiliation(d, o) == "member" {
						users = append(users, o)
					}
				}
			}
		case "outcast":
		default:
			return nil, errBadRequest
		}
		for _, u := range users {
			add(u, aff, "")
		}
		return q, nil
	}
	rl := req.Attr("role")
	if rl != "moderator" && rl != "participant" && rl != "visitor" {
		return nil, errBadRequest
	}
	if r == nil {
		return q, nil
	}
	for _, u := range r.occupantIDs() {
		aff := affiliation(d, u)
		if role(aff) == rl {
			add(u, aff, rl)
		}
	}
	return q, nil
}

// kick removes an occupant from the room without touching the dialog
// (XEP-0045 §8.2, role none): it gets statuses 307 and 110 with the actor
// (307 first: the QuickBlox SDK reads only the first status, and 110 alone
// would look like its own leave to it); the others get the leave with
// status 307, but for QuickBlox SDK sessions, which read a leave only
// without a status (onLeaveOccupant) and get a plain one. It may join
// again.
func (svc *Service) kick(r *room, target, actor int64) {
	r.mu.Lock()
	o := r.occupants[target]
	if o == nil {
		r.mu.Unlock()
		return
	}
	quiet := len(r.occupants) > svc.cfg.MaxBroadcastOccupants
	sessions := make([]*xmpp.Session, 0, len(o.members))
	for _, m := range o.members {
		sessions = append(sessions, m.s)
		delete(r.members, m.s)
	}
	delete(r.occupants, target)
	r.snap = nil
	var others, sdkOthers []*xmpp.Session
	if !quiet {
		for s, m := range r.members {
			if m.sdk {
				sdkOthers = append(sdkOthers, s)
			} else {
				others = append(others, s)
			}
		}
	}
	d := r.dialog
	empty := len(r.members) == 0
	if empty {
		r.closed = true
	}
	r.mu.Unlock()
	aff := affiliation(d, target)
	kick := stanza.New("item", nsMUCUser, "affiliation", aff, "role", "none").
		Append(stanza.New("actor", nsMUCUser, "jid", svc.userJID(d.AppID, actor), "nick", nick(actor)))
	it := xmpp.NewItem(svc.unavailable(r.jid, target, "", kick, status("307"), status("110")))
	for _, s := range sessions {
		s.Enqueue(it)
		svc.untrack(s, r)
	}
	if len(others) > 0 {
		kicked := xmpp.NewItem(svc.unavailable(r.jid, target, "", mucItem(aff, "none", ""), status("307")))
		for _, s := range others {
			s.Enqueue(kicked)
		}
	}
	if len(sdkOthers) > 0 {
		left := xmpp.NewItem(svc.unavailable(r.jid, target, "", mucItem(aff, "none", "")))
		for _, s := range sdkOthers {
			s.Enqueue(left)
		}
	}
	if empty {
		svc.drop(r)
	}
}
