package muc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"chatd/history"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

// Namespaces of the protocols the service speaks.
const (
	nsMUC        = "http://jabber.org/protocol/muc"
	nsMUCUser    = "http://jabber.org/protocol/muc#user"
	nsMUCOwner   = "http://jabber.org/protocol/muc#owner"
	nsMUCAdmin   = "http://jabber.org/protocol/muc#admin"
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsData       = "jabber:x:data"
	nsDelay      = "urn:xmpp:delay"
	nsPing       = "urn:xmpp:ping"
	nsChatStates = "http://jabber.org/protocol/chatstates"
	nsMarkers    = "urn:xmpp:chat-markers:0"
	nsCorrect    = "urn:xmpp:message-correct:0"
	nsConference = "jabber:x:conference"
)

// Service is the XEP-0045 service on muc.<domain>. See the package
// documentation for its rules and its concurrency contract.
type Service struct {
	cfg    Config
	srv    *xmpp.Server
	hist   *history.Service
	log    *slog.Logger
	domain string // muc.<domain>
	ids    idGen

	mu    sync.Mutex // guards rooms and destroying; a leaf lock
	rooms map[roomKey]*room
	// destroying holds the <destroy/> (alternate venue, reason) an owner
	// gave for a room whose dialog it is deleting, for destroy to send.
	destroying map[roomKey]*stanza.Element

	smu    sync.Mutex // guards joined; a leaf lock
	joined map[*xmpp.Session][]*room
}

// New creates the service and connects it: it registers muc.<domain> with
// the XMPP server, follows session ends and dialog changes, and adds the
// MUC feature to the server's disco#info. Call before srv.Start.
func New(cfg Config, srv *xmpp.Server, hist *history.Service, log *slog.Logger) *Service {
	svc := &Service{
		cfg:        cfg.withDefaults(),
		srv:        srv,
		hist:       hist,
		log:        log,
		domain:     "muc." + srv.Domain(),
		rooms:      map[roomKey]*room{},
		destroying: map[roomKey]*stanza.Element{},
		joined:     map[*xmpp.Session][]*room{},
	}
	svc.ids.init()
	srv.RegisterService(svc.domain, svc)
	srv.OnSessionEnd(svc.sessionEnded)
	srv.AddFeatures(nsMUC)
	hist.Observe(svc.observe)
	return svc
}

// Domain returns the service's domain, muc.<domain>.
func (svc *Service) Domain() string { return svc.domain }

// Route handles a stanza addressed to the service, a room or an occupant.
// It runs on the sender's reader goroutine (or a REST request's) and only
// enqueues.
func (svc *Service) Route(ctx context.Context, from xmpp.Sender, el *stanza.Element) {
	to, err := xmpp.ParseJID(el.Attr("to"))
	if err != nil {
		svc.reply(from, el, errJIDMalformed)
		return
	}
	if to.Local == "" {
		svc.serviceStanza(ctx, from, el, to)
		return
	}
	k, ok := parseRoom(to.Local)
	if !ok || k.app != from.User.App {
		// A room of another application does not exist for this user: no
		// stanza crosses applications.
		if el.Name == "presence" && el.Attr("type") == "" {
			svc.presenceError(from, el, to, errItemNotFound)
		} else {
			svc.reply(from, el, errItemNotFound)
		}
		return
	}
	switch el.Name {
	case "presence":
		svc.presence(ctx, from, el, k, to)
	case "message":
		svc.message(ctx, from, el, k, to.Resource)
	case "iq":
		svc.iq(ctx, from, el, k, to.Resource)
	}
}

// reply answers a stanza with an error from the address it was sent to,
// when the sender has a session and the stanza is not itself an error.
func (svc *Service) reply(from xmpp.Sender, el *stanza.Element, e *xmpp.StanzaError) {
	if from.Session == nil || el.Attr("type") == "error" {
		return
	}
	r := xmpp.ErrorReply(el, e)
	if r.Attr("from") == "" {
		r.SetAttr("from", svc.domain)
	}
	if el.Name == "presence" && r.Attr("id") == "" {
		r.SetAttr("id", svc.ids.next())
	}
	from.Session.Send(r)
}

// presenceError answers a join: the error echoes the join's id and carries
// the <x xmlns='http://jabber.org/protocol/muc'/> child (XEP-0045 §7.2.6),
// from the occupant JID asked for.
func (svc *Service) presenceError(from xmpp.Sender, el *stanza.Element, to xmpp.JID, e *xmpp.StanzaError) {
	if from.Session == nil {
		return
	}
	// Not joined: the session's unavailable presence has nothing to leave.
	from.Session.RefuseDirected(to)
	r := xmpp.ErrorReply(el, e)
	r.SetAttr("from", to.String())
	if r.Attr("id") == "" {
		r.SetAttr("id", svc.ids.next())
	}
	r.Children = append([]*stanza.Element{stanza.New("x", nsMUC)}, r.Children...)
	from.Session.Send(r)
}

