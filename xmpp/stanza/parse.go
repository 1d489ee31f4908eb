package stanza

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Parse errors. Every error other than these (and io errors) means the input
// was not well-formed.
var (
	// ErrTooLarge: a top-level element exceeded the parser's size limit.
	ErrTooLarge = errors.New("stanza: element too large")
	// ErrRestricted: a comment, processing instruction, DTD or entity
	// reference RFC 6120 §11.1 forbids.
	ErrRestricted = errors.New("stanza: restricted XML")
	// ErrTooComplex: an element has more than MaxAttrs attributes or nests
	// deeper than MaxDepth.
	ErrTooComplex = errors.New("stanza: element too complex")
)

// Bounds on an element's shape, so that parsing any input takes time
// linear in its size: attribute names are checked against the element's
// others and prefixes against those declared around it, which a stanza of
// tens of thousands of attributes made quadratic. BenchmarkParseWideStanza
// measures the worst shape they allow. Real XMPP payloads stay far below
// both.
const (
	// MaxAttrs bounds an element's attributes, namespace declarations
	// included.
	MaxAttrs = 64
	// MaxDepth bounds the nesting of a stanza's elements (the stanza is 1).
	MaxDepth = 32
)

// SyntaxError is malformed input.
type SyntaxError struct {
	Offset int64
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("stanza: not well-formed at byte %d: %s", e.Offset, e.Msg)
}

// Kind is the kind of an Event.
type Kind int

// Event kinds.
const (
	// KindOpen is the stream header; Event.Element holds its name,
	// namespace and attributes (no children).
	KindOpen Kind = iota + 1
	// KindElement is a complete top-level element (a stanza or a
	// stream-level element such as <starttls/>).
	KindElement
	// KindClose is the end of the stream.
	KindClose
)

// Event is what Parser.Next returns.
type Event struct {
	Kind    Kind
	Element *Element
}

// Parser reads an XMPP stream and returns its events. It reads from its
// io.Reader only as needed, so nothing past an element is consumed early
// beyond what the reader returned in one call (callers switching the
// transport, as STARTTLS does, create a new Parser on the new connection once
// the old one has returned the <proceed/>-triggering element).
type Parser struct {
	r   io.Reader
	max int

	buf      []byte // small[:], a pooled buffer, or a larger one of its own
	small    [smallBuf]byte
	pos, end int
	base     int64 // stream offset of buf[0]
	eof      error

	started bool // the stream header was read
	depth   int  // open elements, the stream header included
	stack   []*Element
	elemAt  int64 // stream offset where the current top-level element began

	defaults []string // default namespace per open element
	prefixes []prefixDecl

	// DefaultNS is the default namespace the stream header declared.
	DefaultNS string
}

type prefixDecl struct {
	depth  int
	prefix string
	uri    string
}

// Buffers. Between elements a parser reads into its own small buffer, so
// that an idle stream holds no more; input that does not fit moves to a
// pooled buffer of poolBuf bytes, which grows by doubling for a large element
// and is given back once the parser has consumed everything it read.
const (
	smallBuf = 256
	poolBuf  = 4096
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, poolBuf); return &b }}

// release goes back to the small buffer once everything read is consumed.
func (p *Parser) release() {
	if p.r == nil || len(p.buf) == smallBuf && &p.buf[0] == &p.small[0] {
		return
	}
	if cap(p.buf) == poolBuf {
		b := p.buf[:poolBuf]
		bufPool.Put(&b)
	}
	p.base += int64(p.pos)
	p.buf, p.pos, p.end = p.small[:], 0, 0
}

// NewParser returns a parser reading r that refuses top-level elements larger
// than max bytes.
func NewParser(r io.Reader, max int) *Parser {
	return &Parser{r: r, max: max}
}

// Drained reports whether the parser has parsed everything it read and is
// between top-level elements: its next event needs more input.
func (p *Parser) Drained() bool { return p.pos >= p.end && p.depth <= 1 && p.eof == nil }

