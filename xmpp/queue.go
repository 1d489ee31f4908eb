package xmpp

import (
	"sync"
	"time"

	"chatd/xmpp/stanza"
)

// Item is one stanza on its way to a client. It is immutable once made and
// may be shared by many sessions (a room message is encoded once): data is
// the encoding without a 'to' attribute, and the writer inserts
// to='<recipient's full JID>' at toAt, so every stanza a client receives is
// addressed to it.
type Item struct {
	el   *stanza.Element
	data []byte
	toAt int // where to insert the 'to' attribute; -1: never
	// hold is, for stanzas a client in the inactive state (XEP-0352) can
	// wait for, the key under which a newer one replaces it: presence and
	// chat states, per sender. Empty for everything else.
	hold string
	// counted: a stanza (message, presence, iq) that stream management
	// counts; smStart: the <enabled/> or <resumed/> from which counting
	// starts.
	counted bool
	smStart bool
	// sentTo are the sessions a message to a bare JID was enqueued to at
	// once (set and read under the user's delivery lock): one of them that
	// ends without it delivered hands it to the user's other resources
	// that did not get it (rescue).
	sentTo []*Session
}

// newItem encodes a stanza for delivery. Its own 'to' attribute is replaced
// by the recipient's full JID at write time.
func NewItem(el *stanza.Element) *Item {
	b := make([]byte, 0, 256)
	b = append(b, '<')
	b = append(b, el.Name...)
	toAt := len(b)
	if el.Space != "" {
		b = append(b, ` xmlns="`...)
		b = append(b, el.Space...)
		b = append(b, '"')
	}
	tmp := *el
	if el.HasAttr("to") {
		tmp.Attrs = make([]stanza.Attr, 0, len(el.Attrs)-1)
		for _, a := range el.Attrs {
			if a.Name != "to" {
				tmp.Attrs = append(tmp.Attrs, a)
			}
		}
	}
	b = tmp.AppendAttrsAndRest(b)
	return &Item{el: el, data: b, toAt: toAt, hold: holdKey(el), counted: true}
}

// holdKey classifies a stanza for client state indication.
func holdKey(el *stanza.Element) string {
	switch el.Name {
	case "presence":
		if t := el.Attr("type"); t == "" || t == "unavailable" {
			return "p " + el.Attr("from")
		}
	case "message":
		if chatStateOnly(el) {
			return "c " + el.Attr("from")
		}
	}
	return ""
}

// Enqueue adds an item to the session's outbound queue without blocking; see
// enqueue.
func (s *Session) Enqueue(it *Item) bool { return s.enqueue(it) }

// Send enqueues a stanza for this session.
func (s *Session) Send(el *stanza.Element) bool { return s.enqueue(NewItem(el)) }

// rawItem is an element written as is (stream-level elements such as <r/>).
func rawItem(el *stanza.Element) *Item {
	return &Item{el: el, data: el.AppendXML(nil, ""), toAt: -1}
}

// appendTo appends the item's bytes for a recipient.
func (it *Item) appendTo(b []byte, to string) []byte {
	if it.toAt < 0 {
		return append(b, it.data...)
	}
	b = append(b, it.data[:it.toAt]...)
	b = append(b, ` to="`...)
	b = append(b, to...) // JIDs chatd binds never need escaping
	b = append(b, '"')
	return append(b, it.data[it.toAt:]...)
}

