package sqlite_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"chatd/history"
	"chatd/internal/oid"
)

// The store's share of recording (issue 4's throughput figure): group
// commits of 200 messages, one per private dialog, as 200 senders that each
// wait for their message to be stored produce them (per-dialog=1), and of
// 1,000, five per dialog, as the same senders with several messages in
// flight each produce them (per-dialog=5). The figure is the writer's time
// per message, which bounds recording throughput on SQLite's one writer.
//
//	go test -run '^$' -bench SaveMessages -benchtime 100x ./store/sqlite
func BenchmarkSaveMessages(b *testing.B) {
	for _, k := range []int{1, 5} {
		b.Run(fmt.Sprintf("per-dialog=%d", k), func(b *testing.B) { benchmarkSaveMessages(b, k) })
	}
}

func benchmarkSaveMessages(b *testing.B, perDialog int) {
	h := freshHistory(b)
	ctx := context.Background()
	const senders = 200
	start := time.Unix(1700000000, 0).UTC()
	dialogs := make([]*history.Dialog, senders)
	for i := range dialogs {
		a, c := int64(1+2*i), int64(2+2*i)
		d := &history.Dialog{ID: oid.New(start), AppID: 1, Type: history.Private, OwnerID: a,
			Occupants: []int64{a, c}, CreatedAt: start, UpdatedAt: start}
		if err := h.CreateDialog(ctx, d); err != nil {
			b.Fatal(err)
		}
		dialogs[i] = d
	}
	batch := make([]*history.Message, senders*perDialog)
	cpu0 := cpuTime()
	b.ResetTimer()
	for n := range b.N {
		at := start.Add(time.Duration(n) * time.Second / 10)
		for j := range perDialog {
			for i, d := range dialogs {
				turn := n*perDialog + j
				sender, recipient := d.Occupants[turn%2], d.Occupants[1-turn%2]
				batch[j*senders+i] = &history.Message{ID: oid.New(at), AppID: 1, DialogID: d.ID,
					Text: "a message of a usual length, with a few words", DateSent: at.Unix(), SenderID: sender,
					RecipientID: recipient, Recipients: []int64{recipient}, ReadIDs: []int64{sender},
					DeliveredIDs: []int64{sender}, CreatedAt: at, UpdatedAt: at}
			}
		}
		// As the history committer calls it: with a deadline.
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		errs := h.SaveMessages(sctx, batch)
		cancel()
		if errs != nil {
			b.Fatal(errs)
		}
	}
	msgs := float64(b.N * len(batch))
	b.ReportMetric(float64(b.Elapsed().Microseconds())/msgs, "µs/msg")
	// The process's CPU time, less noisy than the elapsed time on a shared
	// machine.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/msgs, "cpu-µs/msg")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
