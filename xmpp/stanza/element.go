// Package stanza is chatd's XML for XMPP: an element tree, a streaming
// parser that cuts an XMPP stream into its header, its top-level elements and
// its end, and an encoder.
//
// The parser accepts the restricted XML of RFC 6120 §11: no comments,
// processing instructions (but the XML declaration), DTDs or entity
// references other than the predefined ones and character references; it
// checks UTF-8 and XML character ranges, quoting, nesting and namespaces, and
// bounds every top-level element's size. It is written for the per-stanza hot
// path: one pass over the bytes, no reflection, interned common names.
//
// An Element is a plain tree. Elements are not safe for concurrent mutation;
// once an element is handed to routing it is treated as immutable and
// modified only through copies (Clone, or a shallow copy of the top element
// with new attributes).
package stanza

import "strings"

// Well-known namespaces.
const (
	NSClient  = "jabber:client"
	NSStream  = "http://etherx.jabber.org/streams"
	NSFraming = "urn:ietf:params:xml:ns:xmpp-framing"
	NSXML     = "http://www.w3.org/XML/1998/namespace"
)

// Attr is an attribute. Name keeps its prefix when it had one ("xml:lang").
type Attr struct {
	Name  string
	Value string
}

// Element is an XML element. Character data is kept as child nodes whose Name
// is empty and whose Text holds the data, so mixed content keeps its order.
type Element struct {
	Name     string
	Space    string
	Attrs    []Attr
	Children []*Element
	Text     string // character data of a text node (Name == "")
}

// New returns an element with the given name, namespace and attribute pairs
// (name, value, name, value, …).
func New(name, space string, attrs ...string) *Element {
	e := &Element{Name: name, Space: space}
	for i := 0; i+1 < len(attrs); i += 2 {
		e.Attrs = append(e.Attrs, Attr{attrs[i], attrs[i+1]})
	}
	return e
}

// TextNode returns a character data node.
func TextNode(s string) *Element { return &Element{Text: s} }

// IsText reports whether e is a character data node.
func (e *Element) IsText() bool { return e.Name == "" }

// Attr returns the value of an attribute, or "".
func (e *Element) Attr(name string) string {
	for i := range e.Attrs {
		if e.Attrs[i].Name == name {
			return e.Attrs[i].Value
		}
	}
	return ""
}

// HasAttr reports whether the attribute is present.
func (e *Element) HasAttr(name string) bool {
	for i := range e.Attrs {
		if e.Attrs[i].Name == name {
			return true
		}
	}
	return false
}

// SetAttr sets an attribute, replacing an existing one of that name.
func (e *Element) SetAttr(name, value string) *Element {
	for i := range e.Attrs {
		if e.Attrs[i].Name == name {
			e.Attrs[i].Value = value
			return e
		}
	}
	e.Attrs = append(e.Attrs, Attr{name, value})
	return e
}

// RemoveAttr removes an attribute.
func (e *Element) RemoveAttr(name string) *Element {
	for i := range e.Attrs {
		if e.Attrs[i].Name == name {
			e.Attrs = append(e.Attrs[:i:i], e.Attrs[i+1:]...)
			return e
		}
	}
	return e
}

// Child returns the first child element with this name and namespace; an
// empty space matches any namespace.
func (e *Element) Child(name, space string) *Element {
	for _, c := range e.Children {
		if c.Name == name && (space == "" || c.Space == space) {
			return c
		}
	}
	return nil
}

// ChildNS returns the first child element in the namespace.
func (e *Element) ChildNS(space string) *Element {
	for _, c := range e.Children {
		if c.Name != "" && c.Space == space {
			return c
		}
	}
	return nil
}

// Elements returns the child elements (without text nodes).
func (e *Element) Elements() []*Element {
	out := make([]*Element, 0, len(e.Children))
	for _, c := range e.Children {
		if c.Name != "" {
			out = append(out, c)
		}
	}
	return out
}

// FirstElement returns the first child element, or nil.
func (e *Element) FirstElement() *Element {
	for _, c := range e.Children {
		if c.Name != "" {
			return c
		}
	}
	return nil
}

// Content returns the concatenated character data directly inside e.
func (e *Element) Content() string {
	var n, last int
	for i, c := range e.Children {
		if c.Name == "" {
			n++
			last = i
		}
	}
	switch n {
	case 0:
		return ""
	case 1:
		return e.Children[last].Text
	}
	var b strings.Builder
	for _, c := range e.Children {
		if c.Name == "" {
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

// ChildText returns the character data of the first child with this name and
// namespace, or "".
func (e *Element) ChildText(name, space string) string {
	if c := e.Child(name, space); c != nil {
		return c.Content()
	}
	return ""
}

// Append adds children and returns e.
func (e *Element) Append(children ...*Element) *Element {
	e.Children = append(e.Children, children...)
	return e
}

// AppendText adds a character data node and returns e.
func (e *Element) AppendText(s string) *Element {
	if s != "" {
		e.Children = append(e.Children, TextNode(s))
	}
	return e
}

// RemoveChild removes the child c (compared by identity).
func (e *Element) RemoveChild(c *Element) {
	for i, x := range e.Children {
		if x == c {
			e.Children = append(e.Children[:i:i], e.Children[i+1:]...)
			return
		}
	}
}

// Clone returns a deep copy of e.
func (e *Element) Clone() *Element {
	c := &Element{Name: e.Name, Space: e.Space, Text: e.Text}
	if e.Attrs != nil {
		c.Attrs = append([]Attr(nil), e.Attrs...)
	}
	if e.Children != nil {
		c.Children = make([]*Element, len(e.Children))
		for i, ch := range e.Children {
			c.Children[i] = ch.Clone()
		}
	}
	return c
}

// ShallowCopy returns a copy of e sharing its children but with its own
// attribute slice, so attributes can be changed on the copy alone.
func (e *Element) ShallowCopy() *Element {
	c := *e
	c.Attrs = append([]Attr(nil), e.Attrs...)
	c.Children = e.Children[:len(e.Children):len(e.Children)]
	return &c
}

// String encodes e (for logs and tests).
func (e *Element) String() string { return string(e.AppendXML(nil, "")) }
