package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"chatd/xmpp/stanza"
)

// Clock: message bodies carry their send time in unix nanoseconds, taken
// from the monotonic clock (a fixed wall-clock base plus the monotonic time
// since), so a wall-clock step during a run cannot distort latencies. Sender
// and receiver share the process, hence the base.
var (
	clockBase     = time.Now()
	clockBaseUnix = clockBase.UnixNano()
)

func nowNanos() int64 { return clockBaseUnix + int64(time.Since(clockBase)) }

// pair is one sender and its receiver.
type pair struct {
	to       string // the receiver's bare JID
	snd, rcv *conn
	tokens   chan struct{} // the sender's window: one token per message it may have in flight

	// Sender side.
	sent    atomic.Int64
	bounced atomic.Int64 // error replies: the message will not arrive
	lag     *histogram   // rate mode: how late the sender was on its schedule

	// Receiver side (written by the receiver's reader only; counters are
	// atomic so the drain can watch them).
	received atomic.Int64 // distinct messages
	dups     atomic.Int64
	reorder  atomic.Int64 // arrived after a later message
	seen     []uint64     // bitset of received sequence numbers
	maxSeq   int64
	inWindow int64 // received during the measurement
	hist     *histogram
}

// phases are the run's times, fixed before any message is sent. Receivers
// read them concurrently: until they are set, no message is in the
// measurement.
type phases struct {
	start, measure, end time.Time
	measureNs, endNs    atomic.Int64
}

func (ph *phases) set(start, measure, end time.Time) {
	ph.start, ph.measure, ph.end = start, measure, end
	ph.measureNs.Store(clockBaseUnix + int64(measure.Sub(clockBase)))
	ph.endNs.Store(clockBaseUnix + int64(end.Sub(clockBase)))
}

// pairsResult is the throughput or paced-latency figure.
type pairsResult struct {
	Pairs        int      `json:"pairs"`
	Window       int      `json:"window"`
	Rate         float64  `json:"target_rate,omitempty"` // rate mode: total msgs/s asked for
	Duration     float64  `json:"duration_seconds"`
	Warmup       float64  `json:"warmup_seconds"`
	Size         int      `json:"body_bytes,omitempty"`
	History      bool     `json:"history"`
	LoginSeconds float64  `json:"login_seconds"`
	Sent         int64    `json:"sent"`
	Received     int64    `json:"received"`
	Lost         int64    `json:"lost"`
	Duplicates   int64    `json:"duplicates"`
	Reordered    int64    `json:"reordered"`
	Bounced      int64    `json:"bounced"`
	ExactlyOnce  bool     `json:"exactly_once"`
	Delivered    int64    `json:"delivered_in_window"`
	MsgsPerSec   float64  `json:"delivered_per_second"`
	Latency      latency  `json:"latency"`
	SenderLag    *latency `json:"sender_lag,omitempty"`
	// CPU is measured over the measurement window, per delivered message.
	CPU *cpuReport `json:"cpu,omitempty"`
}

