package restapi_test

import (
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"chatd/account"
	"chatd/restapi"
)

// ids lists the user ids of a page and checks its paging fields.
func ids(t *testing.T, r response, page, perPage, total int64) []int64 {
	t.Helper()
	r.want(t, http.StatusOK, "")
	m := r.obj(t)
	if num(t, m["current_page"]) != page || num(t, m["per_page"]) != perPage || num(t, m["total_entries"]) != total {
		t.Fatalf("page %v/%v/%v, want %d/%d/%d", m["current_page"], m["per_page"], m["total_entries"], page, perPage, total)
	}
	out := []int64{}
	for _, it := range m["items"].([]any) {
		out = append(out, num(t, it.(map[string]any)["user"].(map[string]any)["id"]))
	}
	return out
}

func TestCreateUser(t *testing.T) {
	e := newEnv(t, restapi.Config{})
	app := e.appSession()

	res := e.call(http.MethodPost, "/users.json", app,
		"user[login]", " frank ", "user[password]", "frank-pass", "user[email]", "Frank@Example.com",
		"user[full_name]", "Frank Smith", "user[phone]", "+73123555", "user[website]", "https://frank.example",
		"user[external_user_id]", "1236672", "user[facebook_id]", "8887366", "user[twitter_id]", "tw1",
		"user[blob_id]", "42", "user[custom_data]", `{"a":"<b>&"}`, "user[tag_list]", "marketing, seo,marketing")
	e.keep("frank-pass")
	res.want(t, http.StatusCreated, "")
	id := num(t, res.obj(t)["user"].(map[string]any)["id"])
	want := fmt.Sprintf(`{"user":{"id":%d,"full_name":"Frank Smith","email":"frank@example.com","login":"frank",`+
		`"phone":"+73123555","website":"https://frank.example","created_at":"2026-11-22T00:05:16Z",`+
		`"updated_at":"2026-11-22T00:05:16Z","last_request_at":null,"external_user_id":1236672,`+
		`"facebook_id":"8887366","twitter_id":"tw1","blob_id":42,"custom_data":"{\"a\":\"<b>&\"}",`+
		`"age_over16":false,"allow_statistics_analysis":false,"allow_sales_activities":false,`+
		`"parents_contacts":"","user_tags":"marketing,seo"}}`, id)
	res.want(t, http.StatusCreated, want)

	// The minimal user: every empty value is null.
	res = e.callJSON(http.MethodPost, "/users.json", app, `{"user":{"login":"gina","password":"gina-pass1"}}`)
	e.keep("gina-pass1")
	res.want(t, http.StatusCreated, "")
	gina := num(t, res.obj(t)["user"].(map[string]any)["id"])
	res.want(t, http.StatusCreated, fmt.Sprintf(`{"user":{"id":%d,"full_name":null,"email":null,"login":"gina",`+
		`"phone":null,"website":null,"created_at":"2026-11-22T00:05:16Z","updated_at":"2026-11-22T00:05:16Z",`+
		`"last_request_at":null,"external_user_id":null,"facebook_id":null,"twitter_id":null,"blob_id":null,`+
		`"custom_data":null,"age_over16":false,"allow_statistics_analysis":false,"allow_sales_activities":false,`+
		`"parents_contacts":"","user_tags":null}}`, gina))

	// Tags as a JSON array, numbers as JSON numbers, from a user session.
	user, _ := e.userSession("gina", "gina-pass1")
	res = e.callJSON(http.MethodPost, "/users.json", user,
		`{"user":{"login":"hank","password":"hank-pass1","tag_list":["a","b"],"external_user_id":7}}`)
	e.keep("hank-pass1")
	res.want(t, http.StatusCreated, "")
	if u := res.obj(t)["user"].(map[string]any); u["user_tags"] != "a,b" || num(t, u["external_user_id"]) != 7 {
		t.Errorf("hank = %v", u)
	}

	// A duplicate login: 422, exactly one such user stored.
	e.call(http.MethodPost, "/users.json", app, "user[login]", "frank", "user[password]", "other-pass").
		want(t, http.StatusUnprocessableEntity, `{"errors":{"login":["has already been taken"]}}`)
	if n := e.userCount("frank"); n != 1 {
		t.Errorf("%d users frank, want 1", n)
	}
	// Other unique fields.
	e.call(http.MethodPost, "/users.json", app, "user[login]", "ivan", "user[password]", "ivan-pass1", "user[email]", "FRANK@example.com").
		want(t, http.StatusUnprocessableEntity, `{"errors":{"email":["has already been taken"]}}`)
	e.call(http.MethodPost, "/users.json", app, "user[login]", "ivan", "user[password]", "ivan-pass1", "user[external_user_id]", "1236672").
		want(t, http.StatusUnprocessableEntity, `{"errors":{"external_user_id":["has already been taken"]}}`)
	// Validation.
	e.call(http.MethodPost, "/users.json", app, "user[login]", "ivan", "user[password]", "short").
		want(t, http.StatusUnprocessableEntity, `{"errors":{"password":["is too short (minimum is 8 characters)"]}}`)
	e.call(http.MethodPost, "/users.json", app, "user[password]", "long-enough").
		want(t, http.StatusUnprocessableEntity, `{"errors":{"base":["login or email is required"]}}`)
	e.call(http.MethodPost, "/users.json", app, "user[login]", "ivan", "user[password]", "ivan-pass1", "user[blob_id]", "x").
		want(t, http.StatusBadRequest, `{"errors":["blob_id must be an integer"]}`)
	if n := e.userCount("ivan"); n != 0 {
		t.Errorf("%d users ivan after failed creates, want 0", n)
	}
}

