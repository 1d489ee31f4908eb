package restapi_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"chatd/restapi"
)

const t0ISO = "2026-11-22T00:05:16Z" // the test clock's start, as QuickBlox writes times

func TestCreateDialog(t *testing.T) {
	e := newChatEnv(t, restapi.Config{XMPPDomain: "chat.example"}, chatOptions{})
	alice, bob, carol := e.person("alice"), e.person("bob"), e.person("carol")
	app := e.app.ID

	// A private dialog, occupants_ids as the SDK joins them ("1002, 1003"):
	// the bare dialog, 201, every empty field null, no xmpp room.
	res := e.call(http.MethodPost, "/chat/Dialog.json", alice.token, "occupants_ids", csv(bob.id), "type", "3")
	res.want(t, http.StatusCreated, "")
	priv := res.obj(t)["_id"].(string)
	res.want(t, http.StatusCreated, fmt.Sprintf(`{"_id":%q,"user_id":%d,"created_at":%q,"updated_at":%q,"type":3,`+
		`"name":null,"photo":null,"xmpp_room_jid":null,"occupants_ids":%s,"admin_ids":[],"last_message":null,`+
		`"last_message_date_sent":null,"last_message_id":null,"last_message_user_id":null,"unread_messages_count":0,`+
		`"is_join_required":null}`, priv, alice.id, t0ISO, t0ISO, jsonInts(sorted(alice.id, bob.id)...)))

	// The pair's dialog again, from the other side and with the caller's own
	// id among the occupants: 200 and the same dialog.
	res = e.call(http.MethodPost, "/chat/Dialog.json", bob.token, "type", "3", "occupants_ids", csv(alice.id, bob.id))
	res.want(t, http.StatusOK, "")
	if res.obj(t)["_id"] != priv {
		t.Errorf("second create of the pair's dialog = %s, want %s", res.body, priv)
	}

	// A group as the SDK sends it (compat §3.1), with custom data and the
	// room on muc.<XMPPDomain>.
	res = e.call(http.MethodPost, "/chat/Dialog.json", alice.token,
		"data[class_name]", "Extra", "data[color]", "red", "name", "g", "occupants_ids", csv(carol.id, bob.id), "type", "2")
	res.want(t, http.StatusCreated, "")
	group := res.obj(t)["_id"].(string)
	res.want(t, http.StatusCreated, fmt.Sprintf(`{"_id":%q,"user_id":%d,"created_at":%q,"updated_at":%q,"type":2,`+
		`"name":"g","photo":null,"xmpp_room_jid":"%d_%s@muc.chat.example","occupants_ids":%s,"admin_ids":[],`+
		`"last_message":null,"last_message_date_sent":null,"last_message_id":null,"last_message_user_id":null,`+
		`"unread_messages_count":0,"is_join_required":0,"data":{"class_name":"Extra","color":"red"}}`,
		group, alice.id, t0ISO, t0ISO, app, group, jsonInts(sorted(alice.id, bob.id, carol.id)...)))

	// JSON body, occupants as a JSON array, join required, a photo.
	res = e.callJSON(http.MethodPost, "/chat/Dialog.json", alice.token,
		fmt.Sprintf(`{"type":2,"name":"j","photo":"68123","occupants_ids":[%d],"is_join_required":1,"data":{"class_name":"CoolDialog","n":5}}`, bob.id))
	res.want(t, http.StatusCreated, "")
	if d := res.obj(t); num(t, d["is_join_required"]) != 1 || d["photo"] != "68123" ||
		!slices.Equal(intsOf(t, d["occupants_ids"]), sorted(alice.id, bob.id)) ||
		fmt.Sprint(d["data"]) != "map[class_name:CoolDialog n:5]" {
		t.Errorf("JSON group: %s", res.body)
	}
	// occupants_ids[] as a form list, "1,2" style.
	res = e.call(http.MethodPost, "/chat/Dialog.json", carol.token, "type", "2", "name", "l",
		"occupants_ids[]", fmt.Sprintf("%d,%d", alice.id, bob.id))
	res.want(t, http.StatusCreated, "")
	if got := intsOf(t, res.obj(t)["occupants_ids"]); !slices.Equal(got, sorted(alice.id, bob.id, carol.id)) {
		t.Errorf("occupants_ids[] = %v", got)
	}
	// A public group: no occupant list, join required is null.
	res = e.call(http.MethodPost, "/chat/Dialog.json", bob.token, "type", "1", "name", "lobby", "occupants_ids", csv(alice.id))
	res.want(t, http.StatusCreated, "")
	pub := res.obj(t)["_id"].(string)
	res.want(t, http.StatusCreated, fmt.Sprintf(`{"_id":%q,"user_id":%d,"created_at":%q,"updated_at":%q,"type":1,`+
		`"name":"lobby","photo":null,"xmpp_room_jid":"%d_%s@muc.chat.example","occupants_ids":[],"admin_ids":[],`+
		`"last_message":null,"last_message_date_sent":null,"last_message_id":null,"last_message_user_id":null,`+
		`"unread_messages_count":0,"is_join_required":null}`, pub, bob.id, t0ISO, t0ISO, app, pub))

	// Refusals.
	for _, c := range []struct {
		kv     []string
		status int
		body   string
	}{
		{[]string{"occupants_ids", csv(bob.id)}, 422, `{"errors":{"type":["can't be blank"]}}`},
		{[]string{"type", "7", "name", "x"}, 422, `{"errors":{"type":["must be 1, 2 or 3"]}}`},
		{[]string{"type", "x"}, 400, `{"errors":["type must be an integer"]}`},
		{[]string{"type", "3", "occupants_ids", csv(bob.id, carol.id)}, 422,
			`{"errors":{"occupants_ids":["must name exactly one other user for a private dialog"]}}`},
		{[]string{"type", "3"}, 422, `{"errors":{"occupants_ids":["must name exactly one other user for a private dialog"]}}`},
		{[]string{"type", "2", "occupants_ids", csv(bob.id)}, 422, `{"errors":{"name":["can't be blank"]}}`},
		// A group names someone besides its creator.
		{[]string{"type", "2", "name", "x"}, 422, `{"errors":{"occupants_ids":["can't be blank"]}}`},
		{[]string{"type", "2", "name", "x", "occupants_ids", ""}, 422, `{"errors":{"occupants_ids":["can't be blank"]}}`},
		{[]string{"type", "2", "name", "x", "occupants_ids", csv(alice.id)}, 422, `{"errors":{"occupants_ids":["can't be blank"]}}`},
		{[]string{"type", "2", "name", "x", "occupants_ids", "999999"}, 422, `{"errors":{"occupants_ids":["user 999999 does not exist"]}}`},
		{[]string{"type", "2", "name", "x", "occupants_ids", "1,x"}, 400, `{"errors":["occupants_ids must be a list of integers"]}`},
		{[]string{"type", "2", "name", "x", "is_join_required", "2"}, 400, `{"errors":["is_join_required must be 0 or 1"]}`},
		{[]string{"type", "2", "name", "x", "data", "red"}, 422, `{"errors":{"data":["must be an object of fields"]}}`},
		{[]string{"type", "2", "name", string(make([]byte, 201)), "occupants_ids", csv(bob.id)}, 422, ""},
	} {
		e.call(http.MethodPost, "/chat/Dialog.json", alice.token, c.kv...).want(t, c.status, c.body)
	}
	// A refused create leaves no dialog behind.
	e.call(http.MethodGet, "/chat/Dialog.json", alice.token, "count", "1").want(t, http.StatusOK, `{"items_count":5}`)
}

