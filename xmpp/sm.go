package xmpp

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"slices"
	"strconv"
	"time"

	"chatd/xmpp/stanza"
)

// Stream management (XEP-0198).
//
// Counting: the client's stanzas (message, presence, iq) after <enable/>
// are counted by the reader (in); the server's are numbered by the writer
// when it takes them from the queue after <enabled/> went out (sent). On a
// resumable stream the numbered stanzas are kept (unacked) until the
// client's <a h='…'/> covers them; a stream enabled without resume keeps
// only the counters (the QuickBlox browser SDK enables it so, for its
// sent-message callbacks, and answers <r/> without counting what it
// received: a low h is never taken as loss there, and nothing is kept or
// re-sent for it).
//
// Resumption: when a resumable stream breaks (a read or write error, a
// timeout — not a close or a stream error), the session stays bound and
// available; what arrives for it queues up, and it waits for up to the
// resume window (min of the client's max and the configured one). A new
// connection of the same user that authenticates and sends <resume/> takes
// it over: the stanzas the client did not acknowledge are sent again, in
// order, then everything that queued meanwhile. When the window ends first,
// the session ends as any other: presence goes unavailable, and its
// unacknowledged and queued messages go to offline storage with their
// original ids (or, when the user has another available resource, those
// addressed to this resource are delivered to the user again and the rest
// were already delivered there).

const nsSM = "urn:xmpp:sm:3"

// smState is a session's stream management state, guarded by Session.qmu.
type smState struct {
	id       string // resumption id; "" when not resumable
	resume   bool
	window   time.Duration
	active   bool   // <enabled/> was taken by the writer: outbound counting runs
	sent     uint32 // outbound stanzas numbered
	acked    uint32 // the client's last h
	in       uint32 // inbound stanzas counted
	unacked  []*Item
	sinceReq int
	lastReq  time.Time
	detached bool
	timer    *time.Timer

	unackedBytes int
	// overSince is when unackedBytes went past MaxQueueBytes (zero while
	// it is not): a client that stays past it for unackedGrace has its
	// session closed (see enqueue).
	overSince time.Time
}

// unackedGrace is how long a client may hold more than MaxQueueBytes
// unacknowledged before its session is closed: two ack requests' worth.
func (c *Config) unackedGrace() time.Duration { return 2 * c.SMAckInterval }

func newSMID() string {
	var b [18]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// smElement handles the stream management elements after bind.
func (s *Session) smElement(el *stanza.Element) error {
	switch el.Name {
	case "enable":
		return s.smEnable(el)
	case "r":
		s.qmu.Lock()
		sm := s.sm
		var h uint32
		if sm != nil {
			h = sm.in
		}
		s.qmu.Unlock()
		if sm == nil {
			return streamErr("unsupported-stanza-type", "stream management is not enabled")
		}
		s.enqueue(rawItem(stanza.New("a", nsSM, "h", strconv.FormatUint(uint64(h), 10))))
		return nil
	case "a":
		h, err := strconv.ParseUint(el.Attr("h"), 10, 32)
		if err != nil {
			return streamErr("bad-format", "<a/> needs a numeric h")
		}
		s.smAck(uint32(h))
		return nil
	case "resume":
		return s.smFailed(stanzaErr(errCancel, "unexpected-request", "already bound"))
	}
	return streamErr("unsupported-stanza-type", el.Name)
}

// smAck applies the client's acknowledgement.
func (s *Session) smAck(h uint32) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	sm := s.sm
	if sm == nil {
		return
	}
	n := int(h - sm.acked) // modulo 2^32, as XEP-0198 counts
	if sm.resume {
		if n > len(sm.unacked) {
			// Below an earlier ack (the difference wrapped) or beyond what
			// was sent: no ack of anything, so that nothing unacknowledged
			// is thrown away and the count does not move backwards.
			s.log.Debug("ack outside what is unacknowledged", "h", h, "acked", sm.acked, "unacked", len(sm.unacked))
			return
		}
		for _, it := range sm.unacked[:n] {
			sm.unackedBytes -= len(it.data)
		}
		sm.unacked = append(sm.unacked[:0:0], sm.unacked[n:]...)
		if sm.unackedBytes <= s.srv.cfg.MaxQueueBytes {
			sm.overSince = time.Time{}
		}
	}
	sm.acked = h
}

