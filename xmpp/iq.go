package xmpp

import (
	"context"
	"errors"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"time"

	"chatd/account"
	"chatd/xmpp/stanza"
)

// Namespaces of the IQs the server answers.
const (
	nsPing       = "urn:xmpp:ping"
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsVersion    = "jabber:iq:version"
	nsTime       = "urn:xmpp:time"
	nsLast       = "jabber:iq:last"
	nsRoster     = "jabber:iq:roster"
	nsIBB        = "http://jabber.org/protocol/ibb"
)

// Version is the software version reported over XEP-0092.
var Version = "0.1.0"

// baseFeatures are the disco#info features of the server itself; parts that
// add protocols register theirs with AddFeatures.
var baseFeatures = []string{
	nsDiscoInfo, nsDiscoItems, nsPing, nsVersion, nsTime, nsLast, nsRoster,
	"urn:xmpp:features:rosterver",
}

// AddFeatures adds disco#info features of the server (protocols other parts
// implement).
func (srv *Server) AddFeatures(f ...string) {
	srv.mu.Lock()
	srv.features = append(srv.features, f...)
	srv.mu.Unlock()
}

func (srv *Server) discoFeatures() []string {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	out := append(slices.Clone(baseFeatures), srv.features...)
	slices.Sort(out)
	return slices.Compact(out)
}

// result returns an IQ result for req, carrying payload when not nil.
func result(req *stanza.Element, from string, payload *stanza.Element) *stanza.Element {
	r := stanza.New("iq", stanza.NSClient, "type", "result", "id", req.Attr("id"), "from", from)
	if payload != nil {
		r.Append(payload)
	}
	return r
}

// serverIQ answers an IQ addressed to the server (target is the domain) or
// to a user's bare JID, which the server answers on the user's behalf (RFC
// 6121 §8.5.1).
func (srv *Server) serverIQ(ctx context.Context, s *Session, el *stanza.Element, target JID) {
	typ := el.Attr("type")
	if typ == "result" || typ == "error" {
		// Answers to the server's own pings; nothing else is expected.
		return
	}
	payload := el.FirstElement()
	if payload == nil {
		srv.reply(s, el, errBadRequest)
		return
	}
	self := target.Local == "" || target == s.bare
	from := target.String()
	if target.Local == "" {
		from = srv.cfg.Domain
	}
	var (
		res *stanza.Element
		err error
	)
	switch key := payload.Space + " " + payload.Name; {
	case key == nsPing+" ping" && typ == "get":
		if !self {
			u, _ := srv.local(target)
			if _, err := srv.accounts.User(ctx, u.App, u.User); err != nil {
				// The QuickBlox SDK expects no answer for a user that does not
				// exist (it takes any answer for a pong).
				return
			}
		}
		res = result(el, from, nil)
	case key == nsDiscoInfo+" query" && typ == "get":
		res, err = srv.discoInfo(el, target, from, payload.Attr("node"))
	case key == nsDiscoItems+" query" && typ == "get":
		res = srv.discoItems(el, target, from)
	case key == nsVersion+" query" && typ == "get" && target.Local == "":
		q := stanza.New("query", nsVersion)
		q.Append(stanza.New("name", nsVersion).AppendText("chatd"),
			stanza.New("version", nsVersion).AppendText(Version),
			stanza.New("os", nsVersion).AppendText(runtime.GOOS))
		res = result(el, from, q)
	case key == nsTime+" time" && typ == "get" && target.Local == "":
		now := time.Now().UTC()
		t := stanza.New("time", nsTime)
		t.Append(stanza.New("tzo", nsTime).AppendText("+00:00"),
			stanza.New("utc", nsTime).AppendText(now.Format("2006-01-02T15:04:05.000Z")))
		res = result(el, from, t)
	case key == nsLast+" query" && typ == "get":
		res, err = srv.lastActivity(ctx, el, target, from)
	case key == nsRoster+" query" && self:
		err = srv.rosterIQ(ctx, s, el, payload)
	case key == nsSession+" session" && typ == "set" && self:
		res = result(el, from, nil)
	case key == nsBind+" bind":
		err = stanzaErr(errCancel, "not-allowed", "a resource is already bound")
	default:
		if h := srv.iqHandler(payload.Space); h != nil && self {
			err = h(ctx, s, el)
		} else {
			err = errServiceUnavailable
		}
	}
	if err != nil {
		srv.reply(s, el, stanzaErrorOf(err))
		return
	}
	if res != nil {
		s.send(res)
	}
}

// IQHandler answers IQs of one namespace addressed to the server or to the
// sender's own bare JID. It sends its result itself and returns an error to
// have it sent as the IQ's error.
type IQHandler func(ctx context.Context, s *Session, iq *stanza.Element) error

// HandleIQ registers an IQ handler for a namespace; call before Start.
func (srv *Server) HandleIQ(ns string, h IQHandler) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.iqHandlers[ns] = h
}

func (srv *Server) iqHandler(ns string) IQHandler {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.iqHandlers[ns]
}

func (srv *Server) discoInfo(el *stanza.Element, target JID, from, node string) (*stanza.Element, error) {
	if node != "" {
		return nil, errItemNotFound
	}
	q := stanza.New("query", nsDiscoInfo)
	if target.Local != "" {
		q.Append(stanza.New("identity", nsDiscoInfo, "category", "account", "type", "registered"))
		return result(el, from, q), nil
	}
	q.Append(stanza.New("identity", nsDiscoInfo, "category", "server", "type", "im", "name", "chatd"))
	for _, f := range srv.discoFeatures() {
		q.Append(stanza.New("feature", nsDiscoInfo, "var", f))
	}
	return result(el, from, q), nil
}

func (srv *Server) discoItems(el *stanza.Element, target JID, from string) *stanza.Element {
	q := stanza.New("query", nsDiscoItems)
	if target.Local == "" {
		srv.mu.Lock()
		domains := slices.Sorted(maps.Keys(srv.services))
		srv.mu.Unlock()
		for _, d := range domains {
			q.Append(stanza.New("item", nsDiscoItems, "jid", d))
		}
	}
	return result(el, from, q)
}

// lastActivity answers XEP-0012: for the server, its uptime; for a user, 0
// while any resource is online, otherwise the time since the last session
// ended and the status it left with. Any user of the same application may
// ask (QuickBlox behaves so; XEP-0012 would require a presence
// subscription).
func (srv *Server) lastActivity(ctx context.Context, el *stanza.Element, target JID, from string) (*stanza.Element, error) {
	q := stanza.New("query", nsLast)
	if target.Local == "" {
		q.SetAttr("seconds", strconv.Itoa(int(time.Since(srv.started).Seconds())))
		return result(el, from, q), nil
	}
	u, _ := srv.local(target)
	if _, err := srv.accounts.User(ctx, u.App, u.User); err != nil {
		if errors.Is(err, account.ErrNotFound) {
			return nil, errItemNotFound
		}
		return nil, err
	}
	for _, r := range srv.router.sessions(u) {
		if r.available.Load() {
			q.SetAttr("seconds", "0")
			return result(el, from, q), nil
		}
	}
	at, status, err := srv.store.LastActivity(ctx, u)
	switch {
	case errors.Is(err, account.ErrNotFound):
		return nil, errItemNotFound
	case err != nil:
		return nil, err
	}
	q.SetAttr("seconds", strconv.Itoa(max(0, int(time.Since(at).Seconds()))))
	q.AppendText(status)
	return result(el, from, q), nil
}
