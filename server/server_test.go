package server_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"chatd/account"
	"chatd/config"
	"chatd/server"
)

// startNode starts a whole chatd on loopback ports in a temporary data
// directory.
func startNode(t *testing.T, env ...string) *server.Server {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Load("", append([]string{
		"CHATD_DATA_DIR=" + dir,
		"CHATD_LOG_LEVEL=error",
		"CHATD_API_LISTEN=127.0.0.1:0",
		"CHATD_XMPP_LISTEN=127.0.0.1:0",
		"CHATD_XMPP_TLS_LISTEN=127.0.0.1:0",
		"CHATD_XMPP_WEBSOCKET_LISTEN=127.0.0.1:0",
		"CHATD_TURN_UDP_LISTEN=127.0.0.1:0",
		"CHATD_TURN_TCP_LISTEN=127.0.0.1:0",
		"CHATD_TURN_TLS_LISTEN=127.0.0.1:0",
		"CHATD_TURN_RELAY_ADDRESS=127.0.0.1",
		"CHATD_TURN_RELAY_BIND=127.0.0.1",
	}, env...))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := server.Start(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

// firstApp returns the application a new node creates.
func firstApp(t *testing.T, s *server.Server) *account.Application {
	t.Helper()
	apps, err := s.Accounts.Apps(context.Background())
	if err != nil || len(apps) != 1 {
		t.Fatalf("first application: %v %v", apps, err)
	}
	return apps[0]
}

// rest is a REST client the way an app uses the API.
type rest struct {
	t     *testing.T
	base  string
	http  *http.Client
	token string
}

func newREST(t *testing.T, s *server.Server) *rest {
	return &rest{t: t, base: "https://" + s.APIAddr().String(), http: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}}
}

func (r *rest) do(method, path string, form url.Values, want int) map[string]any {
	r.t.Helper()
	var body io.Reader
	if form != nil && method != http.MethodGet {
		body = strings.NewReader(form.Encode())
	} else if form != nil {
		path += "?" + form.Encode()
	}
	req, _ := http.NewRequest(method, r.base+path, body)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r.token != "" {
		req.Header.Set("QB-Token", r.token)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		r.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, data, want)
	}
	out := map[string]any{}
	if len(data) > 0 {
		json.Unmarshal(data, &out)
	}
	return out
}

// session signs a POST /session.json as the README shows, optionally for a
// user.
func (r *rest) session(appID float64, key, secret, login, password string) {
	r.t.Helper()
	ts := time.Now().Unix()
	nonce := time.Now().UnixNano() % 10000
	pairs := []string{
		fmt.Sprintf("application_id=%d", int64(appID)), "auth_key=" + key, fmt.Sprintf("nonce=%d", nonce),
		fmt.Sprintf("timestamp=%d", ts),
	}
	form := url.Values{"application_id": {fmt.Sprint(int64(appID))}, "auth_key": {key},
		"nonce": {fmt.Sprint(nonce)}, "timestamp": {fmt.Sprint(ts)}}
	if login != "" {
		pairs = append(pairs, "user[login]="+login, "user[password]="+password)
		form.Set("user[login]", login)
		form.Set("user[password]", password)
	}
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(strings.Join(pairs, "&")))
	form.Set("signature", hex.EncodeToString(mac.Sum(nil)))
	r.token = ""
	got := r.do(http.MethodPost, "/session.json", form, 201)
	r.token = got["session"].(map[string]any)["token"].(string)
}

