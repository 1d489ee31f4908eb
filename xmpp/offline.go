package xmpp

import (
	"context"
	"errors"
	"sync"
	"time"

	"chatd/xmpp/stanza"
)

// Offline storage (XEP-0160, delivered with XEP-0203 delay stamps).
//
// Ordering: deliveries to one user and that user's first available presence
// are serialised by a per-user lock, so a message is either enqueued to an
// available session or stored, never both and never lost between the two.
// At initial presence the stored messages are flushed oldest first, in
// batches that wait for the client to read (so a backlog cannot overflow the
// session's queue), and the session becomes available only after the last
// batch, under the lock.

const (
	nsHints       = "urn:xmpp:hints"
	offlineBatch  = 200
	defaultOffMax = 10000
)

// userLocks is a striped mutex per user.
type userLocks struct {
	stripes [256]sync.Mutex
}

// lock locks u's stripe and returns it, for the caller to unlock (a mutex
// rather than its Unlock method value, which would allocate on every
// delivery).
func (l *userLocks) lock(u UserRef) *sync.Mutex {
	m := &l.stripes[u.hash()%uint64(len(l.stripes))]
	m.Lock()
	return m
}

// offlineEligible reports whether a message may be stored for later: chat or
// normal messages that are not only a chat state and carry no no-store hint.
func offlineEligible(el *stanza.Element) bool {
	switch el.Attr("type") {
	case "", "normal", "chat":
	default:
		return false
	}
	if el.Child("no-store", nsHints) != nil || el.Child("no-permanent-store", nsHints) != nil {
		return false
	}
	return !chatStateOnly(el) || el.Child("store", nsHints) != nil
}

// storeOffline keeps a message for a user with no available resource. It
// reports whether the message was stored; ErrOfflineFull when the user's
// storage is at its limit.
func (srv *Server) storeOffline(ctx context.Context, u UserRef, el *stanza.Element) (bool, error) {
	if !offlineEligible(el) {
		return false, nil
	}
	now := time.Now().UTC()
	out := el
	if el.Child("delay", nsDelay) == nil {
		out = el.ShallowCopy()
		out.Children = append(out.Children[:len(out.Children):len(out.Children)],
			stanza.New("delay", nsDelay, "from", srv.cfg.Domain, "stamp", now.Format("2006-01-02T15:04:05.000Z")))
	}
	msg := &OfflineMessage{Stamp: now, Data: out.AppendXML(nil, "")}
	if err := srv.store.PushOffline(ctx, u, msg, srv.cfg.OfflineLimit); err != nil {
		return false, err
	}
	srv.metrics.offlineStored.Add(1)
	if srv.hooks.OfflineStored != nil {
		srv.hooks.OfflineStored(ctx, u, el)
	}
	return true, nil
}

// flushOffline delivers a session's stored messages before it becomes
// available; it returns with the session available. Meanwhile messages to
// the user go to offline storage, after those being delivered, also those
// to this session's full JID (see deliverMessage), so nothing overtakes the
// backlog.
func (srv *Server) flushOffline(ctx context.Context, s *Session) {
	s.flushing.Store(true)
	// Batches first, without the lock: the client may take its time.
	for {
		more, err := srv.flushBatch(ctx, s)
		if err != nil {
			s.log.Warn("delivering offline messages", "err", err)
			break
		}
		if !more {
			break
		}
		if err := s.awaitQueue(ctx); err != nil {
			break
		}
	}
	// Then whatever arrived meanwhile, and become available, atomically
	// with respect to deliveries.
	defer srv.deliveryLocks.lock(s.user).Unlock()
	for {
		more, err := srv.flushBatch(ctx, s)
		if err != nil {
			s.log.Warn("delivering offline messages", "err", err)
		}
		if err != nil || !more {
			break
		}
	}
	s.available.Store(true)
	s.qmu.Lock()
	if s.sm != nil && !s.sm.overSince.IsZero() {
		// The acks the client sent meanwhile are read from now on.
		s.sm.overSince = time.Now()
	}
	s.qmu.Unlock()
	s.flushing.Store(false)
}

// flushBatch enqueues stored messages, at most a batch and no more once the
// session's queue is half full (the first always goes), and removes them
// from storage; more reports that storage may hold others.
func (srv *Server) flushBatch(ctx context.Context, s *Session) (more bool, err error) {
	msgs, err := srv.store.OfflineMessages(ctx, s.user, offlineBatch)
	if err != nil || len(msgs) == 0 {
		return false, err
	}
	more = len(msgs) == offlineBatch
	for i, m := range msgs {
		if i > 0 && s.queueHalfFull() {
			msgs, more = msgs[:i], true
			break
		}
		el, err := stanza.ParseElement(m.Data, stanza.NSClient, 1<<24)
		if err != nil {
			s.log.Error("an offline message does not parse; dropped", "seq", m.Seq, "err", err)
			continue
		}
		if srv.ampExpired(el) {
			continue
		}
		if !s.enqueue(NewItem(el)) {
			// The session is closing: this one and the rest stay stored
			// for the next.
			msgs, more = msgs[:i], false
			break
		}
	}
	if len(msgs) == 0 {
		return false, nil
	}
	if err := srv.store.DeleteOffline(ctx, s.user, msgs[len(msgs)-1].Seq); err != nil {
		return false, err
	}
	srv.metrics.offlineDelivered.Add(int64(len(msgs)))
	return more, nil
}

var errOfflineFull = stanzaErr(errWait, "service-unavailable", "the recipient's offline storage is full")

// offlineError maps a storage failure to the error the sender sees.
func offlineError(err error) *StanzaError {
	if errors.Is(err, ErrOfflineFull) {
		return errOfflineFull
	}
	return stanzaErrorOf(err)
}