var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// enqueue adds an item to the session's outbound queue without blocking. It
// returns false when the session is closing; a session whose queue would
// exceed its bound is closed with <policy-violation/> and counted. While the
// transport is broken (a stream waiting to be resumed) items queue up
// without a writer.
func (s *Session) enqueue(it *Item) bool {
	s.qmu.Lock()
	if s.closing {
		s.qmu.Unlock()
		return false
	}
	if s.inactive {
		if it.hold != "" {
			// XEP-0352: held until the client is active, newest per sender.
			if i, ok := s.heldIdx[it.hold]; ok {
				s.held[i] = it
			} else {
				if s.heldIdx == nil {
					s.heldIdx = map[string]int{}
				}
				s.heldIdx[it.hold] = len(s.held)
				s.held = append(s.held, it)
			}
			s.qmu.Unlock()
			return true
		}
		// Anything else goes out at once; a message goes after what was held
		// (a chat state before the message it announced), an IQ answer
		// does not wake the rest.
		if it.el != nil && it.el.Name == "message" {
			s.releaseHeld()
		}
	}
	// What was written but not acknowledged (XEP-0198) is held as well: a
	// client that keeps more than the bound unacknowledged for
	// unackedGrace is closed like one that does not read. Not while its
	// offline messages are delivered: the reader, which takes the acks,
	// is busy with them (flushOffline restarts the grace at its end).
	sm := s.sm
	ackLate := sm != nil && !sm.overSince.IsZero() && !s.flushing.Load() &&
		time.Since(sm.overSince) > s.srv.cfg.unackedGrace()
	if queued := s.queued; queued+len(it.data) > s.srv.cfg.MaxQueueBytes || ackLate {
		unacked := 0
		if sm != nil {
			unacked = sm.unackedBytes
		}
		s.qmu.Unlock()
		s.srv.metrics.overflows.Add(1)
		s.log.Warn("outbound queue overflow: closing the session", "queued_bytes", queued, "unacked_bytes", unacked)
		text := "outbound queue overflow: the client does not read"
		if ackLate {
			text = "outbound queue overflow: the client does not acknowledge what it receives"
		}
		s.closeWith(streamErr("policy-violation", text), true)
		return false
	}
	s.queue = append(s.queue, it)
	s.queued += len(it.data)
	start := s.needWriter()
	s.qmu.Unlock()
	if start {
		s.startWriter()
	}
	return true
}

// needWriter reports whether a writer must be started, and marks it
// started; s.qmu is held.
func (s *Session) needWriter() bool {
	if s.writing || s.broken {
		return false
	}
	s.writing = true
	return true
}

// releaseHeld moves held stanzas to the queue; s.qmu is held.
func (s *Session) releaseHeld() {
	for _, h := range s.held {
		s.queue = append(s.queue, h)
		s.queued += len(h.data)
	}
	s.held, s.heldIdx = nil, nil
}

// setActive records a client state indication: inactive holds presence and
// chat states; active releases them.
func (s *Session) setActive(active bool) {
	s.qmu.Lock()
	s.inactive = !active
	start := false
	if active && len(s.held) > 0 && !s.closing {
		s.releaseHeld()
		start = s.needWriter()
	}
	s.qmu.Unlock()
	if start {
		s.startWriter()
	}
}

// send enqueues a stanza built for this session.
func (s *Session) send(el *stanza.Element) bool { return s.enqueue(NewItem(el)) }

func (s *Session) startWriter() {
	s.srv.wg.Add(1)
	go s.writeLoop()
}

// closeWith ends the session: it sends the stream error (if any), the end of
// the stream, and closes the connection. With drop, items still queued are
// not written (the messages among them go to the rescue when the session
// ends: other resources or offline storage, after the messages that came
// once it was closing), and the reader acts on nothing more the client
// sent, even what it has read already (Session.cut). Safe from any
// goroutine and more than once.
func (s *Session) closeWith(se *StreamError, drop bool) {
	s.qmu.Lock()
	if s.closing {
		s.qmu.Unlock()
		return
	}
	s.closing = true
	if drop {
		// Not written, not lost: the messages among them are rescued
		// when the session ends (pendingMessages).
		for _, it := range s.queue {
			if it.el != nil && it.el.Name == "message" && it.counted {
				s.dropped = append(s.dropped, it)
			}
		}
		s.queue, s.queued = nil, 0
		s.cut.Store(true)
	}
	if s.broken {
		// Nothing can be written any more.
		detached := s.sm != nil && s.sm.detached
		s.qmu.Unlock()
		s.tr.Close()
		if detached {
			go s.srv.expireDetached(s)
		}
		return
	}
	var frames [][]byte
	if se != nil {
		frames = append(frames, se.element().AppendXML(nil, ""))
	}
	if s.tr.WebSocket() {
		// RFC 7395 §3.6: <close/> is a message of its own.
		frames = append(frames, []byte(`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>`))
	} else {
		frames = append(frames, []byte("</stream:stream>"))
	}
	s.final = frames
	start := s.needWriter()
	s.qmu.Unlock()
	if start {
		s.startWriter()
	}
}

