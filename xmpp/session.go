package xmpp

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"chatd/xmpp/stanza"
)

// Namespaces of stream negotiation.
const (
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession = "urn:ietf:params:xml:ns:xmpp-session"
	nsRosterV = "urn:xmpp:features:rosterver"
	nsCSI     = "urn:xmpp:csi:0"
)

// Session is one client connection. Its reader goroutine (serve) owns the
// stream's state machine and processes everything the client sends; other
// goroutines only enqueue stanzas for it (enqueue never blocks) and may ask
// it to close (closeWith). Its identity fields are set once at bind, before
// the session becomes visible to the router, and never change afterwards.
type Session struct {
	srv    *Server
	tr     transport
	log    sessionLog
	id     string
	ip     string
	remote string // address:port
	// unauthed gives back the connection's place among its address's
	// unauthenticated ones (Config.MaxUnauthenticatedPerAddress); called
	// at authentication and at the end, idempotent.
	unauthed func()

	// Reader-goroutine state.
	secure        bool
	authenticated bool
	bound         bool
	headerSent    bool
	sasl          saslExchange
	saslMech      string
	authFailures  int
	authGen       uint64        // Server.usersEnded when the authentication began
	bucket        tokenBucket   // stanzas
	bytes         tokenBucket   // bytes of stanzas
	directed      map[JID]bool  // full JIDs sent directed available presence
	initialSent   bool          // initial presence was sent
	pending       []pendingChat // messages being stored, to deliver (pipeline.go)
	pendingBytes  int           // their size as the client sent them

	// Identity, fixed at bind.
	user UserRef
	jid  JID
	full string
	bare JID

	// Presence, read by other sessions' goroutines.
	available atomic.Bool
	flushing  atomic.Bool // offline messages are being delivered (flushOffline)
	priority  atomic.Int32
	carbons   atomic.Bool // XEP-0280 enabled
	cut       atomic.Bool // closed by the server dropping its queue: input is no longer handled
	privacy   sessionPrivacy
	presence  atomic.Pointer[stanza.Element] // last available presence broadcast

	// Liveness, for the ping sweeper.
	lastRead atomic.Int64 // unix nanoseconds of the last data read
	pinged   atomic.Bool

	// Outbound queue (see queue.go).
	qmu      sync.Mutex
	queue    []*Item
	queued   int
	dropped  []*Item // messages closeWith(…, drop) took off the queue: rescued at cleanup
	writing  bool
	closing  bool
	final    [][]byte
	inactive bool           // XEP-0352 client state
	held     []*Item        // held while inactive
	heldIdx  map[string]int // Item.hold → index in held
	drained  chan struct{}  // the writer finished a batch

	writerExit chan struct{} // a writer goroutine stopped
	broken     bool          // the transport failed (guarded by qmu)
	sm         *smState      // XEP-0198, nil until enabled (guarded by qmu)
}

// sessionLog logs through the server's logger with the session's identity:
// its stream id and remote address, the user once authenticated, the full
// JID once bound. The attributes are added per record, which is rare, rather
// than kept in a derived logger per session, which would cost every idle
// session a few hundred bytes.
type sessionLog struct{ s *Session }

func (l sessionLog) Debug(msg string, args ...any) { l.log(slog.LevelDebug, msg, args) }
func (l sessionLog) Info(msg string, args ...any)  { l.log(slog.LevelInfo, msg, args) }
func (l sessionLog) Warn(msg string, args ...any)  { l.log(slog.LevelWarn, msg, args) }
func (l sessionLog) Error(msg string, args ...any) { l.log(slog.LevelError, msg, args) }

func (l sessionLog) log(level slog.Level, msg string, args []any) {
	s := l.s
	ctx := context.Background()
	if !s.srv.log.Enabled(ctx, level) {
		return
	}
	all := make([]any, 0, 10+len(args))
	all = append(all, "session", s.id, "remote", s.remote)
	if s.user.User != 0 {
		all = append(all, "user", s.user.User, "app", s.user.App)
	}
	if s.full != "" {
		all = append(all, "jid", s.full)
	}
	s.srv.log.Log(ctx, level, msg, append(all, args...)...)
}