// pairs runs the pairs (as fast as the window allows) and rate (paced)
// modes.
func (b *bench) pairs(ctx context.Context) (*pairsResult, error) {
	o := b.o
	paced := o.mode == "rate"
	res := &pairsResult{Pairs: o.pairs, Window: o.window, Duration: o.duration.Seconds(), Warmup: o.warmup.Seconds(),
		Size: o.size, History: o.history}
	if paced {
		res.Rate = o.rate
	}
	// The pairs and their handlers exist before the logins, so that each
	// connection reads from the start; the phases are set before the first
	// message is sent.
	ps := make([]*pair, o.pairs)
	ph := &phases{}
	for i := range ps {
		p := &pair{to: b.users[2*i+1].JID, tokens: make(chan struct{}, o.window), hist: newHistogram(), lag: newHistogram()}
		for range o.window {
			p.tokens <- struct{}{}
		}
		ps[i] = p
	}
	loginStart := time.Now()
	conns, _, err := b.openAll(ctx, b.users, true, o.mode, func(i int) func(*stanza.Element) {
		if i%2 == 0 {
			return ps[i/2].senderReply
		}
		return ps[i/2].receive(ph)
	})
	if err != nil {
		return nil, err
	}
	defer closeAll(conns, 5*time.Second)
	for _, c := range conns {
		if c == nil {
			n, first := b.errs.get()
			return nil, fmt.Errorf("%d of %d logins failed; first: %s", n, len(conns), first)
		}
	}
	res.LoginSeconds = time.Since(loginStart).Seconds()
	for i, p := range ps {
		p.snd, p.rcv = conns[2*i], conns[2*i+1]
	}
	start := time.Now().Add(10 * time.Millisecond)
	ph.set(start, start.Add(o.warmup), start.Add(o.warmup+o.duration))

	stop := make(chan struct{})
	stopTimer := time.AfterFunc(time.Until(ph.end), func() { close(stop) })
	defer stopTimer.Stop()
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if paced {
				interval := max(time.Duration(float64(o.pairs)/o.rate*float64(time.Second)), time.Nanosecond)
				offset := interval * time.Duration(i) / time.Duration(o.pairs)
				err = p.sendPaced(ctx, stop, ph, interval, offset, o)
			} else {
				err = p.sendFast(ctx, stop, ph, o)
			}
			if err != nil && ctx.Err() == nil {
				b.errs.add(fmt.Errorf("sender %d: %w", i, err))
			}
		}()
	}
	cpu := cpuWindow{pid: o.pid}
	if sleepCtx(ctx, time.Until(ph.measure)) == nil {
		cpu.begin()
		if sleepCtx(ctx, time.Until(ph.end)) == nil {
			cpu.end()
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Drain: wait (polling, bounded) for the messages in flight.
	deadline := time.Now().Add(o.drain)
	for {
		pending := int64(0)
		for _, p := range ps {
			pending += p.sent.Load() - p.received.Load() - p.bounced.Load()
		}
		if pending <= 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	closeAll(conns, 5*time.Second)

	all, lag := newHistogram(), newHistogram()
	for _, p := range ps {
		for who, c := range map[string]*conn{"sender": p.snd, "receiver": p.rcv} {
			if c.err != nil && !isEnd(c.err) {
				b.errs.add(fmt.Errorf("%s: %w", who, c.err))
			}
		}
		res.Sent += p.sent.Load()
		res.Received += p.received.Load()
		res.Duplicates += p.dups.Load()
		res.Reordered += p.reorder.Load()
		res.Bounced += p.bounced.Load()
		res.Delivered += p.inWindow
		all.merge(p.hist)
		lag.merge(p.lag)
	}
	res.Lost = res.Sent - res.Received - res.Bounced
	res.ExactlyOnce = res.Lost == 0 && res.Duplicates == 0 && res.Bounced == 0
	res.MsgsPerSec = float64(res.Delivered) / o.duration.Seconds()
	res.Latency = all.summary()
	res.CPU = cpu.report(res.Delivered)
	if paced {
		l := lag.summary()
		res.SenderLag = &l
	}
	return res, nil
}

func isEnd(err error) bool {
	return err == io.EOF || strings.Contains(err.Error(), "use of closed network connection")
}

// appendMessage appends one message stanza: the body is "<seq> <sent unix
// ns>", padded to size.
func (p *pair) appendMessage(buf []byte, seq int64, o *options) []byte {
	buf = append(buf, "<message type='chat' to='"...)
	buf = append(buf, p.to...)
	buf = append(buf, "'><body>"...)
	start := len(buf)
	buf = strconv.AppendInt(buf, seq, 10)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, nowNanos(), 10)
	if pad := o.size - (len(buf) - start); pad > 0 {
		buf = append(buf, ' ')
		for range pad - 1 {
			buf = append(buf, 'x')
		}
	}
	buf = append(buf, "</body>"...)
	if o.history {
		buf = append(buf, "<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams>"...)
	}
	return append(buf, "</message>"...)
}

// writeBatch writes k messages and flushes them.
func (p *pair) writeBatch(buf []byte, k int, o *options) ([]byte, error) {
	c := p.snd
	c.wmu.Lock()
	defer c.wmu.Unlock()
	w := c.writer()
	for range k {
		buf = p.appendMessage(buf[:0], p.sent.Load(), o)
		if _, err := w.Write(buf); err != nil {
			return buf, err
		}
		p.sent.Add(1)
	}
	return buf, w.Flush()
}

// take takes up to k tokens: the first one blocking, the others if they are
// there. It returns 0 when stop or ctx ends first.
func (p *pair) take(ctx context.Context, stop <-chan struct{}, k int) int {
	select {
	case <-p.tokens:
	case <-stop:
		return 0
	case <-ctx.Done():
		return 0
	}
	n := 1
	for n < k {
		select {
		case <-p.tokens:
			n++
		default:
			return n
		}
	}
	return n
}

// sendFast sends whenever the window has room, as many as it has room for
// per write.
func (p *pair) sendFast(ctx context.Context, stop <-chan struct{}, ph *phases, o *options) error {
	buf := make([]byte, 0, 256+o.size)
	if err := sleepCtx(ctx, time.Until(ph.start)); err != nil {
		return nil
	}
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		k := p.take(ctx, stop, o.window)
		if k == 0 {
			return nil
		}
		var err error
		if buf, err = p.writeBatch(buf, k, o); err != nil {
			return err
		}
	}
}

