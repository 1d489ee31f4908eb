// Package gcpolicy sets the garbage collector's growth from the live heap.
//
// Go collects when the heap has grown by GOGC percent (100 by default) of
// what the last collection found live. A chat server's live heap is mostly
// what its connections keep while they wait, and that much again as room to
// grow doubles its memory per connection; a lower percentage saves it, but
// on a small heap it makes a server under message load collect constantly
// (with GOGC=50 and a thousand busy sessions the server spent a third more
// CPU per message). So the policy keeps the collector's goal at
//
//	live + max(live × percent / 100, headroom)
//
// re-set after every collection: a large, mostly idle heap grows by the
// percentage, a small busy one by at least the headroom.
package gcpolicy

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

const liveMetric = "/gc/heap/live:bytes"

// maxPercent bounds the percentage a small heap gets for its headroom.
const maxPercent = 10_000

// minLive is the live heap the goal is computed from when less is live, or
// before the first collection has measured it: the runtime's own smallest
// goal is 4 MiB at GOGC=100.
const minLive = 4 << 20

// Start applies the policy until stop is called, which gives the collector
// back the percentage it had. It does nothing, and reports false, when the
// GOGC environment variable is set: the operator's value stands.
func Start(percent int, headroom uint64) (stop func(), active bool) {
	if os.Getenv("GOGC") != "" {
		return func() {}, false
	}
	p := &policy{percent: percent, headroom: headroom, sample: []metrics.Sample{{Name: liveMetric}}}
	p.current = p.goal()
	p.previous = debug.SetGCPercent(p.current)
	p.arm()
	return p.stop, true
}

type policy struct {
	percent  int
	headroom uint64
	sample   []metrics.Sample

	mu       sync.Mutex
	stopped  bool
	previous int // the percentage before Start
	current  int
}

// sentinel is allocated for each collection to notice the next one. Its
// pointer keeps it out of the tiny allocator, whose blocks hold several
// objects and may outlive them.
type sentinel struct {
	_ *int
	_ [8]byte
}

// arm asks to be told of the next collection.
func (p *policy) arm() {
	runtime.AddCleanup(&sentinel{}, (*policy).collected, p)
}

func (p *policy) collected() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	if g := p.goal(); g != p.current {
		debug.SetGCPercent(g)
		p.current = g
	}
	p.arm()
}

// goal is the percentage that gives the live heap its room to grow.
func (p *policy) goal() int {
	metrics.Read(p.sample)
	live := uint64(minLive)
	if p.sample[0].Value.Kind() == metrics.KindUint64 {
		live = max(minLive, p.sample[0].Value.Uint64())
	}
	forHeadroom := (p.headroom*100 + live - 1) / live
	if forHeadroom > maxPercent {
		return maxPercent
	}
	return max(p.percent, int(forHeadroom))
}

func (p *policy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopped {
		p.stopped = true
		debug.SetGCPercent(p.previous)
	}
}
