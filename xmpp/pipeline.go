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
// pending messages' commits and delivers them, in the order they came.
//
// What the client sees is unchanged: every stanza takes effect in the order
// it was sent, a message reaches no one before it is stored, and the
// session's stream management counts, its answers to <r/> and its end all
// come after the messages before them were delivered. Only the storing of
// consecutive messages overlaps. WebSocket sessions read a message at a time
// from their framing and deliver each before reading the next.

// maxPending bounds the messages a session may have being stored at once.
const maxPending = 64

// readyNext reports whether the transport holds the next element whole, so
// that reading it cannot wait for the network.
func (s *Session) readyNext() bool {
	r, ok := s.tr.(interface{ Ready() bool })
	return ok && r.Ready()
}

// deliverLater keeps a message being stored for delivery once the reader has
// nothing more at hand; with no more at hand (or too many pending) the
// messages are delivered now.
func (s *Session) deliverLater(ctx context.Context, p pendingChat) {
	if s.pending == nil {
		s.pending = make([]pendingChat, 0, 8)
	}
	s.pending = append(s.pending, p)
	if len(s.pending) >= maxPending || !s.readyNext() {
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
	s.pending = nil // an idle session keeps no array
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