// Ready reports whether Next can return without reading: the input already
// read holds a whole top-level element (or the end of the stream, or input
// that Next will refuse), or the reader has already failed. It scans the
// buffered bytes without parsing them, and is meant for a caller that would
// rather do something else than wait for the network. A stream not between
// top-level elements is not ready.
func (p *Parser) Ready() bool {
	if p.eof != nil {
		return true
	}
	if p.depth != 1 {
		return false
	}
	b := p.buf[p.pos:p.end]
	depth := 0
	for i := 0; ; {
		lt := bytes.IndexByte(b[i:], '<')
		if lt < 0 {
			// Text only: whitespace between elements needs more input;
			// anything else at stream level Next refuses at once.
			return depth == 0 && !allSpace(b[i:])
		}
		if depth == 0 && !allSpace(b[i:i+lt]) {
			return true // character data at stream level: an error
		}
		i += lt
		rest := b[i:]
		if len(rest) < 2 {
			return false
		}
		switch rest[1] {
		case '/':
			n := tagEnd(rest)
			if n < 0 {
				return false
			}
			i += n
			if depth--; depth <= 0 {
				return true // an element's end, or the stream's
			}
		case '!':
			const cdata = "<![CDATA["
			if depth == 0 || !bytes.HasPrefix(rest, []byte(cdata)) {
				// token reads 9 bytes before it refuses anything.
				return len(rest) >= len(cdata)
			}
			n := bytes.Index(rest, []byte("]]>"))
			if n < 0 {
				return false
			}
			i += n + 3
		case '?':
			// token reads up to the '?>' before it refuses it.
			return bytes.Contains(rest, []byte("?>"))
		default:
			n := tagEnd(rest)
			if n < 0 {
				return false
			}
			i += n
			if rest[n-2] != '/' {
				depth++
			} else if depth == 0 {
				return true // an empty top-level element
			}
		}
	}
}

func allSpace(b []byte) bool {
	for _, c := range b {
		if !isSpace(c) {
			return false
		}
	}
	return true
}

// LastSize is the size in bytes of the element Next returned last.
func (p *Parser) LastSize() int { return int(p.base + int64(p.pos) - p.elemAt) }

// Fill reads from the reader once into the buffer, for a caller that knows
// the read will not wait (see Ready). A read that times out loses nothing.
func (p *Parser) Fill() error { return p.more() }

// Buffered returns the bytes read from the reader but not yet parsed; they
// belong to the parser and stay valid until its next call.
func (p *Parser) Buffered() []byte { return p.buf[p.pos:p.end] }

// ParseElement parses data, which must hold exactly one element (surrounding
// whitespace allowed), with defaultNS as the namespace in scope. WebSocket
// framing (RFC 7395) sends one such element per message.
func ParseElement(data []byte, defaultNS string, max int) (*Element, error) {
	if len(data) > max {
		return nil, ErrTooLarge
	}
	p := &Parser{max: max, buf: data, end: len(data), eof: io.EOF, started: true, depth: 1,
		defaults: []string{defaultNS}, DefaultNS: defaultNS}
	p.stack = append(p.stack, &Element{})
	ev, err := p.Next()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, p.syntax("incomplete element")
		}
		return nil, err
	}
	if ev.Kind != KindElement {
		return nil, p.syntax("not an element")
	}
	for ; p.pos < p.end; p.pos++ {
		if !isSpace(p.buf[p.pos]) {
			return nil, p.syntax("data after the element")
		}
	}
	return ev.Element, nil
}

func (p *Parser) syntax(msg string) error {
	return &SyntaxError{Offset: p.base + int64(p.pos), Msg: msg}
}