func TestListUsers(t *testing.T) {
	e := newEnv(t, restapi.Config{})
	var all []int64
	for i := range 12 {
		login := fmt.Sprintf("user%02d", i)
		u := e.mkUser(login, "password-"+login, func(in *account.UserInput) {
			in.FullName = ptr(fmt.Sprintf("Name %d", i%3))
			if i%2 == 0 {
				in.Tags = &[]string{"even"}
			}
		})
		all = append(all, u.ID)
		e.clock.Advance(time.Second)
	}
	token := e.appSession()

	// Defaults: page 1, 10 per page, ordered by id.
	if got := ids(t, e.call(http.MethodGet, "/users.json", token), 1, 10, 12); !reflect.DeepEqual(got, all[:10]) {
		t.Errorf("default page %v", got)
	}
	if got := ids(t, e.call(http.MethodGet, "/users.json", token, "page", "2"), 2, 10, 12); !reflect.DeepEqual(got, all[10:]) {
		t.Errorf("page 2 %v", got)
	}
	// per_page is capped at 100.
	ids(t, e.call(http.MethodGet, "/users.json", token, "per_page", "1000"), 1, 100, 12)

	// One filter, as the SDK sends it.
	got := ids(t, e.call(http.MethodGet, "/users.json", token, "filter[]", fmt.Sprintf("number id in %d,%d", all[1], all[2])), 1, 10, 2)
	if !reflect.DeepEqual(got, all[1:3]) {
		t.Errorf("id in: %v", got)
	}
	// Several filters joined into one filter[] value (SDK bug), and the
	// type word is not trusted (date for a number field).
	got = ids(t, e.call(http.MethodGet, "/users.json", token,
		"filter[]", fmt.Sprintf("number id in %d, %d,%d,string full_name eq Name 1,date id gt 0", all[1], all[4], all[5]),
		"order", "desc string created_at"), 1, 10, 2)
	if want := []int64{all[4], all[1]}; !reflect.DeepEqual(got, want) {
		t.Errorf("joined filters: %v, want %v", got, want)
	}
	// Several filter[] parameters.
	got = ids(t, e.call(http.MethodGet, "/users.json", token+"",
		"filter[]", "string user_tags in even", "filter[]", "string login in user00,user01,user02"), 1, 10, 2)
	if want := []int64{all[0], all[2]}; !reflect.DeepEqual(got, want) {
		t.Errorf("tags and logins: %v, want %v", got, want)
	}
	// Dates as unix seconds, between.
	got = ids(t, e.call(http.MethodGet, "/users.json", token,
		"filter[]", fmt.Sprintf("date created_at between %d,%d", t0Unix+3, t0Unix+4), "order", "asc date created_at"), 1, 10, 2)
	if want := all[3:5]; !reflect.DeepEqual(got, want) {
		t.Errorf("created_at between: %v, want %v", got, want)
	}

	// Invalid filters and orders are 422, never 500.
	for _, bad := range [][]string{
		{"filter[]", "number nofield eq 1"},
		{"filter[]", "number id eq x"},
		{"filter[]", "number id like 1"},
		{"filter[]", "number id"},
		{"filter[]", "string user_tags gt a"},
		{"filter[x]", "number id eq 1"},
		{"order", "sideways string login"},
		{"order", "asc string user_tags"},
		{"order", "asc string password"},
	} {
		res := e.call(http.MethodGet, "/users.json", token, bad...)
		if res.status != http.StatusUnprocessableEntity {
			t.Errorf("%q: %s, want 422", bad, res)
		}
	}
	e.call(http.MethodGet, "/users.json", token, "page", "two").want(t, http.StatusBadRequest, `{"errors":["page must be an integer"]}`)

	// Long in lists: up to 1,000 values in all are answered, more are 422
	// on every backend (SQLite would fail past 32,766 bound values).
	idList := func(n int) string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = strconv.Itoa(i + 1)
		}
		return strings.Join(ids, ",")
	}
	if res := e.call(http.MethodGet, "/users.json", token, "filter[]", "number id in "+idList(1000)); res.status != http.StatusOK {
		t.Errorf("1,000 ids: %s", res)
	}
	for _, kv := range [][]string{
		{"filter[]", "number id in " + idList(1001)},
		{"filter[]", "number id in " + idList(33000)},
		{"filter[]", "number id in " + idList(600), "filter[]", "number id in " + idList(600)},
	} {
		if res := e.call(http.MethodGet, "/users.json", token, kv...); res.status != http.StatusUnprocessableEntity {
			t.Errorf("%d filters with more than 1,000 ids in all: %.200s, want 422", len(kv)/2, res)
		}
	}
}

