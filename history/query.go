package history

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"chatd/internal/oid"
)

// Op is a comparison of the QuickBlox filter language.
type Op string

// Operators. OpAll applies to array fields (every value present); OpContains
// is a case-insensitive substring match on string fields.
const (
	OpEq       Op = "eq"
	OpNe       Op = "ne"
	OpLt       Op = "lt"
	OpLte      Op = "lte"
	OpGt       Op = "gt"
	OpGte      Op = "gte"
	OpIn       Op = "in"
	OpNin      Op = "nin"
	OpAll      Op = "all"
	OpContains Op = "ctn"
)

// Kind is the type of a filterable field.
type Kind int

// Field kinds. Values of KindInt and KindTime fields are int64 (times in unix
// seconds), of KindString and KindID fields strings, of KindIntArray int64.
//
// A filter on an integer field (a time in unix seconds too) may name a
// fraction, as QuickBlox clients send date_sent=1700000000.123; it is
// compared exactly, and the condition the stores get has integers only:
// lt and gte compare with the fraction rounded up, lte and gt rounded down,
// eq (or an element of all) meets no stored value, ne every one, and a
// fraction among the values of in or nin is left out.
const (
	KindInt Kind = iota
	KindString
	KindID
	KindTime
	KindIntArray
	KindStringArray
)

// Cond is one typed condition. Field is the wire name ("type",
// "occupants_ids", "data.category", "attachments.type").
type Cond struct {
	Field  string
	Kind   Kind
	Op     Op
	Values []any
}

// Param is one filter parameter as it arrived: field[op]=value (Op "" for
// field=value).
type Param struct {
	Field string
	Op    string
	Value string
}

// DialogQuery selects the dialogs a user sees.
type DialogQuery struct {
	Conds []Cond
	Sort  string // a dialog field; "" for the default: newest last message first, then newest dialog (id)
	Desc  bool
	Limit int
	Skip  int
	Count bool // only the number of matches is wanted
	// None: a condition no stored value meets (type=1.5), so nothing
	// matches; the Service answers without asking the store.
	None bool
}

// MessageQuery selects messages of one dialog.
type MessageQuery struct {
	Conds []Cond
	Sort  string // a message field; "" for date_sent ascending
	Desc  bool
	Limit int
	Skip  int
	None  bool // as DialogQuery.None
}

// Query limits. MaxValues bounds the values of a query's conditions
// together (a long in list), so that every backend can answer it (SQLite
// binds at most 32,766 values to a statement).
const (
	DefaultLimit = 100
	MaxLimit     = 100
	MaxValues    = 1000
)

var dialogFields = map[string]Kind{
	"_id": KindID, "type": KindInt, "name": KindString, "user_id": KindInt, "photo": KindString,
	"last_message_date_sent": KindInt, "last_message_user_id": KindInt, "last_message": KindString,
	"created_at": KindTime, "updated_at": KindTime, "occupants_ids": KindIntArray,
}

var dialogSorts = map[string]bool{
	"_id": true, "type": true, "name": true, "last_message_date_sent": true, "created_at": true,
	"updated_at": true, "user_id": true,
}

var messageFields = map[string]Kind{
	"_id": KindID, "message": KindString, "date_sent": KindInt, "sender_id": KindInt, "recipient_id": KindInt,
	"created_at": KindTime, "updated_at": KindTime, "attachments.type": KindStringArray,
}

var messageSorts = map[string]bool{"_id": true, "date_sent": true, "created_at": true, "updated_at": true}

// QueryError is a malformed query; its text names the offending parameter.
type QueryError struct{ Msg string }

func (e *QueryError) Error() string { return "history: " + e.Msg }

func queryErr(format string, args ...any) error { return &QueryError{fmt.Sprintf(format, args...)} }

