package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"chatd/account"
	"chatd/xmpp"
)

func runXMPP(t *testing.T, open Open) {
	t.Run("Roster", func(t *testing.T) { testRoster(t, open(t).XMPP) })
	t.Run("RosterOwners", func(t *testing.T) { testRosterOwners(t, open(t).XMPP) })
	t.Run("LastActivity", func(t *testing.T) { testLastActivity(t, open(t).XMPP) })
}

func testRoster(t *testing.T, s xmpp.Store) {
	ctx := context.Background()
	alice := xmpp.UserRef{App: 1, User: 10}
	other := xmpp.UserRef{App: 2, User: 10}

	items, ver, err := s.Roster(ctx, alice)
	if err != nil || len(items) != 0 || ver != 0 {
		t.Fatalf("empty roster = %v, ver %d, %v", items, ver, err)
	}
	bob := xmpp.RosterItem{JID: "11-1@localhost", Name: "Bob", Subscription: xmpp.SubTo, Ask: false, Listed: true,
		Groups: []string{"Friends", "Work"}}
	carol := xmpp.RosterItem{JID: "12-1@localhost", Subscription: xmpp.SubNone, PendingIn: true}
	v1, err := s.PutRosterItem(ctx, alice, bob)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := s.PutRosterItem(ctx, alice, carol)
	if err != nil {
		t.Fatal(err)
	}
	if v1 <= 0 || v2 <= v1 {
		t.Errorf("versions %d then %d: each change must raise the version", v1, v2)
	}
	items, ver, err = s.Roster(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if ver != v2 || len(items) != 2 {
		t.Fatalf("roster = %+v ver %d, want 2 items at %d", items, ver, v2)
	}
	if !reflect.DeepEqual(items[0], bob) || !reflect.DeepEqual(items[1], carol) {
		t.Errorf("items = %+v\nwant %+v and %+v", items, bob, carol)
	}
	got, err := s.RosterItem(ctx, alice, carol.JID)
	if err != nil || !reflect.DeepEqual(*got, carol) {
		t.Errorf("RosterItem = %+v, %v", got, err)
	}
	// Replace an item.
	bob.Subscription, bob.Groups, bob.Name, bob.Ask = xmpp.SubBoth, nil, "", true
	v3, err := s.PutRosterItem(ctx, alice, bob)
	if err != nil || v3 <= v2 {
		t.Fatalf("replace: ver %d, %v", v3, err)
	}
	got, _ = s.RosterItem(ctx, alice, bob.JID)
	if got.Subscription != xmpp.SubBoth || len(got.Groups) != 0 || got.Name != "" || !got.Ask {
		t.Errorf("after replace: %+v", got)
	}
	// Rosters are per owner, across applications too.
	if items, _, _ := s.Roster(ctx, other); len(items) != 0 {
		t.Errorf("another owner sees %v", items)
	}
	if _, err := s.RosterItem(ctx, other, bob.JID); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("RosterItem of another owner = %v, want ErrNotFound", err)
	}
	v4, err := s.DeleteRosterItem(ctx, alice, bob.JID)
	if err != nil || v4 <= v3 {
		t.Fatalf("delete: ver %d, %v", v4, err)
	}
	if _, err := s.RosterItem(ctx, alice, bob.JID); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("deleted item still there: %v", err)
	}
	if _, err := s.DeleteRosterItem(ctx, alice, "nobody@localhost"); err != nil {
		t.Errorf("deleting an absent item: %v", err)
	}
	items, ver, _ = s.Roster(ctx, alice)
	if len(items) != 1 || ver <= v4 {
		t.Errorf("after deletes: %+v ver %d", items, ver)
	}
}

// testRosterOwners changes the rosters of several users at once (the XMPP
// server may do so; it only serialises changes to one user's roster): each
// user's versions rise with every change, no user sees another's items, and
// a roster comes back sorted by JID whatever order its items were added in.
func testRosterOwners(t *testing.T, s xmpp.Store) {
	ctx := context.Background()
	const owners, items = 6, 5
	var wg sync.WaitGroup
	for i := range owners {
		// The same user ids in two applications.
		owner := xmpp.UserRef{App: int64(1 + i/3), User: int64(10 + i%3)}
		wg.Go(func() {
			var (
				vers []int64
				jids []string
			)
			change := func(ver int64, err error) {
				if err != nil {
					t.Errorf("owner %v: %v", owner, err)
				}
				vers = append(vers, ver)
			}
			// Descending JIDs, each naming its owner.
			for k := items; k > 0; k-- {
				jid := fmt.Sprintf("%d-%d@localhost", 100*owner.User+int64(k), owner.App)
				jids = append([]string{jid}, jids...)
				change(s.PutRosterItem(ctx, owner, xmpp.RosterItem{JID: jid, Subscription: xmpp.SubNone, Listed: true}))
			}
			change(s.DeleteRosterItem(ctx, owner, jids[0]))
			change(s.DeleteRosterItem(ctx, owner, "nobody@localhost"))
			for k := 1; k < len(vers); k++ {
				if vers[0] <= 0 || vers[k] <= vers[k-1] {
					t.Errorf("owner %v: versions %v do not rise with every change", owner, vers)
					break
				}
			}
			got, ver, err := s.Roster(ctx, owner)
			if err != nil {
				t.Errorf("owner %v: %v", owner, err)
				return
			}
			var gotJIDs []string
			for _, it := range got {
				gotJIDs = append(gotJIDs, it.JID)
			}
			if !reflect.DeepEqual(gotJIDs, jids[1:]) || ver != vers[len(vers)-1] {
				t.Errorf("owner %v: roster %v at version %d, want %v at %d", owner, gotJIDs, ver, jids[1:], vers[len(vers)-1])
			}
		})
	}
	wg.Wait()
}

func testLastActivity(t *testing.T, s xmpp.Store) {
	ctx := context.Background()
	u := xmpp.UserRef{App: 1, User: 10}
	if _, _, err := s.LastActivity(ctx, u); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("no activity yet: %v, want ErrNotFound", err)
	}
	if err := s.SetLastActivity(ctx, u, t0, "gone fishing"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLastActivity(ctx, u, t0.Add(time.Hour), "back soon"); err != nil {
		t.Fatal(err)
	}
	at, status, err := s.LastActivity(ctx, u)
	if err != nil || !at.Equal(t0.Add(time.Hour)) || status != "back soon" {
		t.Errorf("LastActivity = %v %q %v", at, status, err)
	}
	if _, _, err := s.LastActivity(ctx, xmpp.UserRef{App: 2, User: 10}); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("another app's user: %v", err)
	}
}
