package mongo

import (
	"strings"
	"testing"
)

// TestEscapeKey checks that escaping is reversible and one-to-one and that
// escaped keys are storable and queryable: no '.', no NUL, no leading '$',
// never empty.
func TestEscapeKey(t *testing.T) {
	keys := []string{"", "%", "%%", "%2E", "%25", ".", "a.b", "$", "$x", "x$", "a$.b", "\x00", "a\x00b",
		"plain", "content-type", "é.ü", "%zz", "%2", "100%"}
	seen := map[string]string{}
	for _, k := range keys {
		e := escapeKey(k)
		if e == "" || strings.ContainsAny(e, ".\x00") || strings.HasPrefix(e, "$") {
			t.Errorf("escapeKey(%q) = %q: not storable", k, e)
		}
		if got := unescapeKey(e); got != k {
			t.Errorf("unescapeKey(escapeKey(%q)) = %q (escaped %q)", k, got, e)
		}
		if other, ok := seen[e]; ok {
			t.Errorf("%q and %q both escape to %q", k, other, e)
		}
		seen[e] = k
	}
	for _, k := range []string{"plain", "content-type", "x$", "é"} {
		if e := escapeKey(k); e != k {
			t.Errorf("escapeKey(%q) = %q, want it unchanged", k, e)
		}
	}
}
