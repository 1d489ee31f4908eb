package xmpp_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"

	"chatd/history"
	"chatd/internal/xmpptest"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

// The chaos run: two clients exchange numbered messages while their TCP
// connections are cut at random. Each client is a careful XEP-0198 client:
// it resumes its stream after every cut and re-sends what the server had not
// acknowledged. Every message must arrive exactly once and in order per
// sender, whether by live delivery, resumption or offline storage.
//
// CHATD_CHAOS_MESSAGES and CHATD_CHAOS_KILLS scale it (defaults 150 and 20);
// the figure in BENCHMARKS.md comes from
//
//	CHATD_CHAOS_MESSAGES=20000 CHATD_CHAOS_KILLS=10000 go test -run TestChaos -timeout 60m -v ./xmpp
func TestChaos(t *testing.T) {
	messages := envInt("CHATD_CHAOS_MESSAGES", 150)
	kills := envInt("CHATD_CHAOS_KILLS", 20)
	e := startEnv(t, func(c *xmpp.Config) { c.SMAckEvery = 5; c.SMAckInterval = 50 * time.Millisecond })
	ua, ub := e.NewUser("alice"), e.NewUser("bob")
	a := newPeer(t, e, ua, "A")
	b := newPeer(t, e, ub, "B")
	a.start()
	b.start()
	defer a.stop()
	defer b.stop()

	// Rounds: both send a chunk of their messages, and one connection is cut
	// while the chunk is in flight.
	rnd := rand.New(rand.NewPCG(1, 2))
	killed, sent := 0, 0
	for round := 0; sent < messages || killed < kills; round++ {
		chunk := max(1, messages/max(1, kills))
		for i := 0; i < chunk && sent < messages; i++ {
			a.sendMessage(b.u.JID, fmt.Sprintf("A-%d", sent))
			b.sendMessage(a.u.JID, fmt.Sprintf("B-%d", sent))
			sent++
		}
		if killed < kills {
			p := []*peer{a, b}[rnd.IntN(2)]
			if rnd.IntN(2) == 0 {
				p.waitSomeReceived() // sometimes cut mid-delivery, sometimes right away
			}
			if p.cut() {
				killed++
			}
			p.waitConnected()
		}
		a.waitCaughtUp(1000)
		b.waitCaughtUp(1000)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for a.countReceived() < messages || b.countReceived() < messages {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond) // polling the receivers, bounded by the deadline
	}
	for _, p := range []struct {
		got  *peer
		from string
	}{{b, "A"}, {a, "B"}} {
		ids := p.got.receivedIDs()
		seen := map[string]bool{}
		next := 0
		for _, id := range ids {
			if seen[id] {
				t.Errorf("%s got %s twice", p.got.name, id)
				continue
			}
			seen[id] = true
			n, _ := strconv.Atoi(strings.TrimPrefix(id, p.from+"-"))
			if n != next {
				t.Errorf("%s got %s when %s-%d was next", p.got.name, id, p.from, next)
			}
			next = n + 1
		}
		if len(seen) != messages {
			t.Errorf("%s got %d distinct messages of %d", p.got.name, len(seen), messages)
		}
	}
	// Chat history holds each stored message once.
	var bodies []string
	d, _, err := e.History.CreateDialog(context.Background(), e.App.ID, ua.Ref.User,
		history.DialogInput{Type: history.Private, Occupants: []int64{ub.Ref.User}})
	for skip := 0; err == nil; skip += history.MaxLimit {
		var page []*history.Message
		page, err = e.History.Messages(context.Background(), e.App.ID, ua.Ref.User, d.ID, history.MessageQuery{Limit: history.MaxLimit, Skip: skip}, false)
		for _, m := range page {
			bodies = append(bodies, m.Text)
		}
		if len(page) < history.MaxLimit {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for n := range messages {
		if n%4 < 2 {
			want = append(want, "A-"+strconv.Itoa(n), "B-"+strconv.Itoa(n))
		}
	}
	slices.Sort(bodies)
	slices.Sort(want)
	if !slices.Equal(bodies, want) {
		t.Errorf("history holds %d messages, want %d (each stored message once)", len(bodies), len(want))
	}
	st := e.Server.Stats()
	t.Logf("messages %d each way, connections cut %d, resumed %d, resume failures %d, stored offline %d",
		messages, killed, st.Resumed, st.ResumeFailed, st.OfflineStored)
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// peer is a resuming XEP-0198 client.
type peer struct {
	t    *testing.T
	e    *env
	u    user
	name string

	mu        sync.Mutex
	cond      *sync.Cond
	conn      net.Conn
	connected bool
	stopped   bool
	smID      string
	in        uint32 // stanzas handled (our h)
	outSeq    uint32 // stanzas sent on the current stream, after enable
	pending   []outbound
	received  []string
	gen       int // connection generation
}

type outbound struct {
	seq uint32
	xml string
}

func newPeer(t *testing.T, e *env, u user, name string) *peer {
	p := &peer{t: t, e: e, u: u, name: name}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *peer) start() {
	go p.loop()
	p.waitConnected()
}

func (p *peer) stop() {
	p.mu.Lock()
	p.stopped = true
	if p.conn != nil {
		p.conn.Close()
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *peer) waitConnected() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for !p.connected && !p.stopped {
		p.cond.Wait()
	}
}

// waitCaughtUp waits until at most max messages are unacknowledged.
func (p *peer) waitCaughtUp(max int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.pending) > max && !p.stopped {
		p.cond.Wait()
	}
}

// waitSomeReceived waits until the peer received something new.
func (p *peer) waitSomeReceived() {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.received)
	deadline := time.Now().Add(time.Second)
	for len(p.received) == n && time.Now().Before(deadline) && !p.stopped {
		p.mu.Unlock()
		time.Sleep(time.Millisecond) // polling, bounded by the deadline
		p.mu.Lock()
	}
}

// cut closes the current connection, as a network failure would.
func (p *peer) cut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.connected {
		return false
	}
	p.connected = false
	p.conn.Close()
	return true
}

