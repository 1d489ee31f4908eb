package restapi

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"

	"chatd/history"
	"chatd/internal/oid"
)

// messageRoutes are the chat message endpoints (compat §6.3–6.4). Every one
// needs a user session. GET /chat/Message/unread, a static path, takes
// precedence over /chat/Message/:id.
func (s *Server) messageRoutes() []route {
	return []route{
		{http.MethodGet, "/chat/Message", userSession, s.listMessages},
		{http.MethodPost, "/chat/Message", userSession, s.createMessage},
		{http.MethodPut, "/chat/Message", userSession, s.updateMessages},
		{http.MethodPut, "/chat/Message/:id", userSession, s.updateMessages},
		{http.MethodDelete, "/chat/Message/:id", userSession, s.deleteMessages},
		{http.MethodGet, "/chat/Message/unread", userSession, s.unreadCounts},
	}
}

// messageListKeys are the parameters of GET /chat/Message that are not
// filters.
var messageListKeys = map[string]bool{
	"chat_dialog_id": true, "limit": true, "skip": true, "sort_asc": true, "sort_desc": true,
	"mark_as_read": true, "count": true, "token": true,
}

// listMessages: GET /chat/Message.json?chat_dialog_id=… with filters,
// sort_asc|sort_desc, limit, skip and mark_as_read (default 1: the returned
// messages become read by the caller) → {"skip","limit","items"}; count=1 →
// {"items_count":N}, the number of messages the filters select (limit and
// skip aside), marking nothing read.
func (s *Server) listMessages(r *request) error {
	p := r.params
	dialogID, err := r.required("chat_dialog_id")
	if err != nil {
		return err
	}
	filters, err := filterParams(p, messageListKeys, false)
	if err != nil {
		return err
	}
	markRead, err := p.Bool("mark_as_read", true)
	if err != nil {
		return err
	}
	if r.c.Request().Method == http.MethodHead {
		markRead = false // HEAD changes nothing
	}
	count, err := p.Bool("count", false)
	if err != nil {
		return err
	}
	q, err := history.ParseMessageQuery(filters, p.String("sort_asc"), p.String("sort_desc"), p.String("limit"), p.String("skip"))
	if err != nil {
		return err
	}
	if count {
		n, err := s.history.CountMessages(r.ctx(), r.app(), r.user(), strings.TrimSpace(dialogID), q)
		if err != nil {
			return err
		}
		return r.json(http.StatusOK, itemsCount{n})
	}
	msgs, err := s.history.Messages(r.ctx(), r.app(), r.user(), strings.TrimSpace(dialogID), q, markRead)
	if err != nil {
		return err
	}
	page := messagePage{Skip: q.Skip, Limit: q.Limit, Items: make([]messageJSON, 0, len(msgs))}
	for _, m := range msgs {
		page.Items = append(page.Items, renderMessage(m))
	}
	return r.json(http.StatusOK, page)
}

// messageControlKeys are parameters of POST /chat/Message that are neither
// message fields nor custom parameters; with the standard message keys and
// the names QuickBlox's extraParams reserve, they are never stored as custom
// parameters.
var messageControlKeys = map[string]bool{
	"send_to_chat": true, "system": true, "token": true, "save_to_history": true, "moduleIdentifier": true,
	"message_id": true, "attachment": true,
}

