package history

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"chatd/internal/oid"
)

// NewMessage is a message to record.
type NewMessage struct {
	App      int64
	SenderID int64
	// DialogID names the dialog; when empty, RecipientID names the other
	// user of a private dialog, which is created if needed. With both (a
	// 1:1 XMPP message naming its dialog), the recipient must be an
	// occupant of the dialog unless it is a public group.
	DialogID    string
	RecipientID int64
	// ID is the client's id for the message (the XMPP stanza id); it is
	// kept when it is a valid ObjectId, otherwise a new one is made.
	ID          string
	Text        string
	DateSent    float64 // the client's date_sent (unix seconds); 0 if none
	Attachments []Attachment
	Custom      map[string]string
	Markable    bool
}

// Record stores a message before anyone is told about it. It creates the
// private dialog of a pair on their first message. Recording the same id
// again from the same sender into the same dialog with the same text
// returns the stored message (client retries and stream resumption stay
// idempotent; Recording.Repeated tells a caller that delivers messages not
// to deliver it twice); with another text it is ErrDuplicate, as is an id
// another sender or dialog uses.
func (s *Service) Record(ctx context.Context, in NewMessage) (*Message, *Dialog, error) {
	return s.Begin(ctx, in).Wait()
}

// Recording is a message on its way to the store: Begin has found its
// dialog and queued it for the next group commit, Wait waits for the
// commit. A caller with several messages to record begins them all before
// waiting for the first, so that they share a commit; they are stored in
// the order they were begun.
type Recording struct {
	s      *Service
	ctx    context.Context
	in     NewMessage
	m      *Message
	d      *Dialog
	cached bool
	save   *pendingSave
	err    error
	// repeated: the message had been stored before (see Repeated).
	repeated bool
}

// Begin starts recording a message: it finds (or creates) the dialog and
// queues the message for storage, without waiting for it to be stored.
// Once queued, the message is stored whatever the caller does; Wait tells
// how that went.
func (s *Service) Begin(ctx context.Context, in NewMessage) *Recording {
	r := &Recording{s: s, ctx: ctx, in: in}
	r.m, r.d, r.cached, r.save, r.err = s.begin(ctx, in, nil)
	return r
}

// Wait waits until the message is stored and returns it with its dialog:
// Record's results.
func (r *Recording) Wait() (*Message, *Dialog, error) {
	m, d, err := r.m, r.d, r.err
	if err == nil {
		err = r.save.wait()
		m, r.repeated, err = r.s.saved(r.ctx, m, err)
	}
	if staleDialog(r.cached, err) {
		// The pair's dialog was deleted since it was cached (by another
		// chatd sharing the store, say): look again, creating it if needed.
		r.s.pairs.forget(d)
		// Again with the id and date of the first try, which was not
		// stored: messages begun after this one stay after it.
		var save *pendingSave
		m, d, _, save, err = r.s.begin(r.ctx, r.in, r.m)
		if err == nil {
			m, r.repeated, err = r.s.saved(r.ctx, m, save.wait())
		}
	}
	if err != nil {
		return nil, nil, err
	}
	return m, d, nil
}

// Repeated reports, after Wait returned no error, that the message had been
// stored before: a client sent the same message (id, dialog, sender and
// text) again, after a reconnection say. Wait returned the message stored
// then, and whoever was to be told of it was told then (or has it waiting
// in offline storage), so it is not delivered again.
func (r *Recording) Repeated() bool { return r.repeated }

