package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// loginResult is the login rate figure.
type loginResult struct {
	Concurrency int        `json:"concurrency"`
	Duration    float64    `json:"duration_seconds"`
	Logins      int64      `json:"logins"`
	Failed      int64      `json:"failed"`
	PerSec      float64    `json:"logins_per_second"`
	LoginTime   latency    `json:"login_time"`    // connect to bound resource
	CPU         *cpuReport `json:"cpu,omitempty"` // per login
}

// login has workers log in (connect, TLS, SASL, bind) and out in a loop,
// each login as the next user of the list.
func (b *bench) login(ctx context.Context) (*loginResult, error) {
	o := b.o
	res := &loginResult{Concurrency: o.concurrency}
	var (
		next, ok, failed atomic.Int64
		mu               sync.Mutex
		all              = newHistogram()
		wg               sync.WaitGroup
	)
	cpu := cpuWindow{pid: o.pid}
	cpu.begin()
	start := time.Now()
	end := start.Add(o.duration)
	for range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := newHistogram()
			defer func() {
				mu.Lock()
				all.merge(h)
				mu.Unlock()
			}()
			for ctx.Err() == nil && time.Now().Before(end) {
				u := b.users[int(next.Add(1)-1)%len(b.users)]
				t := time.Now()
				c, err := b.d.login(ctx, u, "", false)
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						b.errs.add(fmt.Errorf("%s: %w", u.JID, err))
					}
					continue
				}
				h.record(time.Since(t))
				ok.Add(1)
				c.close(5 * time.Second)
			}
		}()
	}
	wg.Wait()
	cpu.end()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	res.Duration = elapsed.Seconds()
	res.Logins, res.Failed = ok.Load(), failed.Load()
	res.PerSec = float64(res.Logins) / elapsed.Seconds()
	res.LoginTime = all.summary()
	res.CPU = cpu.report(res.Logins)
	return res, nil
}

func printLogin(w io.Writer, r *loginResult) {
	fmt.Fprintf(w, "login: %.0f logins/s over %.1fs with %d workers (%d ok, %d failed); login time p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		r.PerSec, r.Duration, r.Concurrency, r.Logins, r.Failed, r.LoginTime.P50, r.LoginTime.P99, r.LoginTime.Max)
	if r.CPU != nil {
		fmt.Fprintf(w, "login: cpu: %s\n", r.CPU.line("login"))
	}
}
