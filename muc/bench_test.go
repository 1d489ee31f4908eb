package muc_test

// Benchmarks of large rooms with real sessions: every occupant is a real
// client connection over loopback (plain TCP, no TLS, to fit thousands of
// logins in the setup), authenticated, bound and joined like any other.
// After joining, each client's reader only scans the bytes it receives for
// "</message>" (and the send time in the body for the latency benchmark),
// so what is measured is the server's path end to end: the sender's stanza
// parsed, routed, encoded once, enqueued to every occupant's queue, written
// by every session's writer to its socket, and read by the client. The
// clients run in the same process on the same cores, so the figures are a
// lower bound for the server alone.
//
//	go test -run '^$' -bench BenchmarkFanout -benchtime 400x ./muc/
//	go test -run '^$' -bench BenchmarkRoom500Latency -benchtime 300x ./muc/
//
// Neither asserts timings; the figures and the machine they came from are
// in muc/BENCHMARKS.md.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/sasl"

	"chatd/history"
	"chatd/internal/xmpptest"
	"chatd/xmpp/stanza"
)

// fleetClient is one benchmark occupant.
type fleetClient struct {
	u    user
	conn net.Conn
}

// fleet counts what its clients read.
type fleet struct {
	clients   []*fleetClient
	delivered atomic.Int64 // messages read, all clients together
	mu        sync.Mutex
	latencies []time.Duration // with timestamped bodies
	base      time.Time
	wake      chan struct{}
	target    atomic.Int64
	timed     bool // parse bodies for send times (set before connect)
}

