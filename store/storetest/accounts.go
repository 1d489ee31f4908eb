package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"chatd/account"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func runAccounts(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s account.Store)
	}{
		{"Apps", testApps},
		{"UserRoundTrip", testUserRoundTrip},
		{"UserUniqueness", testUserUniqueness},
		{"UserUpdateDelete", testUserUpdateDelete},
		{"FindUsers", testFindUsers},
		{"FindUsersByTags", testFindUsersByTags},
		{"FindUsersWithoutValue", testFindUsersWithoutValue},
		{"FindUsersFoldsCase", testFindUsersFoldsCase},
		{"Sessions", testSessions},
		{"Nonces", testNonces},
		{"APIKeys", testAPIKeys},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t).Accounts)
		})
	}
}

func mustApp(t *testing.T, s account.Store, name string) *account.Application {
	t.Helper()
	app := &account.Application{Name: name, AuthKey: "key-" + name, AuthSecret: "secret-" + name, CreatedAt: t0}
	if err := s.CreateApp(context.Background(), app); err != nil {
		t.Fatalf("CreateApp: %v", err)
	}
	if app.ID == 0 {
		t.Fatal("CreateApp did not set an id")
	}
	return app
}

var testCreds = account.DeriveCredentials("secret-password", []byte("0123456789abcdef"), 64)

func mustUser(t *testing.T, s account.Store, appID int64, login string, edit func(*account.User)) *account.User {
	t.Helper()
	u := &account.User{AppID: appID, Login: login, CreatedAt: t0, UpdatedAt: t0, Credentials: testCreds}
	if edit != nil {
		edit(u)
	}
	if err := s.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", login, err)
	}
	return u
}

func testApps(t *testing.T, s account.Store) {
	ctx := context.Background()
	a := mustApp(t, s, "one")
	b := mustApp(t, s, "two")
	if a.ID == b.ID {
		t.Fatalf("two apps share id %d", a.ID)
	}
	got, err := s.App(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *b {
		t.Errorf("App = %+v, want %+v", got, b)
	}
	all, err := s.Apps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID != a.ID || all[1].ID != b.ID {
		t.Errorf("Apps = %+v", all)
	}
	if _, err := s.App(ctx, b.ID+100); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("App(unknown) error = %v, want ErrNotFound", err)
	}
}

func testUserRoundTrip(t *testing.T, s account.Store) {
	ctx := context.Background()
	app := mustApp(t, s, "a")
	u := mustUser(t, s, app.ID, "alice", func(u *account.User) {
		u.Email = "alice@example.com"
		u.FullName = "Alice Liddell"
		u.Phone = "+123"
		u.Website = "https://example.com"
		u.ExternalUserID = 77
		u.FacebookID = "fb1"
		u.TwitterID = "tw1"
		u.BlobID = 9
		u.CustomData = `{"x":1}`
		u.Tags = []string{"red", "blue"}
		u.LastRequestAt = t0.Add(time.Minute)
	})
	if u.ID == 0 {
		t.Fatal("CreateUser did not set an id")
	}
	got, err := s.User(ctx, app.ID, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkUser(t, got, u)
	for _, by := range []struct {
		f account.UserField
		v any
	}{
		{account.FieldLogin, "alice"},
		{account.FieldEmail, "alice@example.com"},
		{account.FieldExternalUserID, int64(77)},
		{account.FieldFacebookID, "fb1"},
		{account.FieldTwitterID, "tw1"},
		{account.FieldPhone, "+123"},
	} {
		got, err := s.UserBy(ctx, app.ID, by.f, by.v)
		if err != nil {
			t.Errorf("UserBy(%s): %v", by.f, err)
			continue
		}
		checkUser(t, got, u)
	}
	if _, err := s.UserBy(ctx, app.ID, account.FieldLogin, "nobody"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("UserBy(unknown login) = %v, want ErrNotFound", err)
	}
	if _, err := s.UserBy(ctx, app.ID, account.FieldEmail, ""); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("UserBy(empty email) = %v, want ErrNotFound", err)
	}
	// 0 is no external id: it finds nobody, not a user without one.
	mustUser(t, s, app.ID, "no-external", nil)
	if got, err := s.UserBy(ctx, app.ID, account.FieldExternalUserID, int64(0)); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("UserBy(external_user_id 0) = %v, %v; want ErrNotFound", got, err)
	}
	other := mustApp(t, s, "b")
	if _, err := s.User(ctx, other.ID, u.ID); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("User from another app = %v, want ErrNotFound", err)
	}
	if _, err := s.UserBy(ctx, other.ID, account.FieldLogin, "alice"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("UserBy from another app = %v, want ErrNotFound", err)
	}
	at := t0.Add(time.Hour)
	if err := s.TouchUser(ctx, app.ID, u.ID, at); err != nil {
		t.Fatal(err)
	}
	got, _ = s.User(ctx, app.ID, u.ID)
	if !got.LastRequestAt.Equal(at) {
		t.Errorf("after TouchUser last_request_at = %v, want %v", got.LastRequestAt, at)
	}
	if err := s.TouchUser(ctx, app.ID, u.ID+1000, at); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("TouchUser(unknown) = %v, want ErrNotFound", err)
	}
}

