// Package storetest is the storage conformance suite: every behaviour the
// domain packages expect of a Store, run against each backend (store/sqlite
// and store/mongo call it from their tests). A backend passes when it
// behaves identically to the others here; what a backend cannot do is
// fixed in the backend, never skipped here.
package storetest

import (
	"testing"

	"chatd/account"
	"chatd/history"
	"chatd/xmpp"
)

// Stores are one backend's implementations of the domain stores, opened empty
// for a single test.
type Stores struct {
	Accounts account.Store
	XMPP     xmpp.Store
	History  history.Store
}

// Open returns fresh, empty stores for one test and arranges their cleanup
// with t.Cleanup.
type Open func(t *testing.T) Stores

// Run runs the whole suite.
func Run(t *testing.T, open Open) {
	t.Run("Accounts", func(t *testing.T) { runAccounts(t, open) })
	t.Run("XMPP", func(t *testing.T) { runXMPP(t, open) })
	t.Run("History", func(t *testing.T) { runHistory(t, open) })
}
