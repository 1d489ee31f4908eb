package turn

import (
	"encoding/xml"
	"time"
)

// NSExtDisco is the namespace of XEP-0215 External Service Discovery.
const NSExtDisco = "urn:xmpp:extdisco:2"

// ExtDiscoServices is the <services xmlns='urn:xmpp:extdisco:2'/> payload of
// the IQ result to a XEP-0215 services request. It marshals with encoding/xml
// and depends on no XMPP library.
type ExtDiscoServices struct {
	XMLName xml.Name `xml:"urn:xmpp:extdisco:2 services"`
	// Type echoes the type filter of the request, if any.
	Type     string            `xml:"type,attr,omitempty"`
	Services []ExtDiscoService `xml:"service"`
}

// ExtDiscoCredentials is the <credentials xmlns='urn:xmpp:extdisco:2'/>
// payload of the IQ result to a XEP-0215 credentials request.
type ExtDiscoCredentials struct {
	XMLName  xml.Name          `xml:"urn:xmpp:extdisco:2 credentials"`
	Services []ExtDiscoService `xml:"service"`
}

// ExtDiscoService is one <service/> of XEP-0215.
type ExtDiscoService struct {
	Type      string `xml:"type,attr"`
	Host      string `xml:"host,attr"`
	Port      int    `xml:"port,attr,omitempty"`
	Transport string `xml:"transport,attr,omitempty"`
	Username  string `xml:"username,attr,omitempty"`
	Password  string `xml:"password,attr,omitempty"`
	// Expires is an XEP-0082 DateTime in UTC ("2006-01-02T15:04:05Z").
	Expires string `xml:"expires,attr,omitempty"`
	// Restricted is "1": the service needs the credentials given here.
	Restricted string `xml:"restricted,attr,omitempty"`
}

// xep0082 is the XEP-0082 DateTime profile, in UTC.
const xep0082 = "2006-01-02T15:04:05Z"

// Services issues credentials for userID at now and renders the XEP-0215
// services answer: one "turn" service per plain listener and one "turns" per
// TLS listener, each with host, port, transport, the temporary username and
// password, their expiry and restricted='1'. typ filters by service type as a
// request's type attribute does; "" lists them all.
func (i *Issuer) Services(userID int64, now time.Time, typ string) ExtDiscoServices {
	return ExtDiscoServices{Type: typ, Services: i.extDisco(userID, now, "", typ)}
}

// ServiceCredentials answers a XEP-0215 credentials request for the service
// at host of type typ, issuing new credentials for userID at now. ok is false
// when no service matches (the XMPP layer answers <item-not-found/>).
func (i *Issuer) ServiceCredentials(userID int64, now time.Time, host, typ string) (c ExtDiscoCredentials, ok bool) {
	s := i.extDisco(userID, now, host, typ)
	return ExtDiscoCredentials{Services: s}, len(s) > 0
}

// extDisco renders the endpoints matching host and typ ("" matches any).
func (i *Issuer) extDisco(userID int64, now time.Time, host, typ string) []ExtDiscoService {
	c := i.Issue(userID, now)
	var out []ExtDiscoService
	for _, e := range i.endpoints {
		if (typ != "" && typ != e.scheme) || (host != "" && host != e.host) {
			continue
		}
		out = append(out, ExtDiscoService{
			Type:       e.scheme,
			Host:       e.host,
			Port:       e.port,
			Transport:  e.transport,
			Username:   c.Username,
			Password:   c.Password,
			Expires:    c.Expires.UTC().Format(xep0082),
			Restricted: "1",
		})
	}
	return out
}