func newStreamID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// serve runs the session until the stream ends. A panic ends only this
// session. When the client resumes an earlier stream (XEP-0198), the reader
// goes on as that session.
func (s *Session) serve(ctx context.Context) {
	for cur := s; cur != nil; {
		cur = cur.run(ctx)
	}
}

// endKind is how a stream ended.
type endKind int

const (
	endClean  endKind = iota // the client closed it, or the server sent a stream error
	endBroken                // the connection failed: a resumable session waits
)

// run reads the stream until it ends and returns the session to continue
// with after a resumption, or nil.
func (s *Session) run(ctx context.Context) *Session {
	s.markRead()
	if s.bound {
		s.tr.SetReadTimeout(s.srv.cfg.PingInterval + s.srv.cfg.PingTimeout)
	} else {
		s.tr.SetReadTimeout(s.srv.cfg.NegotiationTimeout)
	}
	if s.tr.TLS() != nil {
		s.secure = true
	}
	return s.read(ctx, time.Now().Add(s.srv.cfg.NegotiationTimeout))
}

// handOverAfter is how long a bound session's reader waits for input itself
// before awaitInput takes over: a session that sends more often keeps its
// reader (starting a goroutine and growing its stack again for each stanza
// cost a tenth of the server's CPU at 100 stanzas/s per session).
const handOverAfter = time.Second

// awaitInput is a bound session's reader while the stream is idle: a fresh
// goroutine that waits for input with nothing else on its stack, then reads
// on (idle.go). The goroutine that handed over has ended, and the collector
// freed the stack it had grown.
func (s *Session) awaitInput(ctx context.Context, w idleWaiter) {
	defer s.srv.wg.Done()
	w.Wait()
	for cur := s.read(ctx, time.Time{}); cur != nil; {
		cur = cur.run(ctx)
	}
}

// read handles the stream's input until it ends, returning the session to
// continue with after a resumption, or until it is idle and awaitInput has
// taken over, returning nil. deadline bounds the negotiation.
func (s *Session) read(ctx context.Context, deadline time.Time) (next *Session) {
	how := endClean
	handedOver := false
	defer func() {
		if r := recover(); r != nil {
			s.srv.metrics.panics.Add(1)
			s.log.Error("panic while serving a session", "panic", r, "stack", string(debug.Stack()))
			s.deliverPendingAtEnd(ctx) // answered before the stream error
			s.closeWith(streamErr("internal-server-error", ""), true)
			how, next, handedOver = endClean, nil, false
		}
		if next != nil || handedOver {
			return // (nothing was pending: see the loop)
		}
		s.deliverPendingAtEnd(ctx)
		if how == endBroken && s.resumable() {
			s.detach()
			return
		}
		s.cleanup()
	}()
	w, canHandOver := s.tr.(idleWaiter)
	for {
		if len(s.pending) > 0 && !s.readyNext() {
			s.deliverPending(ctx)
		}
		if s.cut.Load() {
			// The server ended the stream (the account was deleted, the
			// client did not read): what the client sent after is not acted
			// on, even when it was read already. What is pending was begun
			// before and is delivered (the deferred function).
			return nil
		}
		if !s.bound && time.Now().After(deadline) {
			s.fail(streamErr("connection-timeout", "negotiation took too long"))
			return nil
		}
		if canHandOver && s.bound && w.Idle() {
			if w.WaitBriefly(handOverAfter) {
				continue // input, or a failure that Next reports
			}
			handedOver = true
			s.srv.wg.Add(1)
			go s.awaitInput(ctx, w)
			return nil
		}
		ev, err := s.tr.Next()
		if err != nil {
			s.deliverPendingAtEnd(ctx) // answered before the stream error
			how = s.readError(err)
			return nil
		}
		s.markRead()
		switch ev.Kind {
		case stanza.KindOpen:
			if err := s.open(ev.Element); err != nil {
				s.deliverPendingAtEnd(ctx)
				s.fail(err)
				return nil
			}
		case stanza.KindClose:
			s.deliverPendingAtEnd(ctx) // answered before the stream ends
			s.closeWith(nil, false)
			return nil
		case stanza.KindElement:
			if !s.headerSent {
				s.deliverPendingAtEnd(ctx) // (none: a bound session sent its header)
				s.fail(streamErr("not-well-formed", "stanza before the stream header"))
				return nil
			}
			if err := s.element(ctx, ev.Element); err != nil {
				var r errResumed
				if errors.As(err, &r) {
					return r.s
				}
				s.deliverPendingAtEnd(ctx) // answered before the stream error
				s.fail(err)
				return nil
			}
		}
	}
}

