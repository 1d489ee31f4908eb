package restapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func mustForm(t *testing.T, s string) params {
	t.Helper()
	p, err := decodeForm(s)
	if err != nil {
		t.Fatalf("decodeForm(%q): %v", s, err)
	}
	return p
}

func mustJSON(t *testing.T, s string) params {
	t.Helper()
	p, err := decodeJSON([]byte(s))
	if err != nil {
		t.Fatalf("decodeJSON(%s): %v", s, err)
	}
	return p
}

func TestDecodeFormScalarsAndMaps(t *testing.T) {
	p := mustForm(t, "a=1&b[c]=two%20words&b[d][e]=%5Bx%5D&plus=a+b&empty=&bare&a=3")
	if got := p.String("a"); got != "3" {
		t.Errorf("a = %q, want the last value 3", got)
	}
	if got := p.Sub("b").String("c"); got != "two words" {
		t.Errorf("b[c] = %q", got)
	}
	if got := p.Sub("b").Sub("d").String("e"); got != "[x]" {
		t.Errorf("b[d][e] = %q", got)
	}
	if got := p.String("plus"); got != "a b" {
		t.Errorf("plus = %q, want a b", got)
	}
	for _, k := range []string{"empty", "bare"} {
		if v, ok := p.Lookup(k); !ok || v != "" {
			t.Errorf("%s = %q, %v; want present and empty", k, v, ok)
		}
	}
	if p.Has("missing") || p.OptString("missing") != nil || p.Sub("missing").Len() != 0 {
		t.Error("a missing key reads as present")
	}
	if got := p.Keys(); !reflect.DeepEqual(got, []string{"a", "b", "bare", "empty", "plus"}) {
		t.Errorf("Keys = %v", got)
	}
	if p.Sub("a").Len() != 0 || p.String("b") != "" {
		t.Error("a scalar read as a map, or a map as a string")
	}
}

func TestDecodeFormLists(t *testing.T) {
	p := mustForm(t, "ids[]=1%2C%202&ids[]=3&csv=4, 5 ,,6&one=7&filter[]=number%20id%20in%201%2C2&empty[]=")
	ints, err := p.Ints("ids")
	if err != nil || !reflect.DeepEqual(ints, []int64{1, 2, 3}) {
		t.Errorf("Ints(ids) = %v, %v", ints, err)
	}
	if got := p.Raw("ids"); !reflect.DeepEqual(got, []string{"1, 2", "3"}) {
		t.Errorf("Raw(ids) = %q, want the values as sent", got)
	}
	if got := p.String("ids"); got != "1, 2,3" {
		t.Errorf("String(ids) = %q", got)
	}
	ints, err = p.Ints("csv")
	if err != nil || !reflect.DeepEqual(ints, []int64{4, 5, 6}) {
		t.Errorf("Ints(csv) = %v, %v", ints, err)
	}
	ints, err = p.Ints("one")
	if err != nil || !reflect.DeepEqual(ints, []int64{7}) {
		t.Errorf("Ints(one) = %v, %v", ints, err)
	}
	if got := p.Raw("filter"); !reflect.DeepEqual(got, []string{"number id in 1,2"}) {
		t.Errorf("Raw(filter) = %q", got)
	}
	if got := p.Strings("empty"); len(got) != 0 || !p.Has("empty") {
		t.Errorf("empty[] = %q, want an empty list", got)
	}
	if _, err := mustForm(t, "x=1,a").Ints("x"); !isParamError(err) {
		t.Errorf("Ints of a non-number = %v, want a paramError", err)
	}
}

func TestDecodeFormListOfMaps(t *testing.T) {
	p := mustForm(t, "a[][id]=1&a[][type]=image&a[][id]=2&att[1][id]=b&att[0][id]=a&att[10][id]=c")
	var ids []string
	for _, e := range p.List("a") {
		ids = append(ids, e.String("id")+":"+e.String("type"))
	}
	if want := []string{"1:image", "2:"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("List(a) = %q, want %q", ids, want)
	}
	ids = nil
	for _, e := range p.List("att") {
		ids = append(ids, e.String("id"))
	}
	if want := []string{"a", "b", "c"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("List(att) = %q, want %q (numeric order)", ids, want)
	}
	if got := mustForm(t, "m[x][id]=1").List("m"); got != nil {
		t.Errorf("List of a map with non-numeric keys = %v, want nil", got)
	}
}

