package sqlite

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// The WAL is copied back into the database file (checkpointed) by a
// goroutine on a connection of its own, not by the writer at the end of a
// commit as SQLite does by default: a checkpoint syncs the WAL and the
// database file, which held the one writer up for about a sixth of its time
// under a stream of messages. It runs a short while after writes, so that a
// page written by several commits meanwhile is copied once.
//
// A PASSIVE checkpoint never waits for the writer, and the writer never
// waits for it. SQLite starts the WAL over only when a write begins after
// everything has been copied, which under a steady stream of commits
// rarely happens between two of them; so the writer still checkpoints
// itself, as a backstop, once the WAL reaches walBackstop pages (by then the
// goroutine has copied nearly all of it).
const (
	checkpointDelay = 100 * time.Millisecond
	walBackstop     = 10000 // pages (4 KiB): the writer's wal_autocheckpoint
)

type checkpointer struct {
	db   *sql.DB
	kick chan struct{}
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

func newCheckpointer(db *sql.DB) *checkpointer {
	c := &checkpointer{db: db, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	c.wg.Add(1)
	go c.run()
	return c
}

// wrote tells the checkpointer that a write was committed.
func (c *checkpointer) wrote() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer c.wg.Done()
	t := time.NewTimer(0)
	<-t.C
	for {
		select {
		case <-c.kick:
		case <-c.stop:
			return
		}
		t.Reset(checkpointDelay)
		select {
		case <-t.C:
		case <-c.stop:
			t.Stop()
			return
		}
		// An error (such as SQLITE_BUSY while the writer's backstop runs)
		// leaves the work to the next round or to the backstop.
		c.db.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
	}
}

// close stops the checkpointer; a second call does nothing more, as for
// sql.DB.
func (c *checkpointer) close() error {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
	return c.db.Close()
}