// more reads more input, keeping the unparsed bytes. It fails with
// ErrTooLarge when the pending token cannot fit within the size limit.
func (p *Parser) more() error {
	if p.eof != nil {
		if p.pos < p.end || p.depth > 0 {
			return io.ErrUnexpectedEOF
		}
		return p.eof
	}
	if p.end-p.pos > p.max {
		return ErrTooLarge
	}
	if p.pos > 0 {
		n := copy(p.buf, p.buf[p.pos:p.end])
		p.base += int64(p.pos)
		p.pos, p.end = 0, n
	}
	if p.end == len(p.buf) {
		var nb []byte
		if len(p.buf) < poolBuf {
			nb = *bufPool.Get().(*[]byte)
		} else {
			nb = make([]byte, 2*len(p.buf))
		}
		copy(nb, p.buf[:p.end])
		if cap(p.buf) == poolBuf {
			b := p.buf[:poolBuf]
			bufPool.Put(&b)
		}
		p.buf = nb
	}
	n, err := p.r.Read(p.buf[p.end:])
	p.end += n
	if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
		// A read deadline: nothing is lost, the caller may read on.
		if n > 0 {
			return nil
		}
		return err
	}
	if err != nil {
		if n > 0 && errors.Is(err, io.EOF) {
			p.eof = err
			return nil
		}
		p.eof = err
		if n == 0 {
			if p.pos < p.end || p.depth > 0 {
				if errors.Is(err, io.EOF) {
					return io.ErrUnexpectedEOF
				}
			}
			return err
		}
	}
	return nil
}

// Next returns the next event of the stream.
func (p *Parser) Next() (Event, error) {
	for {
		if p.pos >= p.end {
			if p.depth <= 1 {
				p.release()
			}
			if err := p.more(); err != nil {
				return Event{}, err
			}
			continue
		}
		if p.depth == 1 && p.pos < p.end && p.buf[p.pos] != '<' {
			// Whitespace between top-level elements (keepalives).
			start := p.pos
			for p.pos < p.end && isSpace(p.buf[p.pos]) {
				p.pos++
			}
			if p.pos < p.end && p.buf[p.pos] != '<' {
				return Event{}, p.syntax("character data at stream level")
			}
			if p.pos > start {
				continue
			}
		}
		if p.depth == 1 {
			p.elemAt = p.base + int64(p.pos)
		}
		ev, done, err := p.token()
		if err != nil {
			return Event{}, err
		}
		if (p.depth > 1 || done && ev.Kind == KindElement) && p.base+int64(p.pos)-p.elemAt > int64(p.max) {
			return Event{}, ErrTooLarge
		}
		if done {
			return ev, nil
		}
	}
}

// need makes sure buf[pos:] holds a complete token ending with the byte
// sequence found by find, which returns its length or -1.
func (p *Parser) need(find func([]byte) int) (int, error) {
	for {
		if n := find(p.buf[p.pos:p.end]); n >= 0 {
			return n, nil
		}
		if err := p.more(); err != nil {
			return 0, err
		}
	}
}

// token consumes one token, returning an event when it completes one.
func (p *Parser) token() (Event, bool, error) {
	for p.pos+1 >= p.end && p.buf[p.pos] == '<' {
		if err := p.more(); err != nil {
			return Event{}, false, err
		}
	}
	if p.buf[p.pos] != '<' {
		return p.text()
	}
	switch p.buf[p.pos+1] {
	case '/':
		return p.endTag()
	case '?':
		n, err := p.need(func(b []byte) int {
			if i := bytes.Index(b, []byte("?>")); i >= 0 {
				return i + 2
			}
			return -1
		})
		if err != nil {
			return Event{}, false, err
		}
		pi := p.buf[p.pos : p.pos+n]
		if p.started || p.depth > 0 || !bytes.HasPrefix(pi, []byte("<?xml ")) {
			return Event{}, false, ErrRestricted
		}
		p.pos += n
		return Event{}, false, nil
	case '!':
		for p.end-p.pos < 9 {
			if err := p.more(); err != nil {
				return Event{}, false, err
			}
		}
		if p.depth > 1 && bytes.HasPrefix(p.buf[p.pos:], []byte("<![CDATA[")) {
			return p.cdata()
		}
		return Event{}, false, ErrRestricted
	}
	return p.startTag()
}