// serviceStanza handles stanzas to muc.<domain> itself.
func (svc *Service) serviceStanza(ctx context.Context, from xmpp.Sender, el *stanza.Element, to xmpp.JID) {
	if el.Name != "iq" {
		if el.Name == "message" {
			svc.reply(from, el, errServiceUnavail)
		}
		return
	}
	svc.serviceIQ(ctx, from, el)
}

// room returns the live room of a key, creating an empty one when create is
// set.
func (svc *Service) room(k roomKey, create bool) *room {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	r := svc.rooms[k]
	if r == nil && create {
		r = newRoom(k, svc.roomJID(k))
		svc.rooms[k] = r
	}
	return r
}

// drop removes a closed room from the registry.
func (svc *Service) drop(r *room) {
	svc.mu.Lock()
	if svc.rooms[r.key] == r {
		delete(svc.rooms, r.key)
	}
	svc.mu.Unlock()
}

// releaseIfEmpty closes and drops a room nobody is in (after a failed join).
func (svc *Service) releaseIfEmpty(r *room) {
	if r.closeIfEmpty() {
		svc.drop(r)
	}
}

// track remembers that a session is in a room, for its end. (A session is
// in few rooms: a slice is smaller than a map.)
func (svc *Service) track(s *xmpp.Session, r *room) {
	svc.smu.Lock()
	if rs := svc.joined[s]; !slices.Contains(rs, r) {
		svc.joined[s] = append(rs, r)
	}
	svc.smu.Unlock()
}

// untrack forgets that a session is in a room.
func (svc *Service) untrack(s *xmpp.Session, r *room) {
	svc.smu.Lock()
	if rs := svc.joined[s]; rs != nil {
		rs = slices.DeleteFunc(rs, func(x *room) bool { return x == r })
		if len(rs) == 0 {
			delete(svc.joined, s)
		} else {
			svc.joined[s] = rs
		}
	}
	svc.smu.Unlock()
}

// sessionEnded removes an ending session from every room it joined and
// tells the others (on the session's reader goroutine).
func (svc *Service) sessionEnded(s *xmpp.Session) {
	svc.smu.Lock()
	rooms := svc.joined[s]
	delete(svc.joined, s)
	svc.smu.Unlock()
	for _, r := range rooms {
		svc.depart(r, s, nil)
	}
}

// observe follows dialog changes made elsewhere (REST, or this service
// through history): removed occupants are kicked, deleted dialogs destroy
// their rooms, renamed ones announce the new subject, messages of public
// groups deleted for everyone are announced to the room's members. It runs on the
// goroutine that made the change and only enqueues.
func (svc *Service) observe(_ context.Context, ev history.Event) {
	d := ev.Dialog
	if d == nil || d.Type == history.Private || d.RoomName == "" {
		return
	}
	k := roomKey{app: d.AppID, name: d.RoomName}
	switch ev.Kind {
	case history.DialogUpdated:
		svc.dialogUpdated(k, ev)
	case history.DialogDeleted:
		svc.destroy(k)
	case history.MessagesDeleted:
		if d.Type == history.PublicGroup {
			svc.messagesDeleted(k, ev)
		}
	}
}

// messagesDeleted tells the members of a public group's room that
// messages were deleted for everyone (xmpp.DeletionNotice). Private and
// group dialogs list their occupants; the xmpp server tells those.
func (svc *Service) messagesDeleted(k roomKey, ev history.Event) {
	r := svc.room(k, false)
	if r == nil {
		return
	}
	r.mu.Lock()
	sessions := make([]*xmpp.Session, 0, len(r.members))
	for s := range r.members {
		sessions = append(sessions, s)
	}
	r.mu.Unlock()
	actor := xmpp.UserJID(xmpp.UserRef{App: ev.Dialog.AppID, User: ev.Actor}, svc.srv.Domain())
	for _, m := range ev.Messages {
		it := xmpp.NewItem(xmpp.DeletionNotice(ev.Dialog, actor, m.ID))
		for _, s := range sessions {
			s.Enqueue(it)
		}
	}
}

// Stats is a snapshot of the service's state.
type Stats struct {
	Rooms     int `json:"rooms"`
	Occupants int `json:"occupants"`
	Sessions  int `json:"sessions"`
}

// Stats counts live rooms, their occupants (users) and joined sessions.
func (svc *Service) Stats() Stats {
	svc.mu.Lock()
	rooms := make([]*room, 0, len(svc.rooms))
	for _, r := range svc.rooms {
		rooms = append(rooms, r)
	}
	svc.mu.Unlock()
	st := Stats{Rooms: len(rooms)}
	for _, r := range rooms {
		r.mu.Lock()
		st.Occupants += len(r.occupants)
		st.Sessions += len(r.members)
		r.mu.Unlock()
	}
	return st
}

// idGen makes the ids of the stanzas the service emits: a random prefix per
// process and a counter.
type idGen struct {
	prefix string
	n      atomic.Uint64
}

func (g *idGen) init() {
	var b [4]byte
	rand.Read(b[:])
	g.prefix = "muc" + hex.EncodeToString(b[:]) + "-"
}

func (g *idGen) next() string { return g.prefix + strconv.FormatUint(g.n.Add(1), 36) }