// throttle waits for wait, the rate limiter's answer, or less once the
// session is closing (a shutdown, say, does not wait for a slowed-down
// sender) or ctx ends.
func (s *Session) throttle(ctx context.Context, wait time.Duration) {
	const step = 100 * time.Millisecond // how soon a close is noticed
	for wait > 0 {
		s.qmu.Lock()
		closing := s.closing
		s.qmu.Unlock()
		if closing {
			return
		}
		d := min(wait, step)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		wait -= d
	}
}

func (s *Session) markRead() {
	s.lastRead.Store(time.Now().UnixNano())
	s.pinged.Store(false)
}

// readError ends the stream after a read failure, with the stream error the
// failure calls for, and says whether the connection broke (rather than the
// client misbehaving).
func (s *Session) readError(err error) endKind {
	var syn *stanza.SyntaxError
	var se *StreamError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		s.fail(se)
	case errors.Is(err, stanza.ErrTooLarge):
		s.srv.metrics.tooLarge.Add(1)
		s.fail(streamErr("policy-violation", fmt.Sprintf("stanza larger than %d bytes", s.srv.cfg.MaxStanzaBytes)))
	case errors.Is(err, stanza.ErrRestricted):
		s.fail(streamErr("restricted-xml", ""))
	case errors.Is(err, stanza.ErrTooComplex):
		s.srv.metrics.tooLarge.Add(1)
		s.fail(streamErr("policy-violation", fmt.Sprintf("an element with more than %d attributes or %d levels of nesting",
			stanza.MaxAttrs, stanza.MaxDepth)))
	case errors.As(err, &syn):
		s.fail(streamErr("not-well-formed", syn.Msg))
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		if s.resumable() {
			return endBroken
		}
		s.fail(streamErr("connection-timeout", ""))
	default:
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) {
			s.log.Debug("read failed", "err", err)
		}
		return endBroken
	}
	return endClean
}

// fail sends a stream error and closes, sending a stream header first if the
// stream has none yet (RFC 6120 §4.9.1.1).
func (s *Session) fail(err error) {
	var se *StreamError
	if !errors.As(err, &se) {
		s.log.Error("closing the session on an internal error", "err", err)
		se = streamErr("internal-server-error", "")
	} else {
		s.log.Debug("stream error", "condition", se.Condition, "text", se.Text)
	}
	if !s.headerSent {
		s.headerSent = true
		s.tr.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
		s.tr.Header(s.id, s.srv.cfg.Domain, nil)
	}
	s.closeWith(se, false)
}

// writeNow writes during negotiation, before the session is visible to
// anyone else (so nothing else writes concurrently).
func (s *Session) writeNow(el *stanza.Element) error {
	s.tr.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
	return s.tr.Write([][]byte{el.AppendXML(nil, "")})
}

// open handles a stream header and answers with ours and the features.
// open answers a stream header with the server's, and the features in the
// same write; a header it refuses gets the server's header and a stream
// error (fail).
func (s *Session) open(h *stanza.Element) error {
	if s.tr.WebSocket() {
		if h.Name != "open" || h.Space != stanza.NSFraming {
			return streamErr("invalid-namespace", "")
		}
	} else if h.Name != "stream" || h.Space != stanza.NSStream {
		return streamErr("invalid-namespace", "")
	} else if s.tr.DefaultNS() != stanza.NSClient {
		return streamErr("invalid-namespace", "the default namespace must be jabber:client")
	}
	if to := h.Attr("to"); to != "" && !strings.EqualFold(strings.TrimSuffix(to, "."), s.srv.cfg.Domain) {
		return streamErr("host-unknown", "this server serves "+s.srv.cfg.Domain)
	}
	if v := h.Attr("version"); v == "" || v[0] < '1' {
		return streamErr("unsupported-version", "XMPP 1.0 is required")
	}
	if s.bound {
		return streamErr("policy-violation", "stream restart after bind")
	}
	s.headerSent = true
	s.tr.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
	// Each stream (after STARTTLS and SASL restarts too) gets its own id.
	return s.tr.Header(newStreamID(), s.srv.cfg.Domain, s.features().AppendXML(nil, ""))
}

