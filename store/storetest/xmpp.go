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
	t.Run("Offline", func(t *testing.T) { testOffline(t, open(t).XMPP) })
	t.Run("Privacy", func(t *testing.T) { testPrivacy(t, open(t).XMPP) })
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

func testOffline(t *testing.T, s xmpp.Store) {
	ctx := context.Background()
	bob := xmpp.UserRef{App: 1, User: 11}
	other := xmpp.UserRef{App: 2, User: 11}
	var seqs []int64
	for i := range 3 {
		m := &xmpp.OfflineMessage{Stamp: t0.Add(time.Duration(i) * time.Millisecond), Data: []byte(fmt.Sprintf("<message id='%d'/>", i))}
		if err := s.PushOffline(ctx, bob, m, 3); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, m.Seq)
	}
	if !(seqs[0] < seqs[1] && seqs[1] < seqs[2]) {
		t.Errorf("sequence numbers %v do not increase", seqs)
	}
	if err := s.PushOffline(ctx, bob, &xmpp.OfflineMessage{Stamp: t0, Data: []byte("<message/>")}, 3); !errors.Is(err, xmpp.ErrOfflineFull) {
		t.Errorf("push past the limit: %v, want ErrOfflineFull", err)
	}
	if err := s.PushOffline(ctx, other, &xmpp.OfflineMessage{Stamp: t0, Data: []byte("<message id='x'/>")}, 3); err != nil {
		t.Errorf("another owner's storage: %v", err)
	}
	got, err := s.OfflineMessages(ctx, bob, 2)
	if err != nil || len(got) != 2 {
		t.Fatalf("OfflineMessages = %v, %v", got, err)
	}
	if string(got[0].Data) != "<message id='0'/>" || string(got[1].Data) != "<message id='1'/>" || got[0].Seq != seqs[0] ||
		!got[1].Stamp.Equal(t0.Add(time.Millisecond)) {
		t.Errorf("oldest first: %+v", got)
	}
	if err := s.DeleteOffline(ctx, bob, seqs[1]); err != nil {
		t.Fatal(err)
	}
	got, _ = s.OfflineMessages(ctx, bob, 10)
	if len(got) != 1 || got[0].Seq != seqs[2] {
		t.Errorf("after deleting up to the second: %+v", got)
	}
	if got, _ := s.OfflineMessages(ctx, other, 10); len(got) != 1 {
		t.Errorf("another owner's messages: %+v", got)
	}
}

func testPrivacy(t *testing.T, s xmpp.Store) {
	ctx := context.Background()
	alice := xmpp.UserRef{App: 1, User: 10}
	lists, def, err := s.PrivacyLists(ctx, alice)
	if err != nil || len(lists) != 0 || def != "" {
		t.Fatalf("no lists yet: %v %q %v", lists, def, err)
	}
	work := xmpp.PrivacyList{Name: "work", Items: []xmpp.PrivacyItem{
		{Type: "jid", Value: "11-1@localhost", Allow: false, Order: 1, Kinds: []string{"message", "presence-in"}},
		{Type: "jid", Value: "muc.localhost/11", Allow: false, Order: 2},
		{Allow: true, Order: 3},
	}}
	if err := s.PutPrivacyList(ctx, alice, work); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPrivacyList(ctx, alice, xmpp.PrivacyList{Name: "empty"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDefaultPrivacyList(ctx, alice, "nope"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("default to a missing list: %v", err)
	}
	if err := s.SetDefaultPrivacyList(ctx, alice, "work"); err != nil {
		t.Fatal(err)
	}
	lists, def, err = s.PrivacyLists(ctx, alice)
	if err != nil || def != "work" || len(lists) != 2 || lists[0].Name != "empty" || !reflect.DeepEqual(lists[1], work) {
		t.Errorf("lists = %+v, default %q, %v", lists, def, err)
	}
	// Replacing a list keeps the default; deleting it clears it.
	work.Items = work.Items[:1]
	if err := s.PutPrivacyList(ctx, alice, work); err != nil {
		t.Fatal(err)
	}
	if lists, def, _ := s.PrivacyLists(ctx, alice); def != "work" || len(lists[1].Items) != 1 {
		t.Errorf("after replace: %+v %q", lists, def)
	}
	if err := s.DeletePrivacyList(ctx, alice, "work"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePrivacyList(ctx, alice, "work"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if lists, def, _ := s.PrivacyLists(ctx, alice); def != "" || len(lists) != 1 {
		t.Errorf("after delete: %+v %q", lists, def)
	}
	if err := s.SetDefaultPrivacyList(ctx, alice, "empty"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDefaultPrivacyList(ctx, alice, ""); err != nil {
		t.Fatal(err)
	}
	if _, def, _ := s.PrivacyLists(ctx, alice); def != "" {
		t.Errorf("declined default still %q", def)
	}
	if lists, _, _ := s.PrivacyLists(ctx, xmpp.UserRef{App: 2, User: 10}); len(lists) != 0 {
		t.Errorf("another owner sees %v", lists)
	}
}
