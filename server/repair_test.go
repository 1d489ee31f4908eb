package server

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"chatd/store/mongo"
)

// The history repair runs once, repairDelay after the start, with the
// configured grace, and logs what it removed; Shutdown cancels it and waits
// for it.
func TestRepairHistoryInBackground(t *testing.T) {
	t.Run("runs once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var logs bytes.Buffer
			s := &Server{log: slog.New(slog.NewTextHandler(&logs, nil))}
			graces := make(chan time.Duration, 10)
			s.repairHistory(func(ctx context.Context, grace time.Duration) (mongo.RepairReport, error) {
				graces <- grace
				return mongo.RepairReport{Scanned: 40, Orphaned: 6, Read: 1, Hidden: 2}, nil
			}, 10*time.Minute)
			time.Sleep(repairDelay - time.Second)
			synctest.Wait()
			if len(graces) != 0 {
				t.Fatal("the repair ran before its delay")
			}
			time.Sleep(time.Hour)
			synctest.Wait()
			if err := s.Shutdown(context.Background()); err != nil {
				t.Error(err)
			}
			close(graces)
			var got []time.Duration
			for g := range graces {
				got = append(got, g)
			}
			if len(got) != 1 || got[0] != 10*time.Minute {
				t.Errorf("repair called with graces %v, want once with 10m", got)
			}
			for _, want := range []string{"orphaned=6", "read=1", "hidden=2", "scanned=40"} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("log %q lacks %s", logs.String(), want)
				}
			}
		})
	})
	t.Run("shutdown before", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := &Server{log: slog.New(slog.DiscardHandler)}
			var ran atomic.Bool
			s.repairHistory(func(ctx context.Context, grace time.Duration) (mongo.RepairReport, error) {
				ran.Store(true)
				return mongo.RepairReport{}, nil
			}, time.Minute)
			if err := s.Shutdown(context.Background()); err != nil {
				t.Error(err)
			}
			time.Sleep(time.Hour)
			synctest.Wait()
			if ran.Load() {
				t.Error("the repair ran after shutdown")
			}
		})
	})
	t.Run("shutdown during", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var logs bytes.Buffer
			s := &Server{log: slog.New(slog.NewTextHandler(&logs, nil))}
			var started, stopped atomic.Bool
			s.repairHistory(func(ctx context.Context, grace time.Duration) (mongo.RepairReport, error) {
				started.Store(true)
				<-ctx.Done()
				stopped.Store(true)
				return mongo.RepairReport{Orphaned: 2}, ctx.Err()
			}, time.Minute)
			time.Sleep(repairDelay)
			synctest.Wait()
			if !started.Load() {
				t.Fatal("the repair did not start")
			}
			// Even with no time left for stopping (earlier steps used it
			// up), storage is not closed under the pass.
			done, cancel := context.WithCancel(context.Background())
			cancel()
			if err := s.Shutdown(done); err != nil {
				t.Error(err)
			}
			if !stopped.Load() || !strings.Contains(logs.String(), "history repair stopped") ||
				!strings.Contains(logs.String(), "orphaned=2") {
				t.Errorf("after shutdown: stopped %v, log %q", stopped.Load(), logs.String())
			}
		})
	})
}
