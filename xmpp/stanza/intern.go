package stanza

// Names, namespaces and attribute values common enough on the stanza path
// that the parser returns these shared strings instead of allocating.
var interned = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{
		// elements
		"message", "presence", "iq", "body", "subject", "thread", "error", "query", "item", "x", "show",
		"status", "priority", "delay", "extraParams", "save_to_history", "dialog_id", "message_id",
		"date_sent", "attachment", "markable", "received", "displayed", "acknowledged", "composing",
		"paused", "active", "inactive", "gone", "r", "a", "enable", "enabled", "resume", "resumed", "ping",
		"bind", "resource", "jid", "session", "auth", "response", "challenge", "success", "failure",
		"starttls", "proceed", "stream", "features", "mechanisms", "mechanism", "history", "forwarded",
		"sent", "private", "no-copy", "store", "no-store", "open", "close", "data", "text", "replace",
		"moduleIdentifier", "c", "request",
		// attributes
		"to", "from", "id", "type", "xml:lang", "version", "xmlns:stream", "code", "h", "name", "stamp",
		"affiliation", "role", "nick", "maxstanzas", "seconds", "since", "maxchars", "ver", "node", "url",
		"uid", "size", "sid", "seq", "block-size", "stanza",
		// namespaces
		NSClient, NSStream, NSFraming, "urn:xmpp:sm:3", "urn:xmpp:chat-markers:0",
		"http://jabber.org/protocol/chatstates", "urn:xmpp:carbons:2", "urn:xmpp:delay", "urn:xmpp:ping",
		"http://jabber.org/protocol/muc", "http://jabber.org/protocol/muc#user", "jabber:iq:roster",
		"urn:ietf:params:xml:ns:xmpp-stanzas", "urn:ietf:params:xml:ns:xmpp-sasl", "urn:xmpp:forward:0",
		"urn:ietf:params:xml:ns:xmpp-tls", "urn:ietf:params:xml:ns:xmpp-bind", "urn:xmpp:hints",
		"urn:xmpp:message-correct:0", "http://jabber.org/protocol/disco#info",
		"http://jabber.org/protocol/disco#items", "jabber:iq:privacy", "jabber:iq:last", "urn:xmpp:receipts",
		// values
		"chat", "groupchat", "headline", "normal", "get", "set", "result", "unavailable", "subscribe",
		"subscribed", "unsubscribe", "unsubscribed", "probe", "1", "0", "true", "false", "en", "1.0",
		"image", "photo", "video", "audio", "file", "away", "xa", "dnd",
	} {
		m[s] = s
	}
	return m
}()

// intern returns b as a string, shared when it is a common name.
func intern(b []byte) string {
	if s, ok := interned[string(b)]; ok {
		return s
	}
	return string(b)
}

// internValue is intern for attribute values.
func internValue(b []byte) string {
	if len(b) <= 24 {
		if s, ok := interned[string(b)]; ok {
			return s
		}
	}
	return string(b)
}