func (p *peer) countReceived() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.received)
}

func (p *peer) receivedIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.received...)
}

// sendMessage queues a message and writes it when connected.
func (p *peer) sendMessage(to, id string) {
	// Half the messages are stored in chat history (and a run of them is
	// stored together, pipeline.go); an ack is asked for after every third.
	n, _ := strconv.Atoi(id[strings.IndexByte(id, '-')+1:])
	x := `<message to='` + to + `' type='chat' id='` + id + `'><body>` + id + `</body>`
	if n%4 < 2 {
		x += `<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams>`
	}
	x += `</message>`
	if n%3 == 2 {
		x += `<r xmlns='urn:xmpp:sm:3'/>`
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.outSeq++
	p.pending = append(p.pending, outbound{seq: p.outSeq, xml: x})
	if p.connected {
		io.WriteString(p.conn, x)
	}
}

// ackOut drops what the server acknowledged; p.mu is held.
func (p *peer) ackOut(h uint32) {
	i := 0
	for i < len(p.pending) && int32(p.pending[i].seq-h) <= 0 {
		i++
	}
	p.pending = p.pending[i:]
	p.cond.Broadcast()
}

// loop connects, resumes or starts a session, and reads until the
// connection breaks; then again.
func (p *peer) loop() {
	for {
		p.mu.Lock()
		stopped := p.stopped
		p.mu.Unlock()
		if stopped {
			return
		}
		if err := p.session(); err != nil && !isClosed(err) {
			p.mu.Lock()
			stopped := p.stopped
			p.mu.Unlock()
			if !stopped {
				p.t.Logf("%s: %v", p.name, err)
			}
		}
	}
}

func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")
}

