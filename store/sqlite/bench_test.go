package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"chatd/history"
	"chatd/internal/oid"
	"chatd/store/sqlite"
)

// The history benchmarks of BENCHMARKS.md, on a store the size the issue
// names: 1,000,000 messages in 10,000 dialogs, and one user with 1,000
// dialogs. Building it takes a few minutes; it is built once per run.
//
//	go test -run '^$' -bench 'History' -benchtime 2000x -timeout 60m ./store/sqlite
const (
	benchDialogs  = 10000
	benchMessages = 1000000
	busyUser      = 1 // occupant of 1,000 dialogs
)

var bench struct {
	once    sync.Once
	db      *sqlite.DB
	dir     string
	dialogs []string
	err     error
}

func benchStore(b *testing.B) (*sqlite.DB, []string) {
	b.Helper()
	bench.once.Do(func() {
		dir, err := mkdirTemp()
		if err != nil {
			bench.err = err
			return
		}
		bench.dir = dir
		db, err := sqlite.Open(filepath.Join(dir, "bench.db"))
		if err != nil {
			bench.err = err
			return
		}
		bench.db = db
		bench.err = populate(db)
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	// The garbage of building the store is not the benchmark's: collect it
	// before the timed loop rather than during it.
	runtime.GC()
	return bench.db, bench.dialogs
}

// freshHistory is the history store of a new, empty database, closed when
// b ends.
func freshHistory(b *testing.B) history.Store {
	b.Helper()
	db, err := sqlite.Open(filepath.Join(b.TempDir(), "chatd.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db.History()
}

func mkdirTemp() (string, error) { return os.MkdirTemp("", "chatd-bench-") }

// populate fills the store: dialogs 0-999 are private dialogs of busyUser
// with users 2…1001, the rest private dialogs between other users; each
// dialog gets 100 messages from both sides.
func populate(db *sqlite.DB) error {
	ctx := context.Background()
	h := db.History()
	start := time.Unix(1700000000, 0).UTC()
	for i := range benchDialogs {
		a, b := int64(busyUser), int64(2+i)
		if i >= 1000 {
			a, b = int64(100000+2*i), int64(100001+2*i)
		}
		d := &history.Dialog{ID: oid.New(start.Add(time.Duration(i) * time.Second)), AppID: 1, Type: history.Private,
			OwnerID: a, Occupants: []int64{a, b}, CreatedAt: start, UpdatedAt: start}
		if err := h.CreateDialog(ctx, d); err != nil {
			return err
		}
		bench.dialogs = append(bench.dialogs, d.ID)
	}
	per := benchMessages / benchDialogs
	batch := make([]*history.Message, 0, 1000)
	for j := range per {
		for i, id := range bench.dialogs {
			a, b := int64(busyUser), int64(2+i)
			if i >= 1000 {
				a, b = int64(100000+2*i), int64(100001+2*i)
			}
			sender, recipient := a, b
			if j%2 == 1 {
				sender, recipient = b, a
			}
			at := start.Add(time.Duration(j) * time.Minute)
			batch = append(batch, &history.Message{ID: oid.New(at), AppID: 1, DialogID: id, Text: "a message of a usual length, with a few words",
				DateSent: at.Unix(), SenderID: sender, RecipientID: recipient, Recipients: []int64{recipient},
				CreatedAt: at, UpdatedAt: at})
			if len(batch) == cap(batch) {
				if errs := h.SaveMessages(ctx, batch); errs != nil {
					return fmt.Errorf("populating: %v", errs[0])
				}
				batch = batch[:0]
			}
		}
	}
	if errs := h.SaveMessages(ctx, batch); errs != nil {
		return fmt.Errorf("populating: %v", errs[0])
	}
	return nil
}

// reportPercentiles reports p50 and p99 of the latencies in ms, and the
// process's CPU time per operation since cpu0 (steadier than latencies on
// a shared machine).
func reportPercentiles(b *testing.B, lat []time.Duration, cpu0 time.Duration) {
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(len(lat)), "cpu-ms/op")
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// A page of 100 messages of one dialog, newest first, as an app shows them.
func BenchmarkHistoryMessagePage(b *testing.B) {
	db, dialogs := benchStore(b)
	h := db.History()
	ctx := context.Background()
	q := history.MessageQuery{Sort: "date_sent", Desc: true, Limit: 100}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		d := dialogs[(i*7919)%len(dialogs)]
		t0 := time.Now()
		msgs, err := h.FindMessages(ctx, 1, d, busyUser, q)
		lat = append(lat, time.Since(t0))
		if err != nil || len(msgs) != 100 {
			b.Fatalf("page: %d %v", len(msgs), err)
		}
	}
	reportPercentiles(b, lat, cpu0)
}

// The dialog list of a user with 1,000 dialogs: the first page of 100,
// newest last message first, with unread counts.
func BenchmarkHistoryDialogList(b *testing.B) {
	db, _ := benchStore(b)
	h := db.History()
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		ds, total, err := h.FindDialogs(ctx, 1, busyUser, history.DialogQuery{Limit: 100})
		lat = append(lat, time.Since(t0))
		if err != nil || len(ds) != 100 || total != 1000 {
			b.Fatalf("list: %d of %d, %v", len(ds), total, err)
		}
	}
	reportPercentiles(b, lat, cpu0)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bench.db != nil {
		bench.db.Close()
	}
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
	os.Exit(code)
}

// A user's marks in a large group: a group of 50 with 2,000 messages, all
// read by everyone, then the operations that read one user's marks of the
// dialog. Renaming the group recounts every occupant's unread messages.
//
//	go test -run '^$' -bench GroupMarks -benchtime 200x ./store/sqlite
func BenchmarkGroupMarks(b *testing.B) {
	h := freshHistory(b)
	ctx := context.Background()
	start := time.Unix(1700000000, 0).UTC()
	var occupants []int64
	for u := range 50 {
		occupants = append(occupants, int64(u+1))
	}
	d := &history.Dialog{ID: oid.New(start), AppID: 1, Type: history.Group, OwnerID: 1, Occupants: occupants,
		Name: "group", RoomName: "group", CreatedAt: start, UpdatedAt: start}
	if err := h.CreateDialog(ctx, d); err != nil {
		b.Fatal(err)
	}
	var last string
	for j := range 40 {
		batch := make([]*history.Message, 50)
		for k := range batch {
			at := start.Add(time.Duration(j*50+k) * time.Second)
			batch[k] = &history.Message{ID: oid.New(at), AppID: 1, DialogID: d.ID, Text: "a message", DateSent: at.Unix(),
				SenderID: 1, Recipients: occupants[1:], CreatedAt: at, UpdatedAt: at}
			last = batch[k].ID
		}
		if errs := h.SaveMessages(ctx, batch); errs != nil {
			b.Fatal(errs)
		}
	}
	for _, u := range occupants[1:] {
		if _, err := h.MarkMessages(ctx, 1, d.ID, u, nil, history.Read); err != nil {
			b.Fatal(err)
		}
	}
	for _, op := range []struct {
		name string
		do   func(i int) error
	}{
		{"rename", func(i int) error { d.Name = fmt.Sprint("group ", i); return h.UpdateDialog(ctx, d) }},
		{"mark-all-read", func(int) error { _, err := h.MarkMessages(ctx, 1, d.ID, 5, nil, history.Read); return err }},
		{"marker", func(int) error { _, err := h.MarkUpTo(ctx, 1, d.ID, 6, last, history.Read); return err }},
		{"recount", func(int) error { _, err := h.RecountUnread(ctx, 1, d.ID, 8); return err }},
	} {
		b.Run(op.name, func(b *testing.B) {
			for i := range b.N {
				if err := op.do(i); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