// benchLogin logs a user in over plain TCP and binds a resource. It returns
// errors instead of failing, as it runs on worker goroutines.
func benchLogin(addr string, u user) (*fleetClient, error) {
	conn, err := net.DialTimeout("tcp", addr, xmpptest.Wait)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(time.Minute))
	header := `<?xml version='1.0'?><stream:stream to='` + xmpptest.Domain + `' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`
	var p *stanza.Parser
	next := func() (*stanza.Element, error) {
		ev, err := p.Next()
		if err != nil {
			return nil, err
		}
		if ev.Kind != stanza.KindElement {
			return nil, errors.New("stream ended")
		}
		return ev.Element, nil
	}
	open := func() error {
		if _, err := conn.Write([]byte(header)); err != nil {
			return err
		}
		p = stanza.NewParser(conn, 1<<20)
		if ev, err := p.Next(); err != nil || ev.Kind != stanza.KindOpen {
			return fmt.Errorf("no stream header: %v", err)
		}
		_, err := next() // features
		return err
	}
	if err := open(); err != nil {
		return nil, err
	}
	neg := sasl.NewClient(sasl.Plain, sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(fmt.Sprintf("%d-%d", u.Ref.User, u.Ref.App)), []byte(u.Password), nil
	}))
	_, resp, _ := neg.Step(nil)
	conn.Write([]byte(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + xmpptest.B64(resp) + `</auth>`))
	if el, err := next(); err != nil || el.Name != "success" {
		return nil, fmt.Errorf("auth: %v %v", el, err)
	}
	if err := open(); err != nil {
		return nil, err
	}
	conn.Write([]byte(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`))
	if el, err := next(); err != nil || el.Attr("type") != "result" {
		return nil, fmt.Errorf("bind: %v %v", el, err)
	}
	// The server sends nothing more until the client does: from here on
	// the raw connection is read by the fleet's scanner.
	conn.SetDeadline(time.Time{})
	return &fleetClient{u: u, conn: conn}, nil
}

// connect logs every user in (several at a time), starts reading and sends
// initial presence.
func (f *fleet) connect(b testing.TB, e *env, users []user) {
	b.Helper()
	addr := e.Server.TCPAddr().String()
	f.clients = make([]*fleetClient, len(users))
	f.wake = make(chan struct{}, 1)
	f.base = time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(users))
	sem := make(chan struct{}, 32)
	for i, u := range users {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := benchLogin(addr, u)
			if err != nil {
				errs <- err
				return
			}
			f.clients[i] = c
			go f.scan(c)
			c.conn.Write([]byte(`<presence/>`))
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		for _, c := range f.clients {
			c.conn.Close()
		}
	})
}

// join joins every client to the room SDK-style and waits until the service
// counts them all.
func (f *fleet) join(b testing.TB, e *env, room string) {
	b.Helper()
	for _, c := range f.clients {
		c.conn.Write([]byte(sdkJoin(room, "bench", c.u.ID)))
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	deadline := time.Now().Add(2 * time.Minute)
	for e.muc.Stats().Sessions < len(f.clients) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d joined", e.muc.Stats().Sessions, len(f.clients))
		}
		<-t.C
	}
}

var (
	messageEnd = []byte("</message>")
	bodyStamp  = []byte("<body>t=")
)

// scan reads a client's connection and counts the messages in it. When
// the fleet records latencies it parses each message's body
// ("t=<nanoseconds since base>"); otherwise it only counts "</message>",
// carrying a few bytes across reads, to keep the clients' share of the
// CPU small.
func (f *fleet) scan(c *fleetClient) {
	const carryMax = len("</message>") - 1
	buf := make([]byte, carryMax+4096)
	carry := 0
	var pending []byte
	var lat []time.Duration
	for {
		n, err := c.conn.Read(buf[carryMax:])
		if n > 0 {
			count := 0
			if !f.timed {
				window := buf[carryMax-carry : carryMax+n]
				count = bytes.Count(window, messageEnd)
				carry = min(carryMax, len(window))
				copy(buf[carryMax-carry:carryMax], window[len(window)-carry:])
			} else {
				now := time.Since(f.base)
				pending = append(pending, buf[carryMax:carryMax+n]...)
				for {
					i := bytes.Index(pending, messageEnd)
					if i < 0 {
						break
					}
					msg := pending[:i]
					if j := bytes.Index(msg, bodyStamp); j >= 0 {
						rest := msg[j+len(bodyStamp):]
						if k := bytes.IndexByte(rest, '<'); k > 0 {
							if ns, err := strconv.ParseInt(string(rest[:k]), 10, 64); err == nil {
								lat = append(lat, now-time.Duration(ns))
							}
						}
					}
					pending = pending[i+len(messageEnd):]
					count++
				}
				if len(pending) == 0 {
					pending = nil
				}
				if len(lat) > 0 {
					f.mu.Lock()
					f.latencies = append(f.latencies, lat...)
					f.mu.Unlock()
					lat = lat[:0]
				}
			}
			if count > 0 && f.delivered.Add(int64(count)) >= f.target.Load() {
				select {
				case f.wake <- struct{}{}:
				default:
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// await waits until total messages were read, or fails after a bound.
func (f *fleet) await(b testing.TB, total int64) {
	f.target.Store(total)
	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	for f.delivered.Load() < total {
		select {
		case <-f.wake:
		case <-deadline.C:
			b.Fatalf("delivered %d of %d", f.delivered.Load(), total)
		}
	}
}

// liveHeap is the heap still reachable after a collection. (Stacks are
// left out: the writer goroutines that come and go leave their stacks
// cached, which says nothing about what an occupant keeps.)
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func makeUsers(b testing.TB, e *env, n int) []user {
	b.Helper()
	users := make([]user, n)
	for i := range users {
		users[i] = e.NewUser("u" + strconv.Itoa(i))
	}
	return users
}

// BenchmarkFanout: one public dialog with 5,000 occupants, each a real
// session; one of them sends groupchat messages (not stored: this measures
// the fan-out, not the history store) in bursts of 100, each burst read by
// every client before the next. Reported: deliveries/s (messages read by
// clients per second, end to end), ns/message (one message parsed, routed,
// encoded once, enqueued 5,000 times, written 5,000 times and read by 5,000
// clients, amortized over the bursts), and live heap per occupant: the
// room's state (growth from the joins) and a connected occupant's (server
// session and the benchmark's client, before joining).
func BenchmarkFanout(b *testing.B) {
	const occupants = 5000
	e := startEnv(b, envOptions{plain: true})
	users := makeUsers(b, e, occupants)
	d, _, err := e.History.CreateDialog(context.Background(), e.App.ID, users[0].Ref.User,
		history.DialogInput{Type: history.PublicGroup, Name: "channel"})
	if err != nil {
		b.Fatal(err)
	}
	room := e.roomJID(d)
	f := &fleet{}
	base := liveHeap()
	f.connect(b, e, users)
	connected := liveHeap()
	f.join(b, e, room)
	joined := liveHeap()

	sender := f.clients[0]
	const burst = 100
	sent := 0
	var start time.Time
	for b.Loop() {
		if sent == 0 {
			start = time.Now()
		}
		sender.conn.Write([]byte(`<message type='groupchat' to='` + room + `' id='m` + strconv.Itoa(sent) +
			`'><body>a typical chat message of about this size, one of many</body>` +
			`<markable xmlns='urn:xmpp:chat-markers:0'/></message>`))
		sent++
		if sent%burst == 0 {
			f.await(b, int64(sent)*occupants)
		}
	}
	f.await(b, int64(sent)*occupants)
	elapsed := time.Since(start)
	b.ReportMetric(float64(sent)*occupants/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(sent), "ns/message")
	// b.Loop drops metrics reported before it: memory is reported here.
	b.ReportMetric(float64(int64(connected)-int64(base))/occupants, "B/connected-occupant")
	b.ReportMetric(float64(int64(joined)-int64(connected))/occupants, "B/room-occupant")
}

