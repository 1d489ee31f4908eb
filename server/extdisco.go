package server

import (
	"context"
	"encoding/xml"
	"time"

	"chatd/turn"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

const nsExtDisco = turn.NSExtDisco

// serveExtDisco answers XEP-0215 external service discovery with the TURN
// services and temporary credentials of the asking user: <services/> lists
// them (optionally of one type), <credentials/> gives them for one host.
func serveExtDisco(srv *xmpp.Server, issuer *turn.Issuer) {
	srv.AddFeatures(nsExtDisco)
	srv.HandleIQ(nsExtDisco, func(ctx context.Context, s *xmpp.Session, iq *stanza.Element) error {
		if iq.Attr("type") != "get" {
			return xmpp.NewStanzaError("cancel", "bad-request", "")
		}
		q := iq.FirstElement()
		now := time.Now()
		var v any
		switch q.Name {
		case "services":
			v = issuer.Services(s.User().User, now, q.Attr("type"))
		case "credentials":
			svc := q.Child("service", nsExtDisco)
			if svc == nil {
				return xmpp.NewStanzaError("modify", "bad-request", "name a service")
			}
			c, ok := issuer.ServiceCredentials(s.User().User, now, svc.Attr("host"), svc.Attr("type"))
			if !ok {
				return xmpp.NewStanzaError("cancel", "item-not-found", "no such service")
			}
			v = c
		default:
			return xmpp.NewStanzaError("cancel", "bad-request", "")
		}
		data, err := xml.Marshal(v)
		if err != nil {
			return err
		}
		payload, err := stanza.ParseElement(data, stanza.NSClient, 1<<16)
		if err != nil {
			return err
		}
		res := stanza.New("iq", stanza.NSClient, "type", "result", "id", iq.Attr("id"), "from", srv.Domain())
		res.Append(payload)
		s.Send(res)
		return nil
	})
}
