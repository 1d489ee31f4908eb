package xmpp_test

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"chatd/internal/xmpptest"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

// wsClient speaks RFC 7395 framing: one element per WebSocket message.
type wsClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func (e *env) wsDial(t *testing.T, secure bool) *wsClient {
	t.Helper()
	scheme, origin := "ws", "http://localhost/"
	if secure {
		scheme, origin = "wss", "https://localhost/"
	}
	cfg, err := websocket.NewConfig(scheme+"://"+e.Server.WebSocketAddr().String()+"/", origin)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Protocol = []string{"xmpp"}
	cfg.TlsConfig = &tls.Config{InsecureSkipVerify: true}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	ws.MaxPayloadBytes = 1 << 22
	return &wsClient{t: t, ws: ws}
}

func (c *wsClient) send(s string) {
	c.t.Helper()
	if err := websocket.Message.Send(c.ws, s); err != nil {
		c.t.Fatal(err)
	}
}

// recv returns the next message, which must be one complete element.
func (c *wsClient) recv() (*stanza.Element, string) {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(xmpptest.Wait))
	var msg string
	if err := websocket.Message.Receive(c.ws, &msg); err != nil {
		c.t.Fatalf("receive: %v", err)
	}
	el, err := stanza.ParseElement([]byte(msg), "", 1<<22)
	if err != nil {
		c.t.Fatalf("a WebSocket message is not exactly one element: %v\n%q", err, msg)
	}
	return el, msg
}

func (c *wsClient) login(u user, resource string) string {
	c.t.Helper()
	c.send(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="1.0"/>`)
	if el, _ := c.recv(); el.Name != "open" || el.Attr("from") != "localhost" {
		c.t.Fatalf("open answered %s", el)
	}
	f, _ := c.recv()
	if f.Child("mechanisms", "") == nil {
		c.t.Fatalf("features: %s", f)
	}
	plain := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("\x00%d-%d\x00%s", u.Ref.User, u.Ref.App, u.Password)))
	c.send(`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">` + plain + `</auth>`)
	if el, _ := c.recv(); el.Name != "success" {
		c.t.Fatalf("auth: %s", el)
	}
	c.send(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="1.0"/>`)
	c.recv()
	if f, _ := c.recv(); f.Child("bind", "") == nil {
		c.t.Fatalf("features after auth: %s", f)
	}
	c.send(`<iq type="set" id="b" xmlns="jabber:client"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>` + resource + `</resource></bind></iq>`)
	el, _ := c.recv()
	return el.Child("bind", "").ChildText("jid", "")
}

func TestWebSocket(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", secure), func(t *testing.T) {
			e := startEnv(t, func(c *xmpp.Config) { c.WebSocketTLS = secure })
			alice, bob := e.NewUser("alice"), e.NewUser("bob")
			ws := e.wsDial(t, secure)
			full := ws.login(alice, "browser")
			if !strings.HasPrefix(full, alice.JID+"/browser") {
				t.Fatalf("bound %q", full)
			}
			ws.send(`<presence xmlns="jabber:client"/>`)
			b := e.Online(bob, "b")
			// A stanza well over 4 KiB arrives as exactly one message.
			big := strings.Repeat("z", 20000)
			b.Write(`<message to='` + alice.JID + `' type='chat' id='big'><body>` + big + `</body></message>`)
			for {
				el, raw := ws.recv()
				if el.Name == "message" {
					if el.ChildText("body", "") != big || el.Attr("from") != b.JID || el.Space != "jabber:client" {
						t.Fatalf("message arrived as %q…", raw[:min(200, len(raw))])
					}
					break
				}
			}
			ws.send(`<message xmlns="jabber:client" to="` + bob.JID + `" type="chat"><body>from the browser</body></message>`)
			if got := b.Expect(isMessage("from the browser")); got.Attr("from") != full {
				t.Errorf("from = %q", got.Attr("from"))
			}
			ws.send(`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>`)
			for {
				el, _ := ws.recv()
				if el.Name == "close" {
					break
				}
			}
		})
	}
}

func TestWebSocketNeedsXMPPSubprotocol(t *testing.T) {
	e := startEnv(t, nil)
	cfg, _ := websocket.NewConfig("ws://"+e.Server.WebSocketAddr().String()+"/", "http://localhost/")
	cfg.Protocol = []string{"chat"}
	if ws, err := websocket.DialConfig(cfg); err == nil {
		ws.Close()
		t.Fatal("a WebSocket without the xmpp subprotocol was accepted")
	}
}