// session runs one connection.
func (p *peer) session() error {
	raw, err := net.Dial("tcp", p.e.Server.TCPAddr().String())
	if err != nil {
		return err
	}
	defer raw.Close()
	p.mu.Lock()
	p.conn = raw // so cut() and stop() reach it during negotiation
	p.mu.Unlock()
	c := &client{T: p.t, Conn: raw}
	if err := openErr(c); err != nil {
		return err
	}
	io.WriteString(c.Conn, `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	if _, err := nextErr(c); err != nil {
		return err
	}
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		return err
	}
	c.Conn = tc
	p.mu.Lock()
	p.conn = tc
	p.mu.Unlock()
	if err := openErr(c); err != nil {
		return err
	}
	neg := sasl.NewClient(sasl.Plain, sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(fmt.Sprintf("%d-%d", p.u.Ref.User, p.u.Ref.App)), []byte(p.u.Password), nil
	}))
	_, resp, _ := neg.Step(nil)
	io.WriteString(c.Conn, `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>`+xmpptest.B64(resp)+`</auth>`)
	if el, err := nextErr(c); err != nil || el.Name != "success" {
		return fmt.Errorf("auth: %v %v", el, err)
	}
	if err := openErr(c); err != nil {
		return err
	}
	p.mu.Lock()
	prev, h := p.smID, p.in
	p.mu.Unlock()
	resumed := false
	if prev != "" {
		io.WriteString(c.Conn, `<resume xmlns='urn:xmpp:sm:3' previd='`+prev+`' h='`+strconv.FormatUint(uint64(h), 10)+`'/>`)
		el, err := nextErr(c)
		if err != nil {
			return err
		}
		if el.Name == "resumed" {
			serverH, _ := strconv.ParseUint(el.Attr("h"), 10, 32)
			p.mu.Lock()
			p.ackOut(uint32(serverH))
			// Re-send what the server did not get, numbered from its h.
			p.outSeq = uint32(serverH)
			var b strings.Builder
			for i := range p.pending {
				p.outSeq++
				p.pending[i].seq = p.outSeq
				b.WriteString(p.pending[i].xml)
			}
			io.WriteString(c.Conn, b.String())
			p.connected = true
			p.gen++
			p.cond.Broadcast()
			p.mu.Unlock()
			resumed = true
		}
	}
	if !resumed {
		io.WriteString(c.Conn, `<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>chaos</resource></bind></iq>`)
		if el, err := nextErr(c); err != nil || el.Attr("type") != "result" {
			return fmt.Errorf("bind: %v %v", el, err)
		}
		io.WriteString(c.Conn, `<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
		el, err := nextErr(c)
		if err != nil || el.Name != "enabled" {
			return fmt.Errorf("enable: %v %v", el, err)
		}
		p.mu.Lock()
		p.smID, p.in, p.outSeq = el.Attr("id"), 0, 0
		// A new stream: whatever was pending goes again, after presence.
		var b strings.Builder
		b.WriteString(`<presence/>`)
		p.outSeq++
		for i := range p.pending {
			p.outSeq++
			p.pending[i].seq = p.outSeq
			b.WriteString(p.pending[i].xml)
		}
		io.WriteString(c.Conn, b.String())
		p.connected = true
		p.gen++
		p.cond.Broadcast()
		p.mu.Unlock()
	}
	for {
		el, err := nextErr(c)
		if err != nil {
			p.mu.Lock()
			p.connected = false
			p.mu.Unlock()
			return err
		}
		p.mu.Lock()
		switch {
		case el.Space == "urn:xmpp:sm:3" && el.Name == "r":
			io.WriteString(c.Conn, `<a xmlns='urn:xmpp:sm:3' h='`+strconv.FormatUint(uint64(p.in), 10)+`'/>`)
		case el.Space == "urn:xmpp:sm:3" && el.Name == "a":
			h, _ := strconv.ParseUint(el.Attr("h"), 10, 32)
			p.ackOut(uint32(h))
		case isStanza(el):
			p.in++
			if el.Name == "message" && el.ChildText("body", "") != "" {
				// A stored message arrives with its history _id; the
				// sender's id is its origin-id.
				id := el.Attr("id")
				if o := el.Child("origin-id", "urn:xmpp:sid:0"); o != nil {
					id = o.Attr("id")
				}
				p.received = append(p.received, id)
			}
		}
		p.mu.Unlock()
	}
}

// openErr sends a stream header and reads the server's header and features.
func openErr(c *client) error {
	io.WriteString(c.Conn, `<stream:stream to='`+xmpptest.Domain+`' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)
	c.Parser = stanza.NewParser(c.Conn, 1<<22)
	ev, err := c.Parser.Next()
	if err != nil {
		return err
	}
	if ev.Kind != stanza.KindOpen {
		return fmt.Errorf("no stream header")
	}
	_, err = nextErr(c)
	return err
}

// nextErr reads the next element, returning errors instead of failing.
func nextErr(c *client) (*stanza.Element, error) {
	c.Conn.SetReadDeadline(time.Now().Add(xmpptest.Wait))
	ev, err := c.Parser.Next()
	if err != nil {
		return nil, err
	}
	if ev.Kind != stanza.KindElement {
		return nil, io.EOF
	}
	return ev.Element, nil
}