// begin finds the dialog of a new message, with the pair's dialog taken
// from the cache (cached tells whether it was), and queues the message for
// the committer. On an error d is the dialog tried, if any.
//
// retryOf is nil but when the message is tried again after its first try,
// retryOf, was not stored: then the dialog is looked up in the store, and
// the message keeps the first try's id and date, whether that date was the
// client's or the server's, without checking it against the clock again.
func (s *Service) begin(ctx context.Context, in NewMessage, retryOf *Message) (m *Message, d *Dialog, cached bool, save *pendingSave, err error) {
	d, cached, err = s.dialogFor(ctx, in, retryOf == nil)
	if err != nil {
		return nil, nil, false, nil, err
	}
	now := s.now()
	m = &Message{
		AppID:        in.App,
		DialogID:     d.ID,
		Text:         in.Text,
		SenderID:     in.SenderID,
		Attachments:  in.Attachments,
		Custom:       in.Custom,
		Markable:     in.Markable,
		ReadIDs:      []int64{in.SenderID},
		DeliveredIDs: []int64{in.SenderID},
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	m.ID = oid.New(now)
	if oid.Valid(in.ID) {
		m.ID = oid.Normalize(in.ID)
	}
	m.DateSent = now.Unix()
	// The window is checked on the client's exact time (fractions of a
	// second included); what is stored is truncated to the second.
	if delta := in.DateSent - float64(s.cfg.Now().UnixNano())/1e9; in.DateSent > 0 && math.Abs(delta) < s.cfg.ClockSkew.Seconds() {
		m.DateSent = int64(in.DateSent)
	}
	if retryOf != nil {
		m.ID, m.DateSent = retryOf.ID, retryOf.DateSent
	}
	if d.Type != PublicGroup {
		for _, o := range d.Occupants {
			if o != in.SenderID {
				m.Recipients = append(m.Recipients, o)
			}
		}
	}
	if d.Type == Private {
		m.RecipientID = m.Recipients[0]
	}
	save, err = s.commit.enqueue(ctx, m)
	if err != nil {
		return nil, d, cached, nil, err
	}
	return m, d, cached, save, nil
}

// saved completes a save that ended with err: an id stored before by the
// same sender in the same dialog with the same text is the message stored
// then (repeated).
func (s *Service) saved(ctx context.Context, m *Message, err error) (_ *Message, repeated bool, _ error) {
	if errors.Is(err, ErrDuplicate) {
		old, err2 := s.store.Message(ctx, m.AppID, m.ID, 0)
		if err2 == nil && old.DialogID == m.DialogID && old.SenderID == m.SenderID && old.Text == m.Text {
			return old, true, nil
		}
	}
	if err != nil {
		return nil, false, err
	}
	return m, false, nil
}

// dialogFor finds the dialog a new message goes to and checks the sender may
// post there; cached tells whether the pair's dialog came from the cache.
func (s *Service) dialogFor(ctx context.Context, in NewMessage, useCache bool) (d *Dialog, cached bool, err error) {
	if in.DialogID == "" {
		if in.RecipientID == 0 {
			return nil, false, invalid("chat_dialog_id", "or recipient_id is required")
		}
		if in.RecipientID == in.SenderID {
			return nil, false, invalid("recipient_id", "cannot be the sender")
		}
		if useCache {
			if d := s.pairs.get(in.App, in.SenderID, in.RecipientID); d != nil {
				return d, true, nil
			}
		}
		d, err := s.store.PrivateDialog(ctx, in.App, in.SenderID, in.RecipientID)
		if errors.Is(err, ErrNotFound) {
			d, _, err = s.CreateDialog(ctx, in.App, in.SenderID, DialogInput{Type: Private, Occupants: []int64{in.RecipientID}})
		}
		if err != nil {
			return nil, false, err
		}
		s.pairs.put(d)
		return d, false, nil
	}
	d, err = s.visible(ctx, in.App, in.SenderID, in.DialogID)
	if err != nil {
		return nil, false, err
	}
	if d.Type != PublicGroup && in.RecipientID != 0 && !d.HasOccupant(in.RecipientID) {
		return nil, false, invalid("recipient_id", "is not in the dialog")
	}
	return d, false, nil
}

// Messages lists messages of a dialog the user may read. With markRead the
// returned messages count as read by the user (QuickBlox's default for
// GET /chat/Message; mark_as_read=0 turns it off).
func (s *Service) Messages(ctx context.Context, app, user int64, dialogID string, q MessageQuery, markRead bool) ([]*Message, error) {
	d, err := s.visible(ctx, app, user, dialogID)
	if err != nil {
		return nil, err
	}
	if q.None {
		return nil, nil
	}
	msgs, err := s.store.FindMessages(ctx, app, d.ID, user, q)
	if err != nil {
		return nil, err
	}
	if markRead && len(msgs) > 0 {
		var ids []string
		for _, m := range msgs {
			if slices.Contains(m.Recipients, user) && !slices.Contains(m.ReadIDs, user) {
				ids = append(ids, m.ID)
			}
		}
		if len(ids) > 0 {
			// Read implies delivered, as in MarkMessages.
			if _, err := s.store.MarkMessages(ctx, app, d.ID, user, ids, Delivered); err != nil {
				return nil, err
			}
			if _, err := s.store.MarkMessages(ctx, app, d.ID, user, ids, Read); err != nil {
				return nil, err
			}
			for _, m := range msgs {
				if slices.Contains(ids, m.ID) {
					m.ReadIDs = append(m.ReadIDs, user)
					if !slices.Contains(m.DeliveredIDs, user) {
						m.DeliveredIDs = append(m.DeliveredIDs, user)
					}
				}
			}
		}
	}
	return msgs, nil
}

// CountMessages returns how many messages of a dialog the user may read
// match q, as Messages would list them with q's limit and skip left out;
// it marks nothing read.
func (s *Service) CountMessages(ctx context.Context, app, user int64, dialogID string, q MessageQuery) (int, error) {
	d, err := s.visible(ctx, app, user, dialogID)
	if err != nil {
		return 0, err
	}
	if q.None {
		return 0, nil
	}
	return s.store.CountMessages(ctx, app, d.ID, user, q)
}

// Message returns one message the user may read.
func (s *Service) Message(ctx context.Context, app, user int64, id string) (*Message, error) {
	if !oid.Valid(id) {
		return nil, ErrNotFound
	}
	m, err := s.store.Message(ctx, app, oid.Normalize(id), user)
	if err != nil {
		return nil, err
	}
	if _, err := s.visible(ctx, app, user, m.DialogID); err != nil {
		return nil, err
	}
	return m, nil
}

// MarkMessages marks messages of a dialog (every message when ids is nil)
// read or delivered for the user; read implies delivered.
func (s *Service) MarkMessages(ctx context.Context, app, user int64, dialogID string, ids []string, mark Mark) error {
	d, err := s.visible(ctx, app, user, dialogID)
	if err != nil {
		return err
	}
	ids, err = validIDs(ids)
	if err != nil {
		return err
	}
	if mark == Read {
		if _, err := s.store.MarkMessages(ctx, app, d.ID, user, ids, Delivered); err != nil {
			return err
		}
	}
	_, err = s.store.MarkMessages(ctx, app, d.ID, user, ids, mark)
	return err
}

// MarkUpTo applies a chat marker (XEP-0333): the message and every earlier
// one of the dialog become read (displayed) or delivered (received) for the
// user. It returns the number newly marked.
func (s *Service) MarkUpTo(ctx context.Context, app, user int64, dialogID, messageID string, mark Mark) (int, error) {
	d, err := s.visible(ctx, app, user, dialogID)
	if err != nil {
		return 0, err
	}
	if !oid.Valid(messageID) {
		return 0, ErrNotFound
	}
	messageID = oid.Normalize(messageID)
	if mark == Read {
		if _, err := s.store.MarkUpTo(ctx, app, d.ID, user, messageID, Delivered); err != nil {
			return 0, err
		}
	}
	return s.store.MarkUpTo(ctx, app, d.ID, user, messageID, mark)
}

func validIDs(ids []string) ([]string, error) {
	if ids == nil {
		return nil, nil
	}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !oid.Valid(id) {
			return nil, invalid("_id", "%q is not a message id", id)
		}
		out = append(out, oid.Normalize(id))
	}
	return out, nil
}