func TestUserLookups(t *testing.T) {
	e := newEnv(t, restapi.Config{})
	jo := e.mkUser("jo", "jo-password", func(in *account.UserInput) {
		in.Email = ptr("jo@example.com")
		in.FullName = ptr("Jo Anne Smith")
		in.Phone = ptr("+100")
		in.FacebookID = ptr("fb-jo")
		in.TwitterID = ptr("tw-jo")
		in.ExternalUserID = ptr(int64(555))
		in.Tags = &[]string{"red", "blue"}
	})
	kim := e.mkUser("kim", "kim-password", func(in *account.UserInput) {
		in.FullName = ptr("Kim SMITHSON")
		in.Tags = &[]string{"blue"}
	})
	lee := e.mkUser("lee", "lee-password", func(in *account.UserInput) { in.Tags = &[]string{"green"} })
	token := e.appSession()

	one := func(path string, kv ...string) int64 {
		t.Helper()
		res := e.call(http.MethodGet, path, token, kv...)
		res.want(t, http.StatusOK, "")
		return num(t, res.obj(t)["user"].(map[string]any)["id"])
	}
	if one("/users/"+itoa(jo.ID)+".json") != jo.ID ||
		one("/users/by_login.json", "login", "jo") != jo.ID ||
		one("/users/by_email.json", "email", "JO@example.com") != jo.ID ||
		one("/users/phone.json", "phone", "+100") != jo.ID ||
		one("/users/by_facebook_id.json", "facebook_id", "fb-jo") != jo.ID ||
		one("/users/by_twitter_id.json", "twitter_id", "tw-jo") != jo.ID ||
		one("/users/external/555.json") != jo.ID {
		t.Error("a lookup found someone else")
	}
	notFound := `{"errors":["Entity you are looking for was not found"]}`
	e.call(http.MethodGet, "/users/999.json", token).want(t, http.StatusNotFound, notFound)
	e.call(http.MethodGet, "/users/abc.json", token).want(t, http.StatusNotFound, notFound)
	e.call(http.MethodGet, "/users/by_login.json", token, "login", "nobody").want(t, http.StatusNotFound, notFound)
	e.call(http.MethodGet, "/users/external/556.json", token).want(t, http.StatusNotFound, notFound)
	e.call(http.MethodGet, "/users/external/x.json", token).want(t, http.StatusNotFound, notFound)
	// A user without an external id is not found by 0 (found in audit).
	e.call(http.MethodGet, "/users/external/0.json", token).want(t, http.StatusNotFound, notFound)
	e.call(http.MethodGet, "/users/by_login.json", token).want(t, http.StatusUnprocessableEntity, `{"errors":{"login":["can't be blank"]}}`)

	// Full name: case-insensitive substring, paged.
	if got := ids(t, e.call(http.MethodGet, "/users/by_full_name.json", token, "full_name", "smith"), 1, 10, 2); !reflect.DeepEqual(got, []int64{jo.ID, kim.ID}) {
		t.Errorf("by_full_name %v", got)
	}
	if got := ids(t, e.call(http.MethodGet, "/users/by_full_name.json", token, "full_name", "smith", "per_page", "1", "page", "2"), 2, 1, 2); !reflect.DeepEqual(got, []int64{kim.ID}) {
		t.Errorf("by_full_name page 2 %v", got)
	}
	// Tags: any of them, as tags=a,b or tags[]=a,b.
	if got := ids(t, e.call(http.MethodGet, "/users/by_tags.json", token, "tags", "red,green"), 1, 10, 2); !reflect.DeepEqual(got, []int64{jo.ID, lee.ID}) {
		t.Errorf("by_tags %v", got)
	}
	if got := ids(t, e.call(http.MethodGet, "/users/by_tags.json", token, "tags[]", "blue, green"), 1, 10, 3); !reflect.DeepEqual(got, []int64{jo.ID, kim.ID, lee.ID}) {
		t.Errorf("by_tags[] %v", got)
	}
	e.call(http.MethodGet, "/users/by_tags.json", token, "tags", " , ").want(t, http.StatusUnprocessableEntity, `{"errors":{"tags":["can't be blank"]}}`)
	if got := ids(t, e.call(http.MethodGet, "/users/by_tags.json", token, "tags", "none"), 1, 10, 0); len(got) != 0 {
		t.Errorf("by_tags none %v", got)
	}
}