func (p *Parser) text() (Event, bool, error) {
	n, err := p.need(func(b []byte) int {
		if i := bytes.IndexByte(b, '<'); i >= 0 {
			return i
		}
		return -1
	})
	if err != nil {
		return Event{}, false, err
	}
	raw := p.buf[p.pos : p.pos+n]
	if p.depth <= 1 {
		for _, c := range raw {
			if !isSpace(c) {
				return Event{}, false, p.syntax("character data outside an element")
			}
		}
		p.pos += n
		return Event{}, false, nil
	}
	s, err := p.unescape(raw, false)
	if err != nil {
		return Event{}, false, err
	}
	p.pos += n
	parent := p.stack[len(p.stack)-1]
	parent.Children = append(parent.Children, &Element{Text: s})
	return Event{}, false, nil
}

func (p *Parser) cdata() (Event, bool, error) {
	n, err := p.need(func(b []byte) int {
		if i := bytes.Index(b, []byte("]]>")); i >= 0 {
			return i + 3
		}
		return -1
	})
	if err != nil {
		return Event{}, false, err
	}
	raw := p.buf[p.pos+9 : p.pos+n-3]
	if err := checkChars(raw); err != nil {
		return Event{}, false, p.syntax(err.Error())
	}
	p.pos += n
	parent := p.stack[len(p.stack)-1]
	parent.Children = append(parent.Children, &Element{Text: string(raw)})
	return Event{}, false, nil
}

// tagEnd finds the '>' closing a tag, skipping quoted attribute values.
func tagEnd(b []byte) int {
	var quote byte
	for i := 1; i < len(b); i++ {
		c := b[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return i + 1
		}
	}
	return -1
}

func (p *Parser) endTag() (Event, bool, error) {
	n, err := p.need(tagEnd)
	if err != nil {
		return Event{}, false, err
	}
	tag := p.buf[p.pos+2 : p.pos+n-1]
	i := 0
	for i < len(tag) && !isSpace(tag[i]) {
		i++
	}
	name := tag[:i]
	for ; i < len(tag); i++ {
		if !isSpace(tag[i]) {
			return Event{}, false, p.syntax("junk in end tag")
		}
	}
	if p.depth == 0 {
		return Event{}, false, p.syntax("end tag without start")
	}
	p.pos += n
	open := p.stack[len(p.stack)-1]
	if !p.matches(open, name) {
		return Event{}, false, p.syntax("end tag </" + string(name) + "> does not match <" + open.Name + ">")
	}
	p.pop()
	if p.depth == 0 {
		return Event{Kind: KindClose}, true, nil
	}
	if p.depth == 1 {
		return Event{Kind: KindElement, Element: open}, true, nil
	}
	return Event{}, false, nil
}

// matches checks an end tag's qualified name against the open element.
func (p *Parser) matches(open *Element, qname []byte) bool {
	prefix, local := splitQName(qname)
	if string(local) != open.Name {
		return false
	}
	var space string
	if prefix == nil {
		space = p.defaults[len(p.defaults)-1]
	} else {
		space = p.lookup(prefix)
	}
	return space == open.Space
}

func (p *Parser) pop() {
	p.depth--
	// The slot is cleared so that the stack's array does not keep the last
	// stanza's elements alive until a deeper one overwrites them.
	p.stack[len(p.stack)-1] = nil
	p.stack = p.stack[:len(p.stack)-1]
	p.defaults = p.defaults[:len(p.defaults)-1]
	for len(p.prefixes) > 0 && p.prefixes[len(p.prefixes)-1].depth > p.depth {
		p.prefixes = p.prefixes[:len(p.prefixes)-1]
	}
}

func splitQName(b []byte) (prefix, local []byte) {
	if i := bytes.IndexByte(b, ':'); i >= 0 {
		return b[:i], b[i+1:]
	}
	return nil, b
}

func (p *Parser) lookup(prefix []byte) string {
	if string(prefix) == "xml" {
		return NSXML
	}
	for i := len(p.prefixes) - 1; i >= 0; i-- {
		if p.prefixes[i].prefix == string(prefix) {
			return p.prefixes[i].uri
		}
	}
	return ""
}

