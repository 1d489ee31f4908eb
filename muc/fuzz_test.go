package muc_test

import (
	"bytes"
	"strconv"
	"sync/atomic"
	"testing"

	"chatd/internal/xmpptest"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

// FuzzRoomStanza sends one well-formed stanza to the room service from a
// session that has joined a group's room (ROOM in the input stands for the
// room's JID, NICK for another occupant's nick), then a ping: the server
// must answer it or end the stream with an error, never hang, and no
// handler may panic. Without -fuzz it runs the seeds;
// `go test -run '^$' -fuzz FuzzRoomStanza ./muc` explores further.
func FuzzRoomStanza(f *testing.F) {
	e := startEnv(f, envOptions{xmppEdit: func(c *xmpp.Config) { c.MaxSessionsPerUser = -1 }})
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	d := e.group(alice, "fuzz", false, bob)
	room := []byte(e.roomJID(d))
	nick := []byte(strconv.FormatInt(bob.Ref.User, 10))
	for _, s := range []string{
		`<message to='ROOM' type='groupchat' id='g'><body>hi</body><extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>`,
		`<message to='ROOM' type='groupchat'><subject>new name</subject></message>`,
		`<message to='ROOM' type='groupchat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
		`<message to='ROOM' type='groupchat' id='c'><body>fixed</body><replace xmlns='urn:xmpp:message-correct:0' id='g'/></message>`,
		`<message to='ROOM/NICK' type='chat'><body>pm</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>`,
		`<message to='ROOM'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='` + bob.JID + `'><reason>r</reason></invite></x></message>`,
		`<message to='ROOM'><x xmlns='http://jabber.org/protocol/muc#user'><decline to='` + bob.JID + `'/></x></message>`,
		`<presence to='ROOM/NICK'><x xmlns='http://jabber.org/protocol/muc'><history maxchars='10' seconds='60' since='2000-01-01T00:00:00Z'/></x></presence>`,
		`<presence to='ROOM/other'><show>dnd</show></presence>`,
		`<presence to='ROOM/NICK' type='unavailable'/>`,
		`<iq to='ROOM' type='get' id='i'><query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>`,
		`<iq to='ROOM' type='get' id='i'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`,
		`<iq to='ROOM' type='get' id='a'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'/></query></iq>`,
		`<iq to='ROOM' type='set' id='a'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='NICK' role='none'><reason>r</reason></item></query></iq>`,
		`<iq to='ROOM' type='set' id='a'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='` + bob.JID + `' affiliation='outcast'/></query></iq>`,
		`<iq to='ROOM' type='get' id='o'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>`,
		`<iq to='ROOM' type='set' id='o'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_roomname'><value>n</value></field></x></query></iq>`,
		`<iq to='ROOM' type='set' id='o'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy jid='x@muc.localhost'><reason>bye</reason></destroy></query></iq>`,
		`<iq to='ROOM/NICK' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<iq to='muc.localhost' type='get' id='s'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`,
	} {
		f.Add([]byte(s))
	}
	var seq atomic.Int64
	f.Fuzz(func(t *testing.T, data []byte) {
		data = bytes.ReplaceAll(bytes.ReplaceAll(data, []byte("ROOM"), room), []byte("NICK"), nick)
		if _, err := stanza.ParseElement(data, stanza.NSClient, 64<<10); err != nil {
			return // only whole, well-formed elements
		}
		c := xmpptest.Dial(t, e.Server.TCPAddr().String())
		c.Negotiate(alice, "f"+strconv.FormatInt(seq.Add(1), 10), true)
		join := `<presence to='` + string(room) + `/` + strconv.FormatInt(alice.Ref.User, 10) + `'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>`
		c.Survives(join + string(data))
		c.Conn.Close()
		if p := e.Server.Stats().Panics; p != 0 {
			t.Fatalf("a handler panicked (%d so far) after %q", p, data)
		}
	})
}