func (s *Session) features() *stanza.Element {
	f := stanza.New("features", stanza.NSStream)
	switch {
	case !s.authenticated:
		canTLS := !s.secure && !s.tr.WebSocket() && s.srv.tlsConfig != nil
		if canTLS {
			st := stanza.New("starttls", nsTLS)
			if s.srv.cfg.RequireTLS {
				st.Append(stanza.New("required", nsTLS))
			}
			f.Append(st)
		}
		if !canTLS || !s.srv.cfg.RequireTLS {
			m := stanza.New("mechanisms", nsSASL)
			for _, name := range mechanisms {
				m.Append(stanza.New("mechanism", nsSASL).AppendText(name))
			}
			f.Append(m)
		}
	default:
		f.Append(stanza.New("bind", nsBind))
		f.Append(stanza.New("sm", nsSM))
		f.Append(stanza.New("session", nsSession).Append(stanza.New("optional", nsSession)))
		f.Append(stanza.New("ver", nsRosterV))
		f.Append(stanza.New("csi", nsCSI))
	}
	return f
}

// element handles one top-level element.
func (s *Session) element(ctx context.Context, el *stanza.Element) error {
	switch {
	case !s.authenticated:
		return s.negotiate(ctx, el)
	case !s.bound:
		if el.Name == "iq" && el.Space == stanza.NSClient {
			return s.bindIQ(ctx, el)
		}
		if el.Space == nsSM && el.Name == "resume" {
			return s.resume(el)
		}
		if el.Space == nsSM && el.Name == "enable" {
			return s.smFailed(stanzaErr(errCancel, "unexpected-request", "bind a resource first"))
		}
		return streamErr("not-authorized", "bind a resource first")
	}
	if (el.Name != "message" || el.Space != stanza.NSClient) && (el.Name != "a" || el.Space != nsSM) {
		// Only a message may overtake the messages pending (pipeline.go):
		// Server.message decides whether this one does. So may an ack
		// (<a/>), which only trims what is kept for resumption and sends
		// nothing; a busy client acks every few stanzas it gets, and would
		// split every batch. (A malformed <a/> ends the stream, after the
		// pending messages: read.)
		s.deliverPending(ctx)
	}
	if el.Space == nsSM {
		return s.smElement(el)
	}
	if el.Space == stanza.NSClient {
		s.countInbound()
	}
	if err := s.awaitQueue(ctx); err != nil {
		return err
	}
	now := time.Now()
	wait := s.bucket.take(now, 1, s.srv.cfg.StanzaRate, float64(s.srv.cfg.StanzaBurst))
	if rate := s.srv.cfg.ByteRate; rate > 0 {
		wait = max(wait, s.bytes.take(now, float64(s.tr.LastSize()), float64(rate), float64(s.srv.cfg.byteBurst())))
	}
	if wait > 0 {
		s.deliverPending(ctx) // not held while the sender is slowed down
		s.srv.metrics.throttled.Add(1)
		s.throttle(ctx, wait)
	}
	s.srv.metrics.stanzasIn.Add(1)
	if el.Space == nsCSI && (el.Name == "active" || el.Name == "inactive") {
		s.setActive(el.Name == "active")
		return nil
	}
	return s.srv.handle(ctx, s, el)
}

