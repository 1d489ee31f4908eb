package stanza

import "unicode/utf8"

// AppendXML appends the encoding of e to b. parentNS is the default namespace
// in scope where e is written: e declares its own namespace with xmlns when
// it differs. Top-level stanzas are written with parentNS "" so that each
// carries xmlns='jabber:client' and stands alone (RFC 7395 framing needs it;
// on a TCP stream it repeats the stream's default).
func (e *Element) AppendXML(b []byte, parentNS string) []byte {
	if e.Name == "" {
		return appendEscaped(b, e.Text, false)
	}
	b = append(b, '<')
	b = append(b, e.Name...)
	if e.Space != parentNS {
		b = append(b, ` xmlns="`...)
		b = appendEscaped(b, e.Space, true)
		b = append(b, '"')
	}
	b = e.appendAttrs(b)
	return e.appendRest(b)
}

// appendAttrs writes the attributes.
func (e *Element) appendAttrs(b []byte) []byte {
	for _, a := range e.Attrs {
		if a.Name == "xmlns" {
			continue // the namespace is written from Space
		}
		b = append(b, ' ')
		b = append(b, a.Name...)
		b = append(b, `="`...)
		b = appendEscaped(b, a.Value, true)
		b = append(b, '"')
	}
	return b
}

// appendRest writes what follows the attributes: "/>" or the children and
// the end tag.
func (e *Element) appendRest(b []byte) []byte {
	if len(e.Children) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	for _, c := range e.Children {
		b = c.AppendXML(b, e.Space)
	}
	b = append(b, "</"...)
	b = append(b, e.Name...)
	return append(b, '>')
}

// AppendStart appends e's start tag only, leaving it open, for stream headers.
func (e *Element) AppendStart(b []byte, prefix string) []byte {
	b = append(b, '<')
	if prefix != "" {
		b = append(b, prefix...)
		b = append(b, ':')
	}
	b = append(b, e.Name...)
	b = e.appendAttrs(b)
	return append(b, '>')
}

// appendEscaped appends s escaped for character data or, when attr is set,
// for a double-quoted attribute value. Invalid UTF-8 and characters XML 1.0
// forbids are replaced with U+FFFD, so the output is always well-formed.
func appendEscaped(b []byte, s string, attr bool) []byte {
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '&' && c != '<' && c != '>' && c != '"' {
			i++
			continue
		}
		var esc string
		width := 1
		switch {
		case c == '&':
			esc = "&amp;"
		case c == '<':
			esc = "&lt;"
		case c == '>':
			esc = "&gt;"
		case c == '"':
			if !attr {
				i++
				continue
			}
			esc = "&quot;"
		case c == '\n':
			if !attr {
				i++
				continue
			}
			esc = "&#xA;"
		case c == '\r':
			esc = "&#xD;"
		case c == '\t':
			if !attr {
				i++
				continue
			}
			esc = "&#x9;"
		case c < 0x20:
			esc = "\uFFFD"
		default:
			r, w := utf8.DecodeRuneInString(s[i:])
			if (r == utf8.RuneError && w == 1) || !isXMLChar(r) {
				esc, width = "\uFFFD", w
			} else {
				i += w
				continue
			}
		}
		b = append(b, s[last:i]...)
		b = append(b, esc...)
		i += width
		last = i
	}
	return append(b, s[last:]...)
}

// isXMLChar reports whether r may appear in an XML 1.0 document.
func isXMLChar(r rune) bool {
	return r == 0x9 || r == 0xA || r == 0xD ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// AppendAttrsAndRest appends e's attributes and everything after them (the
// children and end tag, or "/>"), for callers that wrote the start of the
// tag themselves.
func (e *Element) AppendAttrsAndRest(b []byte) []byte {
	b = e.appendAttrs(b)
	return e.appendRest(b)
}
