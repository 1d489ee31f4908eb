package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"chatd/xmpp/stanza"
)

// A lean XMPP client: RFC 6120 over TCP with STARTTLS or direct TLS, SASL
// (SCRAM-SHA-256, SCRAM-SHA-1, PLAIN), resource binding, on chatd's own
// stanza parser. It does only what a benchmark needs, the way a real client
// would: one goroutine reads, one writes.

const (
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession = "urn:ietf:params:xml:ns:xmpp-session"
	nsPing    = "urn:xmpp:ping"

	maxStanza = 1 << 20
)

// account is a user to log in as.
type account struct {
	JID      string // bare
	Password string
}

// local returns the JID's local part: the SASL authentication identity.
func (a account) local() string {
	l, _, _ := strings.Cut(a.JID, "@")
	return l
}

// dialer logs users in.
type dialer struct {
	addr     string
	domain   string
	direct   bool   // TLS from the first byte (XEP-0368) rather than STARTTLS
	mech     string // "auto" or a mechanism name
	timeout  time.Duration
	sources  []*net.TCPAddr
	next     atomic.Uint64
	tls      *tls.Config
	tickets  tls.ClientSessionCache // shared; keyed per user by userTickets
	keys     *keyCache
	resumed  atomic.Int64
	fullTLS  atomic.Int64
	mechUsed sync.Map // mechanism → *atomic.Int64
}

// userTickets gives each user their own TLS session cache entry, as each
// real device has its own.
type userTickets struct {
	cache  tls.ClientSessionCache
	prefix string
}

func (u userTickets) Get(key string) (*tls.ClientSessionState, bool) {
	return u.cache.Get(u.prefix + key)
}

func (u userTickets) Put(key string, cs *tls.ClientSessionState) { u.cache.Put(u.prefix+key, cs) }

// conn is a logged-in stream.
type conn struct {
	raw  net.Conn
	tc   *tls.Conn
	p    *stanza.Parser
	full string // bound full JID

	wmu sync.Mutex
	w   *bufio.Writer

	done chan struct{} // closed when the reader returns
	err  error         // why the reader returned (valid once done)

	closeOnce sync.Once
}

// stepError names the negotiation step that failed.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func fail(step string, err error) error { return &stepError{step, err} }

// dialTCP connects from the next source address.
func (d *dialer) dialTCP(ctx context.Context) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout, KeepAlive: -1}
	if len(d.sources) > 0 {
		nd.LocalAddr = d.sources[(d.next.Add(1)-1)%uint64(len(d.sources))]
	}
	return nd.DialContext(ctx, "tcp", d.addr)
}

