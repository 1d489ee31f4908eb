package restapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Limits of the parameter decoder.
const (
	// maxParamDepth bounds the nesting of bracket keys (a[b][c] is depth 3)
	// and of JSON objects and arrays.
	maxParamDepth = 16
	// maxParams bounds the number of key=value pairs of one request.
	maxParams = 10000
)

// kind is the type of a parameter tree node.
type kind uint8

const (
	kindString kind = iota
	kindList
	kindMap
)

// node is one value of a decoded parameter tree: a string, a list or a map.
// Numbers, booleans and nulls from JSON are strings ("12", "true", "").
type node struct {
	kind kind
	s    string           // kindString
	list []*node          // kindList
	m    map[string]*node // kindMap
	// raw keeps the values of a form list as sent, before they were split on
	// commas (a[]=x,y keeps "x,y"); JSON lists have none.
	raw []string
}

func newMap() *node { return &node{kind: kindMap, m: make(map[string]*node)} }

// params is a decoded request parameter tree (Rails style): the query string
// and the form or JSON body merged into one map of strings, lists and maps.
// The zero params is empty. Accessors never fail on a missing key; those that
// convert values return a *paramError for a value of the wrong type.
type params struct{ n *node }

// pair is one key=value of a form or query string, unescaped, as sent.
type pair struct{ key, value string }

// paramError is malformed or mistyped request input; it is answered 400.
type paramError struct{ Msg string }

func (e *paramError) Error() string { return "restapi: " + e.Msg }

func paramErrorf(format string, args ...any) error {
	return &paramError{Msg: fmt.Sprintf(format, args...)}
}

// errBodyTooLarge: the request body exceeds Config.MaxBodyBytes (413).
var errBodyTooLarge = errors.New("restapi: request body too large")

// errUnsupportedMedia: a body of a content type the API does not read (415).
var errUnsupportedMedia = errors.New("restapi: unsupported content type")

// decoded is what decodeRequest read: the tree and the flat key=value pairs
// a session signature covers.
type decoded struct {
	params params
	pairs  []pair
}

// decodeRequest reads every parameter of r: the query string and, for
// methods other than GET and HEAD, a form or JSON body of at most maxBody
// bytes. Body keys are applied after query keys.
func decodeRequest(r *http.Request, maxBody int64) (decoded, error) {
	root := newMap()
	pairs, err := parseForm(r.URL.RawQuery)
	if err != nil {
		return decoded{}, err
	}
	if err := insertPairs(root, pairs); err != nil {
		return decoded{}, err
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Body == nil || r.Body == http.NoBody {
		return decoded{params: params{root}, pairs: pairs}, nil
	}
	if r.ContentLength > maxBody {
		return decoded{}, errBodyTooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return decoded{}, paramErrorf("reading the request body: %v", err)
	}
	if int64(len(body)) > maxBody {
		return decoded{}, errBodyTooLarge
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return decoded{params: params{root}, pairs: pairs}, nil
	}
	switch mediaType(r.Header.Get("Content-Type")) {
	case "", "application/x-www-form-urlencoded":
		bodyPairs, err := parseForm(string(body))
		if err != nil {
			return decoded{}, err
		}
		if err := insertPairs(root, bodyPairs); err != nil {
			return decoded{}, err
		}
		pairs = append(pairs, bodyPairs...)
	case "application/json":
		tree, err := decodeJSON(body)
		if err != nil {
			return decoded{}, err
		}
		for _, k := range tree.Keys() {
			if err := merge(root, k, tree.n.m[k]); err != nil {
				return decoded{}, err
			}
		}
		pairs = append(pairs, flatten(tree.n, "", nil)...)
	default:
		return decoded{}, errUnsupportedMedia
	}
	return decoded{params: params{root}, pairs: pairs}, nil
}

// mediaType returns the lower-case media type of a Content-Type header; any
// "+json" type counts as application/json.
func mediaType(header string) string {
	if header == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(header)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(strings.SplitN(header, ";", 2)[0]))
	}
	if strings.HasSuffix(mt, "+json") {
		return "application/json"
	}
	return mt
}

// decodeForm decodes an application/x-www-form-urlencoded string (a body or a
// query string) into a parameter tree.
func decodeForm(s string) (params, error) {
	pairs, err := parseForm(s)
	if err != nil {
		return params{}, err
	}
	root := newMap()
	if err := insertPairs(root, pairs); err != nil {
		return params{}, err
	}
	return params{root}, nil
}

