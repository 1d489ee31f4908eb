package restapi

import (
	"context"
	"strconv"
	"strings"
	"time"

	"chatd/account"
)

const (
	headerToken      = "QB-Token"
	headerExpiration = "QB-Token-ExpirationDate"
	headerOnBehalfOf = "On-Behalf-Of"
	// expirationLayout formats QB-Token-ExpirationDate ("2030-01-01 10:00:00 UTC").
	expirationLayout = "2006-01-02 15:04:05 UTC"
)

// principalKey is the context key of the request's *account.Principal.
type principalKey struct{}

// principalFrom returns the principal a request was authenticated as.
func principalFrom(ctx context.Context) (*account.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*account.Principal)
	return p, ok
}

// authenticate finds who the request acts as: a session token in the
// QB-Token header or the token parameter, or else an API key in
// "Authorization: ApiKey <key>" acting on behalf of the user in the
// On-Behalf-Of header (or of the application without it). No credentials,
// or credentials that do not resolve, are account.ErrNoSession.
func (s *Server) authenticate(r *request) (*account.Principal, error) {
	h := r.c.Request().Header
	if token := strings.TrimSpace(h.Get(headerToken)); token != "" {
		return s.accounts.Resolve(r.ctx(), token)
	}
	if token := strings.TrimSpace(r.params.String("token")); token != "" {
		return s.accounts.Resolve(r.ctx(), token)
	}
	scheme, key, _ := strings.Cut(strings.TrimSpace(h.Get("Authorization")), " ")
	if key = strings.TrimSpace(key); strings.EqualFold(scheme, "ApiKey") && key != "" {
		var userID int64
		if v := strings.TrimSpace(h.Get(headerOnBehalfOf)); v != "" {
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil || id <= 0 {
				return nil, paramErrorf("%s must be a user id", headerOnBehalfOf)
			}
			userID = id
		}
		return s.accounts.ResolveAPIKey(r.ctx(), key, userID)
	}
	return nil, account.ErrNoSession
}

// bind makes p the request's principal: handlers read it from r.principal
// and from the request context, and every response then carries the
// session's expiry in QB-Token-ExpirationDate, read when the response is
// written so that an expiry the handler extended (login) is the one sent.
func (r *request) bind(p *account.Principal) {
	r.principal = p
	req := r.c.Request()
	r.c.SetRequest(req.WithContext(context.WithValue(req.Context(), principalKey{}, p)))
	r.c.Response().Before(func() {
		if p.Session != nil && !r.sessionEnded {
			r.c.Response().Header().Set(headerExpiration, formatExpiration(p.Session.ExpiresAt))
		}
	})
}

func formatExpiration(t time.Time) string { return t.UTC().Format(expirationLayout) }