// createMessage: POST /chat/Message.json (JSON or form) with chat_dialog_id
// or recipient_id, message, attachments, markable, date_sent, send_to_chat,
// system and custom parameters → 201 and the message.
//
// send_to_chat=1 stores the message and then delivers it over XMPP as its
// sender (id == _id). system=1 stores nothing: it delivers a system
// notification to the other user of a private dialog and answers the
// message it built.
func (s *Server) createMessage(r *request) error {
	p := r.params
	in := history.NewMessage{App: r.app(), SenderID: r.user(), DialogID: strings.TrimSpace(p.String("chat_dialog_id")),
		Text: p.String("message")}
	var err error
	if in.RecipientID, err = p.Int("recipient_id", 0); err != nil {
		return err
	}
	if in.Markable, err = p.Bool("markable", false); err != nil {
		return err
	}
	if v := strings.TrimSpace(p.String("date_sent")); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 {
			return paramErrorf("date_sent must be a unix time")
		}
		in.DateSent = f
	}
	if in.Attachments, err = attachments(p); err != nil {
		return err
	}
	if in.Custom, err = customParams(p); err != nil {
		return err
	}
	sendToChat, err := p.Bool("send_to_chat", false)
	if err != nil {
		return err
	}
	system, err := p.Bool("system", false)
	if err != nil {
		return err
	}
	if (system || sendToChat) && s.chat == nil {
		return errNoChat
	}
	if system {
		return s.systemMessage(r, in)
	}
	m, d, err := s.history.Record(r.ctx(), in)
	if err != nil {
		return err
	}
	if sendToChat {
		// The message is stored: a failed live delivery (a group without
		// a room service, say) does not undo it, as for XMPP senders.
		if err := s.chat.DeliverStored(r.ctx(), m, d); err != nil {
			s.logger(r.c).Warn("send_to_chat delivery failed", "dialog", d.ID, "message", m.ID, "err", err)
		}
	}
	return r.json(http.StatusCreated, renderMessage(m))
}