// negotiate handles STARTTLS and SASL.
func (s *Session) negotiate(ctx context.Context, el *stanza.Element) error {
	switch {
	case el.Space == nsTLS && el.Name == "starttls":
		if s.secure || s.tr.WebSocket() || s.srv.tlsConfig == nil {
			return streamErr("policy-violation", "STARTTLS is not available")
		}
		if err := s.writeNow(stanza.New("proceed", nsTLS)); err != nil {
			return err
		}
		if err := s.tr.StartTLS(s.srv.tlsConfig, s.srv.cfg.NegotiationTimeout); err != nil {
			var se *StreamError
			if errors.As(err, &se) {
				return se
			}
			s.log.Debug("TLS handshake failed", "err", err)
			return io.EOF
		}
		s.secure = true
		s.headerSent = false
		return nil
	case el.Space == nsSASL:
		if !s.secure && s.srv.cfg.RequireTLS && !s.tr.WebSocket() {
			return streamErr("policy-violation", "STARTTLS is required before authentication")
		}
		return s.saslElement(ctx, el)
	}
	return streamErr("not-authorized", "authenticate first")
}

func (s *Session) saslElement(ctx context.Context, el *stanza.Element) error {
	var (
		in  []byte
		err error
	)
	switch el.Name {
	case "auth":
		if s.sasl != nil {
			return s.saslFail(&saslFailure{"malformed-request", "an authentication is already in progress"})
		}
		s.saslMech = el.Attr("mechanism")
		// Before the exchange reads the account: a deletion from now on
		// makes bind check the account again.
		s.authGen = s.srv.usersEnded.Load()
		ex, err := newExchange(s.saslMech, s.srv.accounts, s.srv.cfg.Domain, s.srv.fakeSalt, s.srv.limiter.admit)
		if err != nil {
			return s.saslFail(errBadMechanism)
		}
		s.sasl = ex
	case "response":
		if s.sasl == nil {
			return s.saslFail(&saslFailure{"malformed-request", "no authentication in progress"})
		}
	case "abort":
		s.sasl = nil
		return s.writeNow(stanza.New("failure", nsSASL).Append(stanza.New("aborted", nsSASL)))
	default:
		return streamErr("unsupported-stanza-type", "")
	}
	if txt := strings.TrimSpace(el.Content()); txt != "" && txt != "=" {
		if in, err = base64.StdEncoding.DecodeString(txt); err != nil {
			return s.saslFail(errEncoding)
		}
	}
	out, done, err := s.sasl.Step(ctx, in)
	if err != nil {
		return s.saslFail(err)
	}
	if !done {
		c := stanza.New("challenge", nsSASL)
		if len(out) > 0 {
			c.AppendText(base64.StdEncoding.EncodeToString(out))
		}
		return s.writeNow(c)
	}
	s.user = s.sasl.User()
	if err := s.srv.limiter.allow(ctx, s.ip, s.user, true); err != nil {
		return err
	}
	s.sasl = nil
	s.authenticated = true
	s.unauthed()
	success := stanza.New("success", nsSASL)
	if len(out) > 0 {
		success.AppendText(base64.StdEncoding.EncodeToString(out))
	}
	if err := s.writeNow(success); err != nil {
		return err
	}
	s.srv.metrics.logins.Add(1)
	s.headerSent = false
	s.tr.Restart()
	return nil
}

// saslFail answers a failed step. Authentication failures are slowed down
// per address and per user; other errors end the stream.
func (s *Session) saslFail(err error) error {
	var f *saslFailure
	if !errors.As(err, &f) {
		return err
	}
	user := UserRef{}
	if s.sasl != nil {
		user = s.sasl.User()
	}
	s.sasl = nil
	switch {
	case f == errNotAuthorized:
		s.srv.metrics.authFailures.Add(1)
		s.authFailures++
		s.log.Info("authentication failed", "mechanism", s.saslMech)
		if err := s.srv.limiter.allow(context.Background(), s.ip, user, false); err != nil {
			return err
		}
	case f.condition == "temporary-auth-failure":
		// Refused unchecked (the user's wait was not over): not a
		// failure of the user's, but the stream gets no more tries.
		s.authFailures++
	}
	if err := s.writeNow(stanza.New("failure", nsSASL).Append(
		stanza.New(f.condition, nsSASL),
		stanza.New("text", nsSASL, "xml:lang", "en").AppendText(f.text),
	)); err != nil {
		return err
	}
	if s.authFailures >= 5 {
		return streamErr("policy-violation", "too many authentication failures")
	}
	return nil
}

