package restapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"chatd/history"
)

// person is a user with a live user session.
type person struct {
	id       int64
	login    string
	password string
	token    string
}

// person creates a user and starts a session of theirs, as the SDK does
// (POST /session.json with user[login] and user[password]).
func (e *env) person(login string) person {
	e.t.Helper()
	pw := login + "-password"
	e.mkUser(login, pw, nil)
	token, id := e.userSession(login, pw)
	return person{id: id, login: login, password: pw, token: token}
}

// mkDialog creates a dialog with a form body as the SDK sends it and
// returns its JSON; status is 201, or 200 for an existing private dialog.
func (e *env) mkDialog(p person, status int, kv ...string) map[string]any {
	e.t.Helper()
	res := e.call(http.MethodPost, "/chat/Dialog.json", p.token, kv...)
	res.want(e.t, status, "")
	return res.obj(e.t)
}

// send creates a message with a JSON body as the SDK sends it and returns
// its JSON.
func (e *env) send(p person, body string) map[string]any {
	e.t.Helper()
	res := e.callJSON(http.MethodPost, "/chat/Message.json", p.token, body)
	res.want(e.t, http.StatusCreated, "")
	return res.obj(e.t)
}

// sendText sends a text message to a dialog.
func (e *env) sendText(p person, dialog, text string) string {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"chat_dialog_id": dialog, "message": text})
	return e.send(p, string(body))["_id"].(string)
}

// record stores a message through the history service (test setup, not
// under test).
func (e *env) record(p person, dialog, text string) string {
	e.t.Helper()
	m, _, err := e.history.Record(context.Background(), history.NewMessage{App: e.app.ID, SenderID: p.id, DialogID: dialog, Text: text})
	if err != nil {
		e.t.Fatal(err)
	}
	return m.ID
}

// messages lists a dialog's messages; kv are more query parameters.
func (e *env) messages(p person, dialog string, kv ...string) []map[string]any {
	e.t.Helper()
	res := e.call(http.MethodGet, "/chat/Message.json", p.token, append([]string{"chat_dialog_id", dialog}, kv...)...)
	res.want(e.t, http.StatusOK, "")
	return items(e.t, res.obj(e.t))
}

// unread returns the total and the per-dialog unread counts of p for ids.
func (e *env) unread(p person, ids ...string) (int64, map[string]int64) {
	e.t.Helper()
	var kv []string
	if len(ids) > 0 {
		kv = []string{"chat_dialog_ids", strings.Join(ids, ",")}
	}
	res := e.call(http.MethodGet, "/chat/Message/unread.json", p.token, kv...)
	res.want(e.t, http.StatusOK, "")
	m := res.obj(e.t)
	out := map[string]int64{}
	for k, v := range m {
		if k != "total" {
			out[k] = num(e.t, v)
		}
	}
	if len(out) != len(ids) {
		e.t.Fatalf("unread %s: keys %v, want exactly %v", res.body, out, ids)
	}
	return num(e.t, m["total"]), out
}

// dialogUnread is the unread_messages_count of a dialog as GET
// /chat/Dialog/{id} shows it to p.
func (e *env) dialogUnread(p person, id string) int64 {
	e.t.Helper()
	res := e.call(http.MethodGet, "/chat/Dialog/"+id+".json", p.token)
	res.want(e.t, http.StatusOK, "")
	return num(e.t, res.obj(e.t)["unread_messages_count"])
}

// items returns the items of a list answer.
func items(t testing.TB, m map[string]any) []map[string]any {
	t.Helper()
	list, ok := m["items"].([]any)
	if !ok {
		t.Fatalf("no items in %v", m)
	}
	out := make([]map[string]any, 0, len(list))
	for _, it := range list {
		out = append(out, it.(map[string]any))
	}
	return out
}

// idsOf lists the _id of each item.
func idsOf(items []map[string]any) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, it["_id"].(string))
	}
	return out
}

// intsOf reads a JSON array of numbers.
func intsOf(t testing.TB, v any) []int64 {
	t.Helper()
	list, ok := v.([]any)
	if !ok {
		t.Fatalf("%v (%T) is not an array", v, v)
	}
	out := []int64{}
	for _, x := range list {
		out = append(out, num(t, x))
	}
	return out
}

// sorted returns ids sorted.
func sorted(ids ...int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// jsonInts renders ids as a JSON array.
func jsonInts(ids ...int64) string {
	b, _ := json.Marshal(ids)
	return string(b)
}

// csv joins ids with ", " as the SDK joins occupants_ids.
func csv(ids ...int64) string {
	var parts []string
	for _, id := range ids {
		parts = append(parts, fmt.Sprint(id))
	}
	return strings.Join(parts, ", ")
}