// systemMessage delivers a system notification (system=1) without storing
// it: the dialog must be private (named by chat_dialog_id, or the pair's
// with recipient_id, created if needed as a first message would).
func (s *Server) systemMessage(r *request, in history.NewMessage) error {
	var (
		d   *history.Dialog
		err error
	)
	switch {
	case in.DialogID != "":
		d, err = s.history.Dialog(r.ctx(), r.app(), r.user(), in.DialogID)
	case in.RecipientID == 0:
		return invalid("chat_dialog_id", "or recipient_id is required")
	case in.RecipientID == r.user():
		return invalid("recipient_id", "cannot be the sender")
	default:
		d, _, err = s.history.CreateDialog(r.ctx(), r.app(), r.user(),
			history.DialogInput{Type: history.Private, Occupants: []int64{in.RecipientID}})
	}
	if err != nil {
		return err
	}
	if d.Type != history.Private {
		return invalid("system", "notifications go to private dialogs only")
	}
	var other int64
	for _, o := range d.Occupants {
		if o != r.user() {
			other = o
		}
	}
	if in.RecipientID != 0 && in.RecipientID != other {
		return invalid("recipient_id", "is not in the dialog")
	}
	now := s.cfg.Now().UTC().Truncate(time.Second)
	m := &history.Message{
		ID:           oid.New(now),
		AppID:        r.app(),
		DialogID:     d.ID,
		Text:         in.Text,
		DateSent:     now.Unix(),
		SenderID:     r.user(),
		RecipientID:  other,
		Attachments:  in.Attachments,
		Custom:       in.Custom,
		Markable:     in.Markable,
		ReadIDs:      []int64{r.user()},
		DeliveredIDs: []int64{r.user()},
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	if err := s.chat.DeliverSystem(r.ctx(), m, d); err != nil {
		return err
	}
	return r.json(http.StatusCreated, renderMessage(m))
}

// attachments reads attachments as a list of objects, as {"0":{…},"1":{…}}
// or as attachments[0][type]=… form keys; each value a string or a number.
func attachments(p params) ([]history.Attachment, error) {
	n := p.get("attachments")
	if n == nil || (n.kind == kindString && strings.TrimSpace(n.s) == "") {
		return nil, nil
	}
	want := len(n.list)
	if n.kind == kindMap {
		want = len(n.m)
	}
	items := p.List("attachments")
	if n.kind == kindString || len(items) != want {
		return nil, invalid("attachments", "must be a list of objects")
	}
	out := make([]history.Attachment, 0, len(items))
	for _, it := range items {
		a := history.Attachment{}
		for _, k := range it.Keys() {
			v, ok := it.Lookup(k)
			if !ok {
				return nil, invalid("attachments", "field "+truncate(k)+" must be a string or a number")
			}
			a[k] = v
		}
		out = append(out, a)
	}
	return out, nil
}

// customParams reads every parameter that is not a message field or a
// control key as a custom parameter: a string, a number (its text) or a
// list of them (joined by commas).
func customParams(p params) (map[string]string, error) {
	var out map[string]string
	for _, k := range p.Keys() {
		if messageKeys[k] || messageControlKeys[k] {
			continue
		}
		v, ok := p.Lookup(k)
		if !ok {
			return nil, invalid(k, "must be a string or a number")
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out, nil
}

// updateMessages: PUT /chat/Message/{id1},{id2}.json, or /chat/Message.json
// for every message of the dialog, with chat_dialog_id and read=1,
// delivered=1 and/or message=<text> (an edit: its sender only, exactly one
// id) → 200, empty body.
func (s *Server) updateMessages(r *request) error {
	p := r.params
	dialogID, err := r.required("chat_dialog_id")
	if err != nil {
		return err
	}
	dialogID = strings.TrimSpace(dialogID)
	ids, err := pathIDs(r.c.Param("id")) // nil: every message of the dialog
	if err != nil {
		return err
	}
	read, err := p.Bool("read", false)
	if err != nil {
		return err
	}
	delivered, err := p.Bool("delivered", false)
	if err != nil {
		return err
	}
	text := p.OptString("message")
	if text == nil && !p.Has("read") && !p.Has("delivered") {
		return invalid("base", "give read, delivered or message")
	}
	if text != nil {
		if len(ids) != 1 {
			return invalid("_id", "an edit names exactly one message")
		}
		m, err := s.history.Message(r.ctx(), r.app(), r.user(), ids[0])
		if err != nil {
			return err
		}
		if m.DialogID != strings.ToLower(dialogID) {
			return history.ErrNotFound
		}
		if _, err := s.history.Edit(r.ctx(), r.app(), r.user(), m.ID, *text, history.Conversation{DialogID: m.DialogID}); err != nil {
			return err
		}
	}
	switch {
	case read:
		err = s.history.MarkMessages(r.ctx(), r.app(), r.user(), dialogID, ids, history.Read)
	case delivered:
		err = s.history.MarkMessages(r.ctx(), r.app(), r.user(), dialogID, ids, history.Delivered)
	}
	if err != nil {
		return err
	}
	return r.empty(http.StatusOK)
}

// deleteMessages: DELETE /chat/Message/{id1},{id2}.json, force=1 in the body
// to delete for everyone (each message by its sender only) → 200
// {"SuccessfullyDeleted":{"ids"},"NotFound":{"ids"},"WrongPermissions":{"ids"}}.
func (s *Server) deleteMessages(r *request) error {
	force, err := r.params.Bool("force", false)
	if err != nil {
		return err
	}
	ids, err := pathIDs(r.c.Param("id"))
	if err != nil {
		return err
	}
	res, err := s.history.DeleteMessages(r.ctx(), r.app(), r.user(), ids, force)
	if err != nil {
		return err
	}
	return r.json(http.StatusOK, renderDeleteResult(res))
}

// unreadCounts: GET /chat/Message/unread.json?chat_dialog_ids=a,b (or
// chat_dialog_ids[]=a,b) → {"total":N,"a":n,"b":m}: total over every dialog
// of the caller, a key per requested id only.
func (s *Server) unreadCounts(r *request) error {
	ids := unique(r.params.Strings("chat_dialog_ids"))
	counts, total, err := s.history.UnreadCounts(r.ctx(), r.app(), r.user(), ids)
	if err != nil {
		return err
	}
	return r.json(http.StatusOK, unreadJSON{total: total, ids: ids, counts: counts})
}

// unreadJSON is {"total":N,"<id>":n,…} with the ids in request order.
type unreadJSON struct {
	total  int
	ids    []string
	counts map[string]int
}

func (u unreadJSON) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"total":`)
	b.WriteString(strconv.Itoa(u.total))
	for _, id := range u.ids {
		key, err := marshal(id)
		if err != nil {
			return nil, err
		}
		b.WriteByte(',')
		b.Write(key)
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(u.counts[id]))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
