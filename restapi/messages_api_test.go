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

// chatFixture is three users, their private dialog (alice–bob) and a group
// of the three; dave is in neither.
type chatFixture struct {
	e                       *env
	alice, bob, carol, dave person
	priv, group             string
}

func newChatFixture(t *testing.T, opts chatOptions) *chatFixture {
	t.Helper()
	e := newChatEnv(t, restapi.Config{}, opts)
	f := &chatFixture{e: e, alice: e.person("alice"), bob: e.person("bob"), carol: e.person("carol"), dave: e.person("dave")}
	f.priv = e.mkDialog(f.alice, 201, "type", "3", "occupants_ids", csv(f.bob.id))["_id"].(string)
	f.group = e.mkDialog(f.alice, 201, "type", "2", "name", "g", "occupants_ids", csv(f.bob.id, f.carol.id))["_id"].(string)
	return f
}

func TestCreateMessage(t *testing.T) {
	f := newChatFixture(t, chatOptions{})
	e, alice, bob, carol := f.e, f.alice, f.bob, f.carol

	// The SDK's create (compat §3.1): JSON, markable, a custom parameter.
	res := e.callJSON(http.MethodPost, "/chat/Message.json", alice.token,
		`{"chat_dialog_id":"`+f.priv+`","message":"via rest","markable":1,"custom":"x"}`)
	res.want(t, http.StatusCreated, "")
	id := res.obj(t)["_id"].(string)
	res.want(t, http.StatusCreated, fmt.Sprintf(`{"_id":%q,"chat_dialog_id":%q,"message":"via rest","date_sent":%d,`+
		`"sender_id":%d,"recipient_id":%d,"read":0,"read_ids":[%d],"delivered_ids":[%d],"attachments":[],`+
		`"created_at":%q,"updated_at":%q,"dialog_id":%q,"markable":1,"custom":"x"}`,
		id, f.priv, t0Unix, alice.id, bob.id, alice.id, alice.id, t0ISO, t0ISO, f.priv))
	// The dialog follows.
	res = e.call(http.MethodGet, "/chat/Dialog/"+f.priv+".json", bob.token)
	if d := res.obj(t); d["last_message"] != "via rest" || d["last_message_id"] != id ||
		num(t, d["last_message_user_id"]) != alice.id || num(t, d["last_message_date_sent"]) != t0Unix ||
		num(t, d["unread_messages_count"]) != 1 {
		t.Errorf("dialog after the message: %s", res.body)
	}

	// The docs' create: attachments as {"0":…,"1":…}, a number and HTML in
	// custom parameters, kept as text.
	e.clock.Advance(time.Second)
	m := e.send(alice, `{"chat_dialog_id":"`+f.priv+`","message":"hello!","recipient_id":`+itoa(bob.id)+`,`+
		`"attachments":{"1":{"type":"image","id":"47864"},"0":{"type":"image","id":"47863"}},"age":25,"html":"<b>&"}`)
	if fmt.Sprint(m["attachments"]) != "[map[id:47863 type:image] map[id:47864 type:image]]" || m["age"] != "25" ||
		m["html"] != "<b>&" || m["markable"] != nil {
		t.Errorf("docs example: %v", m)
	}
	// A form body: attachments[0][type]=… and a custom parameter.
	res = e.call(http.MethodPost, "/chat/Message.json", alice.token, "attachments[0][type]", "image",
		"attachments[0][url]", "https://x.example/a.png", "attachments[1][type]", "audio", "chat_dialog_id", f.group,
		"message", "form", "param1", "v1")
	res.want(t, http.StatusCreated, "")
	m = res.obj(t)
	if fmt.Sprint(m["attachments"]) != "[map[type:image url:https://x.example/a.png] map[type:audio]]" ||
		m["param1"] != "v1" || num(t, m["recipient_id"]) != 0 || num(t, m["read"]) != 0 {
		t.Errorf("form message: %s", res.body)
	}
	// Attachments as a JSON array; numbers as their text; no text at all.
	m = e.send(alice, `{"chat_dialog_id":"`+f.group+`","attachments":[{"type":"video","size":1024,"content-type":"video/mp4"}]}`)
	if fmt.Sprint(m["attachments"]) != "[map[content-type:video/mp4 size:1024 type:video]]" || m["message"] != nil {
		t.Errorf("array attachments: %v", m)
	}
	if d := e.call(http.MethodGet, "/chat/Dialog/"+f.group+".json", carol.token).obj(t); d["last_message"] != "[video]" {
		t.Errorf("last_message of an attachment-only message: %v", d["last_message"])
	}
	// Standard keys and control keys never become custom parameters.
	m = e.send(alice, `{"chat_dialog_id":"`+f.priv+`","message":"m","sender_id":999,"read":1,"_id":"x","dialog_id":"y",`+
		`"save_to_history":1,"send_to_chat":0,"token":"abc","message_id":"z","moduleIdentifier":"w","updated_at":"u"}`)
	if num(t, m["sender_id"]) != alice.id || num(t, m["read"]) != 0 || m["dialog_id"] != f.priv || len(m) != 13 {
		t.Errorf("reserved keys: %v", m)
	}
	// date_sent from the client within 5 s of the server clock is kept
	// (floats truncated); further off, the server's time.
	e.clock.Advance(time.Second)
	now := t0Unix + 2
	if m := e.send(alice, fmt.Sprintf(`{"chat_dialog_id":%q,"message":"d","date_sent":%d.7}`, f.priv, now-3)); num(t, m["date_sent"]) != int64(now-3) {
		t.Errorf("client date_sent: %v", m["date_sent"])
	}
	if m := e.send(alice, fmt.Sprintf(`{"chat_dialog_id":%q,"message":"d","date_sent":%d}`, f.priv, now-3600)); num(t, m["date_sent"]) != int64(now) {
		t.Errorf("stale client date_sent: %v", m["date_sent"])
	}

	// recipient_id alone: the pair's private dialog, created on the first
	// message.
	m = e.send(carol, `{"recipient_id":`+itoa(bob.id)+`,"message":"first"}`)
	cb := m["chat_dialog_id"].(string)
	if cb == f.priv || num(t, m["recipient_id"]) != bob.id {
		t.Errorf("message by recipient_id: %v", m)
	}
	if res := e.call(http.MethodGet, "/chat/Dialog/"+cb+".json", bob.token); res.obj(t)["last_message"] != "first" ||
		num(t, res.obj(t)["type"]) != 3 {
		t.Errorf("the dialog made by the first message: %s", res.body)
	}
	if m := e.send(carol, `{"recipient_id":`+itoa(bob.id)+`,"message":"second"}`); m["chat_dialog_id"] != cb {
		t.Errorf("second message by recipient_id went to %v, want %s", m["chat_dialog_id"], cb)
	}
	// Anyone may post to a public group.
	pub := e.mkDialog(bob, 201, "type", "1", "name", "lobby")["_id"].(string)
	if m := e.send(f.dave, `{"chat_dialog_id":"`+pub+`","message":"hi all"}`); num(t, m["recipient_id"]) != 0 {
		t.Errorf("public message: %v", m)
	}

	// Refusals.
	for _, c := range []struct {
		body   string
		status int
		want   string
	}{
		{`{"message":"x"}`, 422, `{"errors":{"chat_dialog_id":["or recipient_id is required"]}}`},
		{`{"chat_dialog_id":"5d75393ba28f9a17e1cb0f9e","message":"x"}`, 404, ""},
		{`{"chat_dialog_id":"nope","message":"x"}`, 404, ""},
		{`{"recipient_id":` + itoa(alice.id) + `,"message":"x"}`, 422, `{"errors":{"recipient_id":["cannot be the sender"]}}`},
		{`{"recipient_id":999999,"message":"x"}`, 422, `{"errors":{"occupants_ids":["user 999999 does not exist"]}}`},
		{`{"recipient_id":"x","message":"x"}`, 400, `{"errors":["recipient_id must be an integer"]}`},
		{`{"chat_dialog_id":"` + f.priv + `","recipient_id":` + itoa(carol.id) + `}`, 422,
			`{"errors":{"recipient_id":["is not in the dialog"]}}`},
		{`{"chat_dialog_id":"` + f.priv + `","attachments":"x"}`, 422, `{"errors":{"attachments":["must be a list of objects"]}}`},
		{`{"chat_dialog_id":"` + f.priv + `","attachments":{"type":"image"}}`, 422, `{"errors":{"attachments":["must be a list of objects"]}}`},
		{`{"chat_dialog_id":"` + f.priv + `","attachments":[{"type":{"a":1}}]}`, 422,
			`{"errors":{"attachments":["field type must be a string or a number"]}}`},
		{`{"chat_dialog_id":"` + f.priv + `","meta":{"a":1}}`, 422, `{"errors":{"meta":["must be a string or a number"]}}`},
		{`{"chat_dialog_id":"` + f.priv + `","markable":"x"}`, 400, `{"errors":["markable must be 0 or 1"]}`},
		{`{"chat_dialog_id":"` + f.priv + `","date_sent":"yesterday"}`, 400, `{"errors":["date_sent must be a unix time"]}`},
		// Live delivery needs a chat server: 503 and nothing stored.
		{`{"chat_dialog_id":"` + f.priv + `","message":"live","send_to_chat":1}`, 503, `{"errors":["Chat delivery is not available"]}`},
		{`{"chat_dialog_id":"` + f.priv + `","message":"sys","system":1}`, 503, `{"errors":["Chat delivery is not available"]}`},
	} {
		e.callJSON(http.MethodPost, "/chat/Message.json", alice.token, c.body).want(t, c.status, c.want)
	}
	e.callJSON(http.MethodPost, "/chat/Message.json", f.dave.token, `{"chat_dialog_id":"`+f.group+`","message":"x"}`).
		want(t, http.StatusForbidden, "")
	for _, m := range e.messages(alice, f.priv, "mark_as_read", "0") {
		if m["message"] == "live" || m["message"] == "sys" {
			t.Errorf("a refused message was stored: %v", m)
		}
	}
}