// login connects, secures, authenticates and binds resource ("": the server
// picks one). With presence it also sends initial presence and waits for the
// server to have processed it (a ping round trip), so the session is
// available when login returns.
func (d *dialer) login(ctx context.Context, a account, resource string, presence bool) (*conn, error) {
	raw, err := d.dialTCP(ctx)
	if err != nil {
		return nil, fail("connect", err)
	}
	c := &conn{raw: raw}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	raw.SetDeadline(time.Now().Add(d.timeout))
	if err := d.negotiate(c, a, resource); err != nil {
		raw.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if presence {
		id := "p" + randomID()
		if err := c.write([]byte(`<presence/><iq type='get' id='` + id + `'><ping xmlns='urn:xmpp:ping'/></iq>`)); err != nil {
			raw.Close()
			return nil, fail("presence", err)
		}
		if _, err := c.await(func(el *stanza.Element) bool { return el.Name == "iq" && el.Attr("id") == id }); err != nil {
			raw.Close()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fail("presence", err)
		}
	}
	raw.SetDeadline(time.Time{})
	return c, nil
}

func (d *dialer) negotiate(c *conn, a account, resource string) error {
	cfg := d.tls.Clone()
	if d.tickets != nil {
		cfg.ClientSessionCache = userTickets{d.tickets, a.JID + "\x00"}
	}
	if d.direct {
		if err := c.startTLS(cfg); err != nil {
			return fail("tls", err)
		}
	}
	f, err := c.open(d.domain)
	if err != nil {
		return fail("stream", err)
	}
	if !d.direct {
		if f.Child("starttls", nsTLS) == nil {
			return fail("starttls", errors.New("the server does not offer STARTTLS"))
		}
		if err := c.write([]byte(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)); err != nil {
			return fail("starttls", err)
		}
		el, err := c.next()
		if err != nil {
			return fail("starttls", err)
		}
		if el.Name != "proceed" {
			return fail("starttls", fmt.Errorf("got %s", el))
		}
		if err := c.startTLS(cfg); err != nil {
			return fail("tls", err)
		}
		if f, err = c.open(d.domain); err != nil {
			return fail("stream", err)
		}
	}
	if c.tc.ConnectionState().DidResume {
		d.resumed.Add(1)
	} else {
		d.fullTLS.Add(1)
	}
	mech, err := d.pickMechanism(f)
	if err != nil {
		return fail("sasl", err)
	}
	if err := c.authenticate(mech, a, d.keys); err != nil {
		return fail("sasl "+mech, err)
	}
	d.countMechanism(mech)
	if f, err = c.open(d.domain); err != nil {
		return fail("stream", err)
	}
	if err := c.bind(f, resource); err != nil {
		return fail("bind", err)
	}
	return nil
}

func (d *dialer) countMechanism(mech string) {
	v, _ := d.mechUsed.LoadOrStore(mech, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (d *dialer) mechanisms() map[string]int64 {
	out := map[string]int64{}
	d.mechUsed.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// pickMechanism chooses SCRAM-SHA-256, then SCRAM-SHA-1, then PLAIN among
// what the server offers, or the mechanism asked for.
func (d *dialer) pickMechanism(features *stanza.Element) (string, error) {
	offered := map[string]bool{}
	if m := features.Child("mechanisms", nsSASL); m != nil {
		for _, e := range m.Elements() {
			offered[strings.TrimSpace(e.Content())] = true
		}
	}
	if d.mech != "auto" {
		if !offered[d.mech] {
			return "", fmt.Errorf("the server does not offer %s", d.mech)
		}
		return d.mech, nil
	}
	for _, m := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"} {
		if offered[m] {
			return m, nil
		}
	}
	return "", errors.New("no supported SASL mechanism offered")
}

func (c *conn) startTLS(cfg *tls.Config) error {
	c.tc = tls.Client(c.raw, cfg)
	return c.tc.Handshake()
}

// stream is what the client reads from and writes to: TLS once it is up.
func (c *conn) stream() net.Conn {
	if c.tc != nil {
		return c.tc
	}
	return c.raw
}

// open sends a stream header and returns the server's features.
func (c *conn) open(domain string) (*stanza.Element, error) {
	err := c.write([]byte(`<?xml version='1.0'?><stream:stream to='` + domain +
		`' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`))
	if err != nil {
		return nil, err
	}
	c.p = stanza.NewParser(c.stream(), maxStanza)
	ev, err := c.p.Next()
	if err != nil {
		return nil, err
	}
	if ev.Kind != stanza.KindOpen {
		return nil, errors.New("no stream header")
	}
	f, err := c.next()
	if err != nil {
		return nil, err
	}
	if f.Name != "features" || f.Space != stanza.NSStream {
		return nil, fmt.Errorf("expected stream features, got %s", f)
	}
	return f, nil
}

// next reads the next top-level element; a stream error or the end of the
// stream is an error.
func (c *conn) next() (*stanza.Element, error) {
	ev, err := c.p.Next()
	if err != nil {
		return nil, err
	}
	switch ev.Kind {
	case stanza.KindClose:
		return nil, io.EOF
	case stanza.KindElement:
		if ev.Element.Name == "error" && ev.Element.Space == stanza.NSStream {
			return nil, streamError(ev.Element)
		}
		return ev.Element, nil
	}
	return nil, errors.New("unexpected stream header")
}

func streamError(el *stanza.Element) error {
	cond := "undefined-condition"
	if f := el.FirstElement(); f != nil {
		cond = f.Name
	}
	if t := el.ChildText("text", ""); t != "" {
		return fmt.Errorf("stream error <%s/>: %s", cond, t)
	}
	return fmt.Errorf("stream error <%s/>", cond)
}

// await reads until match accepts an element, answering pings meanwhile.
func (c *conn) await(match func(*stanza.Element) bool) (*stanza.Element, error) {
	for {
		el, err := c.next()
		if err != nil {
			return nil, err
		}
		if match(el) {
			return el, nil
		}
		if err := c.answerPing(el); err != nil {
			return nil, err
		}
	}
}

// write writes b at once (negotiation, and stanzas outside a sender's batch).
func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.w != nil && c.w.Buffered() > 0 {
		if err := c.w.Flush(); err != nil {
			return err
		}
	}
	_, err := c.stream().Write(b)
	return err
}

// writer returns the buffered writer of a sender; the caller holds wmu.
func (c *conn) writer() *bufio.Writer {
	if c.w == nil {
		c.w = bufio.NewWriterSize(c.stream(), 16<<10)
	}
	return c.w
}

func b64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// authenticate runs one SASL exchange.
func (c *conn) authenticate(mech string, a account, keys *keyCache) error {
	var (
		initial []byte
		sc      *scramClient
		err     error
	)
	switch mech {
	case "PLAIN":
		initial = []byte("\x00" + a.local() + "\x00" + a.Password)
	default:
		if sc, err = newScram(mech, a.local(), a.Password, keys); err != nil {
			return err
		}
		initial = sc.first()
	}
	if err := c.write([]byte(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='` + mech + `'>` + b64(initial) + `</auth>`)); err != nil {
		return err
	}
	verified := false
	for step := 0; ; step++ {
		el, err := c.next()
		if err != nil {
			return err
		}
		data, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Content()))
		if derr != nil && strings.TrimSpace(el.Content()) != "=" {
			return fmt.Errorf("bad base64 in <%s/>", el.Name)
		}
		switch el.Name {
		case "challenge":
			var resp []byte
			switch {
			case sc != nil && step == 0:
				if resp, err = sc.final(data); err != nil {
					return err
				}
			case sc != nil && step == 1 && !verified:
				// RFC 6120 §6.4.6: the server-final-message may come as a
				// challenge, answered with an empty response.
				if err := sc.verify(data); err != nil {
					return err
				}
				verified = true
			default:
				return errors.New("unexpected challenge")
			}
			if err := c.write([]byte(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` + b64(resp) + `</response>`)); err != nil {
				return err
			}
		case "success":
			if sc != nil && !verified {
				return sc.verify(data)
			}
			return nil
		case "failure":
			cond := "failure"
			if f := el.FirstElement(); f != nil {
				cond = f.Name
			}
			return fmt.Errorf("<%s/>", cond)
		default:
			return fmt.Errorf("unexpected <%s/>", el.Name)
		}
	}
}