func TestDecodeJSON(t *testing.T) {
	p := mustJSON(t, `{"read":"1","delivered":1,"flag":true,"off":false,"nothing":null,"n":12345678901234,
		"s":"1, 2","ids":[1,"2",3],"obj":{"k":{"deep":"v"}},
		"attachments":{"1":{"id":"b"},"0":{"id":"a","size":10}},
		"list":[{"id":"x"},{"id":"y"}]}`)
	for _, k := range []string{"read", "delivered", "flag"} {
		if b, err := p.Bool(k, false); err != nil || !b {
			t.Errorf("Bool(%s) = %v, %v", k, b, err)
		}
	}
	if b, err := p.Bool("off", true); err != nil || b {
		t.Errorf("Bool(off) = %v, %v", b, err)
	}
	if v, ok := p.Lookup("nothing"); !ok || v != "" {
		t.Errorf("null = %q, %v", v, ok)
	}
	if n, err := p.Int("n", 0); err != nil || n != 12345678901234 {
		t.Errorf("Int(n) = %d, %v", n, err)
	}
	if n, err := p.Int("read", 0); err != nil || n != 1 {
		t.Errorf("Int of a number given as a string = %d, %v", n, err)
	}
	for _, k := range []string{"s", "ids"} {
		if _, err := p.Ints(k); err != nil {
			t.Errorf("Ints(%s): %v", k, err)
		}
	}
	if ints, _ := p.Ints("ids"); !reflect.DeepEqual(ints, []int64{1, 2, 3}) {
		t.Errorf("Ints(ids) = %v", ints)
	}
	if got := p.Sub("obj").Sub("k").String("deep"); got != "v" {
		t.Errorf("obj.k.deep = %q", got)
	}
	var got []string
	for _, e := range p.List("attachments") {
		got = append(got, e.String("id"))
	}
	for _, e := range p.List("list") {
		got = append(got, e.String("id"))
	}
	if want := []string{"a", "b", "x", "y"}; !reflect.DeepEqual(got, want) {
		t.Errorf("attachments then list = %q, want %q", got, want)
	}
	if _, err := p.Ints("list"); !isParamError(err) {
		t.Errorf("Ints of a list of objects = %v, want a paramError", err)
	}
	if _, ok := p.Lookup("list"); ok {
		t.Error("a list of objects reads as a string")
	}
	if _, err := p.Bool("s", false); !isParamError(err) {
		t.Errorf("Bool(\"1, 2\") = %v, want a paramError", err)
	}
}

func TestDecodeMalformed(t *testing.T) {
	forms := []string{
		"a=%zz", "%zz=1", "a[b=1", "[a]=1", "a]=1", "]=1", "a[b]c=1", "a[b[c]]=1", "a[]x=1", "a[][]=1", "=1",
		"a=1&a[b]=2", "a[b]=1&a=2", "a[]=1&a[b]=2", "a[b]=1&a[]=2", "a[b]=1&a[b][c]=2",
		"a" + strings.Repeat("[x]", maxParamDepth) + "=1",
	}
	for _, s := range forms {
		if _, err := decodeForm(s); !isParamError(err) {
			t.Errorf("decodeForm(%q) = %v, want a paramError", s, err)
		}
	}
	jsons := []string{
		``, `{`, `{"a":}`, `[]`, `"s"`, `1`, `null`, `{"a":1}{"b":2}`, `{"a":1} x`,
		strings.Repeat(`{"a":`, maxParamDepth+2) + "1" + strings.Repeat("}", maxParamDepth+2),
	}
	for _, s := range jsons {
		if _, err := decodeJSON([]byte(s)); !isParamError(err) {
			t.Errorf("decodeJSON(%q) = %v, want a paramError", s, err)
		}
	}
	if _, err := decodeForm(strings.Repeat("a=1&", maxParams+1)); !isParamError(err) {
		t.Errorf("too many parameters: %v", err)
	}
}

func TestDecodeRequest(t *testing.T) {
	req := func(method, target, ctype, body string) *http.Request {
		r := httptest.NewRequest(method, target, strings.NewReader(body))
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		return r
	}
	// The body of a DELETE is read; body keys apply after query keys.
	d, err := decodeRequest(req(http.MethodDelete, "/x?force=0&token=q", "application/x-www-form-urlencoded; charset=UTF-8", "force=1"), 1024)
	if err != nil {
		t.Fatal(err)
	}
	if d.params.String("force") != "1" || d.params.String("token") != "q" {
		t.Errorf("DELETE params = force %q token %q", d.params.String("force"), d.params.String("token"))
	}
	// A GET body is ignored.
	d, err = decodeRequest(req(http.MethodGet, "/x?a=1", "application/json", "{"), 1024)
	if err != nil || d.params.String("a") != "1" {
		t.Errorf("GET: %v %q", err, d.params.String("a"))
	}
	// JSON merges into the query's maps.
	d, err = decodeRequest(req(http.MethodPut, "/x?o[a]=1", "application/json; charset=utf-8", `{"o":{"b":2},"l":[1]}`), 1024)
	if err != nil || d.params.Sub("o").String("a") != "1" || d.params.Sub("o").String("b") != "2" {
		t.Errorf("PUT JSON: %v %v", err, d.params.Keys())
	}
	// An empty body is no parameters, whatever its type.
	if _, err := decodeRequest(req(http.MethodPost, "/x", "application/json", "  "), 1024); err != nil {
		t.Errorf("empty JSON body: %v", err)
	}
	// A form without a content type is still a form.
	if d, err := decodeRequest(req(http.MethodPost, "/x", "", "a=1"), 1024); err != nil || d.params.String("a") != "1" {
		t.Errorf("untyped form: %v", err)
	}
	if _, err := decodeRequest(req(http.MethodPost, "/x", "text/plain", "hi"), 1024); !errors.Is(err, errUnsupportedMedia) {
		t.Errorf("text/plain body: %v", err)
	}
	if _, err := decodeRequest(req(http.MethodPost, "/x", "", strings.Repeat("a", 1025)), 1024); !errors.Is(err, errBodyTooLarge) {
		t.Errorf("oversized body: %v", err)
	}
	r := req(http.MethodPost, "/x", "", strings.Repeat("a", 1024))
	if _, err := decodeRequest(r, 1024); err != nil {
		t.Errorf("a body of exactly the limit: %v", err)
	}
	r = req(http.MethodPost, "/x", "", "a=1")
	r.ContentLength = 4096 // declared larger than allowed: refused unread
	if _, err := decodeRequest(r, 1024); !errors.Is(err, errBodyTooLarge) {
		t.Errorf("oversized Content-Length: %v", err)
	}
}