func (p *Parser) startTag() (Event, bool, error) {
	n, err := p.need(tagEnd)
	if err != nil {
		return Event{}, false, err
	}
	tag := p.buf[p.pos+1 : p.pos+n-1]
	selfClosing := len(tag) > 0 && tag[len(tag)-1] == '/'
	if selfClosing {
		tag = tag[:len(tag)-1]
	}
	i := 0
	for i < len(tag) && !isSpace(tag[i]) {
		i++
	}
	qname := tag[:i]
	if !validName(qname) {
		return Event{}, false, p.syntax("bad element name")
	}
	depth := p.depth + 1
	if depth > MaxDepth+1 { // the stream header is depth 1
		return Event{}, false, ErrTooComplex
	}
	el := &Element{}
	if len(tag) > i {
		el.Attrs = make([]Attr, 0, 4) // stanzas have a few, and get 'from' added
	}
	defNS := ""
	if len(p.defaults) > 0 {
		defNS = p.defaults[len(p.defaults)-1]
	}
	nPrefixes := len(p.prefixes)
	// Attributes.
	rest := tag[i:]
	for nAttrs := 0; ; nAttrs++ {
		if nAttrs > MaxAttrs {
			p.prefixes = p.prefixes[:nPrefixes]
			return Event{}, false, ErrTooComplex
		}
		j := 0
		for j < len(rest) && isSpace(rest[j]) {
			j++
		}
		if j == len(rest) {
			break
		}
		if j == 0 {
			return Event{}, false, p.syntax("attributes must be separated by white space")
		}
		rest = rest[j:]
		eq := bytes.IndexByte(rest, '=')
		if eq <= 0 {
			return Event{}, false, p.syntax("attribute without value")
		}
		name := bytes.TrimRight(rest[:eq], " \t\r\n")
		if !validName(name) {
			return Event{}, false, p.syntax("bad attribute name")
		}
		rest = bytes.TrimLeft(rest[eq+1:], " \t\r\n")
		if len(rest) == 0 || (rest[0] != '"' && rest[0] != '\'') {
			return Event{}, false, p.syntax("attribute value must be quoted")
		}
		end := bytes.IndexByte(rest[1:], rest[0])
		if end < 0 {
			return Event{}, false, p.syntax("unterminated attribute value")
		}
		raw := rest[1 : 1+end]
		rest = rest[2+end:]
		if bytes.IndexByte(raw, '<') >= 0 {
			return Event{}, false, p.syntax("'<' in attribute value")
		}
		value, err := p.unescape(raw, true)
		if err != nil {
			return Event{}, false, err
		}
		switch {
		case string(name) == "xmlns":
			defNS = value
			continue
		case bytes.HasPrefix(name, []byte("xmlns:")):
			if value == "" {
				return Event{}, false, p.syntax("empty namespace for a prefix")
			}
			p.prefixes = append(p.prefixes, prefixDecl{depth, string(name[6:]), value})
		}
		sname := intern(name)
		for _, a := range el.Attrs {
			if a.Name == sname {
				p.prefixes = p.prefixes[:nPrefixes]
				return Event{}, false, p.syntax("duplicate attribute " + sname)
			}
		}
		el.Attrs = append(el.Attrs, Attr{sname, value})
	}
	prefix, local := splitQName(qname)
	el.Name = intern(local)
	if prefix == nil {
		el.Space = defNS
	} else if el.Space = p.lookup(prefix); el.Space == "" {
		p.prefixes = p.prefixes[:nPrefixes]
		return Event{}, false, p.syntax("undeclared prefix " + string(prefix))
	}
	for _, a := range el.Attrs {
		if c := strings.IndexByte(a.Name, ':'); c > 0 && a.Name[:c] != "xmlns" && p.lookup([]byte(a.Name[:c])) == "" {
			p.prefixes = p.prefixes[:nPrefixes]
			return Event{}, false, p.syntax("undeclared attribute prefix " + a.Name[:c])
		}
	}
	p.pos += n

	if !p.started {
		// The stream header: it stays open for the whole stream.
		p.started = true
		p.DefaultNS = defNS
		if selfClosing {
			return Event{}, false, p.syntax("self-closing stream header")
		}
		p.depth = 1
		// Only the header's name is needed to match the end of the stream:
		// the header itself (attributes and all) is not kept for the
		// stream's life.
		p.stack = append(p.stack, &Element{Name: el.Name, Space: el.Space})
		p.defaults = append(p.defaults, defNS)
		return Event{Kind: KindOpen, Element: el}, true, nil
	}
	if p.depth == 0 {
		return Event{}, false, p.syntax("second root element")
	}
	parent := p.stack[len(p.stack)-1]
	if p.depth > 1 {
		parent.Children = append(parent.Children, el)
	}
	if selfClosing {
		p.prefixes = p.prefixes[:nPrefixes]
		if p.depth == 1 {
			return Event{Kind: KindElement, Element: el}, true, nil
		}
		return Event{}, false, nil
	}
	p.depth++
	p.stack = append(p.stack, el)
	p.defaults = append(p.defaults, defNS)
	return Event{}, false, nil
}

