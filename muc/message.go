package muc

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"chatd/history"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

// target finds the room a stanza is addressed to (nil when nobody is in it)
// and its dialog, and whether the sender has joined; when there is no such
// dialog it answers the stanza with the error and reports false.
func (svc *Service) target(ctx context.Context, from xmpp.Sender, el *stanza.Element, k roomKey) (r *room, d *history.Dialog, joined, ok bool) {
	if r = svc.room(k, false); r != nil {
		d, joined = r.state(from.Session)
	}
	if d == nil {
		var err error
		if d, err = svc.hist.RoomDialog(ctx, k.app, k.name); err != nil {
			svc.reply(from, el, stanzaError(err))
			return nil, nil, false, false
		}
	}
	return r, d, joined, true
}

// message handles a message to a room (groupchat, subject changes,
// mediated invitations) or to an occupant (a private message).
func (svc *Service) message(ctx context.Context, from xmpp.Sender, el *stanza.Element, k roomKey, toNick string) {
	if el.Attr("type") == "error" {
		return
	}
	r, d, joined, ok := svc.target(ctx, from, el, k)
	if !ok {
		return
	}
	if toNick != "" {
		svc.private(from, el, r, joined, toNick)
		return
	}
	if x := el.Child("x", nsMUCUser); x != nil && (x.Child("invite", nsMUCUser) != nil || x.Child("decline", nsMUCUser) != nil) {
		svc.invite(ctx, from, el, x, k, d, joined)
		return
	}
	if el.Attr("type") != "groupchat" {
		svc.reply(from, el, errBadRequest)
		return
	}
	svc.groupchat(ctx, from, el, r, d, joined)
}

// groupchat records (when asked) and fans out a message to the room.
func (svc *Service) groupchat(ctx context.Context, from xmpp.Sender, el *stanza.Element, r *room, d *history.Dialog, joined bool) {
	user := from.User.User
	if from.Session != nil {
		switch {
		case requiresJoin(d) && !joined:
			svc.reply(from, el, errNotJoined)
			return
		case !joined && !admitted(d, user):
			svc.reply(from, el, errNotMember)
			return
		}
	}
	if el.Child("subject", stanza.NSClient) != nil && el.Child("body", stanza.NSClient) == nil {
		svc.setSubject(ctx, from, el, d)
		return
	}
	stamp, delay, repeated := time.Now(), true, false
	switch {
	case from.Session == nil:
		// From the REST API (send_to_chat): already stored and annotated.
		if x := el.Child("extraParams", stanza.NSClient); x != nil {
			if sec, err := strconv.ParseInt(strings.TrimSpace(x.ChildText("date_sent", "")), 10, 64); err == nil && sec > 0 {
				stamp = time.Unix(sec, 0)
			}
		}
	case chatStateOnly(el):
		delay = false // typing notifications are routed, never stored
	case marker(el):
		// Markers belong in 1:1 messages; one sent to a room is routed only.
	case el.Child("replace", nsCorrect) != nil:
		if id, text := el.Child("replace", nsCorrect).Attr("id"), el.ChildText("body", stanza.NSClient); id != "" && text != "" {
			if _, err := svc.hist.Edit(ctx, d.AppID, user, id, text, history.Conversation{DialogID: d.ID}); err != nil && !errors.Is(err, history.ErrNotFound) {
				svc.log.Debug("group correction not stored", "id", id, "err", err)
			}
		}
	case wantsHistory(el):
		in := xmpp.StanzaMessage(el)
		in.App, in.SenderID, in.DialogID, in.RecipientID = d.AppID, user, d.ID, 0
		rec := svc.hist.Begin(ctx, in)
		m, _, err := rec.Wait()
		if err != nil {
			svc.reply(from, el, stanzaError(err))
			return
		}
		el = xmpp.Annotate(el, m)
		stamp, repeated = time.Unix(m.DateSent, 0), rec.Repeated()
	}
	out := svc.groupStanza(el, r.jidOr(svc, d), nick(user), stamp, delay)
	if repeated {
		// Sent again (no reflection reached the sender, say): the room had
		// it the first time; only the sender gets its reflection.
		from.Session.Send(out)
		return
	}
	sender, _ := xmpp.ParseJID(out.Attr("from"))
	svc.fanout(r, d, xmpp.NewItem(out), from.Session, sender)
}

// jidOr returns the room's JID, also when the room is not live.
func (r *room) jidOr(svc *Service, d *history.Dialog) string {
	if r != nil {
		return r.jid
	}
	return svc.roomJID(roomKey{app: d.AppID, name: d.RoomName})
}