func TestChatNeedsUserSession(t *testing.T) {
	e := newChatEnv(t, restapi.Config{}, chatOptions{turn: testTURNConfig()})
	app := e.appSession()
	const id = "5d75393ba28f9a17e1cb0f9e"
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/chat/Dialog.json"},
		{http.MethodPost, "/chat/Dialog.json"},
		{http.MethodGet, "/chat/Dialog/" + id + ".json"},
		{http.MethodPut, "/chat/Dialog/" + id + ".json"},
		{http.MethodDelete, "/chat/Dialog/" + id + ".json"},
		{http.MethodGet, "/chat/Dialog/" + id + "/notifications.json"},
		{http.MethodPut, "/chat/Dialog/" + id + "/notifications.json"},
		{http.MethodGet, "/chat/Message.json"},
		{http.MethodPost, "/chat/Message.json"},
		{http.MethodPut, "/chat/Message.json"},
		{http.MethodPut, "/chat/Message/" + id + ".json"},
		{http.MethodDelete, "/chat/Message/" + id + ".json"},
		{http.MethodGet, "/chat/Message/unread.json"},
		{http.MethodGet, "/turn/credentials.json"},
	} {
		e.call(c.method, c.path, app).want(t, http.StatusForbidden, `{"errors":["Forbidden. Need user."]}`)
		e.call(c.method, c.path, "").want(t, http.StatusUnauthorized, `{"errors":{"base":["Required session does not exist"]}}`)
	}
	// Without history the chat endpoints do not exist.
	plain := newEnv(t, restapi.Config{})
	plain.call(http.MethodGet, "/chat/Dialog.json", plain.appSession()).want(t, http.StatusNotFound, "")
}