func isParamError(err error) bool {
	var pe *paramError
	return errors.As(err, &pe)
}

// exercise reads every key of p with every accessor, recursively, as a
// handler might; it must never panic.
func exercise(p params, depth int) {
	if depth > maxParamDepth+2 {
		panic("tree deeper than the decoder allows")
	}
	for _, k := range p.Keys() {
		p.Has(k)
		p.Lookup(k)
		p.OptString(k)
		p.Strings(k)
		p.Raw(k)
		_, _ = p.Int(k, 0)
		_, _ = p.OptInt(k)
		_, _ = p.Bool(k, false)
		_, _ = p.Ints(k)
		sub := p.Sub(k)
		exercise(sub, depth+1)
		for _, e := range p.List(k) {
			if sub.Len() == 0 { // a list; a map's values were just visited
				exercise(e, depth+1)
			}
		}
	}
}

func FuzzDecodeForm(f *testing.F) {
	for _, s := range []string{
		"a=1&b[c]=2&b[d][e]=3",
		"ids[]=1%2C%202&ids[]=3",
		"a[][id]=1&a[][type]=image&a[][id]=2",
		"att[0][id]=a&att[1][id]=b",
		"filter[]=number%20id%20in%201%2C2%2Cstring%20login%20eq%20bob&order=desc%20string%20created_at&per_page=50",
		"application_id=777&auth_key=authKeyX&nonce=8423&signature=61fd&timestamp=1795305916&user[login]=alice&user[password]=secret",
		"a=%zz", "a[b=1", "a=1&a[b]=2", "[]=", "a[]]=1", "a[][b][]=1&a[][b][]=2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := decodeForm(s)
		if err != nil {
			if !isParamError(err) {
				t.Fatalf("decodeForm(%q) error %v is not a paramError", s, err)
			}
			return
		}
		exercise(p, 0)
		again, err := decodeForm(s)
		if err != nil || !reflect.DeepEqual(p, again) {
			t.Fatalf("decodeForm(%q) is not deterministic", s)
		}
	})
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"read":"1","ids":[1,2],"attachments":{"0":{"id":"a"},"1":{"id":"b"}}}`,
		`{"chat_dialog_id":"5d75","message":"via rest","send_to_chat":1,"markable":1,"custom":"x"}`,
		`{"push_all":{"occupants_ids":[1004]},"pull_all":{"occupants_ids":[1003]}}`,
		`{"a":null,"b":true,"c":1.5e3,"d":[[1],[2]]}`,
		`[]`, `{`, `{"a":1} 2`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeJSON(b)
		if err != nil {
			if !isParamError(err) {
				t.Fatalf("decodeJSON error %v is not a paramError", err)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("decodeJSON accepted invalid JSON %q", b)
		}
		exercise(p, 0)
		flatten(p.n, "", nil)
	})
}

func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"a", "a[b]", "a[b][c]", "a[]", "a[][b]", "a[b", "[a]", "a]", "a[b]c", "a[[b]]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		path, err := parseKey(key)
		if err != nil {
			return
		}
		// An accepted key is exactly its path written back.
		var b strings.Builder
		b.WriteString(path[0])
		for _, seg := range path[1:] {
			b.WriteString("[" + seg + "]")
		}
		if b.String() != key {
			t.Fatalf("parseKey(%q) = %q, which writes back as %q", key, path, b.String())
		}
		if path[0] == "" || strings.ContainsAny(path[0], "[]") {
			t.Fatalf("parseKey(%q) accepted the name %q", key, path[0])
		}
	})
}