// smEnable answers <enable/>.
func (s *Session) smEnable(el *stanza.Element) error {
	s.qmu.Lock()
	if s.sm != nil {
		s.qmu.Unlock()
		return s.smFailed(stanzaErr(errCancel, "unexpected-request", "stream management is already enabled"))
	}
	sm := &smState{}
	enabled := stanza.New("enabled", nsSM)
	if r := el.Attr("resume"); r == "true" || r == "1" {
		sm.resume, sm.id = true, newSMID()
		s.srv.mu.Lock()
		s.srv.resumable[sm.id] = s
		s.srv.mu.Unlock()
		sm.window = s.srv.cfg.SMResumeWindow
		if max, err := strconv.Atoi(el.Attr("max")); err == nil && max > 0 && time.Duration(max)*time.Second < sm.window {
			sm.window = time.Duration(max) * time.Second
		}
		enabled.SetAttr("id", sm.id).SetAttr("resume", "true").
			SetAttr("max", strconv.Itoa(int(sm.window/time.Second)))
	}
	s.sm = sm
	s.qmu.Unlock()
	it := rawItem(enabled)
	it.smStart = true
	s.enqueue(it)
	return nil
}

// smFailed answers an SM request that cannot be honoured.
func (s *Session) smFailed(e *StanzaError) error {
	return s.smFailedH(e, "")
}

// smFailedH is smFailed with the h attribute of a failed resumption when
// h is not "".
func (s *Session) smFailedH(e *StanzaError, h string) error {
	f := stanza.New("failed", nsSM)
	if h != "" {
		f.SetAttr("h", h)
	}
	f.Append(stanza.New(e.Condition, nsStanzas))
	if s.bound {
		s.enqueue(rawItem(f))
		return nil
	}
	return s.writeNow(f)
}

// countInbound counts a client stanza for stream management.
func (s *Session) countInbound() {
	s.qmu.Lock()
	if s.sm != nil {
		s.sm.in++
	}
	s.qmu.Unlock()
}

// resumable reports whether the session can wait for a resumption.
func (s *Session) resumable() bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return s.bound && s.sm != nil && s.sm.resume && !s.closing
}

// detach keeps a resumable session after its connection broke.
func (s *Session) detach() {
	s.tr.Close()
	s.waitWriter(s.srv.cfg.WriteTimeout)
	s.qmu.Lock()
	s.broken = true
	s.writing = false
	sm := s.sm
	sm.detached = true
	sm.sinceReq = 0
	s.qmu.Unlock()
	srv := s.srv
	srv.mu.Lock()
	if srv.stopping {
		srv.mu.Unlock()
		s.cleanup()
		return
	}
	srv.detached[sm.id] = s
	delete(srv.conns, s)
	srv.mu.Unlock()
	s.qmu.Lock()
	sm.timer = time.AfterFunc(sm.window, func() { srv.expireDetached(s) })
	s.qmu.Unlock()
	srv.metrics.detached.Add(1)
	s.log.Info("connection lost; the session waits for resumption", "window", sm.window)
}

// expireDetached ends a detached session that was not resumed.
func (srv *Server) expireDetached(s *Session) {
	srv.mu.Lock()
	if srv.detached[s.smID()] != s {
		srv.mu.Unlock()
		return // resumed, or already ended
	}
	delete(srv.detached, s.smID())
	if srv.stopping {
		srv.mu.Unlock()
		return // Shutdown ends it
	}
	srv.wg.Add(1)
	srv.mu.Unlock()
	defer srv.wg.Done()
	s.qmu.Lock()
	s.sm.detached = false
	s.qmu.Unlock()
	s.log.Info("resumption window over; ending the session")
	s.cleanup()
}

// endDetached ends every detached session (at shutdown): their messages go
// to offline storage.
func (srv *Server) endDetached() {
	srv.mu.Lock()
	all := make([]*Session, 0, len(srv.detached))
	for id, s := range srv.detached {
		all = append(all, s)
		delete(srv.detached, id)
	}
	srv.mu.Unlock()
	for _, s := range all {
		s.qmu.Lock()
		if s.sm.timer != nil {
			s.sm.timer.Stop()
		}
		s.sm.detached = false
		s.qmu.Unlock()
		s.cleanup()
	}
}

