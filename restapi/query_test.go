package restapi

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplitFilters(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"number id in 1,2,string login eq bob", []string{"number id in 1,2", "string login eq bob"}},
		{"number id in 1, 2, 3", []string{"number id in 1, 2, 3"}},
		{"string login in a,b,date created_at gt 1700000000,number id between 1,9",
			[]string{"string login in a,b", "date created_at gt 1700000000", "number id between 1,9"}},
		{"string full_name eq Smith, John", []string{"string full_name eq Smith, John"}},
		{"string login eq a, string email eq b@c.d", []string{"string login eq a", " string email eq b@c.d"}},
		{"string nofield eq a,string login eq b", []string{"string nofield eq a", "string login eq b"}},
	}
	for _, tc := range tests {
		if got := splitFilters(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitFilters(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzSplitFilters(f *testing.F) {
	for _, s := range []string{
		"number id in 1,2,string login eq bob",
		"string full_name eq Smith, John",
		",,,", "number id in", "x login eq ,y email eq ,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parts := splitFilters(s)
		if joined := strings.Join(parts, ","); joined != s {
			t.Fatalf("splitFilters(%q) = %q, which joins back as %q", s, parts, joined)
		}
		for i, p := range parts[1:] {
			if !startsFilter(p) {
				t.Fatalf("splitFilters(%q) part %d %q does not start a filter", s, i+1, p)
			}
		}
		for _, p := range parts {
			_, _ = parseUserFilter(p)
		}
	})
}