func TestUpdateUser(t *testing.T) {
	e := newEnv(t, restapi.Config{})
	mo := e.mkUser("mo", "mo-password", nil)
	ned := e.mkUser("ned", "ned-password", nil)
	token, _ := e.userSession("mo", "mo-password")
	path := "/users/" + itoa(mo.ID) + ".json"

	e.clock.Advance(time.Hour)
	res := e.call(http.MethodPut, path, token, "user[full_name]", "Mo Money", "user[tag_list]", "x,y", "user[website]", "https://mo.example")
	res.want(t, http.StatusOK, "")
	u := res.obj(t)["user"].(map[string]any)
	if u["full_name"] != "Mo Money" || u["user_tags"] != "x,y" || u["login"] != "mo" || u["updated_at"] != "2026-11-22T01:05:16Z" {
		t.Errorf("updated user %v", u)
	}
	// JSON, and clearing a field.
	res = e.callJSON(http.MethodPut, path, token, `{"user":{"website":"","blob_id":""}}`)
	res.want(t, http.StatusOK, "")
	if u := res.obj(t)["user"].(map[string]any); u["website"] != nil || u["full_name"] != "Mo Money" {
		t.Errorf("after clearing website %v", u)
	}

	// Someone else: 403. An application session: 403. Nothing changes.
	e.call(http.MethodPut, "/users/"+itoa(ned.ID)+".json", token, "user[full_name]", "Hacked").
		want(t, http.StatusForbidden, `{"errors":["You don't have appropriate permissions to perform this operation"]}`)
	app := e.appSession()
	e.call(http.MethodPut, path, app, "user[full_name]", "Hacked").want(t, http.StatusForbidden, `{"errors":["Forbidden. Need user."]}`)
	if got := e.call(http.MethodGet, "/users/"+itoa(ned.ID)+".json", app).obj(t)["user"].(map[string]any)["full_name"]; got != nil {
		t.Errorf("ned's full name %v", got)
	}

	// A taken login.
	e.call(http.MethodPut, path, token, "user[login]", "ned").want(t, http.StatusUnprocessableEntity, `{"errors":{"login":["has already been taken"]}}`)
	if e.userCount("ned") != 1 || e.userCount("mo") != 1 {
		t.Error("a refused rename changed the store")
	}

	// The password needs the old one.
	e.keep("new-password")
	e.call(http.MethodPut, path, token, "user[password]", "new-password", "user[old_password]", "wrong-password").
		want(t, http.StatusUnprocessableEntity, `{"errors":{"old_password":["is incorrect"]}}`)
	e.call(http.MethodPut, path, token, "user[password]", "new-password", "user[old_password]", "mo-password").want(t, http.StatusOK, "")
	e.postSession(e.sessionData(map[string]string{"login": "mo", "password": "mo-password"})).
		want(t, http.StatusUnauthorized, `{"errors":["Unauthorized"]}`)
	e.clock.Advance(account.DefaultLoginFailureDelay) // the login throttle's wait after a failure
	e.userSession("mo", "new-password")
}