func TestListMessages(t *testing.T) {
	f := newChatFixture(t, chatOptions{})
	e, alice, bob, carol := f.e, f.alice, f.bob, f.carol
	var ids []string
	for i, c := range []struct {
		from person
		body string
	}{
		{alice, `"message":"one"`},
		{bob, `"message":"Two apples"`},
		{alice, `"message":"three","attachments":[{"type":"image"}]`},
		{carol, `"message":"four apples"`},
		{bob, `"attachments":[{"type":"audio"},{"type":"image"}]`},
	} {
		if i > 0 {
			e.clock.Advance(time.Minute)
		}
		ids = append(ids, e.send(c.from, `{"chat_dialog_id":"`+f.group+`",`+c.body+`}`)["_id"].(string))
	}
	at := func(i int) string { return fmt.Sprint(t0Unix + 60*i) }

	// Defaults: date_sent ascending, skip 0, limit 100.
	res := e.call(http.MethodGet, "/chat/Message.json", alice.token, "chat_dialog_id", f.group, "mark_as_read", "0")
	res.want(t, http.StatusOK, "")
	m := res.obj(t)
	if num(t, m["skip"]) != 0 || num(t, m["limit"]) != 100 || m["total_entries"] != nil || !slices.Equal(idsOf(items(t, m)), ids) {
		t.Errorf("default list: %s", res.body)
	}
	// The SDK's list call (compat §3.1).
	res = e.call(http.MethodGet, "/chat/Message.json", alice.token, "chat_dialog_id", f.group, "date_sent[lt]", at(3),
		"limit", "2", "mark_as_read", "0", "skip", "0", "sort_desc", "date_sent")
	res.want(t, http.StatusOK, "")
	if got := idsOf(items(t, res.obj(t))); !slices.Equal(got, []string{ids[2], ids[1]}) || num(t, res.obj(t)["limit"]) != 2 {
		t.Errorf("SDK list: %v", got)
	}
	for _, c := range []struct {
		kv   []string
		want []int
	}{
		{[]string{"sender_id", itoa(bob.id)}, []int{1, 4}},
		{[]string{"sender_id[in]", itoa(bob.id) + "," + itoa(carol.id)}, []int{1, 3, 4}},
		{[]string{"sender_id[ne]", itoa(alice.id), "sort_desc", "date_sent"}, []int{4, 3, 1}},
		{[]string{"message[ctn]", "APPLES"}, []int{1, 3}},
		{[]string{"message", "one"}, []int{0}},
		{[]string{"_id", ids[2]}, []int{2}},
		{[]string{"_id[in]", ids[0] + "," + ids[4]}, []int{0, 4}},
		{[]string{"_id[nin]", ids[0] + "," + ids[4]}, []int{1, 2, 3}},
		{[]string{"date_sent[gte]", at(3)}, []int{3, 4}},
		{[]string{"date_sent[lte]", at(1), "date_sent[gt]", at(0)}, []int{1}},
		{[]string{"date_sent", at(2)}, []int{2}},
		// A fraction is compared exactly: no message is sent at 1.5.
		{[]string{"date_sent[lt]", at(1) + ".5"}, []int{0, 1}},
		{[]string{"date_sent[lte]", at(1) + ".5"}, []int{0, 1}},
		{[]string{"date_sent[gt]", at(1) + ".5"}, []int{2, 3, 4}},
		{[]string{"date_sent[gte]", at(1) + ".5"}, []int{2, 3, 4}},
		{[]string{"date_sent", at(1) + ".5"}, nil},
		{[]string{"date_sent[ne]", at(1) + ".5"}, []int{0, 1, 2, 3, 4}},
		{[]string{"date_sent[in]", at(1) + ".5," + at(2)}, []int{2}},
		{[]string{"date_sent[in]", at(1) + ".5"}, nil},
		{[]string{"date_sent[nin]", at(1) + ".5," + at(2)}, []int{0, 1, 3, 4}},
		{[]string{"date_sent[nin]", at(1) + ".5"}, []int{0, 1, 2, 3, 4}},
		{[]string{"date_sent[gte]", at(1) + ".000"}, []int{1, 2, 3, 4}},
		{[]string{"created_at[gt]", at(3)}, []int{4}},
		{[]string{"updated_at[lt]", "2026-11-22T00:06:16Z"}, []int{0}},
		{[]string{"recipient_id", "0"}, []int{0, 1, 2, 3, 4}},
		{[]string{"attachments.type", "image"}, []int{2, 4}},
		{[]string{"attachments.type[nin]", "image"}, []int{0, 1, 3}},
		{[]string{"attachments.type[all]", "audio,image"}, []int{4}},
		{[]string{"limit", "2", "skip", "1"}, []int{1, 2}},
		{[]string{"sort_asc", "_id", "limit", "1"}, []int{0}},
	} {
		res := e.call(http.MethodGet, "/chat/Message.json", alice.token,
			append([]string{"chat_dialog_id", f.group, "mark_as_read", "0"}, c.kv...)...)
		res.want(t, http.StatusOK, "")
		var want []string
		for _, i := range c.want {
			want = append(want, ids[i])
		}
		if got := idsOf(items(t, res.obj(t))); !slices.Equal(got, want) {
			t.Errorf("%v: %v, want %v", c.kv, got, want)
		}
		// count=1: the number the filters select, limit and skip aside.
		n := len(want)
		if slices.Contains(c.kv, "limit") || slices.Contains(c.kv, "skip") {
			n = len(ids)
		}
		e.call(http.MethodGet, "/chat/Message.json", alice.token, append([]string{"chat_dialog_id", f.group, "count", "1"}, c.kv...)...).
			want(t, http.StatusOK, fmt.Sprintf(`{"items_count":%d}`, n))
	}
	// Counting reads nothing: bob has not read carol's message.
	e.call(http.MethodGet, "/chat/Message.json", bob.token, "chat_dialog_id", f.group, "count", "1").
		want(t, http.StatusOK, `{"items_count":5}`)
	if got := e.dialogUnread(bob, f.group); got != 3 {
		t.Errorf("bob's unread after counting: %d, want 3", got)
	}

	// Refusals.
	e.call(http.MethodGet, "/chat/Message.json", alice.token).
		want(t, http.StatusUnprocessableEntity, `{"errors":{"chat_dialog_id":["can't be blank"]}}`)
	e.call(http.MethodGet, "/chat/Message.json", alice.token, "chat_dialog_id", "5d75393ba28f9a17e1cb0f9e").
		want(t, http.StatusNotFound, "")
	e.call(http.MethodGet, "/chat/Message.json", alice.token, "chat_dialog_id", "nope").want(t, http.StatusNotFound, "")
	e.call(http.MethodGet, "/chat/Message.json", f.dave.token, "chat_dialog_id", f.group).want(t, http.StatusForbidden, "")
	for _, c := range []struct {
		kv   []string
		want string
	}{
		{[]string{"colour", "red"}, `{"errors":["unknown message field \"colour\""]}`},
		{[]string{"date_sent[like]", "1"}, `{"errors":["unknown operator \"like\" on \"date_sent\""]}`},
		{[]string{"sender_id", "bob"}, `{"errors":["bad value \"bob\" for sender_id: not a number"]}`},
		{[]string{"sort_desc", "sender_id"}, `{"errors":["cannot sort by \"sender_id\""]}`},
		{[]string{"count", "x"}, `{"errors":["count must be 0 or 1"]}`},
		{[]string{"mark_as_read", "x"}, `{"errors":["mark_as_read must be 0 or 1"]}`},
		{[]string{"attachments.type[gt]", "a"}, `{"errors":["operator gt does not apply to the array field \"attachments.type\""]}`},
	} {
		e.call(http.MethodGet, "/chat/Message.json", alice.token, append([]string{"chat_dialog_id", f.group}, c.kv...)...).
			want(t, http.StatusBadRequest, c.want)
	}

	// A public group's messages are anyone's to read.
	pub := e.mkDialog(bob, 201, "type", "1", "name", "lobby")["_id"].(string)
	e.send(bob, `{"chat_dialog_id":"`+pub+`","message":"welcome"}`)
	if got := e.messages(f.dave, pub); len(got) != 1 || got[0]["message"] != "welcome" {
		t.Errorf("public messages seen by dave: %v", got)
	}
	// Messages the caller deleted for themselves are not listed to them.
	e.call(http.MethodDelete, "/chat/Message/"+ids[0]+".json", carol.token).want(t, http.StatusOK, "")
	if got := idsOf(e.messages(carol, f.group, "mark_as_read", "0")); slices.Contains(got, ids[0]) || len(got) != 4 {
		t.Errorf("carol's list after deleting one for herself: %v", got)
	}
	if got := idsOf(e.messages(bob, f.group, "mark_as_read", "0")); len(got) != 5 {
		t.Errorf("bob's list after carol deleted one for herself: %v", got)
	}
	e.call(http.MethodGet, "/chat/Message.json", carol.token, "chat_dialog_id", f.group, "count", "1").
		want(t, http.StatusOK, `{"items_count":4}`)
	e.call(http.MethodGet, "/chat/Message.json", f.dave.token, "chat_dialog_id", f.group, "count", "1").
		want(t, http.StatusForbidden, "")
}