// groupStanza builds the message the room sends: from room/<sender id>,
// type groupchat, with the sender's id and payload, and a <delay/> stamp as
// QuickBlox's MUC adds (any <delay/> the client put in is dropped).
func (svc *Service) groupStanza(el *stanza.Element, roomJID, senderNick string, stamp time.Time, delay bool) *stanza.Element {
	out := &stanza.Element{Name: "message", Space: stanza.NSClient}
	out.Attrs = make([]stanza.Attr, 0, len(el.Attrs)+1)
	for _, a := range el.Attrs {
		switch a.Name {
		case "from", "to", "type":
			continue
		}
		out.Attrs = append(out.Attrs, a)
	}
	out.Attrs = append(out.Attrs, stanza.Attr{Name: "from", Value: roomJID + "/" + senderNick},
		stanza.Attr{Name: "type", Value: "groupchat"})
	if !out.HasAttr("id") {
		out.SetAttr("id", svc.ids.next())
	}
	out.Children = make([]*stanza.Element, 0, len(el.Children)+1)
	for _, c := range el.Children {
		if c.Name == "delay" && c.Space == nsDelay {
			continue
		}
		out.Children = append(out.Children, c)
	}
	if delay {
		out.Children = append(out.Children, stanza.New("delay", nsDelay, "from", roomJID, "stamp", stamp.UTC().Format(time.RFC3339)))
	}
	return out
}

// fanout enqueues one encoded stanza to every joined session of the room
// and, when the dialog does not require joining, to the available sessions
// of the dialog's occupants that did not join; the sender always gets its
// message back. Recipients whose privacy list blocks the sender's occupant
// JID (QuickBlox's muc.<domain>/<user_id> items) are skipped. No lock is held
// while enqueuing.
func (svc *Service) fanout(r *room, d *history.Dialog, it *xmpp.Item, sender *xmpp.Session, from xmpp.JID) {
	var snap *snapshot
	if r != nil {
		snap, _ = r.targets()
	}
	reflected := sender == nil
	if snap != nil {
		for _, s := range snap.sessions {
			if s == sender {
				reflected = true
			} else if !s.Accepts(from, "message") {
				continue
			}
			s.Enqueue(it)
		}
	}
	if d.Type == history.Group && !d.JoinRequired {
		for _, u := range d.Occupants {
			for _, s := range svc.srv.Sessions(xmpp.UserRef{App: d.AppID, User: u}) {
				if snap.has(s) || (!s.Available() && s != sender) || (s != sender && !s.Accepts(from, "message")) {
					continue
				}
				s.Enqueue(it)
				if s == sender {
					reflected = true
				}
			}
		}
	}
	if !reflected {
		sender.Enqueue(it)
	}
}

// setSubject maps a subject change onto the dialog's name (under the
// dialog's rules: any occupant of a group, the owner of a public group).
// The change is announced by observe, as for a rename over REST.
func (svc *Service) setSubject(ctx context.Context, from xmpp.Sender, el *stanza.Element, d *history.Dialog) {
	name := el.ChildText("subject", stanza.NSClient)
	if strings.TrimSpace(name) == "" {
		svc.reply(from, el, xmpp.NewStanzaError("modify", "not-acceptable", "the subject is the dialog's name, which cannot be blank"))
		return
	}
	if _, err := svc.hist.UpdateDialog(ctx, d.AppID, from.User.User, d.ID, history.DialogUpdate{Name: &name}); err != nil {
		svc.reply(from, el, stanzaError(err))
	}
}

// private relays a private message between occupants (XEP-0045 §7.5): from
// room/<sender id> to the recipient's joined sessions, marked with an empty
// muc#user element. Only joined sessions may send them.
func (svc *Service) private(from xmpp.Sender, el *stanza.Element, r *room, joined bool, toNick string) {
	if from.Session == nil {
		return
	}
	if el.Attr("type") == "groupchat" {
		svc.reply(from, el, errBadRequest)
		return
	}
	if r == nil || !joined {
		svc.reply(from, el, errNotJoined)
		return
	}
	target, ok := parseNick(toNick)
	var sessions []*xmpp.Session
	if ok {
		sessions = r.sessionsOf(target)
	}
	if len(sessions) == 0 {
		svc.reply(from, el, errOccupantNotFound)
		return
	}
	out := el.ShallowCopy()
	out.RemoveAttr("to")
	out.SetAttr("from", r.jid+"/"+nick(from.User.User))
	// One empty muc#user element marks it (XEP-0045 §7.5), in place of
	// any the sender's client added (Conversations does): only the
	// service speaks muc#user.
	kids := make([]*stanza.Element, 0, len(out.Children)+1)
	for _, c := range out.Children {
		if c.Name != "x" || c.Space != nsMUCUser {
			kids = append(kids, c)
		}
	}
	out.Children = append(kids, stanza.New("x", nsMUCUser))
	it := xmpp.NewItem(out)
	fromJID, _ := xmpp.ParseJID(out.Attr("from"))
	for _, s := range sessions {
		if !s.Accepts(fromJID, "message") {
			svc.reply(from, el, xmpp.NewStanzaError("cancel", "service-unavailable", "blocked by the recipient's privacy list"))
			return
		}
	}
	for _, s := range sessions {
		s.Enqueue(it)
	}
}