func TestListDialogs(t *testing.T) {
	e := newChatEnv(t, restapi.Config{}, chatOptions{})
	alice, bob, carol, dave := e.person("alice"), e.person("bob"), e.person("carol"), e.person("dave")

	priv := e.mkDialog(alice, 201, "type", "3", "occupants_ids", csv(bob.id))["_id"].(string)
	e.clock.Advance(time.Minute)
	g1 := e.mkDialog(alice, 201, "type", "2", "name", "Team Red", "occupants_ids", csv(bob.id, carol.id),
		"data[class_name]", "Extra", "data[color]", "red")["_id"].(string)
	e.clock.Advance(time.Minute)
	g2 := e.mkDialog(carol, 201, "type", "2", "name", "Blue team", "occupants_ids", csv(dave.id),
		"data[class_name]", "Extra", "data[color]", "blue")["_id"].(string)
	e.clock.Advance(time.Minute)
	pub := e.mkDialog(dave, 201, "type", "1", "name", "Lobby")["_id"].(string)
	e.clock.Advance(time.Minute)
	// Messages order the default list: newest last message first.
	e.record(alice, priv, "hello bob")
	e.clock.Advance(time.Minute)
	e.record(carol, g1, "red!")

	list := func(p person, kv ...string) (map[string]any, []string) {
		t.Helper()
		res := e.call(http.MethodGet, "/chat/Dialog.json", p.token, kv...)
		res.want(t, http.StatusOK, "")
		m := res.obj(t)
		return m, idsOf(items(t, m))
	}
	// Defaults: skip 0, limit 100, total; dialogs with messages first
	// (newest first), then by last update.
	m, ids := list(alice)
	if num(t, m["skip"]) != 0 || num(t, m["limit"]) != 100 || num(t, m["total_entries"]) != 3 {
		t.Errorf("paging %v", m)
	}
	if !slices.Equal(ids, []string{g1, priv, pub}) {
		t.Errorf("alice sees %v, want %v", ids, []string{g1, priv, pub})
	}
	// Visibility: dave is in g2 and sees the public group, not g1 or priv.
	if _, ids := list(dave); !slices.Equal(ids, []string{pub, g2}) {
		t.Errorf("dave sees %v", ids)
	}
	// The SDK's own list call (compat §3.1).
	m, ids = list(alice, "limit", "20", "occupants_ids[all]", fmt.Sprint(alice.id), "skip", "0",
		"sort_desc", "last_message_date_sent", "type[in]", "2,3")
	if !slices.Equal(ids, []string{g1, priv}) || num(t, m["limit"]) != 20 {
		t.Errorf("SDK list: %v %v", ids, m)
	}
	for _, c := range []struct {
		kv   []string
		want []string
	}{
		{[]string{"type", "2"}, []string{g1}},
		{[]string{"type[ne]", "2", "sort_asc", "created_at"}, []string{priv, pub}},
		{[]string{"name[ctn]", "TEAM"}, []string{g1}},
		{[]string{"name", "Lobby"}, []string{pub}},
		{[]string{"name[in]", "Lobby,Team Red", "sort_asc", "name"}, []string{pub, g1}},
		{[]string{"_id", g1}, []string{g1}},
		{[]string{"_id[nin]", g1 + "," + pub}, []string{priv}},
		{[]string{"data[color]", "red"}, []string{g1}},
		{[]string{"data[class_name]", "Extra", "data[color][ne]", "red"}, nil},
		{[]string{"occupants_ids[in]", fmt.Sprint(carol.id)}, []string{g1}},
		{[]string{"occupants_ids[all]", fmt.Sprintf("%d,%d", bob.id, carol.id)}, []string{g1}},
		{[]string{"last_message_date_sent[gt]", "0", "sort_asc", "last_message_date_sent"}, []string{priv, g1}},
		{[]string{"last_message_date_sent[gte]", fmt.Sprint(t0Unix + 300)}, []string{g1}},
		// A fraction is compared exactly (priv's last message is at +240).
		{[]string{"last_message_date_sent[lt]", fmt.Sprint(t0Unix+240) + ".5"}, []string{priv, pub}},
		{[]string{"last_message_date_sent[gte]", fmt.Sprint(t0Unix+240) + ".5"}, []string{g1}},
		{[]string{"last_message_date_sent", fmt.Sprint(t0Unix+240) + ".5"}, nil},
		{[]string{"last_message_date_sent[ne]", fmt.Sprint(t0Unix+240) + ".5"}, []string{g1, priv, pub}},
		{[]string{"created_at[lt]", fmt.Sprint(t0Unix+60) + ".5", "sort_desc", "created_at"}, []string{g1, priv}},
		{[]string{"created_at[gte]", fmt.Sprint(t0Unix + 60), "sort_desc", "created_at"}, []string{pub, g1}},
		{[]string{"updated_at[lte]", "2026-11-22T00:08:16Z"}, []string{pub}},
		{[]string{"sort_asc", "created_at", "limit", "1", "skip", "1"}, []string{g1}},
	} {
		m, ids := list(alice, c.kv...)
		if !slices.Equal(ids, c.want) && !(len(ids) == 0 && c.want == nil) {
			t.Errorf("%v: %v, want %v", c.kv, ids, c.want)
		}
		if c.kv[0] == "sort_asc" && num(t, m["total_entries"]) != 3 {
			t.Errorf("%v: total_entries %v, want 3 (before paging)", c.kv, m["total_entries"])
		}
	}
	// count=1: only the number.
	e.call(http.MethodGet, "/chat/Dialog.json", alice.token, "count", "1").want(t, http.StatusOK, `{"items_count":3}`)
	e.call(http.MethodGet, "/chat/Dialog.json", alice.token, "count", "1", "type", "2").want(t, http.StatusOK, `{"items_count":1}`)
	e.call(http.MethodGet, "/chat/Dialog.json", alice.token, "count", "1", "last_message_date_sent", fmt.Sprint(t0Unix+240)+".5").
		want(t, http.StatusOK, `{"items_count":0}`)

	// Bad queries: 400 naming the parameter.
	for _, c := range []struct{ kv []string }{
		{[]string{"colour", "red"}},
		{[]string{"type[like]", "2"}},
		{[]string{"type", "two"}},
		{[]string{"_id", "nope"}},
		{[]string{"type[all]", "2"}},
		{[]string{"sort_desc", "occupants_ids"}},
		{[]string{"limit", "-1"}},
		{[]string{"skip", "x"}},
		{[]string{"type[in]", ""}},
		{[]string{"data", "x"}},
		{[]string{"occupants_ids[lt]", "5"}},
	} {
		res := e.call(http.MethodGet, "/chat/Dialog.json", alice.token, c.kv...)
		res.want(t, http.StatusBadRequest, "")
		if msg := fmt.Sprint(res.obj(t)["errors"]); !containsAny(msg, c.kv) {
			t.Errorf("%v: error %s names none of the parameters", c.kv, res.body)
		}
	}
	e.call(http.MethodGet, "/chat/Dialog.json", alice.token, "colour", "red").
		want(t, http.StatusBadRequest, `{"errors":["unknown dialog field \"colour\""]}`)
	e.call(http.MethodGet, "/chat/Dialog.json", alice.token, "type[like]", "2").
		want(t, http.StatusBadRequest, `{"errors":["unknown operator \"like\" on \"type\""]}`)

	// ctn ignores the case of every letter, not only of ASCII ones.
	g3 := e.mkDialog(alice, 201, "type", "2", "name", "Ärger im BÜRO", "occupants_ids", csv(bob.id))["_id"].(string)
	msg := e.sendText(bob, g3, "Grüße aus München")
	for _, q := range []string{"ärger", "büro", "ÄRGER IM Büro"} {
		if _, ids := list(alice, "name[ctn]", q); !slices.Equal(ids, []string{g3}) {
			t.Errorf("name[ctn]=%s: %v, want [%s]", q, ids, g3)
		}
	}
	if _, ids := list(alice, "last_message[ctn]", "GRÜSSE"); len(ids) != 0 {
		t.Errorf("last_message[ctn]=GRÜSSE: %v, want none (ß is not ss)", ids)
	}
	for _, q := range []string{"MÜNCHEN", "GRÜẞE"} {
		if got := idsOf(e.messages(alice, g3, "mark_as_read", "0", "message[ctn]", q)); !slices.Equal(got, []string{msg}) {
			t.Errorf("message[ctn]=%s: %v, want [%s]", q, got, msg)
		}
	}
}

