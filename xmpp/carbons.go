package xmpp

import (
	"context"

	"chatd/xmpp/stanza"
)

// Message Carbons (XEP-0280): a resource that enables carbons gets a copy of
// what its user's other resources send ("sent") and of what they receive
// when it was not itself a recipient ("received"), wrapped with the original
// id (the QuickBlox SDK reports the wrapper id as the message id).

const (
	nsCarbons = "urn:xmpp:carbons:2"
	nsForward = "urn:xmpp:forward:0"
)

// carbonsIQ enables or disables carbons for the session.
func (srv *Server) carbonsIQ(ctx context.Context, s *Session, iq *stanza.Element) error {
	if iq.Attr("type") != "set" {
		return errBadRequest
	}
	switch q := iq.FirstElement(); q.Name {
	case "enable":
		s.carbons.Store(true)
	case "disable":
		s.carbons.Store(false)
	default:
		return errBadRequest
	}
	s.send(result(iq, s.bare.String(), nil))
	return nil
}

// carbonEligible reports whether a message is copied (XEP-0280 §6).
func carbonEligible(el *stanza.Element) bool {
	if el.Child("private", nsCarbons) != nil || el.Child("no-copy", nsHints) != nil {
		return false
	}
	if el.Child("received", nsCarbons) != nil || el.Child("sent", nsCarbons) != nil {
		return false
	}
	switch el.Attr("type") {
	case "chat":
		return true
	case "", "normal":
		return el.Child("body", stanza.NSClient) != nil || el.ChildNS(nsMarkers) != nil || el.ChildNS(nsChatStates) != nil
	}
	return false
}

// carbonCopy wraps a message for one of its user's resources.
func carbonCopy(kind string, owner JID, el *stanza.Element) *stanza.Element {
	w := stanza.New("message", stanza.NSClient, "from", owner.String(), "type", "chat")
	if id := el.Attr("id"); id != "" {
		w.SetAttr("id", id)
	}
	w.Append(stanza.New(kind, nsCarbons).Append(stanza.New("forwarded", nsForward).Append(el)))
	return w
}

// carbonItem is the queue item of a carbon copy of el for user's
// resources. The copy of a chat state waits while a resource is inactive
// (XEP-0352) as the chat state itself would, the latest per conversation.
func (srv *Server) carbonItem(kind string, user UserRef, el *stanza.Element) *Item {
	it := NewItem(carbonCopy(kind, UserJID(user, srv.cfg.Domain), el))
	if chatStateOnly(el) {
		it.hold = "c " + kind + " " + el.Attr("from") + " " + el.Attr("to")
	}
	return it
}

// sentCarbons copies a message a user sent to the user's other
// carbon-enabled resources (all of them when it was sent through the REST
// API, from no resource).
func (srv *Server) sentCarbons(user UserRef, from *Session, el *stanza.Element) {
	if !carbonEligible(el) {
		return
	}
	var it *Item
	for _, r := range srv.router.sessions(user) {
		if r == from || !r.carbons.Load() || !r.available.Load() {
			continue
		}
		if it == nil {
			it = srv.carbonItem("sent", user, el)
		}
		r.enqueue(it)
	}
}

// receivedCarbons copies a delivered message to the recipient's
// carbon-enabled resources that did not get it, unless the privacy list in
// force there refuses the sender's messages.
func (srv *Server) receivedCarbons(user UserRef, got []*Session, el *stanza.Element) {
	if !carbonEligible(el) {
		return
	}
	var it *Item
	from, _ := ParseJID(el.Attr("from"))
	for _, r := range srv.router.sessions(user) {
		if !r.carbons.Load() || !r.available.Load() || contains(got, r) || !r.Accepts(from, kindMessage) {
			continue
		}
		if it == nil {
			it = srv.carbonItem("received", user, el)
		}
		r.enqueue(it)
	}
}

func contains(ss []*Session, s *Session) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
