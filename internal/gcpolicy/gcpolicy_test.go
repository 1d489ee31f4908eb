package gcpolicy

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// waitGOGC collects until the policy has set want, or fails.
func waitGOGC(t *testing.T, want func(int) bool, what string) {
	t.Helper()
	for range 200 {
		runtime.GC()
		if want(gogc()) {
			return
		}
		runtime.Gosched()
	}
	t.Fatalf("GOGC is %d after 200 collections, want %s", gogc(), what)
}

func TestLargeHeapGrowsByPercentSmallByHeadroom(t *testing.T) {
	before := gogc()
	const headroom = 16 << 20
	stop, active := Start(50, headroom)
	if !active {
		t.Fatal("not active without GOGC set")
	}
	// A live heap of 256 MiB: 50% of it is more than the headroom.
	live := make([][]byte, 256)
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	waitGOGC(t, func(p int) bool { return p == 50 }, "50 with 256 MiB live")
	runtime.KeepAlive(live)
	live = nil
	// A few MiB live: the headroom asks for far more than 50%.
	waitGOGC(t, func(p int) bool { return p > 100 }, "more than 100 with little live")
	stop()
	if got := gogc(); got != before {
		t.Errorf("after stop GOGC is %d, want the %d it was", got, before)
	}
	runtime.GC()
	if got := gogc(); got != before {
		t.Errorf("a collection after stop set GOGC to %d", got)
	}
}

func TestGOGCFromTheEnvironmentStands(t *testing.T) {
	t.Setenv("GOGC", "80")
	old := debug.SetGCPercent(80)
	defer debug.SetGCPercent(old)
	stop, active := Start(50, 0)
	defer stop()
	if active {
		t.Fatal("active although GOGC is set")
	}
	runtime.GC()
	if got := gogc(); got != 80 {
		t.Errorf("GOGC is %d, want the operator's 80", got)
	}
}
