package restapi

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"chatd/account"
	"chatd/internal/throttle"
)

const (
	headerRequestID = "X-Request-Id"
	ctxLogger       = "restapi.logger" // echo.Context key of the request's *slog.Logger
)

// CORS answers, as the QuickBlox SDK in a browser needs them (compat §3.4).
const (
	corsAllowMethods  = "GET, POST, PUT, DELETE, PATCH, OPTIONS"
	corsAllowHeaders  = "Content-Type, QB-Token, QB-SDK, QB-OS, QB-Account-Key, Authorization, On-Behalf-Of"
	corsExposeHeaders = headerExpiration + ", " + headerRequestID
	corsMaxAge        = "86400"
)

// requestID gives each request a random id, sent back in X-Request-Id and
// attached to everything logged about the request.
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		c.Response().Header().Set(headerRequestID, id)
		c.Set(ctxLogger, s.log.With("request_id", id))
		return next(c)
	}
}

// logger returns the request's logger.
func (s *Server) logger(c echo.Context) *slog.Logger {
	if l, ok := c.Get(ctxLogger).(*slog.Logger); ok {
		return l
	}
	return s.log
}

// accessLog logs each request at debug level: method, path (never the query
// string, which may hold a token), status, size and duration.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		res := c.Response()
		s.logger(c).Debug("request", "method", c.Request().Method, "path", c.Request().URL.Path,
			"status", res.Status, "bytes", res.Size, "duration", time.Since(start), "remote", c.RealIP())
		return err
	}
}

// renderErrors answers an error returned by anything after it, so that the
// access log sees the final status.
func (s *Server) renderErrors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := next(c); err != nil {
			s.writeError(err, c)
		}
		return nil
	}
}

// writeError answers err with its status and QuickBlox error body (see
// errorResponse). Internal errors are logged with the request id and
// answered with a generic message.
func (s *Server) writeError(err error, c echo.Context) {
	status, body, internal := errorResponse(err)
	if internal && !errors.Is(err, errPanic) {
		s.logger(c).Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	}
	if c.Response().Committed {
		return
	}
	var wait *account.TooManyAttemptsError
	if errors.As(err, &wait) {
		c.Response().Header().Set("Retry-After", strconv.Itoa(throttle.Seconds(wait.RetryAfter)))
	}
	if err := writeJSON(c, status, body); err != nil {
		s.logger(c).Warn("writing error response", "err", err)
	}
}

// recoverPanics turns a panic in a handler into a 500 and logs it with its
// stack; the server keeps serving.
func (s *Server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v) // net/http's way to abort a response on purpose
			}
			s.logger(c).Error("panic serving request", "method", c.Request().Method, "path", c.Request().URL.Path,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			err = errPanic
		}()
		return next(c)
	}
}

// cors adds the CORS headers for allowed origins and answers every OPTIONS
// request (a preflight) with 204.
func (s *Server) cors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		origin := c.Request().Header.Get("Origin")
		allow := ""
		switch {
		case origin == "" && s.anyOrigin:
			allow = "*"
		case origin != "" && (s.anyOrigin || s.origins[origin]):
			allow = origin
		}
		if allow != "" {
			h.Set("Access-Control-Allow-Origin", allow)
			h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		}
		if origin != "" {
			h.Add("Vary", "Origin")
		}
		if c.Request().Method != http.MethodOptions {
			return next(c)
		}
		if allow != "" {
			h.Set("Access-Control-Allow-Methods", corsAllowMethods)
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
		}
		return c.NoContent(http.StatusNoContent)
	}
}

// stripJSON removes the ".json" suffix QuickBlox paths carry, so routes are
// written without it (echo would otherwise read "/users/:id" on
// "/users/7.json" as id "7.json"). Paths without the suffix work as well.
//
// It edits the URL of the request in place: echo routes the *http.Request
// it was handed, not one set later with SetRequest.
func stripJSON(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if p, ok := strings.CutSuffix(r.URL.Path, ".json"); ok {
			u := *r.URL
			u.Path = p
			if raw, ok := strings.CutSuffix(u.RawPath, ".json"); ok {
				u.RawPath = raw
			} else {
				u.RawPath = ""
			}
			r.URL = &u
		}
		return next(c)
	}
}

// writeJSON answers status with v encoded as JSON (HTML characters are not
// escaped).
func writeJSON(c echo.Context, status int, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	return c.Blob(status, "application/json; charset=utf-8", buf.Bytes())
}
