package xmpp

import (
	"context"
	"time"

	"chatd/xmpp/stanza"
)

// Advanced Message Processing (XEP-0079), the part a single server decides:
// the deliver condition (direct: an available resource gets it now; stored:
// it goes to offline storage; none: it can be neither) and expire-at
// (checked when the message is routed and again when it leaves offline
// storage), with the notify, drop and error actions. Rules are evaluated in
// order and the first whose condition holds acts. Other conditions
// (match-resource) and actions (alert) are refused with
// unsupported-conditions or unsupported-actions, so a sender never believes a
// rule is enforced when it is not.

const (
	nsAMP       = "http://jabber.org/protocol/amp"
	nsAMPErrors = "http://jabber.org/protocol/amp#errors"
)

// ampFeatures are the disco#info features of what is supported.
var ampFeatures = []string{
	nsAMP,
	nsAMP + "?condition=deliver", nsAMP + "?condition=expire-at",
	nsAMP + "?action=notify", nsAMP + "?action=drop", nsAMP + "?action=error",
}

// ampRule is one rule of a message.
type ampRule struct {
	el        *stanza.Element
	condition string
	value     string
	action    string
}

// ampRules reads a message's rules; unsupported ones are returned apart.
func ampRules(el *stanza.Element) (rules []ampRule, badCond, badAction []*stanza.Element) {
	amp := el.Child("amp", nsAMP)
	if amp == nil {
		return nil, nil, nil
	}
	for _, r := range amp.Elements() {
		if r.Name != "rule" {
			continue
		}
		rule := ampRule{el: r, condition: r.Attr("condition"), value: r.Attr("value"), action: r.Attr("action")}
		switch rule.condition {
		case "deliver", "expire-at":
		default:
			badCond = append(badCond, r)
			continue
		}
		switch rule.action {
		case "notify", "drop", "error":
		default:
			badAction = append(badAction, r)
			continue
		}
		rules = append(rules, rule)
	}
	return rules, badCond, badAction
}

// holds reports whether a rule's condition holds for a delivery outcome.
func (r ampRule) holds(outcome string, now time.Time) bool {
	switch r.condition {
	case "deliver":
		return r.value == outcome
	case "expire-at":
		t, err := time.Parse(time.RFC3339, r.value)
		return err == nil && !now.Before(t)
	}
	return false
}

// ampReply builds what a sender gets back about its message: a notification
// (status notify) or an error.
func (srv *Server) ampReply(el *stanza.Element, to string, rule *stanza.Element, status string, e *StanzaError, errChild string) *stanza.Element {
	msg := stanza.New("message", stanza.NSClient, "from", srv.cfg.Domain)
	if id := el.Attr("id"); id != "" {
		msg.SetAttr("id", id)
	}
	amp := stanza.New("amp", nsAMP, "to", to, "from", el.Attr("from"))
	if status != "" {
		amp.SetAttr("status", status)
	}
	if rule != nil {
		amp.Append(rule)
	}
	msg.Append(amp)
	if e != nil {
		msg.SetAttr("type", "error")
		if errChild != "" {
			e.Extra = stanza.New(errChild, nsAMPErrors)
			if rule != nil {
				e.Extra.Append(rule)
			}
		}
		msg.Append(e.element())
	}
	return msg
}

// applyAMP decides a message's fate under its rules before it is routed to
// a local user. It returns false when the message must not be routed (it
// was dropped or bounced); notifications are sent at once.
func (srv *Server) applyAMP(ctx context.Context, s *Session, el *stanza.Element, to JID, u UserRef) bool {
	rules, badCond, badAction := ampRules(el)
	if len(badCond) > 0 || len(badAction) > 0 {
		var e *StanzaError
		if len(badCond) > 0 {
			e = stanzaErr(errModify, "bad-request", "unsupported AMP condition")
			e.Extra = stanza.New("unsupported-conditions", nsAMPErrors).Append(badCond...)
		} else {
			e = stanzaErr(errModify, "bad-request", "unsupported AMP action")
			e.Extra = stanza.New("unsupported-actions", nsAMPErrors).Append(badAction...)
		}
		s.send(srv.ampReply(el, to.String(), nil, "", e, ""))
		return false
	}
	if len(rules) == 0 {
		return true
	}
	outcome := srv.outcome(ctx, u, to, el)
	now := time.Now()
	for _, r := range rules {
		if !r.holds(outcome, now) {
			continue
		}
		switch r.action {
		case "notify":
			s.send(srv.ampReply(el, to.String(), r.el, "notify", nil, ""))
			return true
		case "drop":
			return false
		case "error":
			s.send(srv.ampReply(el, to.String(), r.el, "error", stanzaErr(errModify, "undefined-condition", ""), "failed-rules"))
			return false
		}
	}
	return true
}

// outcome predicts how a message would be delivered: "direct", "stored" or
// "none".
func (srv *Server) outcome(ctx context.Context, u UserRef, to JID, el *stanza.Element) string {
	if !to.IsBare() {
		if r := srv.router.session(u, to.Resource); r != nil && r.available.Load() {
			return "direct"
		}
	}
	for _, r := range srv.router.sessions(u) {
		if r.available.Load() && r.priority.Load() >= 0 {
			return "direct"
		}
	}
	if _, err := srv.accounts.User(ctx, u.App, u.User); err == nil && offlineEligible(el) {
		return "stored"
	}
	return "none"
}

// ampExpired reports whether a stored message's expire-at rule with drop or
// error has passed, for offline delivery, and bounces it when the action is
// error.
func (srv *Server) ampExpired(el *stanza.Element) bool {
	rules, _, _ := ampRules(el)
	now := time.Now()
	for _, r := range rules {
		if r.condition != "expire-at" || !r.holds("", now) {
			continue
		}
		switch r.action {
		case "drop":
			return true
		case "error":
			if from, err := ParseJID(el.Attr("from")); err == nil {
				if u, ok := srv.local(from); ok {
					reply := srv.ampReply(el, el.Attr("to"), r.el, "error", stanzaErr(errModify, "undefined-condition", ""), "failed-rules")
					for _, ss := range srv.router.sessions(u) {
						ss.send(reply)
					}
				}
			}
			return true
		}
	}
	return false
}