func TestGetUpdateDeleteDialog(t *testing.T) {
	e := newChatEnv(t, restapi.Config{}, chatOptions{})
	alice, bob, carol, dave := e.person("alice"), e.person("bob"), e.person("carol"), e.person("dave")
	g := e.mkDialog(alice, 201, "type", "2", "name", "g", "occupants_ids", csv(bob.id, carol.id),
		"data[class_name]", "Extra", "data[color]", "red")["_id"].(string)

	// GET one: occupants only; unknown and malformed ids are 404.
	res := e.call(http.MethodGet, "/chat/Dialog/"+g+".json", bob.token)
	res.want(t, http.StatusOK, "")
	if res.obj(t)["_id"] != g {
		t.Errorf("GET: %s", res.body)
	}
	e.call(http.MethodGet, "/chat/Dialog/"+g+".json", dave.token).
		want(t, http.StatusForbidden, `{"errors":["You don't have appropriate permissions to perform this operation"]}`)
	e.call(http.MethodGet, "/chat/Dialog/5d75393ba28f9a17e1cb0f9e.json", alice.token).
		want(t, http.StatusNotFound, `{"errors":["Entity you are looking for was not found"]}`)
	e.call(http.MethodGet, "/chat/Dialog/nope.json", alice.token).want(t, http.StatusNotFound, "")

	// The SDK's update: JSON with push_all and pull_all (compat §3.1).
	e.clock.Advance(time.Hour)
	res = e.callJSON(http.MethodPut, "/chat/Dialog/"+g+".json", alice.token,
		fmt.Sprintf(`{"name":"n2","push_all":{"occupants_ids":[%d]},"pull_all":{"occupants_ids":[%d]}}`, dave.id, carol.id))
	res.want(t, http.StatusOK, "")
	d := res.obj(t)
	if d["name"] != "n2" || !slices.Equal(intsOf(t, d["occupants_ids"]), sorted(alice.id, bob.id, dave.id)) ||
		d["updated_at"] != "2026-11-22T01:05:16Z" || d["created_at"] != t0ISO {
		t.Errorf("after update: %s", res.body)
	}
	// A form update (push_all[occupants_ids][]=…), photo and data merged.
	res = e.call(http.MethodPut, "/chat/Dialog/"+g+".json", bob.token,
		"push_all[occupants_ids][]", fmt.Sprint(carol.id), "photo", "674", "data[size]", "3")
	res.want(t, http.StatusOK, "")
	d = res.obj(t)
	if d["photo"] != "674" || fmt.Sprint(d["data"]) != "map[class_name:Extra color:red size:3]" ||
		!slices.Equal(intsOf(t, d["occupants_ids"]), sorted(alice.id, bob.id, carol.id, dave.id)) {
		t.Errorf("after form update: %s", res.body)
	}
	// Rules: an occupant removes only themselves; only the owner changes
	// is_join_required; outsiders change nothing.
	e.callJSON(http.MethodPut, "/chat/Dialog/"+g+".json", bob.token, fmt.Sprintf(`{"pull_all":{"occupants_ids":[%d]}}`, carol.id)).
		want(t, http.StatusForbidden, "")
	e.callJSON(http.MethodPut, "/chat/Dialog/"+g+".json", bob.token, `{"is_join_required":1}`).want(t, http.StatusForbidden, "")
	other := e.person("erin")
	e.callJSON(http.MethodPut, "/chat/Dialog/"+g+".json", other.token, `{"name":"x"}`).want(t, http.StatusForbidden, "")
	e.callJSON(http.MethodPut, "/chat/Dialog/"+g+".json", alice.token, `{"name":"  "}`).
		want(t, http.StatusUnprocessableEntity, `{"errors":{"name":["can't be blank"]}}`)
	e.callJSON(http.MethodPut, "/chat/Dialog/"+g+".json", alice.token, `{"push_all":{"occupants_ids":[999999]}}`).
		want(t, http.StatusUnprocessableEntity, `{"errors":{"occupants_ids":["user 999999 does not exist"]}}`)
	e.callJSON(http.MethodPut, "/chat/Dialog/"+g+".json", alice.token, `{"push_all":{"occupants_ids":["x"]}}`).
		want(t, http.StatusBadRequest, "")
	e.callJSON(http.MethodPut, "/chat/Dialog/5d75393ba28f9a17e1cb0f9e.json", alice.token, `{"name":"x"}`).
		want(t, http.StatusNotFound, "")
	// An occupant leaves by pulling themselves.
	res = e.callJSON(http.MethodPut, "/chat/Dialog/"+g+".json", dave.token, fmt.Sprintf(`{"pull_all":{"occupants_ids":[%d]}}`, dave.id))
	res.want(t, http.StatusOK, "")
	if slices.Contains(intsOf(t, res.obj(t)["occupants_ids"]), dave.id) {
		t.Errorf("dave still in %s", res.body)
	}
	e.call(http.MethodGet, "/chat/Dialog/"+g+".json", dave.token).want(t, http.StatusForbidden, "")
	// The owner: is_join_required, and occupants_ids replacing the list.
	res = e.callJSON(http.MethodPut, "/chat/Dialog/"+g+".json", alice.token,
		fmt.Sprintf(`{"is_join_required":1,"occupants_ids":"%d,%d"}`, alice.id, carol.id))
	res.want(t, http.StatusOK, "")
	if d := res.obj(t); num(t, d["is_join_required"]) != 1 || !slices.Equal(intsOf(t, d["occupants_ids"]), sorted(alice.id, carol.id)) {
		t.Errorf("after replace: %s", res.body)
	}

	// A private dialog's occupants never change; a public group is its
	// owner's.
	priv := e.mkDialog(alice, 201, "type", "3", "occupants_ids", csv(bob.id))["_id"].(string)
	e.callJSON(http.MethodPut, "/chat/Dialog/"+priv+".json", alice.token, fmt.Sprintf(`{"push_all":{"occupants_ids":[%d]}}`, carol.id)).
		want(t, http.StatusUnprocessableEntity, `{"errors":{"occupants_ids":["cannot change in a private dialog"]}}`)
	pub := e.mkDialog(alice, 201, "type", "1", "name", "lobby")["_id"].(string)
	e.callJSON(http.MethodPut, "/chat/Dialog/"+pub+".json", bob.token, `{"name":"mine"}`).want(t, http.StatusForbidden, "")
	e.callJSON(http.MethodPut, "/chat/Dialog/"+pub+".json", alice.token, `{"name":"hall"}`).want(t, http.StatusOK, "")

	// A group whose last occupants leave is deleted: the answer shows it
	// without occupants, and it is gone.
	solo := e.mkDialog(bob, 201, "type", "2", "name", "solo", "occupants_ids", csv(carol.id))["_id"].(string)
	res = e.callJSON(http.MethodPut, "/chat/Dialog/"+solo+".json", bob.token,
		fmt.Sprintf(`{"pull_all":{"occupants_ids":[%d,%d]}}`, bob.id, carol.id))
	res.want(t, http.StatusOK, "")
	if d := res.obj(t); d["_id"] != solo || len(intsOf(t, d["occupants_ids"])) != 0 {
		t.Errorf("emptied group: %s", res.body)
	}
	e.call(http.MethodGet, "/chat/Dialog/"+solo+".json", bob.token).want(t, http.StatusNotFound, "")

	// DELETE with force=1 in a form body (compat §3.1): the owner deletes for
	// everyone; others' and unknown ids are sorted out, not errors.
	g2 := e.mkDialog(bob, 201, "type", "2", "name", "g2", "occupants_ids", csv(alice.id))["_id"].(string)
	const unknown = "5d75393ba28f9a17e1cb0f9e"
	e.call(http.MethodDelete, "/chat/Dialog/"+g+","+g2+","+unknown+",aaa.json", alice.token, "force", "1").
		want(t, http.StatusOK, fmt.Sprintf(`{"SuccessfullyDeleted":{"ids":[%q]},"NotFound":{"ids":[%q,"aaa"]},"WrongPermissions":{"ids":[%q]}}`,
			g, unknown, g2))
	e.call(http.MethodGet, "/chat/Dialog/"+g+".json", carol.token).want(t, http.StatusNotFound, "")
	// A single id answers the same JSON; the path may escape the comma.
	e.call(http.MethodDelete, "/chat/Dialog/"+unknown+".json", alice.token, "force", "1").
		want(t, http.StatusOK, fmt.Sprintf(`{"SuccessfullyDeleted":{"ids":[]},"NotFound":{"ids":[%q]},"WrongPermissions":{"ids":[]}}`, unknown))
	// Without force an occupant leaves a group, and the others keep it.
	e.call(http.MethodDelete, "/chat/Dialog/"+g2+"%2C"+unknown+".json", alice.token).
		want(t, http.StatusOK, fmt.Sprintf(`{"SuccessfullyDeleted":{"ids":[%q]},"NotFound":{"ids":[%q]},"WrongPermissions":{"ids":[]}}`, g2, unknown))
	e.call(http.MethodGet, "/chat/Dialog/"+g2+".json", alice.token).want(t, http.StatusForbidden, "")
	e.call(http.MethodGet, "/chat/Dialog/"+g2+".json", bob.token).want(t, http.StatusOK, "")
	// Without force a private dialog is hidden from the caller only.
	e.call(http.MethodDelete, "/chat/Dialog/"+priv+".json", bob.token).want(t, http.StatusOK, "")
	if _, ids := listIDs(t, e, bob); slices.Contains(ids, priv) {
		t.Errorf("bob still lists the private dialog he deleted: %v", ids)
	}
	if _, ids := listIDs(t, e, alice); !slices.Contains(ids, priv) {
		t.Errorf("alice lost the private dialog bob deleted: %v", ids)
	}
	// Starting the chat again (the pair's dialog, 200) shows it to him
	// again, with what he had read when he deleted it read.
	e.sendText(alice, priv, "are you there?")
	e.call(http.MethodDelete, "/chat/Dialog/"+priv+".json", bob.token).want(t, http.StatusOK, "")
	d = e.mkDialog(bob, http.StatusOK, "type", "3", "occupants_ids", csv(alice.id))
	if d["_id"] != priv || num(t, d["unread_messages_count"]) != 0 {
		t.Errorf("bob's new chat with alice: %v, want %s with nothing unread", d, priv)
	}
	if _, ids := listIDs(t, e, bob); !slices.Contains(ids, priv) {
		t.Errorf("bob started the chat with alice again, but his dialog list %v does not have %s", ids, priv)
	}
	if total, counts := e.unread(bob, priv); total != 0 || counts[priv] != 0 {
		t.Errorf("bob's unread after starting the chat again: total %d, %v", total, counts)
	}
	e.call(http.MethodDelete, "/chat/Dialog/"+priv+".json", bob.token).want(t, http.StatusOK, "")
	// force=1 by a non-owner: WrongPermissions.
	e.call(http.MethodDelete, "/chat/Dialog/"+priv+".json", bob.token, "force", "1").
		want(t, http.StatusOK, fmt.Sprintf(`{"SuccessfullyDeleted":{"ids":[]},"NotFound":{"ids":[]},"WrongPermissions":{"ids":[%q]}}`, priv))
	e.call(http.MethodDelete, "/chat/Dialog/"+priv+".json", alice.token, "force", "x").want(t, http.StatusBadRequest, "")
}