// The path of the README, end to end: an application, a signed session,
// users over REST, a chat over XMPP with a session token as the password
// (SCRAM-SHA-256, through mellium's client), the history over REST, and TURN
// credentials both ways.
func TestWholeNode(t *testing.T) {
	s := startNode(t)
	ctx := context.Background()
	app := firstApp(t, s)
	api := newREST(t, s)
	api.session(float64(app.ID), app.AuthKey, app.AuthSecret, "", "")
	for _, login := range []string{"alice", "bob"} {
		api.do(http.MethodPost, "/users.json", url.Values{"user[login]": {login}, "user[password]": {login + "pass1"}}, 201)
	}
	alice, bob := newREST(t, s), newREST(t, s)
	alice.session(float64(app.ID), app.AuthKey, app.AuthSecret, "alice", "alicepass1")
	bob.session(float64(app.ID), app.AuthKey, app.AuthSecret, "bob", "bobpass1")
	aliceID := int64(alice.do(http.MethodGet, "/session.json", nil, 200)["session"].(map[string]any)["user_id"].(float64))
	bobID := int64(bob.do(http.MethodGet, "/session.json", nil, 200)["session"].(map[string]any)["user_id"].(float64))
	d := alice.do(http.MethodPost, "/chat/Dialog.json", url.Values{"type": {"3"}, "occupants_ids": {fmt.Sprint(bobID)}}, 201)
	dialogID := d["_id"].(string)

	// Alice chats over XMPP, logging in with her session token.
	aliceJID := jid.MustParse(fmt.Sprintf("%d-%d@localhost", aliceID, app.ID))
	conn, err := net.Dial("tcp", s.XMPP.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sess, err := mxmpp.NewClientSession(sctx, aliceJID, conn,
		mxmpp.StartTLS(&tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}),
		mxmpp.SASL("", alice.token, sasl.ScramSha256),
		mxmpp.BindResource())
	if err != nil {
		t.Fatalf("mellium could not log in with the token: %v", err)
	}
	defer sess.Close()
	go sess.Serve(nil)
	bobJID := jid.MustParse(fmt.Sprintf("%d-%d@localhost", bobID, app.ID))
	msgID := "6b0231bc2b1d9e0e6f000001"
	payload := xmlstream.MultiReader(
		xmlstream.Wrap(xmlstream.Token(xml.CharData("hello over xmpp")), xml.StartElement{Name: xml.Name{Local: "body"}}),
		xmlstream.Wrap(xmlstream.MultiReader(
			xmlstream.Wrap(xmlstream.Token(xml.CharData("1")), xml.StartElement{Name: xml.Name{Local: "save_to_history"}}),
			xmlstream.Wrap(xmlstream.Token(xml.CharData(dialogID)), xml.StartElement{Name: xml.Name{Local: "dialog_id"}}),
		), xml.StartElement{Name: xml.Name{Local: "extraParams", Space: "jabber:client"}}),
	)
	msg := mstanza.Message{ID: msgID, To: bobJID, Type: mstanza.ChatMessage}
	if err := sess.Send(sctx, msg.Wrap(payload)); err != nil {
		t.Fatal(err)
	}
	// XEP-0215: TURN services with credentials.
	iq := mstanza.IQ{Type: mstanza.GetIQ, To: jid.MustParse("localhost")}
	resp, err := sess.SendIQ(sctx, iq.Wrap(xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: "services", Space: "urn:xmpp:extdisco:2"}})))
	if err != nil {
		t.Fatal(err)
	}
	var services struct {
		Services []struct {
			Type     string `xml:"type,attr"`
			Username string `xml:"username,attr"`
			Password string `xml:"password,attr"`
		} `xml:"services>service"`
	}
	if err := xml.NewTokenDecoder(resp).Decode(&services); err != nil {
		t.Fatal(err)
	}
	resp.Close()
	if len(services.Services) == 0 || services.Services[0].Username == "" || !strings.HasSuffix(services.Services[0].Username, fmt.Sprintf(":%d", aliceID)) {
		t.Errorf("extdisco services: %+v", services)
	}

	// Bob reads the history over REST (the message was stored before
	// delivery, so no waiting is needed once the send returned… but the
	// send is asynchronous on the wire: poll with a bound).
	var items []any
	deadline := time.Now().Add(10 * time.Second)
	for len(items) == 0 {
		got := bob.do(http.MethodGet, "/chat/Message.json", url.Values{"chat_dialog_id": {dialogID}, "mark_as_read": {"0"}}, 200)
		items, _ = got["items"].([]any)
		if len(items) == 0 && time.Now().After(deadline) {
			t.Fatal("the message never reached the history")
		}
		if len(items) == 0 {
			time.Sleep(20 * time.Millisecond) // polling, bounded by the deadline
		}
	}
	m := items[0].(map[string]any)
	if m["_id"] != msgID || m["message"] != "hello over xmpp" || int64(m["sender_id"].(float64)) != aliceID {
		t.Errorf("stored message %v", m)
	}
	unread := bob.do(http.MethodGet, "/chat/Message/unread.json", url.Values{"chat_dialog_ids": {dialogID}}, 200)
	if unread["total"] != 1.0 || unread[dialogID] != 1.0 {
		t.Errorf("unread %v", unread)
	}
	creds := bob.do(http.MethodGet, "/turn/credentials.json", nil, 200)
	if creds["username"] == "" || len(creds["uris"].([]any)) != 3 {
		t.Errorf("TURN credentials %v", creds)
	}
}

// Shutdown leaves no goroutine behind, the profiler's listener included.
func TestNodeShutdown(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		s := startNode(t, "CHATD_LOG_PPROF_LISTEN=127.0.0.1:0")
		// The profiler answers (its listener is shut down with the rest).
		resp, err := http.Get("http://" + s.PprofAddr().String() + "/debug/pprof/heap?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "heap profile") {
			t.Fatalf("profiler: %d %.100s", resp.StatusCode, body)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Shutdown(ctx); err != nil {
			t.Fatalf("second shutdown: %v", err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after shutdown, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond) // polling, bounded by the deadline
	}
}

// A user who deletes its account over REST loses its XMPP connections with
// a <not-authorized/> stream error, and cannot log in again.
func TestDeletedUserDisconnected(t *testing.T) {
	s := startNode(t)
	ctx := context.Background()
	app := firstApp(t, s)
	api := newREST(t, s)
	api.session(float64(app.ID), app.AuthKey, app.AuthSecret, "", "")
	api.do(http.MethodPost, "/users.json", url.Values{"user[login]": {"carol"}, "user[password]": {"carolpass1"}}, 201)
	carol := newREST(t, s)
	carol.session(float64(app.ID), app.AuthKey, app.AuthSecret, "carol", "carolpass1")
	carolID := int64(carol.do(http.MethodGet, "/session.json", nil, 200)["session"].(map[string]any)["user_id"].(float64))
	carolJID := jid.MustParse(fmt.Sprintf("%d-%d@localhost", carolID, app.ID))

	login := func() (*mxmpp.Session, error) {
		conn, err := net.Dial("tcp", s.XMPP.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return mxmpp.NewClientSession(sctx, carolJID, conn,
			mxmpp.StartTLS(&tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}),
			mxmpp.SASL("", "carolpass1", sasl.ScramSha256),
			mxmpp.BindResource())
	}
	sess, err := login()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	served := make(chan error, 1)
	go func() { served <- sess.Serve(nil) }()

	carol.do(http.MethodDelete, fmt.Sprintf("/users/%d.json", carolID), nil, 200)
	select {
	case err := <-served:
		if err == nil || !strings.Contains(err.Error(), "not-authorized") {
			t.Fatalf("the connection ended with %v, want a not-authorized stream error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the deleted user's XMPP connection is still open")
	}
	if again, err := login(); err == nil {
		again.Close()
		t.Fatal("the deleted user logged in again")
	}
}
