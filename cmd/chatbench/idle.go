package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"chatd/xmpp/stanza"
)

// errorCount counts errors and keeps the first.
type errorCount struct {
	mu    sync.Mutex
	n     int64
	first string
}

func (e *errorCount) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if e.first == "" {
		e.first = err.Error()
	}
}

func (e *errorCount) get() (int64, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n, e.first
}

// errTooManyFailures stops opening sessions against a server that refuses
// most of them.
var errTooManyFailures = errors.New("more than 100 logins failed, and more than succeeded: stopping")

// openAll logs in users[i] for each i with workers in parallel and returns
// the connections (nil where the login failed), with each login's time.
// Each connection starts reading at once with the handler handle(i) returns
// (a session that reads nothing could not answer the server's pings).
// Failures are counted in b.errs.
func (b *bench) openAll(ctx context.Context, users []account, presence bool, progress string,
	handle func(i int) func(*stanza.Element)) ([]*conn, *histogram, error) {
	conns := make([]*conn, len(users))
	var (
		next, ok, failed atomic.Int64
		mu               sync.Mutex
		hist             = newHistogram()
		wg               sync.WaitGroup
	)
	start := time.Now()
	lastReport := start
	for range min(b.o.concurrency, len(users)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(users) {
					return
				}
				if f := failed.Load(); f > 100 && f > ok.Load() {
					return
				}
				t := time.Now()
				c, err := b.d.login(ctx, users[i], "", presence)
				el := time.Since(t)
				if err != nil {
					if ctx.Err() == nil {
						b.errs.add(fmt.Errorf("%s: %w", users[i].JID, err))
					}
					failed.Add(1)
					continue
				}
				c.read(handle(i))
				conns[i] = c
				n := ok.Add(1)
				mu.Lock()
				hist.record(el)
				if progress != "" && time.Since(lastReport) >= 5*time.Second {
					lastReport = time.Now()
					fmt.Fprintf(b.stderr, "%s: %d/%d sessions open (%.0f/s)\n", progress, n, len(users),
						float64(n)/time.Since(start).Seconds())
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		closeAll(conns, time.Second)
		return nil, nil, err
	}
	if f := failed.Load(); f > 100 && f > ok.Load() {
		closeAll(conns, time.Second)
		return nil, nil, errTooManyFailures
	}
	return conns, hist, nil
}

// closeAll closes connections concurrently, waiting up to wait in all for
// the server to end their streams; what is left then is closed at once.
func closeAll(conns []*conn, wait time.Duration) {
	deadline := time.Now().Add(wait)
	var wg sync.WaitGroup
	ch := make(chan *conn)
	for range min(256, len(conns)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ch {
				c.closeBy(deadline)
			}
		}()
	}
	for _, c := range conns {
		if c != nil {
			ch <- c
		}
	}
	close(ch)
	wg.Wait()
}

// idleResult is the idle sessions figure.
type idleResult struct {
	Requested        int     `json:"requested"`
	Sessions         int     `json:"sessions"`
	Failed           int     `json:"failed"`
	Presence         bool    `json:"presence"`
	OpenSeconds      float64 `json:"open_seconds"`
	OpenPerSec       float64 `json:"open_per_second"`
	LoginTime        latency `json:"login_time"`
	Lost             int     `json:"lost_before_close"` // sessions the server ended while they were held
	RSSBeforeKiB     int64   `json:"server_rss_before_kib,omitempty"`
	RSSAfterKiB      int64   `json:"server_rss_after_kib,omitempty"`
	RSSDeltaKiB      int64   `json:"server_rss_delta_kib,omitempty"`
	RSSPerSessionKiB float64 `json:"server_rss_per_session_kib,omitempty"`
	// The whole process's RSS over the sessions: an upper bound that does
	// not depend on what the server held before the first login.
	RSSWholePerSessionKiB float64    `json:"server_rss_whole_per_session_kib,omitempty"`
	CPU                   *cpuReport `json:"cpu,omitempty"` // while opening, per session
}

// idle opens n authenticated sessions and holds them, reading the server's
// memory before and after.
func (b *bench) idle(ctx context.Context, before procSample) (*idleResult, error) {
	o := b.o
	res := &idleResult{Requested: len(b.users), Presence: o.presence}
	cpu := cpuWindow{pid: o.pid}
	cpu.begin()
	start := time.Now()
	conns, hist, err := b.openAll(ctx, b.users, o.presence, "idle", func(int) func(*stanza.Element) { return nil })
	if err != nil {
		return nil, err
	}
	res.OpenSeconds = time.Since(start).Seconds()
	cpu.end()
	for _, c := range conns {
		if c != nil {
			res.Sessions++
		}
	}
	defer closeAll(conns, 30*time.Second)
	res.Failed = res.Requested - res.Sessions
	res.OpenPerSec = float64(res.Sessions) / res.OpenSeconds
	res.LoginTime = hist.summary()
	res.CPU = cpu.report(int64(res.Sessions))
	if err := sleepCtx(ctx, o.settle); err != nil {
		return nil, err
	}
	if o.pid > 0 {
		after, err := sampleProc(o.pid)
		if err != nil {
			return nil, err
		}
		res.RSSBeforeKiB, res.RSSAfterKiB = before.rssKiB, after.rssKiB
		res.RSSDeltaKiB = after.rssKiB - before.rssKiB
		if res.Sessions > 0 {
			res.RSSPerSessionKiB = float64(res.RSSDeltaKiB) / float64(res.Sessions)
			res.RSSWholePerSessionKiB = float64(res.RSSAfterKiB) / float64(res.Sessions)
		}
	}
	if o.hold > 0 {
		fmt.Fprintf(b.stderr, "idle: holding %d sessions for %s\n", res.Sessions, o.hold)
		if err := sleepCtx(ctx, o.hold); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
	}
	for _, c := range conns {
		if c == nil {
			continue
		}
		select {
		case <-c.done:
			res.Lost++
			b.errs.add(fmt.Errorf("a held session ended: %v", c.err))
		default:
		}
	}
	return res, nil
}

// sleepCtx waits for d or the end of ctx.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func printIdle(w io.Writer, r *idleResult) {
	fmt.Fprintf(w, "idle: %d/%d sessions open (%d failed, %d lost while held) in %.1fs, %.0f logins/s; login time p50 %.1f ms, p99 %.1f ms\n",
		r.Sessions, r.Requested, r.Failed, r.Lost, r.OpenSeconds, r.OpenPerSec, r.LoginTime.P50, r.LoginTime.P99)
	if r.CPU != nil {
		fmt.Fprintf(w, "idle: cpu while opening: %s\n", r.CPU.line("session"))
	}
	if r.RSSAfterKiB > 0 {
		fmt.Fprintf(w, "idle: server RSS %s → %s: %+.1f MiB, %.1f KiB per idle session (the whole RSS over the sessions: %.1f KiB)\n",
			kib(r.RSSBeforeKiB), kib(r.RSSAfterKiB), float64(r.RSSDeltaKiB)/1024, r.RSSPerSessionKiB, r.RSSWholePerSessionKiB)
	}
}
