package restapi_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
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
func startXMPP(t *testing.T, accounts *account.Service, db *sqlite.DB, hist *history.Service, log *slog.Logger) *xmpp.Server {
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
