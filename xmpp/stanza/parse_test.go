package stanza

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

const header = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`

// events parses a whole stream and returns its elements encoded, with
// "OPEN" and "CLOSE" for the header and the end.
func events(t *testing.T, r io.Reader, max int) ([]string, error) {
	t.Helper()
	p := NewParser(r, max)
	var out []string
	for {
		ev, err := p.Next()
		if err != nil {
			return out, err
		}
		switch ev.Kind {
		case KindOpen:
			out = append(out, "OPEN "+ev.Element.Name+" "+ev.Element.Space+" "+p.DefaultNS+" to="+ev.Element.Attr("to"))
		case KindElement:
			out = append(out, ev.Element.String())
		case KindClose:
			out = append(out, "CLOSE")
			return out, nil
		}
	}
}

func TestStream(t *testing.T) {
	in := header + "\n  <message to='a@b' type='chat' id='1'><body>hi &amp; &lt;bye&gt; &#x263A;&#65;</body>" +
		"<markable xmlns='urn:xmpp:chat-markers:0'/></message> \n" +
		`<iq type="get" id="p"><ping xmlns="urn:xmpp:ping"/></iq>` +
		`<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>` +
		`<presence><x:foo xmlns:x='urn:x' x:attr='v' xml:lang='en'>t<![CDATA[<raw>&]]></x:foo></presence>` +
		`</stream:stream>`
	want := []string{
		"OPEN stream http://etherx.jabber.org/streams jabber:client to=localhost",
		`<message xmlns="jabber:client" to="a@b" type="chat" id="1"><body>hi &amp; &lt;bye&gt; ☺A</body><markable xmlns="urn:xmpp:chat-markers:0"/></message>`,
		`<iq xmlns="jabber:client" type="get" id="p"><ping xmlns="urn:xmpp:ping"/></iq>`,
		`<features xmlns="http://etherx.jabber.org/streams"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></features>`,
		`<presence xmlns="jabber:client"><foo xmlns="urn:x" xmlns:x="urn:x" x:attr="v" xml:lang="en">t&lt;raw&gt;&amp;</foo></presence>`,
		"CLOSE",
	}
	for name, r := range map[string]io.Reader{
		"whole":    strings.NewReader(in),
		"one byte": iotest.OneByteReader(strings.NewReader(in)),
		"halves":   iotest.HalfReader(strings.NewReader(in)),
	} {
		got, err := events(t, r, 4096)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", name, got, want)
		}
	}
}

func TestStreamErrors(t *testing.T) {
	cases := []struct {
		name, body string
		want       error // nil: any *SyntaxError
	}{
		{"mismatched end", "<message><body></message>", nil},
		{"unquoted attr", "<message to=a/>", nil},
		{"duplicate attr", "<message to='a' to='b'/>", nil},
		{"undeclared prefix", "<message><y:z/></message>", nil},
		{"undeclared attribute prefix", "<message y:z='1'/>", nil},
		{"bad char ref", "<message><body>&#0;</body></message>", nil},
		{"control char", "<message><body>\x01</body></message>", nil},
		{"bad utf8", "<message><body>\xff</body></message>", nil},
		{"lt in attr", "<message to='<'/>", nil},
		{"text at stream level", "hello<message/>", nil},
		{"bad name", "<1message/>", nil},
		{"comment", "<message><!-- x --></message>", ErrRestricted},
		{"pi", "<message><?php x?></message>", ErrRestricted},
		{"doctype", "<!DOCTYPE foo><message/>", ErrRestricted},
		{"entity", "<message><body>&nbsp;</body></message>", ErrRestricted},
		{"too large", "<message><body>" + strings.Repeat("x", 5000) + "</body></message>", ErrTooLarge},
		{"huge tag", "<message a='" + strings.Repeat("x", 5000) + "'/>", ErrTooLarge},
		{"truncated", "<message><body>hi", io.ErrUnexpectedEOF},
		{"too many attributes", "<message" + attrs(MaxAttrs+1) + "/>", ErrTooComplex},
		{"too many declarations", "<message" + strings.ReplaceAll(strings.ReplaceAll(attrs(MaxAttrs+1), " a", " xmlns:p"), "''", "'u'") + "/>", ErrTooComplex},
		{"too deep", nested(MaxDepth + 1), ErrTooComplex},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := events(t, strings.NewReader(header+tc.body), 4096)
			if tc.want == nil {
				var se *SyntaxError
				if !errors.As(err, &se) {
					t.Fatalf("error = %v (events %q), want a SyntaxError", err, got)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error = %v (events %q), want %v", err, got, tc.want)
			}
		})
	}
}

// attrs returns n attributes a0=” a1=” ….
func attrs(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(" a" + strconv.Itoa(i) + "=''")
	}
	return b.String()
}

// nested returns a message whose elements nest depth levels (the message
// is the first).
func nested(depth int) string {
	return "<message>" + strings.Repeat("<a>", depth-1) + strings.Repeat("</a>", depth-1) + "</message>"
}

// Elements at the shape bounds parse.
func TestShapeBounds(t *testing.T) {
	in := header + "<message" + attrs(MaxAttrs) + "/>" + nested(MaxDepth) + "</stream:stream>"
	got, err := events(t, strings.NewReader(in), 4096)
	if err != nil || len(got) != 4 {
		t.Fatalf("events %q, error %v; want the header, two stanzas and the end", got, err)
	}
}

// The size limit applies to each top-level element, not to the stream.
func TestSizeLimitPerElement(t *testing.T) {
	one := "<message><body>" + strings.Repeat("y", 900) + "</body></message>"
	in := header + strings.Repeat(one, 50) + "</stream:stream>"
	got, err := events(t, iotest.HalfReader(strings.NewReader(in)), 1024)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 52 {
		t.Fatalf("got %d events, want 52", len(got))
	}
}

func TestParseElement(t *testing.T) {
	el, err := ParseElement([]byte(` <open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="1.0"/> `), NSClient, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if el.Name != "open" || el.Space != NSFraming || el.Attr("to") != "localhost" {
		t.Errorf("open = %s", el)
	}
	el, err = ParseElement([]byte(`<message to="x"><body>b</body></message>`), NSClient, 1024)
	if err != nil || el.Space != NSClient || el.ChildText("body", NSClient) != "b" {
		t.Errorf("message = %v, %v", el, err)
	}
	for _, bad := range []string{``, `<a>`, `<a/><b/>`, `<a/>junk`, `</a>`, `<a></b>`} {
		if _, err := ParseElement([]byte(bad), NSClient, 1024); err == nil {
			t.Errorf("ParseElement(%q) accepted", bad)
		}
	}
	if _, err := ParseElement(bytes.Repeat([]byte("x"), 2000), NSClient, 1024); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized message: %v", err)
	}
}

func TestEncodeEscapes(t *testing.T) {
	el := New("message", NSClient, "to", `a"b<c>&d`+"\n")
	el.Append(New("body", NSClient).AppendText("x < y & \"z\" \x00 \xff\n"))
	got := el.String()
	want := `<message xmlns="jabber:client" to="a&quot;b&lt;c&gt;&amp;d&#xA;"><body>x &lt; y &amp; "z" ` + "\uFFFD \uFFFD\n</body></message>"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	back, err := ParseElement([]byte(got), "", 4096)
	if err != nil {
		t.Fatal(err)
	}
	if back.Attr("to") != "a\"b<c>&d\n" {
		t.Errorf("attribute did not round-trip: %q", back.Attr("to"))
	}
}

