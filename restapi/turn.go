package restapi

import (
	"net/http"
	"time"
)

// turnRoutes is the TURN credentials endpoint, served when the API has a
// TURN issuer.
func (s *Server) turnRoutes() []route {
	return []route{
		{http.MethodGet, "/turn/credentials", userSession, s.turnCredentials},
	}
}

// turnCredentialsJSON is what GET /turn/credentials.json answers: TURN REST
// credentials (username "<expiry>:<user_id>", password the HMAC of it), how
// many seconds they stay valid, and the server's URIs.
type turnCredentialsJSON struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	TTL      int64    `json:"ttl"`
	URIs     []string `json:"uris"`
}

// turnCredentials: GET /turn/credentials.json → credentials for the caller.
func (s *Server) turnCredentials(r *request) error {
	c := s.turn.Issue(r.user(), s.cfg.Now())
	uris := c.URIs
	if uris == nil {
		uris = []string{}
	}
	// Secrets valid for hours: no cache may keep them.
	r.c.Response().Header().Set("Cache-Control", "no-store")
	return r.json(http.StatusOK, turnCredentialsJSON{
		Username: c.Username,
		Password: c.Password,
		TTL:      int64(c.TTL / time.Second),
		URIs:     uris,
	})
}