// parseForm splits a form string into unescaped pairs, in order. Empty
// segments are skipped; a segment without "=" has an empty value.
func parseForm(s string) ([]pair, error) {
	var out []pair
	for seg := range strings.SplitSeq(s, "&") {
		if seg == "" {
			continue
		}
		if len(out) == maxParams {
			return nil, paramErrorf("more than %d parameters", maxParams)
		}
		k, v, _ := strings.Cut(seg, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, paramErrorf("malformed parameter name %q", truncate(k))
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return nil, paramErrorf("malformed value of parameter %q", truncate(key))
		}
		out = append(out, pair{key, val})
	}
	return out, nil
}

func insertPairs(root *node, pairs []pair) error {
	for _, p := range pairs {
		path, err := parseKey(p.key)
		if err != nil {
			return err
		}
		if err := insert(root, path, p.value); err != nil {
			return err
		}
	}
	return nil
}

// parseKey splits a bracket key into its path: "a" → [a], "a[b][c]" →
// [a b c], "a[]" → [a ""] (an empty segment appends to a list). The name
// must be non-empty and free of brackets, and every "[" must be closed
// before the next opens.
func parseKey(key string) ([]string, error) {
	i := strings.IndexAny(key, "[]")
	if i < 0 {
		if key == "" {
			return nil, paramErrorf("empty parameter name")
		}
		return []string{key}, nil
	}
	if i == 0 || key[i] == ']' {
		return nil, paramErrorf("malformed parameter name %q", truncate(key))
	}
	path := []string{key[:i]}
	rest := key[i:]
	for rest != "" {
		if rest[0] != '[' {
			return nil, paramErrorf("malformed parameter name %q", truncate(key))
		}
		end := strings.IndexAny(rest[1:], "[]")
		if end < 0 || rest[1+end] != ']' {
			return nil, paramErrorf("malformed parameter name %q", truncate(key))
		}
		path = append(path, rest[1:1+end])
		rest = rest[2+end:]
		if len(path) > maxParamDepth {
			return nil, paramErrorf("parameter %q is nested too deeply", truncate(key))
		}
	}
	// "[]" may only end a key or be followed by a named segment (a[][b]).
	for j := 1; j < len(path)-1; j++ {
		if path[j] == "" && path[j+1] == "" {
			return nil, paramErrorf("malformed parameter name %q", truncate(key))
		}
	}
	return path, nil
}

// insert sets the value at path under the map root. A repeated scalar key
// keeps the last value; a[]=x,y appends x and y (split on commas, trimmed,
// empty items dropped) to the list a; a[][b]=1&a[][c]=2 builds a list of
// maps, starting a new map when the last one already has the key. A key used
// both as a scalar and as a list or map is an error.
func insert(root *node, path []string, value string) error {
	cur := root
	for i, seg := range path {
		last := i == len(path)-1
		if cur.kind == kindList {
			// seg == "" here; parseKey guarantees that a list segment is
			// followed by a named one or ends the key.
			if last {
				cur.raw = append(cur.raw, value)
				for _, item := range splitList(value) {
					cur.list = append(cur.list, &node{kind: kindString, s: item})
				}
				return nil
			}
			next := path[i+1]
			var elem *node
			if n := len(cur.list); n > 0 && cur.list[n-1].kind == kindMap {
				if _, taken := cur.list[n-1].m[next]; !taken || i+1 < len(path)-1 {
					elem = cur.list[n-1]
				}
			}
			if elem == nil {
				elem = newMap()
				cur.list = append(cur.list, elem)
			}
			cur = elem
			continue
		}
		child, ok := cur.m[seg]
		if last {
			if ok && child.kind != kindString {
				return conflict(path)
			}
			cur.m[seg] = &node{kind: kindString, s: value}
			return nil
		}
		want := kindMap
		if path[i+1] == "" {
			want = kindList
		}
		if !ok {
			child = &node{kind: want}
			if want == kindMap {
				child.m = make(map[string]*node)
			}
			cur.m[seg] = child
		} else if child.kind != want {
			return conflict(path)
		}
		cur = child
	}
	return nil
}

func conflict(path []string) error {
	return paramErrorf("parameter %q is given both as a value and as a list or map", truncate(path[0]))
}