// unescape decodes entity and character references and checks characters.
func (p *Parser) unescape(raw []byte, attr bool) (string, error) {
	amp := bytes.IndexByte(raw, '&')
	if amp < 0 {
		if err := checkChars(raw); err != nil {
			return "", p.syntax(err.Error())
		}
		if attr {
			return internValue(raw), nil
		}
		return string(raw), nil
	}
	out := make([]byte, 0, len(raw))
	for len(raw) > 0 {
		amp := bytes.IndexByte(raw, '&')
		if amp < 0 {
			out = append(out, raw...)
			break
		}
		out = append(out, raw[:amp]...)
		raw = raw[amp:]
		semi := bytes.IndexByte(raw, ';')
		if semi < 0 || semi > 12 {
			return "", p.syntax("unterminated reference")
		}
		ref := raw[1:semi]
		raw = raw[semi+1:]
		switch string(ref) {
		case "lt":
			out = append(out, '<')
		case "gt":
			out = append(out, '>')
		case "amp":
			out = append(out, '&')
		case "quot":
			out = append(out, '"')
		case "apos":
			out = append(out, '\'')
		default:
			if len(ref) < 2 || ref[0] != '#' {
				return "", ErrRestricted
			}
			var (
				n   uint64
				err error
			)
			if ref[1] == 'x' {
				n, err = strconv.ParseUint(string(ref[2:]), 16, 32)
			} else {
				n, err = strconv.ParseUint(string(ref[1:]), 10, 32)
			}
			if err != nil || !isXMLChar(rune(n)) {
				return "", p.syntax("bad character reference")
			}
			out = utf8.AppendRune(out, rune(n))
		}
	}
	if err := checkChars(out); err != nil {
		return "", p.syntax(err.Error())
	}
	return string(out), nil
}

var errBadChar = errors.New("invalid character")

// checkChars verifies UTF-8 and the XML 1.0 character range.
func checkChars(b []byte) error {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return errBadChar
			}
			i++
			continue
		}
		r, w := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && w == 1 || !isXMLChar(r) {
			return errBadChar
		}
		i += w
	}
	return nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// validName is a permissive check of an XML name: no markup, quotes or white
// space, not empty, not starting with a digit, '-', '.' or ':', at most one
// colon.
func validName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	switch c := b[0]; {
	case c >= '0' && c <= '9', c == '-', c == '.', c == ':':
		return false
	}
	colons := 0
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n', '<', '>', '&', '"', '\'', '=', '/', '?', '!':
			return false
		case ':':
			colons++
		}
		if c < 0x20 {
			return false
		}
	}
	return colons <= 1 && b[len(b)-1] != ':' && utf8.Valid(b)
}