// ParseDialogQuery builds a dialog query from filter parameters (data[x]=v
// arrives as field "data.x") and the paging and sorting parameters.
func ParseDialogQuery(params []Param, sortAsc, sortDesc, limit, skip string, count bool) (DialogQuery, error) {
	q := DialogQuery{Count: count}
	for _, p := range params {
		kind, ok := dialogFields[p.Field]
		if strings.HasPrefix(p.Field, "data.") && len(p.Field) > 5 {
			kind, ok = KindString, true
		}
		if !ok {
			return q, queryErr("unknown dialog field %q", p.Field)
		}
		c, m, err := parseCond(p, kind)
		if err != nil {
			return q, err
		}
		switch m {
		case some:
			q.Conds = append(q.Conds, c)
		case none:
			q.None = true
		}
	}
	if err := checkValues(q.Conds); err != nil {
		return q, err
	}
	var err error
	if q.Sort, q.Desc, err = parseSort(sortAsc, sortDesc, dialogSorts); err != nil {
		return q, err
	}
	if q.Limit, q.Skip, err = parsePaging(limit, skip); err != nil {
		return q, err
	}
	return q, nil
}

// ParseMessageQuery builds a message query.
func ParseMessageQuery(params []Param, sortAsc, sortDesc, limit, skip string) (MessageQuery, error) {
	var q MessageQuery
	for _, p := range params {
		kind, ok := messageFields[p.Field]
		if !ok {
			return q, queryErr("unknown message field %q", p.Field)
		}
		c, m, err := parseCond(p, kind)
		if err != nil {
			return q, err
		}
		switch m {
		case some:
			q.Conds = append(q.Conds, c)
		case none:
			q.None = true
		}
	}
	if err := checkValues(q.Conds); err != nil {
		return q, err
	}
	var err error
	if q.Sort, q.Desc, err = parseSort(sortAsc, sortDesc, messageSorts); err != nil {
		return q, err
	}
	if q.Limit, q.Skip, err = parsePaging(limit, skip); err != nil {
		return q, err
	}
	return q, nil
}

func parseSort(asc, desc string, allowed map[string]bool) (string, bool, error) {
	if asc != "" && desc != "" {
		return "", false, queryErr("give sort_asc or sort_desc, not both")
	}
	field, isDesc := asc, false
	if desc != "" {
		field, isDesc = desc, true
	}
	if field != "" && !allowed[field] {
		return "", false, queryErr("cannot sort by %q", field)
	}
	return field, isDesc, nil
}

func parsePaging(limit, skip string) (int, int, error) {
	l, s := DefaultLimit, 0
	if limit != "" {
		n, err := strconv.Atoi(strings.TrimSpace(limit))
		if err != nil || n < 0 {
			return 0, 0, queryErr("limit must be a non-negative integer, got %q", limit)
		}
		l = min(n, MaxLimit)
		if n == 0 {
			l = DefaultLimit
		}
	}
	if skip != "" {
		n, err := strconv.Atoi(strings.TrimSpace(skip))
		if err != nil || n < 0 {
			return 0, 0, queryErr("skip must be a non-negative integer, got %q", skip)
		}
		s = n
	}
	return l, s, nil
}

// checkValues refuses conditions with more than MaxValues values together.
func checkValues(conds []Cond) error {
	n := 0
	for _, c := range conds {
		n += len(c.Values)
	}
	if n > MaxValues {
		return queryErr("at most %d filter values in all, not %d", MaxValues, n)
	}
	return nil
}

// match is what a condition selects.
type match int

const (
	some match = iota // the stored values that meet it
	all               // every stored value: the condition can be left out
	none              // no stored value
)