// bind binds a resource, and establishes the legacy session when the server
// requires it (RFC 3921 servers).
func (c *conn) bind(features *stanza.Element, resource string) error {
	if features.Child("bind", nsBind) == nil {
		return errors.New("the server does not offer resource binding")
	}
	req := `<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>`
	if resource != "" {
		req += `<resource>` + resource + `</resource>`
	}
	if err := c.write([]byte(req + `</bind></iq>`)); err != nil {
		return err
	}
	res, err := c.await(func(el *stanza.Element) bool { return el.Name == "iq" && el.Attr("id") == "bind" })
	if err != nil {
		return err
	}
	if res.Attr("type") != "result" {
		return fmt.Errorf("refused: %s", res)
	}
	if b := res.Child("bind", nsBind); b != nil {
		c.full = strings.TrimSpace(b.ChildText("jid", ""))
	}
	if c.full == "" {
		return errors.New("no JID in the bind result")
	}
	if s := features.Child("session", nsSession); s != nil && s.Child("optional", "") == nil {
		if err := c.write([]byte(`<iq type='set' id='sess'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`)); err != nil {
			return err
		}
		res, err := c.await(func(el *stanza.Element) bool { return el.Name == "iq" && el.Attr("id") == "sess" })
		if err != nil {
			return err
		}
		if res.Attr("type") != "result" {
			return fmt.Errorf("session refused: %s", res)
		}
	}
	return nil
}

// answerPing answers a server's XEP-0199 ping; other elements are ignored.
func (c *conn) answerPing(el *stanza.Element) error {
	if el.Name != "iq" || el.Attr("type") != "get" || el.Child("ping", nsPing) == nil {
		return nil
	}
	r := stanza.New("iq", stanza.NSClient, "type", "result", "id", el.Attr("id"))
	if from := el.Attr("from"); from != "" {
		r.SetAttr("to", from)
	}
	return c.write(r.AppendXML(nil, ""))
}

// read starts the reader goroutine: handle sees every element but pings,
// which are answered. It ends at the end of the stream or an error.
func (c *conn) read(handle func(*stanza.Element)) {
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		for {
			el, err := c.next()
			if err != nil {
				c.err = err
				return
			}
			if el.Name == "iq" && el.Attr("type") == "get" && el.Child("ping", nsPing) != nil {
				if err := c.answerPing(el); err != nil {
					c.err = err
					return
				}
				continue
			}
			if handle != nil {
				handle(el)
			}
		}
	}()
}

// close ends the stream politely: it sends the end of the stream and waits
// up to wait for the server to end its own (the server closes the TCP
// connection first, so TIME_WAIT stays on its side and chatbench's source
// ports are not used up), then closes.
func (c *conn) close(wait time.Duration) { c.closeBy(time.Now().Add(wait)) }

// closeBy is close with a deadline; past it the connection is just closed.
func (c *conn) closeBy(deadline time.Time) { c.closeOnce.Do(func() { c.shut(deadline) }) }

func (c *conn) shut(deadline time.Time) {
	if time.Now().Before(deadline) {
		c.raw.SetWriteDeadline(deadline)
		c.write([]byte(`</stream:stream>`))
		if c.done != nil {
			t := time.NewTimer(time.Until(deadline))
			select {
			case <-c.done:
			case <-t.C:
			}
			t.Stop()
		} else if c.p != nil {
			c.raw.SetReadDeadline(deadline)
			for {
				if _, err := c.next(); err != nil {
					break
				}
			}
		}
	}
	c.raw.Close()
	if c.done != nil {
		<-c.done
	}
}

func randomID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
