package muc

import (
	"context"
	"slices"
	"strconv"
	"time"

	"chatd/history"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

// historyRequest is what a join asks of the room's history (XEP-0045
// §7.2.15): at most stanzas messages, at most chars characters of XML
// (-1: no limit), none older than since (unix seconds; 0: no bound).
type historyRequest struct {
	stanzas int
	chars   int
	since   int64
}

// historyOf reads a join's <history/> element. Without one the join gets
// the configured default; any request is capped at MaxHistory.
func (svc *Service) historyOf(join *stanza.Element, now time.Time) historyRequest {
	req := historyRequest{stanzas: svc.cfg.DefaultHistory, chars: -1}
	x := join.Child("x", nsMUC)
	if x == nil {
		return req
	}
	h := x.Child("history", nsMUC)
	if h == nil {
		return req
	}
	req.stanzas = svc.cfg.MaxHistory
	if n, err := strconv.Atoi(h.Attr("maxstanzas")); err == nil && n >= 0 {
		req.stanzas = n
	}
	if n, err := strconv.Atoi(h.Attr("maxchars")); err == nil && n >= 0 {
		req.chars = n
	}
	if n, err := strconv.ParseInt(h.Attr("seconds"), 10, 64); err == nil && n >= 0 {
		req.since = now.Unix() - n
	}
	if v := h.Attr("since"); v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			req.since = max(req.since, t.Unix())
		}
	}
	req.stanzas = min(req.stanzas, svc.cfg.MaxHistory)
	return req
}

// replay sends a joiner the room's recent history from chat history, oldest
// first, each message as the room delivered it with a <delay/> stamp of its
// date_sent. QuickBlox clients ask for none (maxstanzas='0') and read
// history over REST.
func (svc *Service) replay(ctx context.Context, s *xmpp.Session, r *room, d *history.Dialog, join *stanza.Element) {
	req := svc.historyOf(join, time.Now())
	if req.stanzas == 0 || req.chars == 0 {
		return
	}
	q := history.MessageQuery{Sort: "date_sent", Desc: true, Limit: req.stanzas}
	if req.since > 0 {
		q.Conds = []history.Cond{{Field: "date_sent", Kind: history.KindInt, Op: history.OpGte, Values: []any{req.since}}}
	}
	msgs, err := svc.hist.Messages(ctx, d.AppID, s.User().User, d.ID, q, false)
	if err != nil {
		svc.log.Warn("reading room history for a join", "room", r.jid, "err", err)
		return
	}
	out := make([]*xmpp.Item, 0, len(msgs))
	chars := 0
	for _, m := range msgs { // newest first
		el := svc.srv.StoredStanza(m, d)
		el.RemoveAttr("to")
		el.SetAttr("from", r.jid+"/"+nick(m.SenderID))
		el.Append(stanza.New("delay", nsDelay, "from", r.jid, "stamp", time.Unix(m.DateSent, 0).UTC().Format(time.RFC3339)))
		it := xmpp.NewItem(el)
		if req.chars > 0 {
			chars += len(el.String())
			if chars > req.chars {
				break
			}
		}
		out = append(out, it)
	}
	slices.Reverse(out)
	for _, it := range out {
		s.Enqueue(it)
	}
}
