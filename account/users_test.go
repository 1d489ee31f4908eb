package account_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"chatd/account"
)

func TestParseFilter(t *testing.T) {
	tests := []struct {
		field, op, value string
		want             []any
	}{
		{"id", "in", "1, 2,3", []any{int64(1), int64(2), int64(3)}},
		{"login", "eq", "bob", []any{"bob"}},
		{"full_name", "ctn", "Smith, John", []any{"Smith, John"}},
		{"created_at", "between", "0,1700000000", []any{time.Unix(0, 0).UTC(), time.Unix(1700000000, 0).UTC()}},
		{"user_tags", "in", "a,b", []any{"a", "b"}},
		{"user_tags", "eq", "a", []any{"a"}},
		{"user_tags", "ne", "a", []any{"a"}},
		{"user_tags", "eq", "b, a", []any{"b", "a"}},
		{"user_tags", "ne", "a,b", []any{"a", "b"}},
	}
	for _, tc := range tests {
		f, err := account.ParseFilter(tc.field, tc.op, tc.value)
		if err != nil {
			t.Errorf("ParseFilter(%q, %q, %q): %v", tc.field, tc.op, tc.value, err)
			continue
		}
		if !reflect.DeepEqual(f.Values, tc.want) {
			t.Errorf("ParseFilter(%q, %q, %q) values = %#v, want %#v", tc.field, tc.op, tc.value, f.Values, tc.want)
		}
	}
}

// Every filter ParseFilter accepts must be one a Store can run; the others
// are validation errors, never store failures.
func TestParseFilterRejects(t *testing.T) {
	tests := []struct{ field, op, value string }{
		{"nope", "eq", "1"},
		{"id", "like", "1"},
		{"id", "eq", "x"},
		{"id", "between", "1"},
		{"id", "ctn", "1"},
		{"user_tags", "gt", "a"},
		{"user_tags", "lt", "a"},
		{"user_tags", "between", "a,b"},
		{"user_tags", "ctn", "a"},
		{"created_at", "eq", "yesterday"},
		{"login", "in", " , "},
	}
	for _, tc := range tests {
		_, err := account.ParseFilter(tc.field, tc.op, tc.value)
		var verr *account.ValidationError
		if !errors.As(err, &verr) {
			t.Errorf("ParseFilter(%q, %q, %q) = %v, want a *ValidationError", tc.field, tc.op, tc.value, err)
		}
	}
}
