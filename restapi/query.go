package restapi

import (
	"fmt"
	"strings"

	"chatd/account"
)

// Paging of user lists.
const (
	defaultPerPage = 10
	maxPerPage     = 100
	maxPage        = 1_000_000_000 // keeps (page-1)*per_page far from overflowing
)

// page is the page a list request asks for.
type page struct{ page, perPage int }

func (p page) offset() int { return (p.page - 1) * p.perPage }

// paging reads page (default 1) and per_page (default 10, at most 100);
// values below 1 take the defaults.
func paging(p params) (page, error) {
	n, err := p.Int("page", 1)
	if err != nil {
		return page{}, err
	}
	per, err := p.Int("per_page", defaultPerPage)
	if err != nil {
		return page{}, err
	}
	pg := page{page: int(min(max(n, 1), maxPage)), perPage: defaultPerPage}
	if per >= 1 {
		pg.perPage = int(min(per, maxPerPage))
	}
	return pg, nil
}

// filterOps are the operators of the user filter language.
var filterOps = map[string]bool{
	string(account.OpEq): true, string(account.OpNe): true, string(account.OpGt): true, string(account.OpLt): true,
	string(account.OpGe): true, string(account.OpLe): true, string(account.OpBetween): true,
	string(account.OpIn): true, string(account.OpContains): true,
}

// userField maps a field name of the filter language to a user field;
// "tags" and "tag_list" stand for user_tags.
func userField(name string) (account.UserField, bool) {
	f := account.UserField(name)
	if name == "tags" || name == "tag_list" {
		f = account.FieldTags
	}
	_, ok := account.FieldKind(f)
	return f, ok
}

// cutWord returns the first whitespace-separated word of s and what follows
// it (starting with the whitespace).
func cutWord(s string) (word, rest string) {
	s = strings.TrimLeft(s, " \t")
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

// startsFilter reports whether s begins "<word> <field> <op> ", a filter
// with a known field and operator.
func startsFilter(s string) bool {
	typ, rest := cutWord(s)
	field, rest := cutWord(rest)
	op, rest := cutWord(rest)
	_, known := userField(field)
	return typ != "" && known && filterOps[op] && rest != ""
}

// splitFilters splits one filter[] value into filters. The SDK joins an
// array of filters with commas into one value ("number id in 1,2,string
// login eq bob"), and in/between values hold commas themselves, so a comma
// starts a new filter only where the text after it begins like a filter.
// The parts joined by commas are s again.
func splitFilters(s string) []string {
	var out []string
	for piece := range strings.SplitSeq(s, ",") {
		if len(out) == 0 || startsFilter(piece) {
			out = append(out, piece)
			continue
		}
		out[len(out)-1] += "," + piece
	}
	return out
}

// parseUserFilter reads "<type> <field> <op> <value>". The type word
// (number, string, date…) is ignored: the SDK's type detection is
// unreliable, and the field's own type decides.
func parseUserFilter(s string) (account.Filter, error) {
	_, rest := cutWord(s)
	name, rest := cutWord(rest)
	op, rest := cutWord(rest)
	value := strings.TrimSpace(rest)
	if name == "" || op == "" || value == "" {
		return account.Filter{}, invalid("filter", "is invalid: "+truncate(s))
	}
	field, ok := userField(name)
	if !ok {
		return account.Filter{}, invalid("filter", "unknown field "+truncate(name))
	}
	return account.ParseFilter(string(field), op, value)
}

// parseOrder reads "<asc|desc> <type> <field>" (the type word is optional
// and ignored).
func parseOrder(s string) (field account.UserField, desc bool, err error) {
	words := strings.Fields(s)
	if len(words) < 2 || len(words) > 3 {
		return "", false, invalid("order", "is invalid")
	}
	switch strings.ToLower(words[0]) {
	case "asc":
	case "desc":
		desc = true
	default:
		return "", false, invalid("order", "is invalid")
	}
	field, ok := userField(words[len(words)-1])
	if !ok || field == account.FieldTags {
		return "", false, invalid("order", "is invalid")
	}
	return field, desc, nil
}

// userQuery reads GET /users.json: filter[] (one or more values, each maybe
// several joined filters), order, page and per_page.
func userQuery(p params) (account.UserQuery, page, error) {
	var q account.UserQuery
	if n := p.get("filter"); n != nil && !scalars(n) {
		return q, page{}, invalid("filter", "must be a list of filters")
	}
	values := 0
	for _, raw := range p.Raw("filter") {
		if strings.TrimSpace(raw) == "" {
			continue
		}
		for _, text := range splitFilters(raw) {
			f, err := parseUserFilter(text)
			if err != nil {
				return q, page{}, err
			}
			if values += len(f.Values); values > account.MaxFilterValues {
				return q, page{}, invalid("filter", fmt.Sprintf("at most %d values in all", account.MaxFilterValues))
			}
			q.Filters = append(q.Filters, f)
		}
	}
	if order := strings.TrimSpace(p.String("order")); order != "" {
		field, desc, err := parseOrder(order)
		if err != nil {
			return q, page{}, err
		}
		q.OrderBy, q.OrderDesc = field, desc
	}
	pg, err := paging(p)
	if err != nil {
		return q, page{}, err
	}
	q.Limit, q.Offset = pg.perPage, pg.offset()
	return q, pg, nil
}

func invalid(field, msg string) error {
	return &account.ValidationError{Fields: []account.FieldError{{Field: field, Message: msg}}}
}