// FuzzParse checks that the parser never panics and that whatever it accepts
// re-encodes to something it parses back to the same tree.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`<message to='a@b'><body>hi</body></message>`,
		`<iq type='get'><query xmlns='jabber:iq:roster'/></iq>`,
		`<presence><x:y xmlns:x='u' x:a='1'>t<![CDATA[c]]>&#x41;</x:y></presence>`,
		`<a xml:lang='en'>&lt;&gt;&amp;&quot;&apos;</a>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		el, err := ParseElement(data, NSClient, 1<<16)
		if err != nil {
			return
		}
		enc := el.AppendXML(nil, NSClient)
		back, err := ParseElement(enc, NSClient, 1<<17)
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", enc, err)
		}
		if !reflect.DeepEqual(normalize(el), normalize(back)) {
			t.Fatalf("round trip changed the tree:\n%q\n%q", data, enc)
		}
	})
}

// normalize merges adjacent text nodes, which encoding joins.
func normalize(e *Element) *Element {
	c := &Element{Name: e.Name, Space: e.Space, Text: e.Text, Attrs: e.Attrs}
	if len(c.Attrs) == 0 {
		c.Attrs = nil // "<a ></a>" has an empty list, "<a/>" none: the same element
	}
	for _, ch := range e.Children {
		if ch.Name == "" && len(c.Children) > 0 && c.Children[len(c.Children)-1].Name == "" {
			c.Children[len(c.Children)-1].Text += ch.Text
			continue
		}
		if ch.Name == "" {
			if ch.Text == "" {
				continue
			}
			c.Children = append(c.Children, &Element{Text: ch.Text})
			continue
		}
		c.Children = append(c.Children, normalize(ch))
	}
	return c
}

func BenchmarkParseMessage(b *testing.B) {
	msg := `<message to="1002-1@localhost" type="chat" id="6b0231bc2b1d9e0e6f000000"><body>hello over xmpp, a message of typical length</body>` +
		`<markable xmlns="urn:xmpp:chat-markers:0"/><extraParams xmlns="jabber:client"><save_to_history>1</save_to_history>` +
		`<dialog_id>5d75393ba28f9a17e1cb0f9e</dialog_id></extraParams></message>`
	data := []byte(header + strings.Repeat(msg, 1000))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	var p *Parser
	for i := 0; i < b.N; i++ {
		if i%1000 == 0 {
			p = NewParser(bytes.NewReader(data), 1<<16)
			if _, err := p.Next(); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := p.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseWideStanza is the worst shape the bounds allow: a 250 KiB
// stanza of elements with MaxAttrs prefixed attributes each, under
// MaxAttrs namespace declarations. Its cost per byte stays that of ordinary
// stanzas' order; before the bounds, a stanza of tens of thousands of
// attributes was quadratic in them.
func BenchmarkParseWideStanza(b *testing.B) {
	var decl, attrs strings.Builder
	for i := range MaxAttrs {
		fmt.Fprintf(&decl, " xmlns:p%d='urn:%d'", i, i)
		fmt.Fprintf(&attrs, " p%d:a='v'", i)
	}
	var st strings.Builder
	st.WriteString("<message" + decl.String() + ">")
	for st.Len() < 250<<10 {
		st.WriteString("<x" + attrs.String() + "/>")
	}
	st.WriteString("</message>")
	data := []byte(header + st.String())
	b.SetBytes(int64(st.Len()))
	b.ReportAllocs()
	for b.Loop() {
		p := NewParser(bytes.NewReader(data), 1<<20)
		if _, err := p.Next(); err != nil {
			b.Fatal(err)
		}
		if _, err := p.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeMessage(b *testing.B) {
	el, err := ParseElement([]byte(`<message to="1002-1@localhost" type="chat" id="6b0231bc2b1d9e0e6f000000"><body>hello over xmpp</body><markable xmlns="urn:xmpp:chat-markers:0"/></message>`), NSClient, 4096)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = el.AppendXML(buf[:0], "")
	}
}

// chunkReader returns one chunk per Read, as a network delivers one segment,
// and records the size of each buffer it was given.
type chunkReader struct {
	chunks []string
	sizes  []int
}

func (r *chunkReader) Read(b []byte) (int, error) {
	r.sizes = append(r.sizes, len(b))
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(b, r.chunks[0])
	if n == len(r.chunks[0]) {
		r.chunks = r.chunks[1:]
	} else {
		r.chunks[0] = r.chunks[0][n:]
	}
	return n, nil
}

// Elements of every size go through the parser's small, pooled and grown
// buffers intact, and a parser that has consumed all it read waits for the
// next element with only its small buffer.
func TestBuffersAcrossSizes(t *testing.T) {
	sizes := []int{10, smallBuf - 40, smallBuf, poolBuf - 30, poolBuf + 100, 40_000, 5, 3 * poolBuf, 100}
	chunks := []string{header}
	var want []string
	for i, n := range sizes {
		el := `<message id="` + string(rune('a'+i)) + `"><body>` + strings.Repeat("x", n) + `</body></message>`
		chunks = append(chunks, el)
		want = append(want, `<message xmlns="jabber:client" id="`+string(rune('a'+i))+`"><body>`+strings.Repeat("x", n)+`</body></message>`)
	}
	r := &chunkReader{chunks: chunks}
	p := NewParser(r, 1<<16)
	if ev, err := p.Next(); err != nil || ev.Kind != KindOpen {
		t.Fatalf("header: %v %v", ev, err)
	}
	for i, w := range want {
		reads := len(r.sizes)
		ev, err := p.Next()
		if err != nil {
			t.Fatalf("element %d: %v", i, err)
		}
		if got := ev.Element.String(); got != w {
			t.Fatalf("element %d (%d bytes of text) changed: got %.80q…", i, sizes[i], got)
		}
		if r.sizes[reads] != smallBuf {
			t.Errorf("element %d: the first read had a %d-byte buffer, want the small %d", i, r.sizes[reads], smallBuf)
		}
	}
}

// A parser between stanzas keeps none of the last one's elements alive: an
// idle stream's memory does not depend on what it last carried.
func TestParsedStanzaNotRetained(t *testing.T) {
	r := &chunkReader{chunks: []string{header,
		`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>`}}
	p := NewParser(r, 1<<16)
	if ev, err := p.Next(); err != nil || ev.Kind != KindOpen {
		t.Fatalf("header: %v %v", ev, err)
	}
	ev, err := p.Next()
	if err != nil || ev.Kind != KindElement {
		t.Fatalf("iq: %v %v", ev, err)
	}
	collected := make(chan string, 3)
	resource := ev.Element.Children[0].Children[0]
	for _, el := range []*Element{ev.Element, ev.Element.Children[0], resource} {
		runtime.AddCleanup(el, func(name string) { collected <- name }, el.Name)
	}
	ev = Event{}
	resource = nil
	got := map[string]bool{}
	for i := 0; i < 100 && len(got) < 3; i++ {
		runtime.GC()
		select {
		case name := <-collected:
			got[name] = true
		case <-time.After(10 * time.Millisecond):
		}
	}
	if len(got) != 3 {
		t.Errorf("after the stanza was handed out, the parser still keeps alive all but %v of iq, bind, resource", got)
	}
	runtime.KeepAlive(p)
}

// countingReader hands out its input in chunks of sizes drawn from rng and
// counts its reads.
type countingReader struct {
	in    []byte
	rng   *rand.Rand
	most  int // the largest chunk
	reads int
}

func (r *countingReader) Read(b []byte) (int, error) {
	r.reads++
	if len(r.in) == 0 {
		return 0, io.EOF
	}
	n := min(len(b), len(r.in), 1+r.rng.IntN(r.most))
	copy(b, r.in[:n])
	r.in = r.in[n:]
	return n, nil
}

// TestReady checks Ready against what Next does: ready exactly when Next
// returns without reading, however the input is split.
func TestReady(t *testing.T) {
	raw := []string{
		`<message to='a@b' type='chat' id='1'><body>x &gt; y</body></message>`,
		`<presence/>`,
		`<iq type="get" id="a>b" title='c"/>d'><query xmlns="jabber:iq:version"/></iq>`,
		`<message><body><![CDATA[</body></message><x>]]></body><x:y xmlns:x='urn:x'><z/></x:y></message>`,
		`<r xmlns='urn:xmpp:sm:3'/>`,
		`<message id='long'><body>` + strings.Repeat("lorem ipsum ", 40) + `</body></message>`,
	}
	in := header + raw[0] + "\n \t" + raw[1] + " " + raw[2] + raw[3] + raw[4] + "\n\n" + raw[5] + `</stream:stream>`
	var elements, wasReady int
	for seed := range uint64(400) {
		r := &countingReader{in: []byte(in), rng: rand.New(rand.NewPCG(seed, 7)), most: []int{8, 64, 512, 4096}[seed%4]}
		p := NewParser(r, 1<<16)
		if ev, err := p.Next(); err != nil || ev.Kind != KindOpen {
			t.Fatalf("seed %d: header: %v %v", seed, ev.Kind, err)
		}
		for {
			ready, before := p.Ready(), r.reads
			ev, err := p.Next()
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			if ev.Kind == KindElement && p.LastSize() != len(raw[elements%len(raw)]) {
				t.Fatalf("LastSize %d for %s, want %d", p.LastSize(), ev.Element, len(raw[elements%len(raw)]))
			}
			if read := r.reads > before; ready == read {
				t.Fatalf("seed %d: Ready() = %v before %v, but Next read: %v (buffered %q)", seed, ready, ev.Element, read, p.Buffered())
			}
			if ev.Kind == KindClose {
				break
			}
			elements++
			if ready {
				wasReady++
			}
		}
	}
	if elements != 400*len(raw) || wasReady < elements/4 {
		t.Fatalf("parsed %d elements, %d of them ready; want %d, a quarter ready", elements, wasReady, 400*len(raw))
	}
}

// stepReader returns its chunks, one a Read, then io.EOF: a read past them
// stands for waiting on the network.
type stepReader struct {
	chunks [][]byte
	reads  int
}

func (r *stepReader) Read(b []byte) (int, error) {
	r.reads++
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(b, r.chunks[0])
	if r.chunks[0] = r.chunks[0][n:]; len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

// TestReadyRefused: input that Next refuses is ready once Next can refuse it
// without reading; until then (a '<!' shorter than 9 bytes, a '<?' without
// its '?>') it is not, so that a caller waiting for it would not wait on a
// client that sent no more.
func TestReadyRefused(t *testing.T) {
	for _, c := range []struct {
		tail  string
		ready bool
	}{
		{"junk", true}, {"junk<presence/>", true}, {"<?pi?>", true}, {"<!-- c -->", true}, {"<!DOCTYPE x>", true},
		{"</stream:stream>", true}, {"<message><!-- c --></message>", true},
		{"<!--", false}, {"<!-- c", false}, {"<!D", false}, {"<?xml", false}, {"<?pi ", false},
		{"<message><!-", false}, {"<message><body>x</body><?x", false}, {"<message><![CDATA[", false},
	} {
		r := &stepReader{chunks: [][]byte{[]byte(header), []byte(c.tail)}}
		p := NewParser(r, 4096)
		if _, err := p.Next(); err != nil {
			t.Fatal(err)
		}
		if err := p.Fill(); err != nil { // the tail is buffered now
			t.Fatal(err)
		}
		before := r.reads
		ready := p.Ready()
		ev, err := p.Next()
		read := r.reads > before
		switch {
		case ready != c.ready:
			t.Errorf("%q: Ready() = %v, want %v", c.tail, ready, c.ready)
		case ready && read:
			t.Errorf("%q: ready, but Next read (then %v)", c.tail, err)
		case ready && err == nil && ev.Kind != KindClose:
			t.Errorf("%q: Next accepted it: %v", c.tail, ev.Element)
		}
	}
}
