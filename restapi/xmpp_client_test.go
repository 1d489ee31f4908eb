package restapi_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"chatd/account"
	"chatd/history"
	"chatd/internal/certs"
	"chatd/store/sqlite"
	"chatd/xmpp"
)

// xmppDomain is the XMPP domain of the test servers (the REST API's
// default XMPPDomain).
const xmppDomain = "localhost"

// xmppWait bounds every read of the test XMPP client.
const xmppWait = 10 * time.Second

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

// xnode is an XML element as the test client reads it, with encoding/xml
// (independent of chatd's own parser).
type xnode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []xnode    `xml:",any"`
	Text    string     `xml:",chardata"`
}

func (n *xnode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// child returns the first child named name (any namespace), or nil.
func (n *xnode) child(name string) *xnode {
	for i := range n.Nodes {
		if n.Nodes[i].XMLName.Local == name {
			return &n.Nodes[i]
		}
	}
	return nil
}

// childText returns the text of the child named name, or "".
func (n *xnode) childText(name string) string {
	if c := n.child(name); c != nil {
		return c.Text
	}
	return ""
}

// xmppClient is a minimal XMPP client over a real socket: STARTTLS, SASL
// PLAIN, bind, presence, and synchronous reads with a deadline.
type xmppClient struct {
	t    *testing.T
	conn net.Conn
	dec  *xml.Decoder
	jid  string
}

// dialXMPP logs user in with PLAIN over STARTTLS (authcid
// "<user_id>-<app_id>", as the QuickBlox SDK does), binds a resource chosen
// by the server, sends initial presence and waits until the server has
// processed it.
func dialXMPP(t *testing.T, srv *xmpp.Server, app, user int64, password string) *xmppClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", srv.TCPAddr().String(), xmppWait)
	if err != nil {
		t.Fatal(err)
	}
	c := &xmppClient{t: t, conn: conn}
	t.Cleanup(func() { c.conn.Close() })
	c.open()
	c.write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	if el := c.next(); el.XMLName.Local != "proceed" {
		t.Fatalf("starttls: got <%s>", el.XMLName.Local)
	}
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	tc.SetDeadline(time.Now().Add(xmppWait))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	tc.SetDeadline(time.Time{})
	c.conn = tc
	c.open()
	authcid := fmt.Sprintf("%d-%d", user, app)
	c.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` +
		base64.StdEncoding.EncodeToString([]byte("\x00"+authcid+"\x00"+password)) + `</auth>`)
	if el := c.next(); el.XMLName.Local != "success" {
		t.Fatalf("PLAIN login of %s: got <%s>", authcid, el.XMLName.Local)
	}
	c.open()
	c.write(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`)
	res := c.expect(func(n *xnode) bool { return n.XMLName.Local == "iq" && n.attr("id") == "bind1" })
	if res.attr("type") != "result" || res.child("bind") == nil {
		t.Fatalf("bind failed: %+v", res)
	}
	c.jid = res.child("bind").childText("jid")
	c.write(`<presence/>`)
	c.roundTrip()
	return c
}

func (c *xmppClient) write(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(xmppWait))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("xmpp write: %v", err)
	}
}

// open sends a stream header, then reads the server's header and its
// features.
func (c *xmppClient) open() {
	c.t.Helper()
	c.write(`<?xml version='1.0'?><stream:stream to='` + xmppDomain +
		`' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)
	c.dec = xml.NewDecoder(c.conn)
	for {
		tok := c.token()
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "stream" {
				c.t.Fatalf("expected the stream header, got <%s>", se.Name.Local)
			}
			break
		}
	}
	if f := c.next(); f.XMLName.Local != "features" {
		c.t.Fatalf("expected stream features, got <%s>", f.XMLName.Local)
	}
}

func (c *xmppClient) token() xml.Token {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(xmppWait))
	tok, err := c.dec.Token()
	if err != nil {
		c.t.Fatalf("xmpp read: %v", err)
	}
	return tok
}

// next reads the next top-level element.
func (c *xmppClient) next() *xnode {
	c.t.Helper()
	for {
		tok := c.token()
		switch tok := tok.(type) {
		case xml.StartElement:
			var n xnode
			c.conn.SetReadDeadline(time.Now().Add(xmppWait))
			if err := c.dec.DecodeElement(&n, &tok); err != nil {
				c.t.Fatalf("xmpp read: %v", err)
			}
			return &n
		case xml.EndElement:
			c.t.Fatalf("the server closed the stream")
		}
	}
}

// expect reads until an element matches, within xmppWait in all.
func (c *xmppClient) expect(match func(*xnode) bool) *xnode {
	c.t.Helper()
	deadline := time.Now().Add(xmppWait)
	for time.Now().Before(deadline) {
		if n := c.next(); match(n) {
			return n
		}
	}
	c.t.Fatal("no matching stanza in time")
	return nil
}

// roundTrip pings the server and waits for the answer: everything sent
// before has been processed.
func (c *xmppClient) roundTrip() {
	c.t.Helper()
	id := fmt.Sprintf("ping-%d", time.Now().UnixNano())
	c.write(`<iq type='get' id='` + id + `' to='` + xmppDomain + `'><ping xmlns='urn:xmpp:ping'/></iq>`)
	c.expect(func(n *xnode) bool { return n.XMLName.Local == "iq" && n.attr("id") == id })
}

// message reads until a message stanza arrives and returns it.
func (c *xmppClient) message() *xnode {
	c.t.Helper()
	return c.expect(func(n *xnode) bool { return n.XMLName.Local == "message" })
}

// bareJID is "<user>-<app>@domain".
func bareJID(app, user int64) string { return fmt.Sprintf("%d-%d@%s", user, app, xmppDomain) }

// hasPrefixJID reports whether jid is bare or has bare as its bare part.
func hasPrefixJID(jid, bare string) bool { return jid == bare || strings.HasPrefix(jid, bare+"/") }
