package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// maxCachedStmts bounds a pool's statement cache. The store's queries are
// constant strings but for the filters of list requests, whose combinations
// are many; past the bound a query is prepared for its one use, as without a
// cache.
const maxCachedStmts = 512

// pool is a *sql.DB that prepares each query once and keeps the statement:
// SQLite compiles a statement in about as long as it takes to run a small
// one, and every login, message and REST request runs several.
//
// database/sql keeps a statement prepared on each connection it has run on,
// so a cached statement costs one compilation per connection. Transactions
// (txn) run the cached statements on their connection; a query a transaction
// meets first is compiled for that use and cached before the next
// transaction begins, because the writer pool's only connection is the
// transaction's own until it ends.
type pool struct {
	*sql.DB

	// wrote, when set, is called after a statement run outside a
	// transaction (the writer's: see checkpointer).
	wrote func()

	mu      sync.RWMutex
	stmts   map[string]*sql.Stmt
	pending map[string]bool // met inside a transaction; prepared by the next db.tx
}

func newPool(db *sql.DB) *pool {
	return &pool{DB: db, stmts: make(map[string]*sql.Stmt), pending: make(map[string]bool)}
}

func (p *pool) cached(query string) *sql.Stmt {
	p.mu.RLock()
	st := p.stmts[query]
	p.mu.RUnlock()
	return st
}

// stmt returns the cached statement for query, preparing it on first use;
// nil (and no error) when the cache is full.
func (p *pool) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := p.cached(query); st != nil {
		return st, nil
	}
	p.mu.RLock()
	full := len(p.stmts) >= maxCachedStmts
	p.mu.RUnlock()
	if full {
		return nil, nil
	}
	st, err := p.DB.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.stmts[query]; old != nil { // prepared meanwhile by another caller
		st.Close()
		return old, nil
	}
	if len(p.stmts) >= maxCachedStmts {
		st.Close()
		return nil, nil
	}
	p.stmts[query] = st
	return st, nil
}

// preparePending caches the statements transactions met uncached. It must
// not be called while holding a connection of the pool.
func (p *pool) preparePending(ctx context.Context) error {
	p.mu.Lock()
	if len(p.pending) == 0 {
		p.mu.Unlock()
		return nil
	}
	queries := make([]string, 0, len(p.pending))
	for q := range p.pending {
		queries = append(queries, q)
	}
	clear(p.pending)
	p.mu.Unlock()
	for _, q := range queries {
		if _, err := p.stmt(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

func (p *pool) ExecContext(ctx context.Context, query string, args ...any) (res sql.Result, err error) {
	if p.wrote != nil {
		defer func() {
			if err == nil {
				p.wrote()
			}
		}()
	}
	st, err := p.stmt(ctx, query)
	if err != nil || st == nil {
		return p.DB.ExecContext(ctx, query, args...)
	}
	return st.ExecContext(ctx, args...)
}

func (p *pool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := p.stmt(ctx, query)
	if err != nil || st == nil {
		return p.DB.QueryContext(ctx, query, args...)
	}
	return st.QueryContext(ctx, args...)
}

// QueryRowContext runs query; a statement that fails to prepare is run
// uncached, so that its error reaches the caller through the Row.
func (p *pool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := p.stmt(ctx, query)
	if err != nil || st == nil {
		return p.DB.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// Close closes the cached statements and the database.
func (p *pool) Close() error {
	p.mu.Lock()
	var errs []error
	for _, st := range p.stmts {
		errs = append(errs, st.Close())
	}
	clear(p.stmts)
	p.mu.Unlock()
	return errors.Join(append(errs, p.DB.Close())...)
}

// txn is a write transaction that runs its pool's cached statements.
type txn struct {
	*sql.Tx
	p *pool
}

// stmt returns the transaction's handle on the cached statement for query,
// or nil when it is not cached yet (it will be for the next transaction).
func (t txn) stmt(ctx context.Context, query string) *sql.Stmt {
	if st := t.p.cached(query); st != nil {
		return t.Tx.StmtContext(ctx, st)
	}
	t.p.mu.Lock()
	if len(t.p.stmts)+len(t.p.pending) < maxCachedStmts {
		t.p.pending[query] = true
	}
	t.p.mu.Unlock()
	return nil
}

func (t txn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

func (t txn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

func (t txn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}

// PrepareContext returns a statement for query bound to the transaction.
func (t txn) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st, nil
	}
	return t.Tx.PrepareContext(ctx, query)
}
