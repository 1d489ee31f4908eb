package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"chatd/xmpp/stanza"
)

// offlineResult is the offline backlog figure.
type offlineResult struct {
	Messages     int     `json:"messages"`
	Bounced      int64   `json:"bounced"`
	StoreSeconds float64 `json:"store_seconds"` // sending the backlog until the server processed it
	Received     int     `json:"received"`
	Delayed      int     `json:"with_delay_stamp"`
	FirstMs      float64 `json:"time_to_first_ms"`
	LastMs       float64 `json:"time_to_last_ms"` // from initial presence to the last message
}

// offline has users[0] send n messages to users[1] while it is offline,
// then logs users[1] in and times the backlog's delivery from its initial
// presence.
func (b *bench) offline(ctx context.Context) (*offlineResult, error) {
	o := b.o
	sender, rcpt := b.users[0], b.users[1]
	res := &offlineResult{Messages: o.n}

	// Empty the recipient's backlog first (a previous run's leftovers):
	// initial presence flushes it before the ping's answer.
	c, err := b.d.login(ctx, rcpt, "", true)
	if err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	c.close(5 * time.Second)

	s, err := b.d.login(ctx, sender, "", true)
	if err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	defer s.close(5 * time.Second)
	run := "off-" + randomID()
	start := time.Now()
	s.wmu.Lock()
	w := s.writer()
	var buf []byte
	for i := range o.n {
		buf = append(buf[:0], "<message type='chat' to='"...)
		buf = append(buf, rcpt.JID...)
		buf = append(buf, "' id='"...)
		buf = append(buf, run...)
		buf = append(buf, '-')
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, "'><body>"...)
		buf = append(buf, run...)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, "</body></message>"...)
		if _, err := w.Write(buf); err != nil {
			s.wmu.Unlock()
			return nil, fmt.Errorf("sender: %w", err)
		}
	}
	w.WriteString(`<iq type='get' id='stored'><ping xmlns='urn:xmpp:ping'/></iq>`)
	err = w.Flush()
	s.wmu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	// The server handles a stream's stanzas in order: once the ping is
	// answered, every message was stored (or bounced).
	s.raw.SetReadDeadline(time.Now().Add(o.loginTimeout + time.Duration(o.n)*time.Millisecond))
	if _, err := s.await(func(el *stanza.Element) bool {
		if el.Name == "message" && el.Attr("type") == "error" {
			res.Bounced++
		}
		return el.Name == "iq" && el.Attr("id") == "stored"
	}); err != nil {
		return nil, err
	}
	res.StoreSeconds = time.Since(start).Seconds()
	if res.Bounced > 0 {
		b.errs.add(fmt.Errorf("%d of %d messages bounced instead of being stored", res.Bounced, o.n))
	}
	s.raw.SetReadDeadline(time.Time{})

	r, err := b.d.login(ctx, rcpt, "", false)
	if err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	defer r.close(5 * time.Second)
	want := o.n - int(res.Bounced)
	var (
		got, delayed int
		first, last  time.Time
		all          = make(chan struct{})
	)
	r.read(func(el *stanza.Element) {
		if el.Name != "message" || !strings.HasPrefix(el.ChildText("body", ""), run+" ") {
			return
		}
		now := time.Now()
		if got == 0 {
			first = now
		}
		last = now
		got++
		if el.Child("delay", "urn:xmpp:delay") != nil {
			delayed++
		}
		if got == want {
			close(all)
		}
	})
	presenceAt := time.Now()
	if err := r.write([]byte(`<presence/>`)); err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	if want > 0 {
		t := time.NewTimer(o.loginTimeout + time.Duration(o.n)*time.Millisecond)
		defer t.Stop()
		select {
		case <-all:
		case <-r.done:
			return nil, fmt.Errorf("recipient's stream ended after %d of %d messages: %v", got, want, r.err)
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	r.close(5 * time.Second) // the reader is done: its counters can be read
	res.Received, res.Delayed = got, delayed
	if got > 0 {
		res.FirstMs = ms(first.Sub(presenceAt))
		res.LastMs = ms(last.Sub(presenceAt))
	}
	if got != want {
		b.errs.add(fmt.Errorf("the recipient got %d of %d stored messages", got, want))
	}
	return res, nil
}

func printOffline(w io.Writer, r *offlineResult) {
	fmt.Fprintf(w, "offline: %d messages stored in %.2fs (%d bounced); at login %d delivered (%d with a delay stamp): first %.1f ms, last %.1f ms after initial presence\n",
		r.Messages, r.StoreSeconds, r.Bounced, r.Received, r.Delayed, r.FirstMs, r.LastMs)
}