func TestDeleteUser(t *testing.T) {
	e := newEnv(t, restapi.Config{})
	oz := e.mkUser("oz", "oz-password", nil)
	pat := e.mkUser("pat", "pat-password", func(in *account.UserInput) { in.ExternalUserID = ptr(int64(77)) })
	ozToken, _ := e.userSession("oz", "oz-password")
	patToken, _ := e.userSession("pat", "pat-password")

	e.call(http.MethodDelete, "/users/"+itoa(pat.ID)+".json", ozToken).want(t, http.StatusForbidden, "")
	e.call(http.MethodDelete, "/users/external/77.json", ozToken).want(t, http.StatusForbidden, "")
	e.call(http.MethodDelete, "/users/"+itoa(oz.ID)+".json", e.appSession()).want(t, http.StatusForbidden, `{"errors":["Forbidden. Need user."]}`)
	if e.userCount("pat") != 1 || e.userCount("oz") != 1 {
		t.Fatal("a refused delete removed a user")
	}

	// The token in the DELETE body, as the SDK may send parameters.
	res := e.call(http.MethodDelete, "/users/"+itoa(oz.ID)+".json", "", "token", ozToken)
	res.want(t, http.StatusOK, "")
	if len(res.body) != 0 {
		t.Errorf("DELETE body %q, want empty", res.body)
	}
	if e.userCount("oz") != 0 {
		t.Error("oz is still stored")
	}
	e.call(http.MethodGet, "/session.json", ozToken).want(t, http.StatusUnauthorized, noSession)

	e.call(http.MethodDelete, "/users/external/77.json", patToken).want(t, http.StatusOK, "")
	if e.userCount("pat") != 0 {
		t.Error("pat is still stored")
	}
}

