package xmpp

import (
	"context"
	"runtime/debug"
)

// A session's messages with save_to_history are stored before anyone gets
// them, and SQLite stores them one group commit at a time. Waiting for each
// message's commit before reading the next would give each commit at most
// one message per session, and the commit's cost per message falls with the
// messages of a dialog it writes together. So when the client has already
// sent more (its next stanza is buffered whole, and reading it cannot wait
// for the network), the reader begins storing the message, keeps it in
// Session.pending and reads on; once nothing more is at hand, or the next
// stanza does something other than recording a message, it waits for the
// pending messages' commits and delivers them, in the order they came. (A
// client's ack, <a/>, is the one other stanza let through: it only trims
// what the server keeps for resumption.)
//
// What the client sees is unchanged: every stanza takes effect in the order
// it was sent, a message reaches no one before it is stored, and the
// session's stream management counts, its answers to <r/> and its end all
// come after the messages before them were delivered (the ends the reader
// decides on: one another goroutine decides, a conflict or a shutdown, may
// refuse answers it would have queued). A stream the server ended for good
// (closeWith with drop: the account was deleted) is not read further, but
// what was pending is delivered. Only the storing of
// consecutive messages overlaps. WebSocket sessions read a message at a time
// from their framing and deliver each before reading the next.

// A session may have at most maxPending messages, of maxPendingBytes in all
// as the client sent them, being stored at once: what it holds beyond its
// parser's buffer stays as bounded as with one message at a time. (Messages
// a client sends to itself reach its own queue only when delivered, so that
// queue may pass the half-full mark awaitQueue keeps by up to
// maxPendingBytes and one stanza, annotations aside: well within the
// default queue of 1 MiB.)
const (
	maxPending      = 64
	maxPendingBytes = 64 << 10
)

// pipeliner is a transport that can tell whether its next element is at
// hand (tcpTransport).
type pipeliner interface {
	// Ready reports whether the next element is buffered whole, so that
	// Next cannot wait for the network.
	Ready() bool
}

// readyNext reports whether the transport holds the next element whole.
func (s *Session) readyNext() bool {
	p, ok := s.tr.(pipeliner)
	return ok && p.Ready()
}

// deliverLater keeps a message being stored for delivery once the reader has
// nothing more at hand; with no more at hand (or too much pending) the
// messages are delivered now.
func (s *Session) deliverLater(ctx context.Context, p pendingChat) {
	tr, ok := s.tr.(pipeliner)
	if !ok {
		p.deliver(ctx, s)
		return
	}
	if s.pending == nil {
		s.pending = make([]pendingChat, 0, 8)
	}
	s.pending = append(s.pending, p)
	s.pendingBytes += s.tr.LastSize()
	if len(s.pending) > 1 {
		s.srv.metrics.pipelined.Add(1)
	}
	if len(s.pending) >= maxPending || s.pendingBytes >= maxPendingBytes || !tr.Ready() {
		s.deliverPending(ctx)
	}
}

// deliverPending waits for the session's pending messages to be stored and
// delivers them in order. Each leaves the list before it is delivered, so
// that a panic delivering one cannot deliver it twice.
func (s *Session) deliverPending(ctx context.Context) {
	if s.pending == nil {
		return
	}
	for len(s.pending) > 0 {
		p := s.pending[0]
		s.pending[0] = pendingChat{}
		s.pending = s.pending[1:]
		p.deliver(ctx, s)
	}
	s.pending, s.pendingBytes = nil, 0 // an idle session keeps no array
}

// deliverPendingAtEnd delivers what is pending when the reader stops, after
// a failure or a panic: the messages are stored, and their recipients get
// them even if the sender's stream is gone or the server is stopping.
func (s *Session) deliverPendingAtEnd(ctx context.Context) {
	if len(s.pending) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for len(s.pending) > 0 {
		func() {
			defer func() {
				if r := recover(); r != nil {
					s.srv.metrics.panics.Add(1)
					s.log.Error("panic while delivering a stored message", "panic", r, "stack", string(debug.Stack()))
				}
			}()
			s.deliverPending(ctx)
		}()
	}
}