// listIDs lists p's dialogs with the defaults.
func listIDs(t *testing.T, e *env, p person) (map[string]any, []string) {
	t.Helper()
	res := e.call(http.MethodGet, "/chat/Dialog.json", p.token)
	res.want(t, http.StatusOK, "")
	m := res.obj(t)
	return m, idsOf(items(t, m))
}

func TestDialogNotifications(t *testing.T) {
	e := newChatEnv(t, restapi.Config{}, chatOptions{})
	alice, bob, carol := e.person("alice"), e.person("bob"), e.person("carol")
	d := e.mkDialog(alice, 201, "type", "3", "occupants_ids", csv(bob.id))["_id"].(string)
	path := "/chat/Dialog/" + d + "/notifications.json"

	e.call(http.MethodGet, path, alice.token).want(t, http.StatusOK, `{"notifications":{"enabled":1}}`)
	// JSON as the docs send it, the value as a number or a string.
	e.callJSON(http.MethodPut, path, alice.token, `{"enabled":0}`).want(t, http.StatusOK, `{"notifications":{"enabled":0}}`)
	e.call(http.MethodGet, path, alice.token).want(t, http.StatusOK, `{"notifications":{"enabled":0}}`)
	e.call(http.MethodGet, path, bob.token).want(t, http.StatusOK, `{"notifications":{"enabled":1}}`)
	e.callJSON(http.MethodPut, path, alice.token, `{"enabled":"1"}`).want(t, http.StatusOK, `{"notifications":{"enabled":1}}`)
	// A form.
	e.call(http.MethodPut, path, bob.token, "enabled", "0").want(t, http.StatusOK, `{"notifications":{"enabled":0}}`)
	e.call(http.MethodGet, path, bob.token).want(t, http.StatusOK, `{"notifications":{"enabled":0}}`)

	e.call(http.MethodPut, path, bob.token).want(t, http.StatusUnprocessableEntity, `{"errors":{"enabled":["can't be blank"]}}`)
	e.call(http.MethodPut, path, bob.token, "enabled", "maybe").want(t, http.StatusBadRequest, "")
	e.call(http.MethodGet, path, carol.token).want(t, http.StatusForbidden, "")
	e.call(http.MethodPut, path, carol.token, "enabled", "0").want(t, http.StatusForbidden, "")
	e.call(http.MethodGet, "/chat/Dialog/5d75393ba28f9a17e1cb0f9e/notifications.json", alice.token).want(t, http.StatusNotFound, "")
}

// containsAny reports whether s contains the name of one of subs (before
// any "[", when longer than one character).
func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		name, _, _ := strings.Cut(sub, "[")
		if len(name) > 1 && strings.Contains(s, name) {
			return true
		}
	}
	return false
}
