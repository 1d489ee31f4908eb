package sqlite_test

import (
	"path/filepath"
	"testing"

	"chatd/store/sqlite"
	"chatd/store/storetest"
)

func open(t *testing.T) storetest.Stores {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "chatd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return storetest.Stores{Accounts: db.Accounts(), XMPP: db.XMPP(), History: db.History()}
}

func TestConformance(t *testing.T) { storetest.Run(t, open) }