// BenchmarkRoom500Latency: a group dialog of 500 occupants, all joined
// (is_join_required 0, QuickBlox's default); one sends a message every
// 100 ms whose body carries its send time; every client records when it read
// it. Reported: p50, p99 and max delivery latency over every delivery, from
// the sender's write to each reader's read. Sub-benchmarks: "stored" (with
// save_to_history, as the SDK sends: recorded in SQLite before the fan-out)
// and "routed" (without: the fan-out alone).
func BenchmarkRoom500Latency(b *testing.B) {
	for _, stored := range []bool{true, false} {
		label := "routed"
		if stored {
			label = "stored"
		}
		b.Run(label, func(b *testing.B) { roomLatency(b, 500, stored) })
	}
}

func roomLatency(b *testing.B, occupants int, stored bool) {
	e := startEnv(b, envOptions{plain: true})
	users := makeUsers(b, e, occupants)
	d := e.group(users[0], "five hundred", false, users[1:]...)
	room := e.roomJID(d)
	f := &fleet{timed: true}
	f.connect(b, e, users)
	f.join(b, e, room)
	// A first message, read by everyone, lets the join presences (below
	// the broadcast bound, every join is announced) drain first.
	sender := f.clients[0]
	sender.conn.Write([]byte(`<message type='groupchat' to='` + room + `'><body>warm-up</body></message>`))
	f.await(b, int64(occupants))
	extra := ""
	if stored {
		extra = `<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams>`
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	sent := 0
	for b.Loop() {
		<-tick.C
		sender.conn.Write([]byte(`<message type='groupchat' to='` + room + `' id='m` + strconv.Itoa(sent) +
			`'><body>t=` + strconv.FormatInt(int64(time.Since(f.base)), 10) + `</body>` + extra + `</message>`))
		sent++
	}
	f.await(b, int64(sent+1)*int64(occupants))
	f.mu.Lock()
	lat := slices.Clone(f.latencies)
	f.mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(len(lat)), "deliveries")
	b.ReportMetric(0, "ns/op") // paced at 10 messages/s: ns/op says nothing
}