// requestAcks asks sessions with stanzas waiting for acknowledgement longer
// than the ack interval to acknowledge them.
func (srv *Server) requestAcks(now time.Time) {
	srv.router.each(func(s *Session) {
		s.qmu.Lock()
		sm := s.sm
		due := sm != nil && sm.active && !sm.detached && sm.sinceReq > 0 && now.Sub(sm.lastReq) >= srv.cfg.SMAckInterval
		if due {
			sm.sinceReq = 0
			sm.lastReq = now
		}
		s.qmu.Unlock()
		if due {
			s.enqueue(&Item{data: ackRequest, toAt: -1})
		}
	})
}

// smCount returns the session's resumption id ("" when not resumable) and
// how many stanzas from the client it handled.
func (s *Session) smCount() (id string, h uint32) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.sm == nil {
		return "", 0
	}
	return s.sm.id, s.sm.in
}

// smEnded remembers for a while how many stanzas resumable sessions that
// ended had handled, so that a resumption that comes too late is answered
// <failed h='…'/> (XEP-0198 §5): the client learns which of the stanzas it
// sent were handled, and sends again only the others. Guarded by Server.mu.
type smEnded struct {
	byID  map[string]smTomb
	order []string // ids, oldest first
}

type smTomb struct {
	user UserRef
	h    uint32
	at   time.Time
}

const (
	smEndedKeep = 10 * time.Minute // how long an ended session's count is kept
	smEndedMax  = 1 << 16          // and for how many sessions at most
)

func (e *smEnded) add(id string, user UserRef, h uint32, now time.Time) {
	if e.byID == nil {
		e.byID = make(map[string]smTomb)
	}
	for len(e.order) > 0 {
		t, ok := e.byID[e.order[0]]
		if ok && len(e.byID) < smEndedMax && now.Sub(t.at) < smEndedKeep {
			break
		}
		delete(e.byID, e.order[0])
		e.order = e.order[1:]
	}
	e.byID[id] = smTomb{user, h, now}
	e.order = append(e.order, id)
}

// count returns the handled count of the user's ended session id.
func (e *smEnded) count(id string, user UserRef, now time.Time) (uint32, bool) {
	t, ok := e.byID[id]
	if !ok || t.user != user || now.Sub(t.at) >= smEndedKeep {
		return 0, false
	}
	return t.h, true
}

func (s *Session) smID() string {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.sm == nil {
		return ""
	}
	return s.sm.id
}

// takeDetached removes and returns the user's detached session with the SM
// id. A client often reconnects before the server has noticed that its old
// connection is gone (a half-open TCP connection); the old connection is then
// cut, and the session awaited as it detaches, for a bounded time.
func (srv *Server) takeDetached(id string, user UserRef) *Session {
	deadline := time.Now().Add(srv.cfg.WriteTimeout + 5*time.Second)
	for {
		srv.mu.Lock()
		if s := srv.detached[id]; s != nil {
			if s.user != user {
				srv.mu.Unlock()
				return nil
			}
			delete(srv.detached, id)
			srv.mu.Unlock()
			return s
		}
		live := srv.resumable[id]
		srv.mu.Unlock()
		if live == nil || live.user != user || time.Now().After(deadline) {
			return nil
		}
		live.qmu.Lock()
		tr := live.tr
		live.qmu.Unlock()
		tr.Close() // its reader fails and detaches it
		t := time.NewTimer(5 * time.Millisecond)
		<-t.C
	}
}

// errResumed tells the reader loop to go on as the resumed session.
type errResumed struct{ s *Session }

func (errResumed) Error() string { return "xmpp: stream resumed" }

