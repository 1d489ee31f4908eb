package restapi

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"chatd/account"
)

// The admin API, for operators and dashboards: served only when
// Config.AdminToken is set, and only to requests carrying it as
// "Authorization: Bearer <token>". It manages applications, their users and
// API keys, and exposes the server's counters as JSON (/admin/stats.json)
// and in Prometheus' text format (/metrics).

// errAdmin refuses a request without the admin token (401).
var errAdmin = errors.New("restapi: admin token required")

func (s *Server) adminRoutes() []route {
	return []route{
		{http.MethodGet, "/admin/stats", public, s.admin(s.adminStats)},
		{http.MethodGet, "/metrics", public, s.admin(s.metrics)},
		{http.MethodGet, "/admin/apps", public, s.admin(s.adminApps)},
		{http.MethodPost, "/admin/apps", public, s.admin(s.adminCreateApp)},
		{http.MethodPost, "/admin/apps/:app/users", public, s.admin(s.adminCreateUser)},
		{http.MethodPost, "/admin/apps/:app/api_keys", public, s.admin(s.adminCreateAPIKey)},
		{http.MethodGet, "/admin/apps/:app/api_keys", public, s.admin(s.adminAPIKeys)},
		{http.MethodDelete, "/admin/apps/:app/api_keys/:id", public, s.admin(s.adminDeleteAPIKey)},
	}
}

// admin wraps an admin handler with the token check.
func (s *Server) admin(h func(*request) error) func(*request) error {
	return func(r *request) error {
		scheme, token, _ := strings.Cut(r.c.Request().Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") ||
			subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(s.cfg.AdminToken)) != 1 {
			return errAdmin
		}
		return h(r)
	}
}

func (s *Server) stats() map[string]any {
	if s.statsFn == nil {
		return map[string]any{}
	}
	return s.statsFn()
}

// adminStats: GET /admin/stats.json → every part's counters.
func (s *Server) adminStats(r *request) error { return r.json(http.StatusOK, s.stats()) }

// metrics: GET /metrics → the counters as Prometheus metrics named
// chatd_<part>_<counter>.
func (s *Server) metrics(r *request) error {
	var b strings.Builder
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				walk(prefix+"_"+k, x[k])
			}
		case int, int64, uint64, float64, uint32, int32:
			kind := "gauge"
			if strings.HasSuffix(prefix, "_total") {
				kind = "counter"
			}
			fmt.Fprintf(&b, "# TYPE %s %s\n%s %v\n", prefix, kind, prefix, x)
		}
	}
	walk("chatd", s.stats())
	r.c.Response().Header().Set("Content-Type", "text/plain; version=0.0.4")
	return r.c.String(http.StatusOK, b.String())
}

func appJSON(app *account.Application) map[string]any {
	return map[string]any{"id": app.ID, "name": app.Name, "auth_key": app.AuthKey, "auth_secret": app.AuthSecret,
		"created_at": app.CreatedAt.UTC().Format(time.RFC3339)}
}

// adminApps: GET /admin/apps.json → every application with its keys.
func (s *Server) adminApps(r *request) error {
	apps, err := s.accounts.Apps(r.ctx())
	if err != nil {
		return err
	}
	items := make([]any, 0, len(apps))
	for _, a := range apps {
		items = append(items, map[string]any{"application": appJSON(a)})
	}
	return r.json(http.StatusOK, map[string]any{"items": items})
}

// adminCreateApp: POST /admin/apps.json name=… → 201 the application.
func (s *Server) adminCreateApp(r *request) error {
	app, err := s.accounts.CreateApp(r.ctx(), r.params.String("name"))
	if err != nil {
		return err
	}
	return r.json(http.StatusCreated, map[string]any{"application": appJSON(app)})
}

// adminApp reads the :app parameter of an existing application.
func (s *Server) adminApp(r *request) (int64, error) {
	id, err := r.pathID("app")
	if err != nil {
		return 0, err
	}
	if _, err := s.accounts.App(r.ctx(), id); err != nil {
		return 0, err
	}
	return id, nil
}

// adminCreateUser: POST /admin/apps/{app}/users.json with the fields of
// POST /users.json (user[login]… or login…) → 201 {"user":…}.
func (s *Server) adminCreateUser(r *request) error {
	app, err := s.adminApp(r)
	if err != nil {
		return err
	}
	p := r.params
	if r.params.Has("user") {
		p = r.params.Sub("user")
	}
	in, err := userInput(p)
	if err != nil {
		return err
	}
	u, err := s.accounts.CreateUser(r.ctx(), app, in)
	if err != nil {
		return err
	}
	return r.json(http.StatusCreated, map[string]any{"user": renderUser(u)})
}

// adminCreateAPIKey: POST /admin/apps/{app}/api_keys.json name=… → 201 with
// the key, shown this once.
func (s *Server) adminCreateAPIKey(r *request) error {
	app, err := s.adminApp(r)
	if err != nil {
		return err
	}
	k, key, err := s.accounts.CreateAPIKey(r.ctx(), app, r.params.String("name"))
	if err != nil {
		return err
	}
	return r.json(http.StatusCreated, map[string]any{"api_key": map[string]any{"id": k.ID, "name": k.Name, "key": key,
		"created_at": k.CreatedAt.UTC().Format(time.RFC3339)}})
}

// adminAPIKeys: GET /admin/apps/{app}/api_keys.json → the keys (not their
// secrets, which are not kept).
func (s *Server) adminAPIKeys(r *request) error {
	app, err := s.adminApp(r)
	if err != nil {
		return err
	}
	keys, err := s.accounts.APIKeys(r.ctx(), app)
	if err != nil {
		return err
	}
	items := make([]any, 0, len(keys))
	for _, k := range keys {
		items = append(items, map[string]any{"api_key": map[string]any{"id": k.ID, "name": k.Name,
			"created_at": k.CreatedAt.UTC().Format(time.RFC3339)}})
	}
	return r.json(http.StatusOK, map[string]any{"items": items})
}

// adminDeleteAPIKey: DELETE /admin/apps/{app}/api_keys/{id}.json → 200.
func (s *Server) adminDeleteAPIKey(r *request) error {
	app, err := s.adminApp(r)
	if err != nil {
		return err
	}
	id, err := r.pathID("id")
	if err != nil {
		return err
	}
	if err := s.accounts.DeleteAPIKey(r.ctx(), app, id); err != nil {
		return err
	}
	return r.empty(http.StatusOK)
}
