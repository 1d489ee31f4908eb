package turn

import (
	"encoding/xml"
	"testing"
	"time"
)

func TestExtDiscoServices(t *testing.T) {
	i := testIssuer(t, Config{Secret: testSecret, PublicHost: "turn.example.com", PublicTLSPort: 443})
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	c := i.Issue(1234, now)
	got, err := xml.Marshal(i.Services(1234, now, ""))
	if err != nil {
		t.Fatal(err)
	}
	attrs := ` username="` + c.Username + `" password="` + c.Password + `" expires="2030-01-03T02:04:05Z" restricted="1"></service>`
	want := `<services xmlns="urn:xmpp:extdisco:2">` +
		`<service type="turn" host="turn.example.com" port="3478" transport="udp"` + attrs +
		`<service type="turn" host="turn.example.com" port="3478" transport="tcp"` + attrs +
		`<service type="turns" host="turn.example.com" port="443" transport="tcp"` + attrs +
		`</services>`
	if string(got) != want {
		t.Errorf("services:\n got %s\nwant %s", got, want)
	}

	got, _ = xml.Marshal(i.Services(1234, now, "turns"))
	want = `<services xmlns="urn:xmpp:extdisco:2" type="turns">` +
		`<service type="turns" host="turn.example.com" port="443" transport="tcp"` + attrs + `</services>`
	if string(got) != want {
		t.Errorf("services of type turns:\n got %s\nwant %s", got, want)
	}
	if s := i.Services(1234, now, "stun"); len(s.Services) != 0 {
		t.Errorf("services of type stun: %+v", s)
	}

	// The payload parses back, as a client would read it.
	var back ExtDiscoServices
	raw, _ := xml.Marshal(i.Services(1234, now, ""))
	if err := xml.Unmarshal(raw, &back); err != nil || len(back.Services) != 3 || back.Services[2].Port != 443 {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	if id, err := i.Check(back.Services[0].Username, back.Services[0].Password, now); err != nil || id != 1234 {
		t.Errorf("Check of extdisco credentials: %d, %v", id, err)
	}
}

func TestExtDiscoCredentials(t *testing.T) {
	i := testIssuer(t, Config{Secret: testSecret, PublicHost: "turn.example.com"})
	now := time.Now()
	c, ok := i.ServiceCredentials(8, now, "turn.example.com", "turn")
	if !ok || len(c.Services) != 2 || c.Services[0].Transport != "udp" || c.Services[1].Transport != "tcp" {
		t.Fatalf("credentials for turn: %+v, %v", c, ok)
	}
	got, err := xml.Marshal(c)
	if err != nil || string(got[:len(`<credentials xmlns="urn:xmpp:extdisco:2"><service type="turn"`)]) !=
		`<credentials xmlns="urn:xmpp:extdisco:2"><service type="turn"` {
		t.Errorf("credentials marshal to %s, %v", got, err)
	}
	if _, ok := i.ServiceCredentials(8, now, "other.example.com", "turn"); ok {
		t.Error("credentials for an unknown host")
	}
}
