package xmpp_test

import (
	"strconv"
	"sync/atomic"
	"testing"

	"chatd/internal/xmpptest"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

// FuzzSessionStanza sends one well-formed stanza, whatever it holds, to a
// real server from a bound session, then a ping: the server must answer the
// ping or end the stream with an error, never hang, and no handler may
// panic (a recovered panic still ends that user's stream). Without -fuzz it
// runs the seeds below; `go test -run '^$' -fuzz FuzzSessionStanza ./xmpp`
// explores further.
func FuzzSessionStanza(f *testing.F) {
	e := startEnvTB(f, func(c *xmpp.Config) { c.MaxSessionsPerUser = -1 })
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	other := func(s string) string { return bob.JID + s }
	for _, s := range []string{
		`<message to='` + other("") + `' type='chat' id='1'><body>hi</body><extraParams xmlns='jabber:client'><save_to_history>1</save_to_history><dialog_id>x</dialog_id></extraParams></message>`,
		`<message to='` + other("/r") + `' type='chat'><body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/><markable xmlns='urn:xmpp:chat-markers:0'/></message>`,
		`<message to='` + other("") + `' type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='5d75393ba28f9a17e1cb0f9e'/></message>`,
		`<message to='` + other("") + `' type='chat' id='2'><body>fixed</body><replace xmlns='urn:xmpp:message-correct:0' id='1'/></message>`,
		`<message to='` + other("") + `'><body>x</body><amp xmlns='http://jabber.org/protocol/amp'><rule condition='expire-at' value='2000-01-01T00:00:00Z' action='drop'/></amp></message>`,
		`<message to='` + other("") + `' type='headline'><body>x</body></message>`,
		`<presence/>`,
		`<presence><show>away</show><status>out</status><priority>-1</priority></presence>`,
		`<presence to='` + other("") + `' type='subscribe'/>`,
		`<presence to='` + other("/r") + `'/>`,
		`<presence type='unavailable'/>`,
		`<iq type='get' id='r'><query xmlns='jabber:iq:roster' ver='3'/></iq>`,
		`<iq type='set' id='r'><query xmlns='jabber:iq:roster'><item jid='` + other("") + `' name='b'><group>g</group></item></query></iq>`,
		`<iq type='set' id='p'><query xmlns='jabber:iq:privacy'><list name='l'><item type='jid' value='` + other("") + `' action='deny' order='1'><message/></item></list></query></iq>`,
		`<iq type='set' id='p'><query xmlns='jabber:iq:privacy'><active name='l'/><default name='l'/></query></iq>`,
		`<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'><item jid='` + other("") + `'/></block></iq>`,
		`<iq type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>`,
		`<iq type='get' id='d' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
		`<iq type='get' id='l' to='` + other("") + `'><query xmlns='jabber:iq:last'/></iq>`,
		`<iq type='get' id='t'><time xmlns='urn:xmpp:time'/></iq>`,
		`<iq type='get' id='v'><query xmlns='jabber:iq:version'/></iq>`,
		`<iq type='set' id='i' to='` + other("/r") + `'><open xmlns='http://jabber.org/protocol/ibb' block-size='4096' sid='s'/></iq>`,
		`<iq type='get' id='x' to='` + other("/r") + `'><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<iq type='result' id='srvping-1'/>`,
		`<iq type='get' id='s'><services xmlns='urn:xmpp:extdisco:2'/></iq>`,
		`<inactive xmlns='urn:xmpp:csi:0'/>`,
		`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`,
		`<r xmlns='urn:xmpp:sm:3'/>`,
		`<a xmlns='urn:xmpp:sm:3' h='7'/>`,
	} {
		f.Add([]byte(s))
	}
	var seq atomic.Int64
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := stanza.ParseElement(data, stanza.NSClient, 64<<10); err != nil {
			return // only whole, well-formed elements: anything else is the parser's fuzz target
		}
		c := xmpptest.Dial(t, e.Server.TCPAddr().String())
		c.Negotiate(alice, "f"+strconv.FormatInt(seq.Add(1), 10), true)
		c.Survives(string(data))
		c.Conn.Close()
		if p := e.Server.Stats().Panics; p != 0 {
			t.Fatalf("a handler panicked (%d so far) after %q", p, data)
		}
	})
}
