package restapi

import (
	"net/url"
	"strings"

	"chatd/history"
)

// filterParams reads the filters of a dialog or message list: every key of
// p not in reserved, as field=v (Op "") or field[op]=v, and data[f]=v or
// data[f][op]=v as field "data.f" when withData. A list value reads as its
// items joined by commas (type[in][]=1,2 as type[in]=1,2). Keys are taken in
// sorted order, so the first bad one named is always the same.
func filterParams(p params, reserved map[string]bool, withData bool) ([]history.Param, error) {
	var out []history.Param
	for _, key := range p.Keys() {
		if reserved[key] {
			continue
		}
		if key == "data" && withData {
			data := p.Sub("data")
			if data.n == nil {
				return nil, &history.QueryError{Msg: "data filters are data[field]=value"}
			}
			for _, f := range data.Keys() {
				ps, err := filterParam(data, f, "data."+f)
				if err != nil {
					return nil, err
				}
				out = append(out, ps...)
			}
			continue
		}
		ps, err := filterParam(p, key, key)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	return out, nil
}

// filterParam reads p[key] as the filters of field: a value (equality) or a
// map of operators to values.
func filterParam(p params, key, field string) ([]history.Param, error) {
	if v, ok := p.Lookup(key); ok {
		return []history.Param{{Field: field, Value: v}}, nil
	}
	ops := p.Sub(key)
	if ops.n == nil {
		return nil, &history.QueryError{Msg: "bad filter " + truncate(key) + ": give " + truncate(key) + "=value or " +
			truncate(key) + "[operator]=value"}
	}
	var out []history.Param
	for _, op := range ops.Keys() {
		v, ok := ops.Lookup(op)
		if !ok {
			return nil, &history.QueryError{Msg: "bad filter " + truncate(key) + "[" + truncate(op) + "]: the value must be text"}
		}
		out = append(out, history.Param{Field: field, Op: op, Value: v})
	}
	return out, nil
}

// maxPathIDs bounds the ids one request names in its path (messages to
// mark or delete, dialogs to delete): each is looked up, and a store takes
// a bounded number in one query.
const maxPathIDs = 1000

// pathIDs splits a comma list of ids from a path ("a,b" or "a%2Cb"),
// trimmed, without empty items and duplicates, in order; more than
// maxPathIDs is a 400.
func pathIDs(raw string) ([]string, error) {
	if s, err := url.PathUnescape(raw); err == nil {
		raw = s
	}
	ids := unique(splitList(raw))
	if len(ids) > maxPathIDs {
		return nil, paramErrorf("at most %d ids in one request, got %d", maxPathIDs, len(ids))
	}
	return ids, nil
}

// unique returns ids without repeats, in order; a set, so that a request
// listing tens of thousands costs linear time.
func unique(ids []string) []string {
	var out []string
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// stringMap reads p[key] as a map of strings (dialog data): each value a
// string, a number or a list of them (joined by commas). An absent key is
// nil; anything else is a 422 naming key.
func stringMap(p params, key string) (map[string]string, error) {
	n := p.get(key)
	if n == nil {
		return nil, nil
	}
	if n.kind != kindMap {
		if n.kind == kindString && strings.TrimSpace(n.s) == "" {
			return map[string]string{}, nil // data= (nothing)
		}
		return nil, invalid(key, "must be an object of fields")
	}
	sub := params{n}
	out := make(map[string]string, len(n.m))
	for _, k := range sub.Keys() {
		v, ok := sub.Lookup(k)
		if !ok {
			return nil, invalid(key, "field "+truncate(k)+" must be a string or a number")
		}
		out[k] = v
	}
	return out, nil
}