// merge sets root[key] = n, merging maps recursively (a JSON body over a
// query string).
func merge(root *node, key string, n *node) error {
	old, ok := root.m[key]
	switch {
	case !ok || (old.kind == kindString && n.kind == kindString):
		root.m[key] = n
	case old.kind == kindMap && n.kind == kindMap:
		for _, k := range (params{n}).Keys() {
			if err := merge(old, k, n.m[k]); err != nil {
				return err
			}
		}
	case old.kind == kindList && n.kind == kindList:
		old.list = append(old.list, n.list...)
		old.raw = append(old.raw, n.raw...)
	default:
		return conflict([]string{key})
	}
	return nil
}

// decodeJSON decodes a JSON object into a parameter tree. Numbers keep their
// literal text, booleans become "true" and "false", null becomes "".
func decodeJSON(b []byte) (params, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return params{}, paramErrorf("malformed JSON body: %v", jsonErrorText(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return params{}, paramErrorf("malformed JSON body: data after the top-level value")
	}
	if _, ok := v.(map[string]any); !ok {
		return params{}, paramErrorf("the JSON body must be an object")
	}
	n, err := fromJSON(v, 0)
	if err != nil {
		return params{}, err
	}
	return params{n}, nil
}

// jsonErrorText describes a JSON syntax error without echoing the input.
func jsonErrorText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "syntax error at offset " + strconv.FormatInt(se.Offset, 10)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return "invalid JSON"
}

func fromJSON(v any, depth int) (*node, error) {
	if depth > maxParamDepth {
		return nil, paramErrorf("JSON body is nested too deeply")
	}
	switch v := v.(type) {
	case map[string]any:
		n := newMap()
		for k, x := range v {
			c, err := fromJSON(x, depth+1)
			if err != nil {
				return nil, err
			}
			n.m[k] = c
		}
		return n, nil
	case []any:
		n := &node{kind: kindList, list: make([]*node, 0, len(v))}
		for _, x := range v {
			c, err := fromJSON(x, depth+1)
			if err != nil {
				return nil, err
			}
			n.list = append(n.list, c)
		}
		return n, nil
	case string:
		return &node{kind: kindString, s: v}, nil
	case json.Number:
		return &node{kind: kindString, s: v.String()}, nil
	case bool:
		return &node{kind: kindString, s: strconv.FormatBool(v)}, nil
	case nil:
		return &node{kind: kindString}, nil
	}
	return nil, paramErrorf("unexpected JSON value")
}

// flatten lists the leaves of a tree as pairs named the way a form would
// name them: "k", "k[sub]", "k[sub][x]"; a list of scalars becomes one
// "k[]" pair with its items joined by commas (as the SDK sends arrays).
func flatten(n *node, prefix string, out []pair) []pair {
	switch n.kind {
	case kindString:
		return append(out, pair{prefix, n.s})
	case kindMap:
		for _, k := range (params{n}).Keys() {
			name := k
			if prefix != "" {
				name = prefix + "[" + k + "]"
			}
			out = flatten(n.m[k], name, out)
		}
	case kindList:
		var items []string
		for i, c := range n.list {
			if c.kind == kindString {
				items = append(items, c.s)
				continue
			}
			out = flatten(c, prefix+"["+strconv.Itoa(i)+"]", out)
		}
		if items != nil {
			out = append(out, pair{prefix + "[]", strings.Join(items, ",")})
		}
	}
	return out
}

// splitList splits a comma list, trimming spaces around items and dropping
// empty ones.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func truncate(s string) string {
	const n = 64
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func (p params) get(key string) *node {
	if p.n == nil || p.n.kind != kindMap {
		return nil
	}
	return p.n.m[key]
}

// Has reports whether key is present.
func (p params) Has(key string) bool { return p.get(key) != nil }