func checkUser(t *testing.T, got, want *account.User) {
	t.Helper()
	g, w := *got, *want
	if !slices.Equal(g.Tags, w.Tags) {
		t.Errorf("user %d tags = %q, want %q", w.ID, g.Tags, w.Tags)
	}
	if !slices.Equal(g.Credentials.SHA256.StoredKey, w.Credentials.SHA256.StoredKey) ||
		!slices.Equal(g.Credentials.SHA1.ServerKey, w.Credentials.SHA1.ServerKey) ||
		!slices.Equal(g.Credentials.Salt, w.Credentials.Salt) || g.Credentials.Iterations != w.Credentials.Iterations {
		t.Errorf("user %d credentials did not round-trip", w.ID)
	}
	for _, tm := range []struct {
		name string
		g, w time.Time
	}{{"created_at", g.CreatedAt, w.CreatedAt}, {"updated_at", g.UpdatedAt, w.UpdatedAt}, {"last_request_at", g.LastRequestAt, w.LastRequestAt}} {
		if !tm.g.Equal(tm.w) {
			t.Errorf("user %d %s = %v, want %v", w.ID, tm.name, tm.g, tm.w)
		}
	}
	g.Tags, w.Tags = nil, nil
	g.Credentials, w.Credentials = account.Credentials{}, account.Credentials{}
	g.CreatedAt, g.UpdatedAt, g.LastRequestAt = time.Time{}, time.Time{}, time.Time{}
	w.CreatedAt, w.UpdatedAt, w.LastRequestAt = time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("user = %+v\nwant   %+v", g, w)
	}
}

func testUserUniqueness(t *testing.T, s account.Store) {
	ctx := context.Background()
	app := mustApp(t, s, "a")
	mustUser(t, s, app.ID, "alice", func(u *account.User) {
		u.Email, u.FacebookID, u.TwitterID, u.ExternalUserID = "a@x", "fb", "tw", 5
	})
	for _, tc := range []struct {
		field string
		edit  func(*account.User)
	}{
		{"login", func(u *account.User) { u.Login = "alice" }},
		{"email", func(u *account.User) { u.Email = "a@x" }},
		{"facebook_id", func(u *account.User) { u.FacebookID = "fb" }},
		{"twitter_id", func(u *account.User) { u.TwitterID = "tw" }},
		{"external_user_id", func(u *account.User) { u.ExternalUserID = 5 }},
	} {
		u := &account.User{AppID: app.ID, Login: "other-" + tc.field, CreatedAt: t0, UpdatedAt: t0, Credentials: testCreds}
		tc.edit(u)
		err := s.CreateUser(ctx, u)
		var dup *account.DuplicateError
		if !errors.As(err, &dup) || dup.Field != tc.field {
			t.Errorf("duplicate %s: error = %v, want DuplicateError{%s}", tc.field, err, tc.field)
		}
	}
	// Empty unique fields never collide, and another app may reuse everything.
	mustUser(t, s, app.ID, "bob", nil)
	mustUser(t, s, app.ID, "carol", nil)
	mustUser(t, s, app.ID, "", func(u *account.User) { u.Email = "only@email" })
	mustUser(t, s, app.ID, "", func(u *account.User) { u.Email = "only2@email" })
	other := mustApp(t, s, "b")
	mustUser(t, s, other.ID, "alice", func(u *account.User) {
		u.Email, u.FacebookID, u.TwitterID, u.ExternalUserID = "a@x", "fb", "tw", 5
	})
	_, total, err := s.FindUsers(ctx, app.ID, account.UserQuery{})
	if err != nil || total != 5 {
		t.Errorf("FindUsers total = %d, %v; want 5 (a failed create must store nothing)", total, err)
	}
}