// Text that is not UTF-8 (a form value escaped byte by byte, %FF) is
// refused with 422 wherever a user's attributes or credentials arrive:
// user create and update, session create and login. Nothing is stored.
func TestUserInputMustBeUTF8(t *testing.T) {
	e := newEnv(t, restapi.Config{})
	const bad = "ab\xffc"
	app := e.appSession()
	for _, field := range []string{"login", "email", "full_name", "phone", "website", "facebook_id", "twitter_id",
		"custom_data", "tag_list", "password"} {
		kv := []string{"user[login]", "utf8-" + strings.ReplaceAll(field, "_", ""), "user[password]", "utf8-password"}
		switch field {
		case "login", "password":
			kv[map[string]int{"login": 1, "password": 3}[field]] = bad
		case "email":
			kv = append(kv, "user[email]", "x"+bad+"@example.com")
		default:
			kv = append(kv, "user["+field+"]", bad)
		}
		e.call(http.MethodPost, "/users.json", app, kv...).
			want(t, http.StatusUnprocessableEntity, `{"errors":{"`+field+`":["is not valid UTF-8"]}}`)
	}
	if _, total, err := e.svc.FindUsers(t.Context(), e.app.ID, account.UserQuery{}); err != nil || total != 0 {
		t.Errorf("%d users stored after refused creates (%v), want 0", total, err)
	}

	u := e.mkUser("utf8", "utf8-password", nil)
	token, _ := e.userSession("utf8", "utf8-password")
	path := "/users/" + itoa(u.ID) + ".json"
	for _, field := range []string{"login", "full_name", "custom_data", "tag_list"} {
		e.call(http.MethodPut, path, token, "user["+field+"]", bad).
			want(t, http.StatusUnprocessableEntity, `{"errors":{"`+field+`":["is not valid UTF-8"]}}`)
	}
	e.call(http.MethodPut, path, token, "user[password]", "new-"+bad+"-password", "user[old_password]", "utf8-password").
		want(t, http.StatusUnprocessableEntity, `{"errors":{"password":["is not valid UTF-8"]}}`)
	if got, _ := e.svc.User(t.Context(), e.app.ID, u.ID); got.Login != "utf8" || got.FullName != "" || got.Tags != nil ||
		!got.Credentials.Matches("utf8-password") {
		t.Errorf("a refused update changed the user: %+v", got)
	}

	// Session create and login: refused as invalid, not looked up.
	for _, user := range []map[string]string{
		{"login": bad, "password": "utf8-password"},
		{"email": bad + "@example.com", "password": "utf8-password"},
		{"login": "utf8", "password": bad},
	} {
		field := "login"
		if _, ok := user["email"]; ok {
			field = "email"
		} else if user["login"] == "utf8" {
			field = "password"
		}
		e.postSession(e.sessionData(user)).
			want(t, http.StatusUnprocessableEntity, `{"errors":{"`+field+`":["is not valid UTF-8"]}}`)
		kv := []string{}
		for k, v := range user {
			kv = append(kv, k, v)
		}
		e.call(http.MethodPost, "/login.json", app, kv...).
			want(t, http.StatusUnprocessableEntity, `{"errors":{"`+field+`":["is not valid UTF-8"]}}`)
	}
	if n := e.sessionsOf(u.ID); n != 1 {
		t.Errorf("%d sessions of the user, want 1", n)
	}
}

// filter[]=string user_tags eq a,b finds the users having both tags, in
// whatever order they were stored (found in audit).
func TestListUsersByTagsIgnoresOrder(t *testing.T) {
	e := newEnv(t, restapi.Config{})
	ab := e.mkUser("ab", "ab-password", func(in *account.UserInput) { in.Tags = &[]string{"a,b"} })
	ba := e.mkUser("ba", "ba-password", func(in *account.UserInput) { in.Tags = &[]string{"b", "a"} })
	onlyA := e.mkUser("only-a", "a-password", func(in *account.UserInput) { in.Tags = &[]string{"a"} })
	token := e.appSession()
	for _, value := range []string{"a,b", "b, a"} {
		got := ids(t, e.call(http.MethodGet, "/users.json", token, "filter[]", "string user_tags eq "+value), 1, 10, 2)
		if want := []int64{ab.ID, ba.ID}; !reflect.DeepEqual(got, want) {
			t.Errorf("user_tags eq %s: %v, want %v", value, got, want)
		}
	}
	got := ids(t, e.call(http.MethodGet, "/users.json", token, "filter[]", "string user_tags ne b,a"), 1, 10, 1)
	if want := []int64{onlyA.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("user_tags ne b,a: %v, want %v", got, want)
	}
}