// resume handles <resume/> on a new, authenticated connection: it hands the
// connection to the detached session and returns errResumed with it.
func (s *Session) resume(el *stanza.Element) error {
	srv := s.srv
	prev := el.Attr("previd")
	h, err := strconv.ParseUint(el.Attr("h"), 10, 32)
	if err != nil {
		return s.smFailed(stanzaErr(errModify, "bad-request", ""))
	}
	old := srv.takeDetached(prev, s.user)
	if old == nil {
		srv.metrics.resumeFailed.Add(1)
		srv.mu.Lock()
		n, known := srv.smEnded.count(prev, s.user, time.Now())
		srv.mu.Unlock()
		if known {
			return s.smFailedH(errItemNotFound, strconv.FormatUint(uint64(n), 10))
		}
		return s.smFailed(errItemNotFound)
	}
	srv.mu.Lock()
	delete(srv.conns, s)
	srv.conns[old] = struct{}{}
	srv.mu.Unlock()

	old.qmu.Lock()
	sm := old.sm
	if sm.timer != nil {
		sm.timer.Stop()
	}
	old.qmu.Unlock()
	old.smAck(uint32(h))
	old.qmu.Lock()
	// Everything not acknowledged goes again, in order, ahead of what
	// queued meanwhile; it is numbered anew from the client's h.
	resumed := rawItem(stanza.New("resumed", nsSM, "previd", prev, "h", strconv.FormatUint(uint64(sm.in), 10)))
	resumed.smStart = true
	queue := make([]*Item, 0, 1+len(sm.unacked)+len(old.queue))
	queue = append(append(append(queue, resumed), sm.unacked...), old.queue...)
	old.queue = queue
	old.queued = 0
	for _, it := range queue {
		old.queued += len(it.data)
	}
	sm.unacked, sm.unackedBytes, sm.overSince = nil, 0, time.Time{}
	sm.sent = sm.acked
	sm.active, sm.detached, sm.timer = false, false, nil
	old.tr = s.tr
	old.ip = s.ip
	old.broken = false
	old.headerSent = true
	old.secure = s.secure
	start := old.needWriter()
	old.qmu.Unlock()
	if start {
		old.startWriter()
	}
	srv.metrics.resumed.Add(1)
	old.log.Info("stream resumed", "from", s.tr.RemoteAddr().String(), "h", h)
	return errResumed{old}
}

// pendingMessages returns, once the session can write no more, the
// messages it holds that the client may not have: unacknowledged ones of a
// resumable stream and everything still queued. s.qmu must not be held.
func (s *Session) pendingMessages() []*Item {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	var items []*Item
	if s.sm != nil && s.sm.resume {
		items = append(items, s.sm.unacked...)
		s.sm.unacked = nil
	}
	items = append(items, s.dropped...) // never written, whatever the stream
	if s.sm == nil || s.sm.resume {
		items = append(items, s.queue...)
	}
	s.queue, s.queued, s.dropped = nil, 0, nil
	var out []*Item
	for _, it := range items {
		if it.el != nil && it.el.Name == "message" && it.counted {
			out = append(out, it)
		}
	}
	return out
}

// rescue keeps the messages a session ends with: into offline storage when
// the user has no other available resource, otherwise they go to the
// user's other available resources that did not get them: all of them for
// a message to this resource, those that were not available yet for a
// message to the bare JID (the others got it with this one). The caller
// holds the user's delivery lock and has taken the session out of the
// router.
//
// Only available resources with a non-negative priority take messages
// (RFC 6121 §8.5.2.1.1); a message none of them has or takes is stored
// offline. What cannot be stored either (offline storage is full) is
// returned, for bounceRescued to tell its senders once the caller let go of
// the lock.
func (srv *Server) rescue(ctx context.Context, s *Session, items []*Item) (bounces []*stanza.Element) {
	var others []*Session
	for _, r := range srv.router.sessions(s.user) {
		if r.available.Load() && r.priority.Load() >= 0 {
			others = append(others, r)
		}
	}
	for _, it := range items {
		el := it.el
		to, _ := ParseJID(el.Attr("to"))
		from, _ := ParseJID(el.Attr("from"))
		kept := false
		for _, r := range others {
			switch {
			case to.IsBare() && slices.Contains(it.sentTo, r):
				kept = true // it got the message with this session
			case srv.blockedIn(ctx, r, from, kindMessage):
				kept = true // refused by the privacy list in force there
			default:
				r.send(el)
				kept = true
			}
		}
		if !kept {
			if _, err := srv.storeOffline(ctx, s.user, el); err != nil {
				s.log.Warn("keeping an undelivered message", "id", el.Attr("id"), "err", err)
				bounces = append(bounces, errorReply(el, offlineError(err)))
			}
		}
	}
	return bounces
}

// bounceRescued delivers the errors rescue returned to the senders (local
// users) of the messages it could not keep, so that none is lost silently.
func (srv *Server) bounceRescued(ctx context.Context, bounces []*stanza.Element) {
	for _, el := range bounces {
		to, err := ParseJID(el.Attr("to"))
		if err != nil {
			continue
		}
		if u, ok := srv.local(to); ok {
			srv.deliverMessage(ctx, u, to, el, nil)
		}
	}
}