// invite relays a mediated invitation (XEP-0045 §7.8.2) or its decline.
// Inviting someone to a group adds them to its occupants, as adding them
// over REST does (any occupant may), so that they can join.
func (svc *Service) invite(ctx context.Context, from xmpp.Sender, el, x *stanza.Element, k roomKey, d *history.Dialog, joined bool) {
	user := from.User.User
	if !joined && !admitted(d, user) {
		svc.reply(from, el, errNotMember)
		return
	}
	roomJID := svc.roomJID(k)
	inviter := svc.userJID(d.AppID, user)
	if inv := x.Child("invite", nsMUCUser); inv != nil {
		to, ok := svc.localUser(inv.Attr("to"), d.AppID)
		if !ok {
			svc.reply(from, el, xmpp.NewStanzaError("modify", "jid-malformed", "invite a user of this application"))
			return
		}
		if d.Type == history.Group && !d.HasOccupant(to) {
			if _, err := svc.hist.UpdateDialog(ctx, d.AppID, user, d.ID, history.DialogUpdate{PushAll: []int64{to}}); err != nil {
				svc.reply(from, el, stanzaError(err))
				return
			}
		}
		fwd := stanza.New("invite", nsMUCUser, "from", inviter)
		if reason := inv.Child("reason", nsMUCUser); reason != nil {
			fwd.Append(reason)
		}
		msg := stanza.New("message", stanza.NSClient, "from", roomJID, "id", svc.ids.next()).
			Append(stanza.New("x", nsMUCUser).Append(fwd))
		svc.toUser(d.AppID, to, msg)
		return
	}
	dec := x.Child("decline", nsMUCUser)
	to, ok := svc.localUser(dec.Attr("to"), d.AppID)
	if !ok {
		svc.reply(from, el, xmpp.NewStanzaError("modify", "jid-malformed", "decline to a user of this application"))
		return
	}
	fwd := stanza.New("decline", nsMUCUser, "from", inviter)
	if reason := dec.Child("reason", nsMUCUser); reason != nil {
		fwd.Append(reason)
	}
	svc.toUser(d.AppID, to, stanza.New("message", stanza.NSClient, "from", roomJID, "id", svc.ids.next()).
		Append(stanza.New("x", nsMUCUser).Append(fwd)))
}

// localUser reads a user JID of an application.
func (svc *Service) localUser(s string, app int64) (int64, bool) {
	j, err := xmpp.ParseJID(s)
	if err != nil || j.Domain != svc.srv.Domain() {
		return 0, false
	}
	u, ok := xmpp.ParseUserLocal(j.Local)
	if !ok || u.App != app {
		return 0, false
	}
	return u.User, true
}

// toUser enqueues a stanza to a user's available sessions.
func (svc *Service) toUser(app, user int64, el *stanza.Element) {
	var it *xmpp.Item
	for _, s := range svc.srv.Sessions(xmpp.UserRef{App: app, User: user}) {
		if s.Available() {
			if it == nil {
				it = xmpp.NewItem(el)
			}
			s.Enqueue(it)
		}
	}
}

// wantsHistory: QuickBlox stores a message when its extraParams carry
// save_to_history, whatever its value.
func wantsHistory(el *stanza.Element) bool {
	x := el.Child("extraParams", stanza.NSClient)
	return x != nil && x.Child("save_to_history", "") != nil
}

// chatStateOnly reports a XEP-0085 notification without a body.
func chatStateOnly(el *stanza.Element) bool {
	return el.ChildNS(nsChatStates) != nil && el.Child("body", stanza.NSClient) == nil
}

// marker reports a XEP-0333 received or displayed marker.
func marker(el *stanza.Element) bool {
	for _, c := range el.Children {
		if c.Space == nsMarkers && (c.Name == "received" || c.Name == "displayed" || c.Name == "acknowledged") {
			return true
		}
	}
	return false
}