func TestUnreadCounts(t *testing.T) {
	f := newChatFixture(t, chatOptions{})
	e, alice, bob, carol := f.e, f.alice, f.bob, f.carol
	var priv []string
	for i := range 3 {
		e.clock.Advance(time.Second)
		priv = append(priv, e.sendText(alice, f.priv, fmt.Sprint("p", i)))
	}
	e.clock.Advance(time.Second)
	g := e.sendText(alice, f.group, "to both")
	e.clock.Advance(time.Second)
	e.sendText(bob, f.group, "from bob")

	// Every way of asking agrees: GET unread, and the dialogs.
	check := func(who person, wantTotal int64, want map[string]int64) {
		t.Helper()
		var ids []string
		for id := range want {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		total, counts := e.unread(who, ids...)
		if total != wantTotal || fmt.Sprint(counts) != fmt.Sprint(want) {
			t.Errorf("%s unread: total %d %v, want %d %v", who.login, total, counts, wantTotal, want)
		}
		for id, n := range want {
			if got := e.dialogUnread(who, id); got != n {
				t.Errorf("%s: unread_messages_count of %s = %d, want %d", who.login, id, got, n)
			}
		}
	}
	check(bob, 4, map[string]int64{f.priv: 3, f.group: 1})
	check(carol, 2, map[string]int64{f.group: 2})
	check(alice, 1, map[string]int64{f.priv: 0, f.group: 1})

	// The exact wire forms: "a,b", "a[]=a,b", one id, none (total only),
	// unknown ids (0), the total over every dialog either way.
	e.call(http.MethodGet, "/chat/Message/unread.json", bob.token, "chat_dialog_ids", f.priv+","+f.group).
		want(t, http.StatusOK, fmt.Sprintf(`{"total":4,%q:3,%q:1}`, f.priv, f.group))
	e.call(http.MethodGet, "/chat/Message/unread.json", bob.token, "chat_dialog_ids[]", f.group+","+f.priv).
		want(t, http.StatusOK, fmt.Sprintf(`{"total":4,%q:1,%q:3}`, f.group, f.priv))
	e.call(http.MethodGet, "/chat/Message/unread.json", bob.token, "chat_dialog_ids", f.group).
		want(t, http.StatusOK, fmt.Sprintf(`{"total":4,%q:1}`, f.group))
	e.call(http.MethodGet, "/chat/Message/unread.json", bob.token).want(t, http.StatusOK, `{"total":4}`)
	e.call(http.MethodGet, "/chat/Message/unread.json", bob.token, "chat_dialog_ids", "5d75393ba28f9a17e1cb0f9e,nope").
		want(t, http.StatusOK, `{"total":4,"5d75393ba28f9a17e1cb0f9e":0,"nope":0}`)
	// Tens of thousands of ids, some repeated (all a query string holds):
	// counted, each once, in one request (the store is asked in chunks it
	// accepts).
	many := []string{f.priv}
	for i := range 36000 {
		many = append(many, fmt.Sprintf("%024x", i%35000))
	}
	res := e.call(http.MethodGet, "/chat/Message/unread.json", bob.token, "chat_dialog_ids", strings.Join(many, ","))
	if res.status != http.StatusOK {
		t.Fatalf("36,000 ids: status %d, body %.300s", res.status, res.body)
	}
	if got := res.obj(t); num(t, got[f.priv]) != 3 || len(got) != 35002 {
		t.Errorf("36,000 ids: %d keys, %s has %v; want 35,002 keys (the distinct ids and total) and 3", len(got), f.priv, got[f.priv])
	}

	// mark_as_read=0 reads nothing.
	for _, m := range e.messages(bob, f.priv, "mark_as_read", "0") {
		if num(t, m["read"]) != 0 || !slices.Equal(intsOf(t, m["read_ids"]), []int64{alice.id}) {
			t.Errorf("unread message as listed with mark_as_read=0: %v", m)
		}
	}
	check(bob, 4, map[string]int64{f.priv: 3, f.group: 1})
	// Nor does HEAD.
	req := e.newRequest(http.MethodHead, "/chat/Message.json?chat_dialog_id="+f.priv, "")
	req.Header.Set("QB-Token", bob.token)
	if res := e.request(req); res.status != http.StatusOK || len(res.body) != 0 {
		t.Errorf("HEAD: %s", res)
	}
	check(bob, 4, map[string]int64{f.priv: 3, f.group: 1})
	// By default the listed messages become read: a page of two, then the
	// rest.
	page := e.messages(bob, f.priv, "limit", "2")
	for _, m := range page {
		if num(t, m["read"]) != 1 || !slices.Equal(intsOf(t, m["read_ids"]), sorted(alice.id, bob.id)) ||
			!slices.Equal(intsOf(t, m["delivered_ids"]), sorted(alice.id, bob.id)) {
			t.Errorf("listed message: %v", m)
		}
	}
	check(bob, 2, map[string]int64{f.priv: 1, f.group: 1})
	// Read stays read, delivered included, when listed again.
	for _, m := range e.messages(bob, f.priv, "mark_as_read", "0", "limit", "2") {
		if num(t, m["read"]) != 1 || !slices.Equal(intsOf(t, m["delivered_ids"]), sorted(alice.id, bob.id)) {
			t.Errorf("listed again: %v", m)
		}
	}
	// The sender's own messages never count, and listing them changes
	// nothing.
	e.messages(alice, f.priv)
	check(alice, 1, map[string]int64{f.priv: 0})

	// PUT read=1 with ids (a form, compat §3.1), then for the whole dialog.
	e.call(http.MethodPut, "/chat/Message/"+priv[2]+".json", bob.token, "chat_dialog_id", f.priv, "read", "1").
		want(t, http.StatusOK, "")
	check(bob, 1, map[string]int64{f.priv: 0, f.group: 1})
	e.call(http.MethodPut, "/chat/Message.json", carol.token, "chat_dialog_id", f.group, "read", "1").want(t, http.StatusOK, "")
	check(carol, 0, map[string]int64{f.group: 0})
	check(bob, 1, map[string]int64{f.group: 1})
	// read=1 is idempotent.
	e.call(http.MethodPut, "/chat/Message.json", carol.token, "chat_dialog_id", f.group, "read", "1").want(t, http.StatusOK, "")
	check(carol, 0, map[string]int64{f.group: 0})

	// Deletes: for everyone by the sender, counted down for every
	// recipient; for oneself, counted down for oneself only.
	e.clock.Advance(time.Second)
	x := e.sendText(alice, f.group, "oops")
	e.clock.Advance(time.Second)
	y := e.sendText(alice, f.group, "again")
	check(bob, 3, map[string]int64{f.group: 3})
	check(carol, 2, map[string]int64{f.group: 2})
	e.call(http.MethodDelete, "/chat/Message/"+x+".json", alice.token, "force", "1").
		want(t, http.StatusOK, fmt.Sprintf(`{"SuccessfullyDeleted":{"ids":[%q]},"NotFound":{"ids":[]},"WrongPermissions":{"ids":[]}}`, x))
	check(bob, 2, map[string]int64{f.group: 2})
	check(carol, 1, map[string]int64{f.group: 1})
	e.call(http.MethodDelete, "/chat/Message/"+y+".json", bob.token).want(t, http.StatusOK, "")
	check(bob, 1, map[string]int64{f.group: 1})
	// At most 1,000 ids in a path: more is a clear 400 and deletes nothing.
	tooMany := []string{y}
	for i := range 1000 {
		tooMany = append(tooMany, fmt.Sprintf("%024x", i))
	}
	e.call(http.MethodDelete, "/chat/Message/"+strings.Join(tooMany, ",")+".json", alice.token, "force", "1").
		want(t, http.StatusBadRequest, `{"errors":["at most 1000 ids in one request, got 1001"]}`)
	check(carol, 1, map[string]int64{f.group: 1})
	// What is left unread for bob is alice's "to both" (his own never
	// counts).
	var unreadIDs []string
	for _, m := range e.messages(bob, f.group, "mark_as_read", "0") {
		if !slices.Contains(intsOf(t, m["read_ids"]), bob.id) {
			unreadIDs = append(unreadIDs, m["_id"].(string))
		}
	}
	if !slices.Equal(unreadIDs, []string{g}) {
		t.Errorf("bob's unread messages %v, want [%s]", unreadIDs, g)
	}

	// Deleting a private dialog for oneself reads it; a new message shows
	// it again, counted from there.
	e.clock.Advance(time.Second)
	e.sendText(alice, f.priv, "p3")
	check(bob, 2, map[string]int64{f.priv: 1, f.group: 1})
	e.call(http.MethodDelete, "/chat/Dialog/"+f.priv+".json", bob.token).want(t, http.StatusOK, "")
	total, counts := e.unread(bob, f.priv)
	if total != 1 || counts[f.priv] != 0 {
		t.Errorf("after hiding the dialog: total %d, %v", total, counts)
	}
	e.clock.Advance(time.Second)
	e.sendText(alice, f.priv, "p4")
	check(bob, 2, map[string]int64{f.priv: 1, f.group: 1})
	// Deleting a group for everyone removes its counts.
	e.call(http.MethodDelete, "/chat/Dialog/"+f.group+".json", alice.token, "force", "1").want(t, http.StatusOK, "")
	if total, counts := e.unread(bob, f.group); total != 1 || counts[f.group] != 0 {
		t.Errorf("after the group was deleted: total %d, %v", total, counts)
	}
}

func TestUpdateMessages(t *testing.T) {
	f := newChatFixture(t, chatOptions{})
	e, alice, bob, carol := f.e, f.alice, f.bob, f.carol
	a := e.sendText(alice, f.group, "helo")
	e.clock.Advance(time.Second)
	b := e.sendText(bob, f.group, "hi")
	other := e.sendText(alice, f.priv, "elsewhere")

	// An edit by the sender (a form, as the SDK sends PUTs): the text, the
	// message's updated_at and the dialog's last message when it is the
	// last.
	e.clock.Advance(time.Minute)
	e.call(http.MethodPut, "/chat/Message/"+a+".json", alice.token, "chat_dialog_id", f.group, "message", "hello").
		want(t, http.StatusOK, "")
	e.call(http.MethodPut, "/chat/Message/"+b+".json", bob.token, "chat_dialog_id", f.group, "message", "hi all").
		want(t, http.StatusOK, "")
	msgs := e.messages(carol, f.group, "mark_as_read", "0")
	if msgs[0]["message"] != "hello" || msgs[0]["updated_at"] != "2026-11-22T00:06:17Z" || msgs[0]["created_at"] != t0ISO ||
		msgs[1]["message"] != "hi all" {
		t.Errorf("after edits: %v", msgs)
	}
	if d := e.call(http.MethodGet, "/chat/Dialog/"+f.group+".json", carol.token).obj(t); d["last_message"] != "hi all" {
		t.Errorf("last_message after editing the last message: %v", d["last_message"])
	}
	// Edit refusals: someone else's message, several or no ids, another
	// dialog, unknown ids.
	for _, c := range []struct {
		who    person
		path   string
		dialog string
		status int
		body   string
	}{
		{bob, a, f.group, 403, ""},
		{alice, a + "," + b, f.group, 422, `{"errors":{"_id":["an edit names exactly one message"]}}`},
		{alice, "", f.group, 422, `{"errors":{"_id":["an edit names exactly one message"]}}`},
		{alice, other, f.group, 404, ""},
		{alice, "5d75393ba28f9a17e1cb0f9e", f.group, 404, ""},
		{f.dave, a, f.group, 403, ""},
	} {
		path := "/chat/Message.json"
		if c.path != "" {
			path = "/chat/Message/" + c.path + ".json"
		}
		e.call(http.MethodPut, path, c.who.token, "chat_dialog_id", c.dialog, "message", "x").want(t, c.status, c.body)
	}
	// An edit as JSON, as the docs send PUTs.
	e.callJSON(http.MethodPut, "/chat/Message/"+a+".json", alice.token, `{"chat_dialog_id":"`+f.group+`","message":"hello!"}`).
		want(t, http.StatusOK, "")

	// delivered=1: the caller joins delivered_ids only.
	e.call(http.MethodPut, "/chat/Message/"+a+".json", carol.token, "chat_dialog_id", f.group, "delivered", "1").
		want(t, http.StatusOK, "")
	m := e.messages(carol, f.group, "mark_as_read", "0", "_id", a)[0]
	if !slices.Equal(intsOf(t, m["delivered_ids"]), sorted(alice.id, carol.id)) || !slices.Equal(intsOf(t, m["read_ids"]), []int64{alice.id}) {
		t.Errorf("after delivered=1: %v", m)
	}
	// read=1 as JSON with "1" as a string (the docs' example), ids in the path
	// with an escaped comma.
	e.callJSON(http.MethodPut, "/chat/Message/"+a+"%2C"+b+".json", carol.token, `{"read":"1","chat_dialog_id":"`+f.group+`"}`).
		want(t, http.StatusOK, "")
	if total, _ := e.unread(carol); total != 0 {
		t.Errorf("carol's unread after read=1: %d", total)
	}
	// read=0 changes nothing and is not an error.
	e.call(http.MethodPut, "/chat/Message.json", bob.token, "chat_dialog_id", f.group, "read", "0").want(t, http.StatusOK, "")
	if total, _ := e.unread(bob); total != 2 {
		t.Errorf("bob's unread after read=0: %d, want 2", total)
	}

	// Refusals.
	e.call(http.MethodPut, "/chat/Message/"+a+".json", bob.token, "read", "1").
		want(t, http.StatusUnprocessableEntity, `{"errors":{"chat_dialog_id":["can't be blank"]}}`)
	e.call(http.MethodPut, "/chat/Message/"+a+".json", bob.token, "chat_dialog_id", f.group).
		want(t, http.StatusUnprocessableEntity, `{"errors":{"base":["give read, delivered or message"]}}`)
	e.call(http.MethodPut, "/chat/Message/nope.json", bob.token, "chat_dialog_id", f.group, "read", "1").
		want(t, http.StatusUnprocessableEntity, `{"errors":{"_id":["\"nope\" is not a message id"]}}`)
	e.call(http.MethodPut, "/chat/Message.json", bob.token, "chat_dialog_id", "5d75393ba28f9a17e1cb0f9e", "read", "1").
		want(t, http.StatusNotFound, "")
	e.call(http.MethodPut, "/chat/Message.json", f.dave.token, "chat_dialog_id", f.group, "read", "1").
		want(t, http.StatusForbidden, "")
	e.call(http.MethodPut, "/chat/Message.json", bob.token, "chat_dialog_id", f.group, "read", "yes please").
		want(t, http.StatusBadRequest, "")
}

func TestDeleteMessages(t *testing.T) {
	f := newChatFixture(t, chatOptions{})
	e, alice, bob, carol := f.e, f.alice, f.bob, f.carol
	a1 := e.sendText(alice, f.group, "a1")
	e.clock.Advance(time.Second)
	a2 := e.sendText(alice, f.group, "a2")
	e.clock.Advance(time.Second)
	b1 := e.sendText(bob, f.group, "b1")
	const unknown = "5d75393ba28f9a17e1cb0f9e"

	// force=1 (a form body, compat §3.1): the sender's go for everyone,
	// others' are WrongPermissions, unknown ids NotFound; the dialog's last
	// message moves back.
	e.call(http.MethodDelete, "/chat/Message/"+b1+","+a2+","+unknown+",aaa.json", alice.token, "force", "1").
		want(t, http.StatusOK, fmt.Sprintf(`{"SuccessfullyDeleted":{"ids":[%q]},"NotFound":{"ids":[%q,"aaa"]},"WrongPermissions":{"ids":[%q]}}`,
			a2, unknown, b1))
	for _, p := range []person{alice, bob, carol} {
		if got := idsOf(e.messages(p, f.group, "mark_as_read", "0")); !slices.Equal(got, []string{a1, b1}) {
			t.Errorf("%s sees %v after the delete for everyone", p.login, got)
		}
	}
	if d := e.call(http.MethodGet, "/chat/Dialog/"+f.group+".json", carol.token).obj(t); d["last_message_id"] != b1 {
		t.Errorf("last message %v, want %s", d["last_message_id"], b1)
	}
	e.call(http.MethodDelete, "/chat/Message/"+b1+".json", bob.token, "force", "1").want(t, http.StatusOK, "")
	if d := e.call(http.MethodGet, "/chat/Dialog/"+f.group+".json", carol.token).obj(t); d["last_message"] != "a1" {
		t.Errorf("last message %v, want a1", d["last_message"])
	}
	// Without force: gone for the caller only, whoever sent it.
	e.call(http.MethodDelete, "/chat/Message/"+a1+".json", carol.token).
		want(t, http.StatusOK, fmt.Sprintf(`{"SuccessfullyDeleted":{"ids":[%q]},"NotFound":{"ids":[]},"WrongPermissions":{"ids":[]}}`, a1))
	if got := e.messages(carol, f.group, "mark_as_read", "0"); len(got) != 0 {
		t.Errorf("carol still sees %v", got)
	}
	if got := idsOf(e.messages(bob, f.group, "mark_as_read", "0")); !slices.Equal(got, []string{a1}) {
		t.Errorf("bob sees %v", got)
	}
	// Deleting it again for herself: not found for her.
	e.call(http.MethodDelete, "/chat/Message/"+a1+".json", carol.token).
		want(t, http.StatusOK, fmt.Sprintf(`{"SuccessfullyDeleted":{"ids":[]},"NotFound":{"ids":[%q]},"WrongPermissions":{"ids":[]}}`, a1))
	// Outsiders: WrongPermissions.
	e.call(http.MethodDelete, "/chat/Message/"+a1+".json", f.dave.token, "force", "1").
		want(t, http.StatusOK, fmt.Sprintf(`{"SuccessfullyDeleted":{"ids":[]},"NotFound":{"ids":[]},"WrongPermissions":{"ids":[%q]}}`, a1))
	e.call(http.MethodDelete, "/chat/Message/"+a1+".json", alice.token, "force", "2").want(t, http.StatusBadRequest, "")
}

// TestSDKFlowREST is compat §2.5 with the XMPP send replaced by its REST
// equivalent: every call as the unmodified SDK encodes it.
func TestSDKFlowREST(t *testing.T) {
	e := newChatEnv(t, restapi.Config{}, chatOptions{})
	e.mkUser("alice", "alicepass1", nil)
	app := e.appSession()
	e.keep("bobpass12")
	e.call(http.MethodPost, "/users.json", app, "user[login]", "bob", "user[password]", "bobpass12").want(t, http.StatusCreated, "")
	e.call(http.MethodPost, "/users.json", app, "user[login]", "bob", "user[password]", "bobpass12").
		want(t, http.StatusUnprocessableEntity, "")
	token, aliceID := e.userSession("alice", "alicepass1")
	res := e.call(http.MethodGet, "/users/by_login.json", token, "login", "bob")
	res.want(t, http.StatusOK, "")
	bobID := num(t, res.obj(t)["user"].(map[string]any)["id"])

	res = e.call(http.MethodPost, "/chat/Dialog.json", token, "occupants_ids", itoa(bobID), "type", "3")
	res.want(t, http.StatusCreated, "")
	d := res.obj(t)
	if d["xmpp_room_jid"] != nil || !slices.Equal(intsOf(t, d["occupants_ids"]), sorted(aliceID, bobID)) {
		t.Fatalf("dialog %s", res.body)
	}
	dialog := d["_id"].(string)
	e.clock.Advance(time.Second)
	res = e.callJSON(http.MethodPost, "/chat/Message.json", token,
		`{"chat_dialog_id":"`+dialog+`","message":"hi","markable":1,"save_to_history":1,"dialog_id":"`+dialog+`"}`)
	res.want(t, http.StatusCreated, "")
	id := res.obj(t)["_id"].(string)

	res = e.call(http.MethodGet, "/chat/Message.json", token, "chat_dialog_id", dialog, "mark_as_read", "0", "sort_desc", "date_sent")
	res.want(t, http.StatusOK, "")
	msgs := items(t, res.obj(t))
	if len(msgs) != 1 || msgs[0]["_id"] != id || msgs[0]["message"] != "hi" || num(t, msgs[0]["markable"]) != 1 {
		t.Errorf("messages: %s", res.body)
	}
	res = e.call(http.MethodGet, "/chat/Dialog.json", token, "sort_desc", "last_message_date_sent")
	res.want(t, http.StatusOK, "")
	dialogs := items(t, res.obj(t))
	if len(dialogs) != 1 || dialogs[0]["_id"] != dialog || dialogs[0]["last_message"] != "hi" ||
		dialogs[0]["last_message_id"] != id || num(t, dialogs[0]["last_message_date_sent"]) != t0Unix+1 {
		t.Errorf("dialogs: %s", res.body)
	}
	e.call(http.MethodDelete, "/session.json", token).want(t, http.StatusOK, "")
	e.call(http.MethodGet, "/chat/Dialog.json", token).want(t, http.StatusUnauthorized, "")
}
