package restapi_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"chatd/account"
	"chatd/history"
	"chatd/internal/certs"
	"chatd/internal/xmpptest"
	"chatd/store/sqlite"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

// xmppDomain is the XMPP domain of the test servers: the REST API's default
// XMPPDomain, and xmpptest.Domain, which xmpptest's client opens its streams
// to.
const xmppDomain = "localhost"

// startXMPP starts a real XMPP server on 127.0.0.1:0 with a self-signed
// certificate, over the same accounts and history, and shuts it down when
// the test ends.
func startXMPP(t testing.TB, accounts *account.Service, db *sqlite.DB, hist *history.Service, log *slog.Logger) *xmpp.Server {
	t.Helper()
	cert, _, err := certs.SelfSigned([]string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := xmpp.New(xmpp.Config{
		Domain:           xmppDomain,
		Listen:           "127.0.0.1:0",
		RequireTLS:       true,
		ShutdownWindow:   time.Millisecond,
		AuthFailureDelay: time.Millisecond,
	}, &tls.Config{Certificates: []tls.Certificate{cert}}, accounts, db.XMPP(), log)
	if err != nil {
		t.Fatal(err)
	}
	if hist != nil {
		srv.SetHistory(hist)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("xmpp shutdown: %v", err)
		}
	})
	return srv
}

// dialXMPP logs a user in over a real socket with internal/xmpptest's
// client: STARTTLS, SASL PLAIN with authcid "<user_id>-<app_id>" (as the
// QuickBlox SDK does), a resource chosen by the server; then it sends
// initial presence and waits until the server has processed it.
func dialXMPP(t *testing.T, srv *xmpp.Server, app, user int64, password string) *xmpptest.Client {
	t.Helper()
	c := xmpptest.Dial(t, srv.TCPAddr().String())
	c.Negotiate(xmpptest.User{Ref: xmpp.UserRef{App: app, User: user}, Password: password,
		JID: bareJID(app, user), ID: itoa(user)}, "", true)
	c.StartReading()
	c.Write(`<presence/>`)
	c.RoundTrip()
	return c
}

// nextMessage waits for the next message stanza, skipping others.
func nextMessage(c *xmpptest.Client) *stanza.Element {
	c.T.Helper()
	return c.Expect(func(el *stanza.Element) bool { return el.Name == "message" })
}

// noMessage pings the server and fails if a message arrives before the
// answer: nothing was delivered before the ping.
func noMessage(c *xmpptest.Client) {
	c.T.Helper()
	for _, el := range c.RoundTrip() {
		if el.Name == "message" {
			c.T.Errorf("unexpected message %s", el)
		}
	}
}

// bareJID is "<user>-<app>@domain".
func bareJID(app, user int64) string { return fmt.Sprintf("%d-%d@%s", user, app, xmppDomain) }

// hasPrefixJID reports whether jid is bare or has bare as its bare part.
func hasPrefixJID(jid, bare string) bool { return jid == bare || strings.HasPrefix(jid, bare+"/") }

// A message deleted for everyone (DELETE force=1) is announced to the
// dialog's online occupants, the deleter's other devices included: a
// headline that is a XEP-0424 retraction and a QuickBlox system
// notification. Hiding a message for oneself tells nobody, and users
// outside the dialog hear nothing.
func TestForceDeleteTellsOnlineOccupants(t *testing.T) {
	f := newChatFixture(t, chatOptions{xmpp: true})
	e, alice, bob, carol, dave := f.e, f.alice, f.bob, f.carol, f.dave
	app := e.app.ID
	aliceXMPP := dialXMPP(t, e.xmpp, app, alice.id, alice.password)
	bobXMPP := dialXMPP(t, e.xmpp, app, bob.id, bob.password)
	carolXMPP := dialXMPP(t, e.xmpp, app, carol.id, carol.password)
	daveXMPP := dialXMPP(t, e.xmpp, app, dave.id, dave.password)

	expectNotice := func(c *xmpptest.Client, who, dialog, id string) {
		t.Helper()
		el := nextMessage(c)
		x := el.Child("extraParams", stanza.NSClient)
		r := el.Child("retract", "urn:xmpp:message-retract:1")
		if el.Attr("type") != "headline" || el.Attr("from") != bareJID(app, alice.id) || r == nil || r.Attr("id") != id || x == nil ||
			x.ChildText("moduleIdentifier", stanza.NSClient) != "SystemNotifications" ||
			x.ChildText("notification_type", stanza.NSClient) != "message_deleted" ||
			x.ChildText("dialog_id", stanza.NSClient) != dialog || x.ChildText("message_id", stanza.NSClient) != id {
			t.Errorf("%s was told %s, want a deletion notice of %s in %s from alice", who, el, id, dialog)
		}
	}
	del := func(id string, force bool) {
		t.Helper()
		kv := []string{}
		if force {
			kv = []string{"force", "1"}
		}
		e.call(http.MethodDelete, "/chat/Message/"+id+".json", alice.token, kv...).
			want(t, http.StatusOK, fmt.Sprintf(`{"SuccessfullyDeleted":{"ids":[%q]},"NotFound":{"ids":[]},"WrongPermissions":{"ids":[]}}`, id))
	}

	// Private dialog: bob and alice's XMPP device are told, carol not.
	priv := e.sendText(alice, f.priv, "oops")
	del(priv, true)
	expectNotice(bobXMPP, "bob", f.priv, priv)
	expectNotice(aliceXMPP, "alice's other device", f.priv, priv)
	noMessage(carolXMPP)

	// Group dialog: every occupant online, nobody else.
	group := e.sendText(alice, f.group, "oops, all")
	del(group, true)
	expectNotice(bobXMPP, "bob", f.group, group)
	expectNotice(carolXMPP, "carol", f.group, group)
	expectNotice(aliceXMPP, "alice's other device", f.group, group)
	noMessage(daveXMPP)

	// Hidden for alice only: nobody is told.
	del(e.sendText(alice, f.group, "mine to hide"), false)
	for _, c := range []*xmpptest.Client{aliceXMPP, bobXMPP, carolXMPP} {
		noMessage(c)
	}
}