// Conversation is where a correction was sent (XEP-0308): it edits only a
// message sent there, so that those who got the message are those told of
// the edit. The zero Conversation matches every message.
type Conversation struct {
	DialogID    string // a room's dialog
	RecipientID int64  // the addressee of a 1:1 correction: the message's recipient
}

func (c Conversation) has(m *Message) bool {
	return (c.DialogID == "" || m.DialogID == c.DialogID) && (c.RecipientID == 0 || m.RecipientID == c.RecipientID)
}

// Edit replaces the text of a message; only its sender may (XEP-0308 and
// PUT /chat/Message). A message of another conversation than in is
// ErrNotFound.
func (s *Service) Edit(ctx context.Context, app, user int64, id, text string, in Conversation) (*Message, error) {
	m, err := s.Message(ctx, app, user, id)
	if err != nil {
		return nil, err
	}
	if !in.has(m) {
		return nil, ErrNotFound
	}
	if m.SenderID != user {
		return nil, ErrForbidden
	}
	at := s.now()
	if err := s.store.EditMessage(ctx, app, m.ID, text, at); err != nil {
		return nil, err
	}
	m.Text, m.UpdatedAt = text, at
	return m, nil
}

// DeleteMessages deletes messages for the user, or for everyone with force
// (each message by its sender only); observers hear of the latter.
func (s *Service) DeleteMessages(ctx context.Context, app, user int64, ids []string, force bool) (DeleteResult, error) {
	var res DeleteResult
	var mine []string
	var gone []*Message
	for _, id := range ids {
		m, err := s.Message(ctx, app, user, id)
		switch {
		case errors.Is(err, ErrNotFound):
			res.NotFound = append(res.NotFound, id)
			continue
		case errors.Is(err, ErrForbidden):
			res.WrongPermissions = append(res.WrongPermissions, id)
			continue
		case err != nil:
			return res, err
		}
		if force && m.SenderID != user {
			res.WrongPermissions = append(res.WrongPermissions, id)
			continue
		}
		mine = append(mine, m.ID)
		gone = append(gone, m)
	}
	if len(mine) == 0 {
		return res, nil
	}
	var (
		done []string
		err  error
	)
	if force {
		done, err = s.store.DeleteMessages(ctx, app, mine)
	} else {
		done, err = s.store.HideMessages(ctx, app, user, mine)
	}
	if err != nil {
		return res, err
	}
	res.Deleted = append(res.Deleted, done...)
	if force {
		byDialog := map[string][]*Message{}
		for _, m := range gone {
			byDialog[m.DialogID] = append(byDialog[m.DialogID], m)
		}
		for dialogID, msgs := range byDialog {
			if d, err := s.store.Dialog(ctx, app, dialogID); err == nil {
				s.emit(ctx, Event{Kind: MessagesDeleted, Dialog: d, Actor: user, Messages: msgs})
			}
		}
	}
	return res, nil
}

