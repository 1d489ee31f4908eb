package restapi

import (
	"context"
	"net/http"
)

// HandleForTest adds a route whose handler is h, answering what h returns
// as JSON with 200, to test what surrounds handlers: panics, internal
// errors, the principal in the context. needSession makes the route take
// an application or user session. Call it before s serves requests.
func HandleForTest(s *Server, method, path string, needSession bool, h func(ctx context.Context) (any, error)) {
	acc := public
	if needSession {
		acc = anySession
	}
	s.register([]route{{method, path, acc, func(r *request) error {
		v, err := h(r.ctx())
		if err != nil {
			return err
		}
		return r.json(http.StatusOK, v)
	}}})
}

// PrincipalFrom is principalFrom, for tests.
var PrincipalFrom = principalFrom
