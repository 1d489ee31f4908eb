package mongo

import (
	"fmt"
	"regexp"
	"strings"

	"chatd/history"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The typed queries of package history, compiled to filters that select
// exactly what store/sqlite selects.

var dialogField = map[string]string{
	"_id": "_id", "type": "type", "name": "name", "user_id": "user_id", "photo": "photo",
	"last_message_date_sent": "last_message_date_sent", "last_message_user_id": "last_message_user_id",
	"last_message": "last_message", "created_at": "created_at", "updated_at": "updated_at",
}

var messageField = map[string]string{
	"_id": "_id", "message": "message", "date_sent": "date_sent", "sender_id": "sender_id",
	"recipient_id": "recipient_id", "created_at": "created_at", "updated_at": "updated_at",
}

// condValue converts a condition value to its stored form: times (unix
// seconds) to dates, integers to int64.
func condValue(kind history.Kind, v any) (any, error) {
	switch kind {
	case history.KindInt, history.KindIntArray, history.KindTime:
		var n int64
		switch x := v.(type) {
		case int64:
			n = x
		case int:
			n = int64(x)
		case int32:
			n = int64(x)
		default:
			return nil, fmt.Errorf("mongo: value %v (%T) is not an integer", v, v)
		}
		if kind == history.KindTime {
			return bson.DateTime(n * 1000), nil
		}
		return n, nil
	default:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("mongo: value %v (%T) is not a string", v, v)
		}
		return s, nil
	}
}

func condValues(c history.Cond) (bson.A, error) {
	if len(c.Values) == 0 {
		return nil, fmt.Errorf("mongo: condition on %s has no value", c.Field)
	}
	vals := make(bson.A, len(c.Values))
	for i, v := range c.Values {
		var err error
		if vals[i], err = condValue(c.Kind, v); err != nil {
			return nil, err
		}
	}
	return vals, nil
}

var comparison = map[history.Op]string{
	history.OpEq: "$eq", history.OpNe: "$ne", history.OpLt: "$lt", history.OpLte: "$lte",
	history.OpGt: "$gt", history.OpGte: "$gte",
}

// scalarCond compiles a comparison on a field holding one value.
func scalarCond(path string, c history.Cond) (bson.D, error) {
	vals, err := condValues(c)
	if err != nil {
		return nil, err
	}
	var expr bson.D
	switch c.Op {
	case history.OpEq, history.OpNe, history.OpLt, history.OpLte, history.OpGt, history.OpGte:
		expr = bson.D{{Key: comparison[c.Op], Value: vals[0]}}
	case history.OpIn:
		expr = bson.D{{Key: "$in", Value: vals}}
	case history.OpNin:
		expr = bson.D{{Key: "$nin", Value: vals}}
	case history.OpContains:
		s, ok := vals[0].(string)
		if !ok {
			return nil, fmt.Errorf("mongo: operator ctn does not apply to %s", c.Field)
		}
		// Case-insensitive substring, for every script (store/sqlite
		// folds with Go's strings.ToLower to match).
		expr = bson.D{{Key: "$regex", Value: regexp.QuoteMeta(s)}, {Key: "$options", Value: "i"}}
	default:
		return nil, fmt.Errorf("mongo: operator %s does not apply to %s", c.Op, c.Field)
	}
	return bson.D{{Key: path, Value: expr}}, nil
}

// arrayCond compiles a condition on an array field: eq and in match a
// document holding any of the values, ne and nin one holding none, all one
// holding every value.
func arrayCond(path string, c history.Cond) (bson.D, error) {
	vals, err := condValues(c)
	if err != nil {
		return nil, err
	}
	var op string
	switch c.Op {
	case history.OpEq, history.OpIn:
		op = "$in"
	case history.OpNe, history.OpNin:
		op = "$nin"
	case history.OpAll:
		op = "$all"
	default:
		return nil, fmt.Errorf("mongo: operator %s does not apply to %s", c.Op, c.Field)
	}
	return bson.D{{Key: path, Value: bson.D{{Key: op, Value: vals}}}}, nil
}

// dataCond compiles a condition on a custom dialog field. As in SQL, a
// dialog without the field matches no comparison, not even ne or nin.
func dataCond(c history.Cond) (bson.D, error) {
	name := strings.TrimPrefix(c.Field, "data.")
	if strings.ContainsAny(name, `"\`) {
		return nil, &history.QueryError{Msg: "bad data field name " + name}
	}
	cond := c
	cond.Kind = history.KindString
	f, err := scalarCond("data."+escapeKey(name), cond)
	if err != nil {
		return nil, err
	}
	if c.Op == history.OpNe || c.Op == history.OpNin {
		expr := f[0].Value.(bson.D)
		f[0].Value = append(bson.D{{Key: "$exists", Value: true}}, expr...)
	}
	return f, nil
}

func dialogConds(conds []history.Cond) (bson.A, error) {
	var out bson.A
	for _, c := range conds {
		var (
			f   bson.D
			err error
		)
		switch {
		case c.Field == "occupants_ids":
			f, err = arrayCond("occupants_ids", c)
		case strings.HasPrefix(c.Field, "data."):
			f, err = dataCond(c)
		default:
			path, ok := dialogField[c.Field]
			if !ok {
				return nil, fmt.Errorf("mongo: unknown dialog field %s", c.Field)
			}
			f, err = scalarCond(path, c)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

func messageConds(conds []history.Cond) (bson.A, error) {
	var out bson.A
	for _, c := range conds {
		var (
			f   bson.D
			err error
		)
		if c.Field == "attachments.type" {
			f, err = arrayCond("attachment_types", c)
		} else {
			path, ok := messageField[c.Field]
			if !ok {
				return nil, fmt.Errorf("mongo: unknown message field %s", c.Field)
			}
			f, err = scalarCond(path, c)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// and appends conditions to a filter as one $and.
func and(filter bson.D, conds bson.A) bson.D {
	if len(conds) == 0 {
		return filter
	}
	return append(filter, bson.E{Key: "$and", Value: conds})
}

// findPage is the options of a page of a listing: sorted by the named field
// of fields (then _id, in the same direction) or by byDefault, limit (the
// history's default when not positive) and skip.
func findPage(byDefault bson.D, fields map[string]string, what, sortBy string, desc bool, limit, skip int) (*options.FindOptionsBuilder, error) {
	sort := byDefault
	if sortBy != "" {
		path, ok := fields[sortBy]
		if !ok {
			return nil, fmt.Errorf("mongo: cannot sort %s by %s", what, sortBy)
		}
		sort = bson.D{{Key: path, Value: sortDir(desc)}}
		if path != "_id" {
			sort = append(sort, bson.E{Key: "_id", Value: sortDir(desc)})
		}
	}
	if limit <= 0 {
		limit = history.DefaultLimit
	}
	return options.Find().SetSort(sort).SetLimit(int64(limit)).SetSkip(int64(max(skip, 0))), nil
}

func sortDir(desc bool) int {
	if desc {
		return -1
	}
	return 1
}
