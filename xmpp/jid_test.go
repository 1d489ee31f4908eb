package xmpp

import "testing"

func TestParseJID(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"1001-777@localhost/res", "1001-777@localhost/res"},
		{"localhost", "localhost"},
		{"muc.localhost/12", "muc.localhost/12"},
		{"Alice@Example.COM/Phone", "alice@example.com/Phone"},
		{"1-2@localhost.", "1-2@localhost"},
		{"room@muc.localhost/Ünïcode nick", "room@muc.localhost/Ünïcode nick"},
	} {
		j, err := ParseJID(tc.in)
		if err != nil || j.String() != tc.want {
			t.Errorf("ParseJID(%q) = %q, %v; want %q", tc.in, j.String(), err, tc.want)
		}
	}
	for _, bad := range []string{"", "@localhost", "a@", "a@b/", "a@b@c", "a b@c"} {
		if j, err := ParseJID(bad); err == nil {
			t.Errorf("ParseJID(%q) = %q, want an error", bad, j.String())
		}
	}
	if u, ok := ParseUserLocal("1001-777"); !ok || u != (UserRef{App: 777, User: 1001}) {
		t.Errorf("ParseUserLocal = %v %v", u, ok)
	}
	for _, bad := range []string{"1001", "-777", "1001-", "a-1", "1-b", "+1-2", "1-+2", "0-1", "1--2"} {
		if _, ok := ParseUserLocal(bad); ok {
			t.Errorf("ParseUserLocal(%q) accepted", bad)
		}
	}
}

// FuzzParseJID checks that parsing never panics and that a parsed JID
// prints to text that parses back to itself.
func FuzzParseJID(f *testing.F) {
	for _, s := range []string{"1001-777@localhost/res", "muc.localhost/12", "a@b", "Ä@b/c", "x@y.z/r/s", "@", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := ParseJID(s)
		if err != nil {
			return
		}
		again, err := ParseJID(j.String())
		if err != nil || again != j {
			t.Fatalf("%q parsed to %q, which parses to %q (%v)", s, j.String(), again.String(), err)
		}
	})
}