// unreadChunk is how many dialog ids one store query of UnreadCounts takes.
const unreadChunk = 1000

// UnreadCounts returns the user's unread counts for the dialogs (all when
// ids is empty) and their total.
func (s *Service) UnreadCounts(ctx context.Context, app, user int64, ids []string) (map[string]int, int, error) {
	if len(ids) == 0 {
		return s.store.UnreadCounts(ctx, app, user, nil)
	}
	var valid []string
	seen := map[string]bool{}
	for _, id := range ids {
		if n := oid.Normalize(id); oid.Valid(id) && !seen[n] {
			seen[n] = true
			valid = append(valid, n)
		}
	}
	// In chunks: a store takes a bounded number of ids in one query
	// (SQLite's variables), and a request may name tens of thousands.
	counts := make(map[string]int, len(valid))
	var total int
	for i := 0; i == 0 || i < len(valid); i += unreadChunk {
		part, t, err := s.store.UnreadCounts(ctx, app, user, valid[i:min(i+unreadChunk, len(valid))])
		if err != nil {
			return nil, 0, err
		}
		maps.Copy(counts, part)
		total = t
	}
	out := make(map[string]int, len(ids))
	for _, id := range ids {
		out[id] = counts[oid.Normalize(id)]
	}
	return out, total, nil
}

// committer stores messages in groups: while one SaveMessages call runs,
// messages recorded meanwhile queue up and go in the next call together
// (group commit), so the store's write cost is shared under load without
// delaying a lone message.
type committer struct {
	store Store
	log   *slog.Logger
	in    chan *pendingSave
	wg    sync.WaitGroup
	once  sync.Once
	stop  chan struct{}

	// mu makes closing and queueing exclusive: enqueue queues under the
	// read lock only while closed is false, and close sets closed under
	// the write lock before it stops the committer, so what the committer
	// drains when it stops is everything that was ever queued.
	mu     sync.RWMutex
	closed bool
}

type pendingSave struct {
	ctx  context.Context
	msg  *Message
	done chan error
}

// maxBatch bounds a group commit. The store's cost per message falls with
// the batch (a commit writes each page it touched once, and a dialog's
// counters and last message are written once per batch), and a batch of
// 1,024 messages takes SQLite's writer some 50 ms on a small machine.
const maxBatch = 1024

func newCommitter(store Store, log *slog.Logger) *committer {
	c := &committer{store: store, log: log, in: make(chan *pendingSave, 4*maxBatch), stop: make(chan struct{})}
	c.wg.Add(1)
	go c.run()
	return c
}

var errClosed = errors.New("history: shutting down")

// enqueue queues m for the next group commit; wait on the result tells
// how it went.
func (c *committer) enqueue(ctx context.Context, m *Message) (*pendingSave, error) {
	p := &pendingSave{ctx: ctx, msg: m, done: make(chan error, 1)}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, errClosed
	}
	// A full queue holds close back until the committer, still running,
	// makes room.
	select {
	case c.in <- p:
		return p, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// wait waits until the message is stored. Once queued the message is stored
// whatever the caller does, so a caller that gives up cannot leave it
// half-known: the wait is not cut short by the caller's context.
func (p *pendingSave) wait() error { return <-p.done }

func (c *committer) run() {
	defer c.wg.Done()
	batch := make([]*pendingSave, 0, maxBatch)
	for {
		select {
		case p := <-c.in:
			batch = append(batch[:0], p)
		case <-c.stop:
			// Drain what was queued before the stop.
			for {
				select {
				case p := <-c.in:
					c.flush([]*pendingSave{p})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case p := <-c.in:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		c.flush(batch)
	}
}

func (c *committer) flush(batch []*pendingSave) {
	msgs := make([]*Message, len(batch))
	for i, p := range batch {
		msgs[i] = p.msg
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	errs := c.store.SaveMessages(ctx, msgs)
	cancel()
	for i, p := range batch {
		var err error
		if errs != nil {
			err = errs[i]
		}
		p.done <- err
	}
}

func (c *committer) close() {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.stop)
	})
	c.wg.Wait()
}