// sendPaced sends on a fixed schedule, one message per interval starting at
// offset (so that senders are spread over the interval), writing all the
// messages that are due at each wake-up; the window still bounds what is in
// flight. How late each write is on the schedule is recorded.
func (p *pair) sendPaced(ctx context.Context, stop <-chan struct{}, ph *phases, interval, offset time.Duration, o *options) error {
	buf := make([]byte, 0, 256+o.size)
	next := ph.start.Add(offset)
	t := time.NewTimer(time.Until(next))
	defer t.Stop()
	for {
		now := time.Now()
		if wait := next.Sub(now); wait > 0 {
			t.Reset(wait)
			select {
			case <-t.C:
			case <-stop:
				return nil
			case <-ctx.Done():
				return nil
			}
			continue
		}
		due := int(now.Sub(next)/interval) + 1
		if !now.Before(ph.measure) {
			p.lag.record(now.Sub(next))
		}
		k := p.take(ctx, stop, due)
		if k == 0 {
			return nil
		}
		var err error
		if buf, err = p.writeBatch(buf, k, o); err != nil {
			return err
		}
		next = next.Add(time.Duration(k) * interval)
	}
}

// senderReply handles what the sender's stream receives: an error reply
// means a message will never arrive, which frees its place in the window.
func (p *pair) senderReply(el *stanza.Element) {
	if el.Name == "message" && el.Attr("type") == "error" {
		p.bounced.Add(1)
		select {
		case p.tokens <- struct{}{}:
		default:
		}
	}
}

// receive returns the receiver's handler: it checks every message arrives
// exactly once, records its latency when it arrives during the measurement,
// and frees a place in the sender's window.
func (p *pair) receive(ph *phases) func(*stanza.Element) {
	return func(el *stanza.Element) {
		if el.Name != "message" || el.Attr("type") == "error" {
			return
		}
		now := nowNanos()
		seqText, rest, ok := strings.Cut(el.ChildText("body", ""), " ")
		if !ok {
			return
		}
		tsText, _, _ := strings.Cut(rest, " ")
		seq, err1 := strconv.ParseInt(seqText, 10, 64)
		ts, err2 := strconv.ParseInt(tsText, 10, 64)
		if err1 != nil || err2 != nil || seq < 0 {
			return
		}
		word, bit := seq/64, uint64(1)<<(seq%64)
		for int64(len(p.seen)) <= word {
			p.seen = append(p.seen, 0)
		}
		if p.seen[word]&bit != 0 {
			p.dups.Add(1)
			return
		}
		p.seen[word] |= bit
		if seq < p.maxSeq {
			p.reorder.Add(1)
		}
		p.maxSeq = max(p.maxSeq, seq)
		if now >= ph.measureNs.Load() && now < ph.endNs.Load() {
			p.inWindow++
			p.hist.record(time.Duration(now - ts))
		}
		p.received.Add(1)
		select {
		case p.tokens <- struct{}{}:
		default:
		}
	}
}

func printPairs(w io.Writer, mode string, r *pairsResult) {
	what := fmt.Sprintf("%d pairs, window %d", r.Pairs, r.Window)
	if r.Rate > 0 {
		what = fmt.Sprintf("%d pairs paced to %.0f msgs/s", r.Pairs, r.Rate)
	}
	fmt.Fprintf(w, "%s: %s: %.0f msgs/s delivered over %.1fs (%.0f per sender); latency p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n",
		mode, what, r.MsgsPerSec, r.Duration, r.MsgsPerSec/float64(r.Pairs), r.Latency.P50, r.Latency.P99, r.Latency.P999, r.Latency.Max)
	fmt.Fprintf(w, "%s: sent %d, received %d, lost %d, duplicates %d, reordered %d, bounced %d: exactly once %v\n",
		mode, r.Sent, r.Received, r.Lost, r.Duplicates, r.Reordered, r.Bounced, r.ExactlyOnce)
	if r.CPU != nil {
		fmt.Fprintf(w, "%s: cpu: %s\n", mode, r.CPU.line("message"))
	}
	if r.Rate > 0 && r.MsgsPerSec < 0.95*r.Rate {
		fmt.Fprintf(w, "%s: %.0f msgs/s is short of the %.0f asked for: the server throttled the senders (chatd allows a session xmpp.stanza_rate, 500 stanzas/s by default: use more pairs) or a machine is out of CPU\n",
			mode, r.MsgsPerSec, r.Rate)
	}
	if r.SenderLag != nil {
		fmt.Fprintf(w, "%s: sender lag behind schedule p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
			mode, r.SenderLag.P50, r.SenderLag.P99, r.SenderLag.Max)
	}
}
