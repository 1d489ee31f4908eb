package xmpp

import (
	"context"
	"errors"
	"strconv"

	"chatd/account"
	"chatd/xmpp/stanza"
)

// Namespaces of errors.
const (
	nsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsStreams = "urn:ietf:params:xml:ns:xmpp-streams"
)

// Error types (RFC 6120 §8.3.2).
const (
	errCancel   = "cancel"
	errContinue = "continue"
	errModify   = "modify"
	errAuth     = "auth"
	errWait     = "wait"
)

// StanzaError is an XMPP stanza error. Handlers return it (or a domain error,
// which stanzaErrorOf maps) and the session turns it into the error reply.
type StanzaError struct {
	Type      string
	Condition string
	Text      string
	// Extra is an application-specific condition element, if any.
	Extra *stanza.Element
}

func (e *StanzaError) Error() string {
	if e.Text != "" {
		return "xmpp: " + e.Condition + ": " + e.Text
	}
	return "xmpp: " + e.Condition
}

func stanzaErr(typ, cond, text string) *StanzaError {
	return &StanzaError{Type: typ, Condition: cond, Text: text}
}

// Errors used throughout.
var (
	errBadRequest         = stanzaErr(errModify, "bad-request", "")
	errServiceUnavailable = stanzaErr(errCancel, "service-unavailable", "")
	errItemNotFound       = stanzaErr(errCancel, "item-not-found", "")
	errForbidden          = stanzaErr(errAuth, "forbidden", "")
	errInternal           = stanzaErr(errCancel, "internal-server-error", "")
	errJIDMalformed       = stanzaErr(errModify, "jid-malformed", "")
	// Binding (RFC 6120 §7.6.2).
	errResourceInUse    = stanzaErr(errCancel, "conflict", "the resource is in use")
	errTooManyResources = stanzaErr(errWait, "resource-constraint", "too many sessions of this user")
)

// legacyCodes are XEP-0086's numeric codes; the QuickBlox SDK reads
// error@code, so every error chatd sends carries one.
var legacyCodes = map[string]int{
	"bad-request": 400, "conflict": 409, "feature-not-implemented": 501, "forbidden": 403, "gone": 302,
	"internal-server-error": 500, "item-not-found": 404, "jid-malformed": 400, "not-acceptable": 406,
	"not-allowed": 405, "not-authorized": 401, "payment-required": 402, "policy-violation": 406,
	"recipient-unavailable": 404, "redirect": 302, "registration-required": 407,
	"remote-server-not-found": 404, "remote-server-timeout": 504, "resource-constraint": 500,
	"service-unavailable": 503, "subscription-required": 407, "undefined-condition": 500,
	"unexpected-request": 400,
}

// element renders the <error/> child.
func (e *StanzaError) element() *stanza.Element {
	code := legacyCodes[e.Condition]
	if code == 0 {
		code = 500
	}
	el := stanza.New("error", stanza.NSClient, "code", strconv.Itoa(code), "type", e.Type)
	el.Append(stanza.New(e.Condition, nsStanzas))
	if e.Text != "" {
		el.Append(stanza.New("text", nsStanzas, "xml:lang", "en").AppendText(e.Text))
	}
	if e.Extra != nil {
		el.Append(e.Extra)
	}
	return el
}

// errorReply builds the error answer to orig (RFC 6120 §8.3.1): same kind and
// id, addresses swapped, type error. The original payload is not echoed (the
// RFC makes it optional): bouncing a flood of large messages back to their
// sender would double the traffic the flood costs.
func errorReply(orig *stanza.Element, e *StanzaError) *stanza.Element {
	r := &stanza.Element{Name: orig.Name, Space: stanza.NSClient}
	if id := orig.Attr("id"); id != "" || orig.HasAttr("id") {
		r.SetAttr("id", id)
	}
	r.SetAttr("type", "error")
	if to := orig.Attr("to"); to != "" {
		r.SetAttr("from", to)
	}
	if from := orig.Attr("from"); from != "" {
		r.SetAttr("to", from)
	}
	r.Children = append(r.Children, e.element())
	return r
}

// stanzaErrorOf is the one mapping from errors to stanza errors.
func stanzaErrorOf(err error) *StanzaError {
	var se *StanzaError
	switch {
	case errors.As(err, &se):
		return se
	case errors.Is(err, account.ErrNotFound):
		return errItemNotFound
	case errors.Is(err, account.ErrForbidden):
		return errForbidden
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return stanzaErr(errWait, "remote-server-timeout", "")
	}
	var ve *account.ValidationError
	if errors.As(err, &ve) {
		return stanzaErr(errModify, "bad-request", ve.Error())
	}
	return errInternal
}

// StreamError is a stream-level error; the session sends it and closes.
type StreamError struct {
	Condition string
	Text      string
}

func (e *StreamError) Error() string {
	if e.Text != "" {
		return "xmpp: stream error " + e.Condition + ": " + e.Text
	}
	return "xmpp: stream error " + e.Condition
}

func (e *StreamError) element() *stanza.Element {
	el := stanza.New("error", stanza.NSStream)
	el.Append(stanza.New(e.Condition, nsStreams))
	if e.Text != "" {
		el.Append(stanza.New("text", nsStreams, "xml:lang", "en").AppendText(e.Text))
	}
	return el
}

func streamErr(cond, text string) *StreamError { return &StreamError{Condition: cond, Text: text} }