// Keys returns the keys of the map, sorted.
func (p params) Keys() []string {
	if p.n == nil || p.n.kind != kindMap {
		return nil
	}
	keys := make([]string, 0, len(p.n.m))
	for k := range p.n.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Lookup returns the string at key and whether there is one. A list of
// strings reads as its values as sent, joined by commas; a map is not a
// string.
func (p params) Lookup(key string) (string, bool) {
	n := p.get(key)
	if n == nil {
		return "", false
	}
	switch n.kind {
	case kindString:
		return n.s, true
	case kindList:
		if !scalars(n) {
			return "", false
		}
		return strings.Join(p.Raw(key), ","), true
	}
	return "", false
}

// String returns the string at key, or "".
func (p params) String(key string) string {
	s, _ := p.Lookup(key)
	return s
}

// OptString returns a pointer to the string at key, or nil when absent.
func (p params) OptString(key string) *string {
	if s, ok := p.Lookup(key); ok {
		return &s
	}
	return nil
}

// Strings returns the items at key: a list's strings or a string's comma
// list, each split on commas and trimmed, empty items dropped.
func (p params) Strings(key string) []string {
	var out []string
	for _, v := range p.Raw(key) {
		out = append(out, splitList(v)...)
	}
	return out
}

// Raw returns the values at key as sent, not split on commas: a string's
// value, the values of a form list (a[]=x,y&a[]=z → "x,y", "z"), or the
// strings of a JSON list.
func (p params) Raw(key string) []string {
	n := p.get(key)
	if n == nil {
		return nil
	}
	switch n.kind {
	case kindString:
		return []string{n.s}
	case kindList:
		if n.raw != nil {
			return slices.Clone(n.raw)
		}
		var out []string
		for _, c := range n.list {
			if c.kind == kindString {
				out = append(out, c.s)
			}
		}
		return out
	}
	return nil
}

// Int returns the integer at key, def when it is absent or empty, or a
// *paramError when it is not an integer.
func (p params) Int(key string, def int64) (int64, error) {
	v, err := p.OptInt(key)
	if err != nil || v == nil {
		return def, err
	}
	return *v, nil
}

// OptInt returns a pointer to the integer at key: nil when absent, 0 when
// empty, or a *paramError when it is not an integer.
func (p params) OptInt(key string) (*int64, error) {
	n := p.get(key)
	if n == nil {
		return nil, nil
	}
	if n.kind != kindString {
		return nil, paramErrorf("%s must be an integer", truncate(key))
	}
	s := strings.TrimSpace(n.s)
	if s == "" {
		return new(int64), nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil, paramErrorf("%s must be an integer", truncate(key))
	}
	return &v, nil
}

// Bool returns the boolean at key ("1", "true", "0", "false", any case), def
// when it is absent or empty, or a *paramError.
func (p params) Bool(key string, def bool) (bool, error) {
	n := p.get(key)
	if n == nil {
		return def, nil
	}
	if n.kind != kindString {
		return def, paramErrorf("%s must be 0 or 1", truncate(key))
	}
	switch strings.ToLower(strings.TrimSpace(n.s)) {
	case "":
		return def, nil
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return def, paramErrorf("%s must be 0 or 1", truncate(key))
}

// Ints returns the integers at key (a list, a comma list, or both), or a
// *paramError when one is not an integer.
func (p params) Ints(key string) ([]int64, error) {
	n := p.get(key)
	if n == nil {
		return nil, nil
	}
	if !scalars(n) {
		return nil, paramErrorf("%s must be a list of integers", truncate(key))
	}
	items := p.Strings(key)
	out := make([]int64, 0, len(items))
	for _, s := range items {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, paramErrorf("%s must be a list of integers", truncate(key))
		}
		out = append(out, v)
	}
	return out, nil
}

// scalars reports whether n is a string or a list of strings.
func scalars(n *node) bool {
	if n.kind == kindMap {
		return false
	}
	for _, c := range n.list {
		if c.kind != kindString {
			return false
		}
	}
	return true
}

// Sub returns the map at key, or an empty params.
func (p params) Sub(key string) params {
	if n := p.get(key); n != nil && n.kind == kindMap {
		return params{n}
	}
	return params{}
}

// List returns the maps at key: the maps of a list, or the values of a map
// whose keys are all non-negative integers ({"0":{…},"1":{…}}, as form
// keys a[0][x]=… decode), in numeric order. Other values are skipped.
func (p params) List(key string) []params {
	n := p.get(key)
	if n == nil {
		return nil
	}
	var out []params
	switch n.kind {
	case kindList:
		for _, c := range n.list {
			if c.kind == kindMap {
				out = append(out, params{c})
			}
		}
	case kindMap:
		type entry struct {
			i int64
			n *node
		}
		var entries []entry
		for k, c := range n.m {
			i, err := strconv.ParseInt(k, 10, 64)
			if err != nil || i < 0 {
				return nil
			}
			if c.kind == kindMap {
				entries = append(entries, entry{i, c})
			}
		}
		sort.Slice(entries, func(a, b int) bool { return entries[a].i < entries[b].i })
		for _, e := range entries {
			out = append(out, params{e.n})
		}
	}
	return out
}

// Len returns the number of keys of the map.
func (p params) Len() int {
	if p.n == nil || p.n.kind != kindMap {
		return 0
	}
	return len(p.n.m)
}
