package main

import (
	"math/bits"
	"time"
)

// histogram counts durations in log-linear buckets, as HdrHistogram does:
// below 2^subBits nanoseconds every value has its own bucket; above, each
// power of two is split into 2^(subBits-1) equal buckets, so a reported
// percentile is within 1/2^(subBits-1) (0.8%) of the true value. Values
// above maxTracked land in the last bucket; the exact maximum is kept
// aside. A histogram is not safe for concurrent use: each goroutine records
// into its own, and they are merged at the end.
type histogram struct {
	counts []uint64
	n      uint64
	sum    uint64
	max    uint64
}

const (
	subBits    = 8
	half       = 1 << (subBits - 1)
	maxShift   = 36 - subBits // 2^36 ns ≈ 69 s is the largest bucketed value
	numBuckets = (maxShift + 2) * half
)

// newHistogram returns an empty histogram; its buckets (30 KiB) are
// allocated at the first value.
func newHistogram() *histogram { return &histogram{} }

// bucket returns the index of v's bucket.
func bucket(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	shift := bits.Len64(v) - subBits
	if shift > maxShift {
		return numBuckets - 1
	}
	top := v >> shift // in [half, 2·half)
	return (shift+1)*half + int(top) - half
}

// bucketHigh returns the largest value bucket i holds.
func bucketHigh(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	shift := i/half - 1
	top := uint64(i%half + half)
	return (top+1)<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	v := uint64(max(d, 0))
	if h.counts == nil {
		h.counts = make([]uint64, numBuckets)
	}
	h.counts[bucket(v)]++
	h.n++
	h.sum += v
	h.max = max(h.max, v)
}

func (h *histogram) merge(o *histogram) {
	if h.counts == nil && o.counts != nil {
		h.counts = make([]uint64, numBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the value below which a fraction q of the recorded
// values fall (the upper end of that bucket, never above the maximum).
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketHigh(i), h.max))
		}
	}
	return time.Duration(h.max)
}

func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}

// latency is the summary of a histogram that the results report.
type latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (h *histogram) summary() latency {
	return latency{
		Count: h.n,
		Mean:  ms(h.mean()),
		P50:   ms(h.quantile(0.50)),
		P90:   ms(h.quantile(0.90)),
		P99:   ms(h.quantile(0.99)),
		P999:  ms(h.quantile(0.999)),
		Max:   ms(time.Duration(h.max)),
	}
}