func testUserUpdateDelete(t *testing.T, s account.Store) {
	ctx := context.Background()
	app := mustApp(t, s, "a")
	alice := mustUser(t, s, app.ID, "alice", func(u *account.User) { u.Email = "a@x" })
	bob := mustUser(t, s, app.ID, "bob", nil)

	bob.FullName = "Bob"
	bob.Email = "b@x"
	bob.Tags = []string{"t"}
	bob.UpdatedAt = t0.Add(time.Hour)
	if err := s.UpdateUser(ctx, bob, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := s.User(ctx, app.ID, bob.ID)
	checkUser(t, got, bob)

	stale := *bob
	stale.Email = "a@x"
	var dup *account.DuplicateError
	if err := s.UpdateUser(ctx, &stale, nil); !errors.As(err, &dup) || dup.Field != "email" {
		t.Errorf("update to a taken email: %v, want DuplicateError{email}", err)
	}
	got, _ = s.User(ctx, app.ID, bob.ID)
	checkUser(t, got, bob)

	// Freed values can be taken again.
	bob.Email = ""
	if err := s.UpdateUser(ctx, bob, nil); err != nil {
		t.Fatal(err)
	}
	// An update names what it writes: the rest stays as stored, even when
	// the copy it was made from is older (two devices updating at once).
	old := *bob
	bob.Phone = "555"
	bob.Credentials = account.DeriveCredentials("new-password", bob.Credentials.Salt, 4096)
	bob.UpdatedAt = t0.Add(2 * time.Hour)
	if err := s.UpdateUser(ctx, bob, []string{"phone", "credentials"}); err != nil {
		t.Fatal(err)
	}
	old.FullName = "Bobby"
	old.UpdatedAt = t0.Add(3 * time.Hour)
	if err := s.UpdateUser(ctx, &old, []string{"full_name"}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.User(ctx, app.ID, bob.ID)
	bob.FullName, bob.UpdatedAt = "Bobby", old.UpdatedAt
	checkUser(t, got, bob)
	if !got.Credentials.Matches("new-password") {
		t.Error("an update of full_name from an older copy undid the password change")
	}
	// Renaming (a unique attribute) alone still checks uniqueness.
	old.Login = "alice"
	if err := s.UpdateUser(ctx, &old, []string{"login"}); !errors.As(err, &dup) || dup.Field != "login" {
		t.Errorf("login update to a taken login: %v, want DuplicateError{login}", err)
	}
	ghost := *alice
	ghost.ID = alice.ID + 1000
	if err := s.UpdateUser(ctx, &ghost, nil); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("UpdateUser(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.DeleteUser(ctx, app.ID, alice.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.User(ctx, app.ID, alice.ID); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("User after delete = %v, want ErrNotFound", err)
	}
	if err := s.DeleteUser(ctx, app.ID, alice.ID); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("second DeleteUser = %v, want ErrNotFound", err)
	}
	// The deleted user's login and email are free again.
	mustUser(t, s, app.ID, "alice", func(u *account.User) { u.Email = "a@x" })
}

func testFindUsers(t *testing.T, s account.Store) {
	ctx := context.Background()
	app := mustApp(t, s, "a")
	other := mustApp(t, s, "b")
	mustUser(t, s, other.ID, "outsider", func(u *account.User) { u.Tags = []string{"red"} })
	var ids []int64
	for i := range 6 {
		u := mustUser(t, s, app.ID, fmt.Sprintf("user%d", i), func(u *account.User) {
			u.FullName = []string{"Ann Smith", "Bob Stone", "ann lee", "Dän Öhl", "Eve", "Fay Anne"}[i]
			u.ExternalUserID = int64(100 + i)
			u.CreatedAt = t0.Add(time.Duration(i) * time.Hour)
			u.Tags = [][]string{{"red"}, {"blue"}, {"red", "green"}, nil, {"green"}, {"reddish"}}[i]
		})
		ids = append(ids, u.ID)
	}
	f := func(field account.UserField, op account.Op, vals ...any) account.Filter {
		return account.Filter{Field: field, Op: op, Values: vals}
	}
	cases := []struct {
		name string
		q    account.UserQuery
		want []int
	}{
		{"all", account.UserQuery{}, []int{0, 1, 2, 3, 4, 5}},
		{"id in", account.UserQuery{Filters: []account.Filter{f(account.FieldID, account.OpIn, ids[1], ids[3], int64(999999))}}, []int{1, 3}},
		{"id gt", account.UserQuery{Filters: []account.Filter{f(account.FieldID, account.OpGt, ids[3])}}, []int{4, 5}},
		{"login eq", account.UserQuery{Filters: []account.Filter{f(account.FieldLogin, account.OpEq, "user2")}}, []int{2}},
		{"login ne", account.UserQuery{Filters: []account.Filter{f(account.FieldLogin, account.OpNe, "user2")}}, []int{0, 1, 3, 4, 5}},
		{"full_name ctn", account.UserQuery{Filters: []account.Filter{f(account.FieldFullName, account.OpContains, "ANN")}}, []int{0, 2, 5}},
		{"full_name ctn folds every letter", account.UserQuery{Filters: []account.Filter{f(account.FieldFullName, account.OpContains, "äN ö")}}, []int{3}},
		{"external between", account.UserQuery{Filters: []account.Filter{f(account.FieldExternalUserID, account.OpBetween, int64(101), int64(103))}}, []int{1, 2, 3}},
		{"external ge le", account.UserQuery{Filters: []account.Filter{f(account.FieldExternalUserID, account.OpGe, int64(102)), f(account.FieldExternalUserID, account.OpLe, int64(104))}}, []int{2, 3, 4}},
		{"created lt", account.UserQuery{Filters: []account.Filter{f(account.FieldCreatedAt, account.OpLt, t0.Add(2*time.Hour))}}, []int{0, 1}},
		{"tags in", account.UserQuery{Filters: []account.Filter{f(account.FieldTags, account.OpIn, "red", "green")}}, []int{0, 2, 4}},
		{"tags eq", account.UserQuery{Filters: []account.Filter{f(account.FieldTags, account.OpEq, "red")}}, []int{0, 2}},
		{"order desc", account.UserQuery{OrderBy: account.FieldCreatedAt, OrderDesc: true}, []int{5, 4, 3, 2, 1, 0}},
		{"order by name", account.UserQuery{OrderBy: account.FieldFullName}, []int{0, 1, 3, 4, 5, 2}},
		{"page", account.UserQuery{OrderBy: account.FieldID, Limit: 2, Offset: 2}, []int{2, 3}},
	}
	for _, tc := range cases {
		users, total, err := s.FindUsers(ctx, app.ID, tc.q)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var got []int
		for _, u := range users {
			got = append(got, slices.Index(ids, u.ID))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: users %v, want %v", tc.name, got, tc.want)
		}
		wantTotal := len(tc.want)
		if tc.q.Limit > 0 {
			wantTotal = 6
		}
		if total != wantTotal {
			t.Errorf("%s: total %d, want %d", tc.name, total, wantTotal)
		}
	}
}

// findUsers runs q in app and returns the indexes in ids of the users found,
// checking that the total counts them all.
func findUsers(t *testing.T, s account.Store, appID int64, ids []int64, q account.UserQuery) []int {
	t.Helper()
	users, total, err := s.FindUsers(context.Background(), appID, q)
	if err != nil {
		t.Errorf("FindUsers(%+v): %v", q.Filters, err)
		return nil
	}
	got := []int{}
	for _, u := range users {
		got = append(got, slices.Index(ids, u.ID))
	}
	if q.Limit == 0 && total != len(got) {
		t.Errorf("FindUsers(%+v): total %d for %d users", q.Filters, total, len(got))
	}
	return got
}

// A user's tags are a set: eq with several tags matches the users having
// all of them, ne those lacking one of them at least, in those having any,
// whatever the order the tags were stored or asked in.
func testFindUsersByTags(t *testing.T, s account.Store) {
	app := mustApp(t, s, "a")
	var ids []int64
	for i, tags := range [][]string{{"a", "b"}, {"b", "a"}, {"a"}, {"b", "c", "a"}, nil, {"c"}, {"ab"}} {
		ids = append(ids, mustUser(t, s, app.ID, fmt.Sprintf("user%d", i), func(u *account.User) { u.Tags = tags }).ID)
	}
	tags := func(op account.Op, vals ...any) account.UserQuery {
		return account.UserQuery{Filters: []account.Filter{{Field: account.FieldTags, Op: op, Values: vals}}}
	}
	for _, tc := range []struct {
		name string
		q    account.UserQuery
		want []int
	}{
		{"eq a,b", tags(account.OpEq, "a", "b"), []int{0, 1, 3}},
		{"eq b,a", tags(account.OpEq, "b", "a"), []int{0, 1, 3}},
		{"eq a,c", tags(account.OpEq, "a", "c"), []int{3}},
		{"eq a", tags(account.OpEq, "a"), []int{0, 1, 2, 3}},
		{"ne a,b", tags(account.OpNe, "b", "a"), []int{2, 4, 5, 6}},
		{"ne c", tags(account.OpNe, "c"), []int{0, 1, 2, 4, 6}},
		{"in b,c", tags(account.OpIn, "c", "b"), []int{0, 1, 3, 5}},
	} {
		if got := findUsers(t, s, app.ID, ids, tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("%s: users %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A user without a value for a field (no external id, never requested:
// stored as the zero value) matches no comparison on it but ne: it is not
// less than anything, nor equal to 0.
func testFindUsersWithoutValue(t *testing.T, s account.Store) {
	app := mustApp(t, s, "a")
	ids := []int64{
		mustUser(t, s, app.ID, "user0", func(u *account.User) {
			u.ExternalUserID, u.BlobID, u.LastRequestAt, u.Email, u.FullName = 5, 3, t0.Add(time.Hour), "a@x", "Ann"
		}).ID,
		mustUser(t, s, app.ID, "user1", nil).ID, // no value for any of them
		mustUser(t, s, app.ID, "user2", func(u *account.User) {
			u.ExternalUserID, u.BlobID, u.LastRequestAt, u.Email, u.FullName = 10, 30, t0.Add(2*time.Hour), "c@x", "Cy"
		}).ID,
	}
	epoch := time.Unix(0, 0).UTC()
	q := func(field account.UserField, op account.Op, vals ...any) account.UserQuery {
		return account.UserQuery{Filters: []account.Filter{{Field: field, Op: op, Values: vals}}}
	}
	for _, tc := range []struct {
		name string
		q    account.UserQuery
		want []int
	}{
		{"external lt", q(account.FieldExternalUserID, account.OpLt, int64(7)), []int{0}},
		{"external le", q(account.FieldExternalUserID, account.OpLe, int64(7)), []int{0}},
		{"external gt", q(account.FieldExternalUserID, account.OpGt, int64(-1)), []int{0, 2}},
		{"external ge", q(account.FieldExternalUserID, account.OpGe, int64(-100)), []int{0, 2}},
		{"external eq 0", q(account.FieldExternalUserID, account.OpEq, int64(0)), []int{}},
		{"external between", q(account.FieldExternalUserID, account.OpBetween, int64(-1), int64(7)), []int{0}},
		{"external in", q(account.FieldExternalUserID, account.OpIn, int64(0), int64(5)), []int{0}},
		{"external ne", q(account.FieldExternalUserID, account.OpNe, int64(5)), []int{1, 2}},
		{"blob_id lt", q(account.FieldBlobID, account.OpLt, int64(5)), []int{0}},
		{"last_request lt", q(account.FieldLastRequestAt, account.OpLt, t0.Add(90*time.Minute)), []int{0}},
		{"last_request le", q(account.FieldLastRequestAt, account.OpLe, t0.Add(90*time.Minute)), []int{0}},
		{"last_request ge epoch", q(account.FieldLastRequestAt, account.OpGe, epoch), []int{0, 2}},
		{"last_request eq epoch", q(account.FieldLastRequestAt, account.OpEq, epoch), []int{}},
		{"last_request between", q(account.FieldLastRequestAt, account.OpBetween, epoch, t0.Add(90*time.Minute)), []int{0}},
		{"last_request ne", q(account.FieldLastRequestAt, account.OpNe, t0.Add(time.Hour)), []int{1, 2}},
		{"email lt", q(account.FieldEmail, account.OpLt, "b"), []int{0}},
		{"full_name le", q(account.FieldFullName, account.OpLe, "B"), []int{0}},
		{"email ne", q(account.FieldEmail, account.OpNe, "a@x"), []int{1, 2}},
	} {
		if got := findUsers(t, s, app.ID, ids, tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("%s: users %v, want %v", tc.name, got, tc.want)
		}
	}
}

// ctn ignores case as Unicode simple case folding does (MongoDB's
// case-insensitive match): Σ, σ and the final ς are one letter, so are S, s
// and the long ſ; İ (dotted capital I) is no case of i.
func testFindUsersFoldsCase(t *testing.T, s account.Store) {
	app := mustApp(t, s, "a")
	var ids []int64
	for i, name := range []string{"ΟΔΟΣ", "οδος", "Οδοσ", "İstanbul", "istanbul", "ſun", "SUN"} {
		ids = append(ids, mustUser(t, s, app.ID, fmt.Sprintf("user%d", i), func(u *account.User) { u.FullName = name }).ID)
	}
	for _, tc := range []struct {
		value string
		want  []int
	}{
		{"ς", []int{0, 1, 2}},
		{"οδος", []int{0, 1, 2}},
		{"ΟΔΟΣ", []int{0, 1, 2}},
		{"δοσ", []int{0, 1, 2}},
		{"SUN", []int{5, 6}},
		{"ſ", []int{3, 4, 5, 6}},
		{"i", []int{4}},
		{"İ", []int{3}},
	} {
		q := account.UserQuery{Filters: []account.Filter{{Field: account.FieldFullName, Op: account.OpContains, Values: []any{tc.value}}}}
		if got := findUsers(t, s, app.ID, ids, q); !slices.Equal(got, tc.want) {
			t.Errorf("full_name ctn %q: users %v, want %v", tc.value, got, tc.want)
		}
	}
}

func testSessions(t *testing.T, s account.Store) {
	ctx := context.Background()
	app := mustApp(t, s, "a")
	keys := account.DeriveCredentials("token", []byte("salt"), 64)
	mk := func(hash string, user int64, expires time.Time) *account.Session {
		sess := &account.Session{ObjectID: "5d75393ba28f9a17e1cb0f9e", AppID: app.ID, UserID: user, TokenHash: hash,
			Nonce: 42, Timestamp: t0.Unix(), CreatedAt: t0, UpdatedAt: t0, ExpiresAt: expires}
		if user != 0 {
			sess.TokenKeys = &keys
		}
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
		return sess
	}
	appSess := mk("h-app", 0, t0.Add(2*time.Hour))
	live := mk("h-live", 7, t0.Add(2*time.Hour))
	mk("h-dead", 7, t0.Add(-time.Minute))
	mk("h-other", 8, t0.Add(2*time.Hour))
	if appSess.ID == 0 || appSess.ID == live.ID {
		t.Fatalf("session ids %d, %d", appSess.ID, live.ID)
	}
	got, err := s.SessionByToken(ctx, "h-live")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != live.ID || got.UserID != 7 || got.AppID != app.ID || got.Nonce != 42 || got.ObjectID != live.ObjectID ||
		!got.ExpiresAt.Equal(live.ExpiresAt) || !got.CreatedAt.Equal(t0) || got.TokenKeys == nil ||
		!slices.Equal(got.TokenKeys.SHA1.StoredKey, keys.SHA1.StoredKey) {
		t.Errorf("SessionByToken = %+v", got)
	}
	got, _ = s.SessionByToken(ctx, "h-app")
	if got.TokenKeys != nil || got.UserID != 0 {
		t.Errorf("application session = %+v", got)
	}
	if _, err := s.SessionByToken(ctx, "nope"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("SessionByToken(unknown) = %v", err)
	}
	list, err := s.UserSessions(ctx, app.ID, 7, t0)
	if err != nil || len(list) != 1 || list[0].TokenHash != "h-live" {
		t.Errorf("UserSessions = %v, %v; want only h-live", list, err)
	}
	// Upgrade the application session to user 7, then log it out again.
	appSess.UserID = 7
	appSess.TokenKeys = &keys
	appSess.UpdatedAt = t0.Add(time.Minute)
	appSess.ExpiresAt = t0.Add(3 * time.Hour)
	if err := s.UpdateSession(ctx, appSess); err != nil {
		t.Fatal(err)
	}
	got, _ = s.SessionByToken(ctx, "h-app")
	if got.UserID != 7 || got.TokenKeys == nil || !got.ExpiresAt.Equal(appSess.ExpiresAt) || !got.UpdatedAt.Equal(appSess.UpdatedAt) {
		t.Errorf("after UpdateSession = %+v", got)
	}
	// A refresh moves the expiry only: the user bound to the session stays.
	if err := s.RefreshSession(ctx, "h-app", t0.Add(2*time.Minute), t0.Add(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, _ = s.SessionByToken(ctx, "h-app")
	if got.UserID != 7 || got.TokenKeys == nil || !got.ExpiresAt.Equal(t0.Add(4*time.Hour)) || !got.UpdatedAt.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("after RefreshSession = %+v", got)
	}
	appSess.UserID, appSess.TokenKeys = 0, nil
	if err := s.UpdateSession(ctx, appSess); err != nil {
		t.Fatal(err)
	}
	got, _ = s.SessionByToken(ctx, "h-app")
	if got.UserID != 0 || got.TokenKeys != nil {
		t.Errorf("after logout = %+v", got)
	}
	// Refreshing it after the logout does not bring the user back.
	if err := s.RefreshSession(ctx, "h-app", t0.Add(3*time.Minute), t0.Add(5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.SessionByToken(ctx, "h-app"); got.UserID != 0 || got.TokenKeys != nil || !got.ExpiresAt.Equal(t0.Add(5*time.Hour)) {
		t.Errorf("after logout and refresh = %+v", got)
	}
	if err := s.RefreshSession(ctx, "nope", t0, t0); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("RefreshSession(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.DeleteExpired(ctx, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionByToken(ctx, "h-dead"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("expired session survived DeleteExpired: %v", err)
	}
	if err := s.DeleteUserSessions(ctx, app.ID, 8); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionByToken(ctx, "h-other"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("DeleteUserSessions left %v", err)
	}
	if err := s.DeleteSession(ctx, "h-live"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSession(ctx, "h-live"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("second DeleteSession = %v, want ErrNotFound", err)
	}
	if _, err := s.SessionByToken(ctx, "h-app"); err != nil {
		t.Errorf("unrelated session gone: %v", err)
	}
}

func testNonces(t *testing.T, s account.Store) {
	ctx := context.Background()
	a := mustApp(t, s, "a")
	b := mustApp(t, s, "b")
	if err := s.UseNonce(ctx, a.ID, "100:1", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.UseNonce(ctx, a.ID, "100:1", t0); !errors.Is(err, account.ErrNonceReused) {
		t.Errorf("reused nonce: %v, want ErrNonceReused", err)
	}
	if err := s.UseNonce(ctx, b.ID, "100:1", t0); err != nil {
		t.Errorf("same nonce in another app: %v", err)
	}
	if err := s.UseNonce(ctx, a.ID, "100:2", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteExpired(ctx, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.UseNonce(ctx, a.ID, "100:1", t0); err != nil {
		t.Errorf("expired nonce not released: %v", err)
	}
	if err := s.UseNonce(ctx, a.ID, "100:2", t0); !errors.Is(err, account.ErrNonceReused) {
		t.Errorf("live nonce released early: %v", err)
	}
}

func testAPIKeys(t *testing.T, s account.Store) {
	ctx := context.Background()
	app := mustApp(t, s, "a")
	k := &account.APIKey{AppID: app.ID, Name: "backend", KeyHash: "hash1", CreatedAt: t0}
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	got, err := s.APIKeyByHash(ctx, "hash1")
	if err != nil || got.ID != k.ID || got.AppID != app.ID || got.Name != "backend" || !got.CreatedAt.Equal(t0) {
		t.Errorf("APIKeyByHash = %+v, %v", got, err)
	}
	list, err := s.APIKeys(ctx, app.ID)
	if err != nil || len(list) != 1 {
		t.Errorf("APIKeys = %v, %v", list, err)
	}
	if err := s.DeleteAPIKey(ctx, app.ID, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.APIKeyByHash(ctx, "hash1"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("deleted key still found: %v", err)
	}
}
