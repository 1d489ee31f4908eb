package restapi_test

import (
	"net/http"
	"strings"
	"testing"

	"chatd/restapi"
)

const adminToken = "admin-token-0123456789"

func (e *env) admin(method, path, token string, kv ...string) response {
	e.t.Helper()
	body := form(kv...)
	if method == http.MethodGet && body != "" {
		path += "?" + body
		body = ""
	}
	req := e.newRequest(method, path, body)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.request(req)
}

func TestAdminAPI(t *testing.T) {
	e := newEnv(t, restapi.Config{AdminToken: adminToken}, func(s *restapi.Server) {})
	e.keep(adminToken)
	// Without the token, nothing.
	e.admin(http.MethodGet, "/admin/apps.json", "").want(t, http.StatusUnauthorized, `{"errors":["Admin token required"]}`)
	e.admin(http.MethodGet, "/admin/apps.json", "wrong-token-0123456789").want(t, http.StatusUnauthorized, `{"errors":["Admin token required"]}`)
	// A session token is no admin token.
	e.admin(http.MethodGet, "/admin/apps.json", e.appSession()).want(t, http.StatusUnauthorized, `{"errors":["Admin token required"]}`)

	r := e.admin(http.MethodPost, "/admin/apps.json", adminToken, "name", "shop")
	if r.status != http.StatusCreated {
		t.Fatalf("create app: %s", r)
	}
	app := r.obj(t)["application"].(map[string]any)
	if app["name"] != "shop" || app["auth_key"] == "" || app["auth_secret"] == "" {
		t.Errorf("app %v", app)
	}
	appID := itoa(num(t, app["id"]))
	e.admin(http.MethodPost, "/admin/apps.json", adminToken, "name", " ").want(t, http.StatusUnprocessableEntity, `{"errors":{"name":["can't be blank"]}}`)
	if r := e.admin(http.MethodGet, "/admin/apps.json", adminToken); !strings.Contains(string(r.body), `"shop"`) {
		t.Errorf("apps: %s", r)
	}

	r = e.admin(http.MethodPost, "/admin/apps/"+appID+"/users.json", adminToken, "user[login]", "bob", "user[password]", "bobpass12")
	if r.status != http.StatusCreated || r.obj(t)["user"].(map[string]any)["login"] != "bob" {
		t.Fatalf("create user: %s", r)
	}
	e.admin(http.MethodPost, "/admin/apps/"+appID+"/users.json", adminToken, "login", "bob", "password", "bobpass12").
		want(t, http.StatusUnprocessableEntity, `{"errors":{"login":["has already been taken"]}}`)
	if r := e.admin(http.MethodPost, "/admin/apps/999/users.json", adminToken, "login", "x", "password", "xpass1234"); r.status != http.StatusNotFound {
		t.Errorf("user in an unknown app: %s", r)
	}

	r = e.admin(http.MethodPost, "/admin/apps/"+appID+"/api_keys.json", adminToken, "name", "backend")
	key := r.obj(t)["api_key"].(map[string]any)
	if r.status != http.StatusCreated || len(key["key"].(string)) < 32 {
		t.Fatalf("api key: %s", r)
	}
	if r := e.admin(http.MethodGet, "/admin/apps/"+appID+"/api_keys.json", adminToken); strings.Contains(string(r.body), key["key"].(string)) {
		t.Errorf("the key list shows the secret: %s", r)
	}
	e.admin(http.MethodDelete, "/admin/apps/"+appID+"/api_keys/"+itoa(num(t, key["id"]))+".json", adminToken).want(t, http.StatusOK, "")
}

func TestAdminStatsAndMetrics(t *testing.T) {
	e := newEnv(t, restapi.Config{AdminToken: adminToken}, func(s *restapi.Server) {})
	// The env's server has no Stats: both answer, empty.
	if r := e.admin(http.MethodGet, "/admin/stats.json", adminToken); r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != "{}" {
		t.Errorf("stats: %s", r)
	}
	if r := e.admin(http.MethodGet, "/metrics", adminToken); r.status != http.StatusOK {
		t.Errorf("metrics: %s", r)
	}
	if r := e.admin(http.MethodGet, "/metrics", ""); r.status != http.StatusUnauthorized {
		t.Errorf("metrics without the token: %s", r)
	}
}

func TestAdminAPIOff(t *testing.T) {
	e := newEnv(t, restapi.Config{})
	if r := e.admin(http.MethodGet, "/admin/apps.json", "anything-at-all-123"); r.status != http.StatusNotFound {
		t.Errorf("admin API without a configured token: %s", r)
	}
}