// bindIQ handles resource binding (RFC 6120 §7) and the legacy session IQ.
func (s *Session) bindIQ(ctx context.Context, iq *stanza.Element) error {
	req := iq.Child("bind", nsBind)
	if req == nil || iq.Attr("type") != "set" {
		return streamErr("not-authorized", "bind a resource first")
	}
	resource := strings.TrimSpace(req.ChildText("resource", nsBind))
	if resource == "" {
		resource = newResource()
	}
	j := UserJID(s.user, s.srv.cfg.Domain)
	j.Resource = resource
	parsed, err := ParseJID(j.String())
	if err != nil || parsed.Resource == "" {
		return s.writeNow(errorReply(iq, stanzaErr(errModify, "bad-request", "invalid resource")))
	}
	s.jid = parsed
	s.full = parsed.String()
	s.bare = parsed.Bare()
	if err := s.srv.bind(ctx, s); err != nil {
		var se *StanzaError
		if errors.As(err, &se) {
			s.jid, s.full, s.bare = JID{}, "", JID{}
			return s.writeNow(errorReply(iq, se))
		}
		return err
	}
	s.tr.SetReadTimeout(s.srv.cfg.PingInterval + s.srv.cfg.PingTimeout)
	res := stanza.New("iq", stanza.NSClient, "type", "result", "id", iq.Attr("id"))
	res.Append(stanza.New("bind", nsBind).Append(stanza.New("jid", nsBind).AppendText(s.full)))
	s.send(res)
	return nil
}

func newResource() string {
	var b [8]byte
	rand.Read(b[:])
	return "chatd-" + hex.EncodeToString(b[:])
}

// cleanup ends a session for good: the end of the stream is written (after
// what is queued), the session leaves the router, the messages it holds that
// the client may not have are kept (see rescue), its presence becomes
// unavailable, and it leaves the server's registry.
func (s *Session) cleanup() {
	s.closeWith(nil, false)
	s.waitWriter(s.srv.cfg.WriteTimeout)
	s.tr.Close()
	if s.bound {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		mu := s.srv.deliveryLocks.lock(s.user)
		removed := s.srv.router.unbind(s)
		// Also when a new session took the resource over (a client that
		// reconnected without resuming): what this one never got
		// acknowledged goes to the user's resources or offline storage.
		bounces := s.srv.rescue(ctx, s, s.pendingMessages())
		mu.Unlock()
		s.srv.bounceRescued(ctx, bounces)
		if removed {
			s.srv.ended(s)
		}
	}
	s.srv.forget(s)
}

// queueHalfFull reports whether the session's outbound queue is more than
// half full.
func (s *Session) queueHalfFull() bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return s.queued > s.srv.cfg.MaxQueueBytes/2
}

// awaitQueue holds the reader while the session's own outbound queue is more
// than half full: a client that reads slowly is slowed down in what it may
// send (the answers to its stanzas go to that queue) instead of overflowing.
func (s *Session) awaitQueue(ctx context.Context) error {
	for {
		s.qmu.Lock()
		full := !s.closing && s.queued > s.srv.cfg.MaxQueueBytes/2
		s.qmu.Unlock()
		if !full {
			return nil
		}
		if len(s.pending) > 0 {
			s.deliverPending(ctx) // not held while the client catches up
			continue
		}
		t := time.NewTimer(s.srv.cfg.WriteTimeout)
		select {
		case <-s.drained:
			t.Stop()
		case <-t.C:
			return streamErr("policy-violation", "the client does not read")
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// tokenBucket limits a session's stanza rate.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

// take consumes n tokens and returns how long to wait before they were
// available.
func (b *tokenBucket) take(now time.Time, n, rate, burst float64) time.Duration {
	if b.last.IsZero() {
		b.tokens, b.last = burst, now
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	b.tokens -= n
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / rate * float64(time.Second))
}