// takeBatch takes what the writer writes next and does stream management's
// bookkeeping for it: counted stanzas after <enabled/> are numbered and, on
// a resumable stream, kept until acknowledged (before they are written, so a
// failed write leaves them to be sent again). It returns the items, the
// final frames when the session is closing, and whether to request an ack.
// s.qmu is held.
func (s *Session) takeBatch() (batch []*Item, final [][]byte, ask bool) {
	batch = s.queue
	s.queue, s.queued = nil, 0
	final = s.final
	s.final = nil
	sm := s.sm
	if sm == nil {
		return batch, final, false
	}
	for _, it := range batch {
		switch {
		case it.smStart:
			sm.active = true
		case sm.active && it.counted:
			sm.sent++
			sm.sinceReq++
			if sm.resume {
				sm.unacked = append(sm.unacked, it)
				sm.unackedBytes += len(it.data)
				if sm.unackedBytes > s.srv.cfg.MaxQueueBytes && sm.overSince.IsZero() {
					sm.overSince = time.Now()
				}
			}
		}
	}
	if sm.active && sm.sinceReq >= s.srv.cfg.SMAckEvery && final == nil {
		sm.sinceReq = 0
		sm.lastReq = time.Now()
		ask = true
	}
	return batch, final, ask
}

var ackRequest = []byte(`<r xmlns="urn:xmpp:sm:3"/>`)

// writeLoop drains the queue in batches, one write (and write deadline) per
// batch, and exits when the queue is empty. Only one runs per session. Once
// the session is closing it writes the final frames and closes the
// connection. A failed write marks the transport broken and closes it; the
// reader then ends the session or keeps it for resumption.
func (s *Session) writeLoop() {
	defer s.srv.wg.Done()
	bp := writeBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 64<<10 {
			writeBufs.Put(bp)
		}
	}()
	var frames [][]byte
	for {
		s.qmu.Lock()
		if s.broken {
			s.writing = false
			s.qmu.Unlock()
			s.signalWriterExit()
			return
		}
		batch, final, ask := s.takeBatch()
		if len(batch) == 0 && final == nil {
			s.writing = false
			s.qmu.Unlock()
			s.signalWriterExit()
			return
		}
		tr := s.tr
		s.qmu.Unlock()

		buf := (*bp)[:0]
		frames = frames[:0]
		for _, it := range batch {
			start := len(buf)
			buf = it.appendTo(buf, s.full)
			frames = append(frames, buf[start:])
		}
		*bp = buf
		if ask {
			frames = append(frames, ackRequest)
		}
		frames = append(frames, final...)
		tr.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
		err := tr.Write(frames)
		s.srv.metrics.stanzasOut.Add(int64(len(batch)))
		select {
		case s.drained <- struct{}{}:
		default:
		}
		if err != nil || final != nil {
			if err != nil && final == nil {
				s.log.Debug("write failed", "err", err)
			}
			s.qmu.Lock()
			s.broken = true
			s.writing = false
			s.qmu.Unlock()
			tr.Close()
			s.signalWriterExit()
			return
		}
	}
}

// signalWriterExit wakes whoever waits for the writer to stop.
func (s *Session) signalWriterExit() {
	select {
	case s.writerExit <- struct{}{}:
	default:
	}
}

// waitWriter waits until no writer runs, at most d.
func (s *Session) waitWriter(d time.Duration) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		s.qmu.Lock()
		running := s.writing
		s.qmu.Unlock()
		if !running {
			return
		}
		select {
		case <-s.writerExit:
		case <-deadline.C:
			return
		}
	}
}