func parseCond(p Param, kind Kind) (Cond, match, error) {
	op := Op(p.Op)
	if op == "" {
		op = OpEq
	}
	if op == "or" {
		op = OpIn // QuickBlox's "or" lists alternatives, as "in" does
	}
	c := Cond{Field: p.Field, Kind: kind, Op: op}
	array := kind == KindIntArray || kind == KindStringArray
	switch op {
	case OpEq, OpNe, OpIn, OpNin:
	case OpLt, OpLte, OpGt, OpGte:
		if array {
			return c, some, queryErr("operator %s does not apply to the array field %q", op, p.Field)
		}
	case OpAll:
		if !array {
			return c, some, queryErr("operator all applies to array fields, not %q", p.Field)
		}
	case OpContains:
		if kind != KindString {
			return c, some, queryErr("operator ctn applies to text fields, not %q", p.Field)
		}
	default:
		return c, some, queryErr("unknown operator %q on %q", p.Op, p.Field)
	}
	raw := []string{p.Value}
	if op == OpIn || op == OpNin || op == OpAll {
		raw = nil
		for v := range strings.SplitSeq(p.Value, ",") {
			if v = strings.TrimSpace(v); v != "" {
				raw = append(raw, v)
			}
		}
		if len(raw) == 0 {
			return c, some, queryErr("%s[%s] needs at least one value", p.Field, op)
		}
	}
	var nums []number
	for _, r := range raw {
		v, err := parseValue(kind, r)
		if err != nil {
			return c, some, queryErr("bad value %q for %s: %v", r, p.Field, err)
		}
		if n, ok := v.(number); ok {
			nums = append(nums, n)
			continue
		}
		c.Values = append(c.Values, v)
	}
	if nums != nil {
		c, m := integerCond(c, nums)
		return c, m, nil
	}
	return c, some, nil
}

// number is a value of an integer field's filter: an integer (floor and
// ceil equal) or a fraction between floor and ceil.
type number struct{ floor, ceil int64 }

func (n number) integer() bool { return n.floor == n.ceil }

// integerCond completes a condition on an integer field with the integers
// that select exactly what the numbers do.
func integerCond(c Cond, nums []number) (Cond, match) {
	n := nums[0]
	switch c.Op {
	case OpLt, OpGte: // x < 1.5 is x < 2, x >= 1.5 is x >= 2
		c.Values = []any{n.ceil}
	case OpLte, OpGt: // x <= 1.5 is x <= 1, x > 1.5 is x > 1
		c.Values = []any{n.floor}
	case OpEq, OpNe:
		if !n.integer() {
			if c.Op == OpEq {
				return c, none
			}
			return c, all
		}
		c.Values = []any{n.floor}
	case OpIn, OpNin, OpAll:
		for _, n := range nums {
			switch {
			case n.integer():
				c.Values = append(c.Values, n.floor)
			case c.Op == OpAll:
				return c, none
			}
		}
		if len(c.Values) == 0 {
			if c.Op == OpNin {
				return c, all
			}
			return c, none
		}
	}
	return c, some
}

// parseNumber reads an integer or a decimal fraction ("-12", "1700000000.123",
// ".5"), nothing else: no exponent, no infinity.
func parseNumber(s string) (number, bool) {
	whole, frac, _ := strings.Cut(s, ".")
	digits := strings.TrimLeft(whole, "+-")
	if len(whole)-len(digits) > 1 || !isDigits(digits) || !isDigits(frac) || digits+frac == "" {
		return number{}, false
	}
	neg := whole != digits && whole[0] == '-'
	var n int64
	if digits != "" {
		var err error
		if n, err = strconv.ParseInt(whole, 10, 64); err != nil {
			return number{}, false // out of range
		}
	}
	switch {
	case strings.Trim(frac, "0") == "":
		return number{n, n}, true
	case neg && n > math.MinInt64:
		return number{n - 1, n}, true
	case !neg && n < math.MaxInt64:
		return number{n, n + 1}, true
	}
	return number{}, false
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func parseValue(kind Kind, s string) (any, error) {
	switch kind {
	case KindInt, KindIntArray:
		if n, ok := parseNumber(s); ok {
			return n, nil
		}
		return nil, fmt.Errorf("not a number")
	case KindTime:
		if n, ok := parseNumber(s); ok {
			return n, nil
		}
		for _, layout := range []string{time.RFC3339, "2006-01-02 15:04:05", "2006-01-02"} {
			if t, err := time.Parse(layout, s); err == nil {
				if t.Nanosecond() != 0 { // a fraction of a second
					return number{t.Unix(), t.Unix() + 1}, nil
				}
				return number{t.Unix(), t.Unix()}, nil
			}
		}
		return nil, fmt.Errorf("not a time")
	case KindID:
		if !oid.Valid(s) {
			return nil, fmt.Errorf("not an id")
		}
		return oid.Normalize(s), nil
	}
	return s, nil
}
