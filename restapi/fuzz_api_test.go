package restapi_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"chatd/restapi"
)

// FuzzAPI sends any request to the chat and user endpoints with a user's
// session: whatever the path's id, query and form or JSON body, the answer
// is a client error or a success, never a 500 (bad input gets a clear error,
// RFC 9110 §15.6: a 5xx says the server failed). Without -fuzz it runs the
// seeds; `go test -run '^$' -fuzz FuzzAPI ./restapi` explores further.
func FuzzAPI(f *testing.F) {
	e := newChatEnv(f, restapi.Config{}, chatOptions{})
	alice, bob := e.person("alice"), e.person("bob")
	dialog := e.mkDialog(alice, 201, "type", "2", "name", "g", "occupants_ids", csv(bob.id))["_id"].(string)
	msg := e.sendText(alice, dialog, "hello")
	routes := []string{
		"GET /chat/Dialog.json", "POST /chat/Dialog.json", "GET /chat/Dialog/ID.json", "PUT /chat/Dialog/ID.json",
		"DELETE /chat/Dialog/ID.json", "GET /chat/Dialog/ID/notifications.json", "PUT /chat/Dialog/ID/notifications.json",
		"GET /chat/Message.json", "POST /chat/Message.json", "PUT /chat/Message.json", "PUT /chat/Message/ID.json",
		"DELETE /chat/Message/ID.json", "GET /chat/Message/unread.json", "GET /users.json", "GET /users/ID.json",
		"PUT /users/ID.json", "GET /users/by_login.json", "GET /users/by_tags.json", "GET /users/external/ID.json",
		"POST /login.json", "GET /session.json",
	}
	for i, seed := range []struct{ id, query, body string }{
		{"", "sort_desc=last_message_date_sent&limit=5&skip=1&type[in]=2,3&name[ctn]=g", ""},
		{"", "", "type=3&occupants_ids=" + csv(bob.id)},
		{dialog, "", ""},
		{dialog, "", "push_all[occupants_ids][]=" + csv(bob.id) + "&name=n&data[class_name]=C"},
		{dialog, "", "force=1"},
		{dialog, "", "enabled=0"},
		{"", "chat_dialog_id=" + dialog + "&date_sent[gt]=0&sort_desc=date_sent&limit=10&mark_as_read=0", ""},
		{"", "", `{"chat_dialog_id":"` + dialog + `","message":"hi","send_to_chat":1,"attachments":[{"type":"image","id":"1"}],"custom":"x"}`},
		{msg, "", "chat_dialog_id=" + dialog + "&read=1&delivered=1"},
		{msg + "," + msg, "", "force=1"},
		{"", "chat_dialog_ids=" + dialog + ",x", ""},
		{"", "filter[]=number id in 1,2&filter[]=string login eq alice&order=desc string login&page=2&per_page=3", ""},
		{"", "login=alice", ""},
		{"", "tags=a,b", ""},
		{"", "", "user[full_name]=A&user[tag_list]=a,b&user[custom_data]={}"},
		{"", "", "login=alice&password=alice-password"},
	} {
		f.Add(uint8(i), seed.id, seed.query, seed.body)
	}
	f.Fuzz(func(t *testing.T, route uint8, id, query, body string) {
		method, path, _ := strings.Cut(routes[int(route)%len(routes)], " ")
		path = strings.Replace(path, "ID", url.PathEscape(id), 1)
		if query != "" {
			path += "?" + query
		}
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, e.ts.URL+path, rd)
		if err != nil {
			return // not a request a client can send
		}
		if strings.HasPrefix(strings.TrimSpace(body), "{") {
			req.Header.Set("Content-Type", "application/json")
		} else {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("QB-Token", alice.token)
		res, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode >= 500 {
			t.Fatalf("%s %s with body %q: %d %s", method, path, body, res.StatusCode, got)
		}
	})
}
