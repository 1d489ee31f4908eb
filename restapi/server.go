package restapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"chatd/account"
	"chatd/history"
	"chatd/turn"
)

// Config tunes the REST API. Zero fields take the documented defaults.
type Config struct {
	// MaxBodyBytes is the largest request body read; a larger one is answered
	// 413. Defaults to 1 MiB.
	MaxBodyBytes int64
	// CORSOrigins are the browser origins allowed to call the API, each
	// "scheme://host[:port]"; "*" allows any origin. Defaults to ["*"].
	CORSOrigins []string
	// XMPPDomain is the XMPP domain the chat server serves; dialogs name
	// their rooms "<app>_<room>@muc.<XMPPDomain>". Defaults to "localhost".
	XMPPDomain string
	// AdminToken enables the admin API (/admin/…, /metrics) for requests
	// with "Authorization: Bearer <AdminToken>". Empty: no admin API.
	AdminToken string
	// Now is the clock (the date of system notifications, the expiry of
	// TURN credentials). Defaults to time.Now.
	Now func() time.Time
}

// DefaultXMPPDomain is the default of Config.XMPPDomain.
const DefaultXMPPDomain = "localhost"

// DefaultMaxBodyBytes is the default of Config.MaxBodyBytes.
const DefaultMaxBodyBytes = 1 << 20

// withDefaults fills zero fields with their defaults.
func (c Config) withDefaults() Config {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if len(c.CORSOrigins) == 0 {
		c.CORSOrigins = []string{"*"}
	}
	if c.XMPPDomain == "" {
		c.XMPPDomain = DefaultXMPPDomain
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every invalid field of c, each naming its key.
func (c Config) Validate() error {
	var errs []error
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("restapi: max_body_bytes (%d) must not be negative", c.MaxBodyBytes))
	}
	for _, o := range c.CORSOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			errs = append(errs, fmt.Errorf("restapi: cors_origins: %q is not \"*\" or scheme://host[:port]", o))
		}
	}
	if strings.ContainsAny(c.XMPPDomain, "@/ \t\r\n") {
		errs = append(errs, fmt.Errorf("restapi: xmpp_domain: %q is not a domain", c.XMPPDomain))
	}
	return errors.Join(errs...)
}

// Deps are the services the API serves. Accounts is required; without
// History the chat endpoints are not served, without TURN the TURN
// credentials endpoint is not (404).
type Deps struct {
	Accounts *account.Service
	History  *history.Service
	// Chat delivers messages created over REST with send_to_chat=1 or
	// system=1; without it such requests are answered 503 and nothing is
	// stored.
	Chat Chat
	TURN *turn.Issuer
	// Stats returns the server's counters by part, for the admin API.
	Stats func() map[string]any
}

// Chat is what the API needs of the XMPP server (*xmpp.Server implements
// it): live delivery of messages created over REST.
type Chat interface {
	// DeliverStored delivers a stored message as if its sender had sent it
	// over XMPP, with id == the history _id.
	DeliverStored(ctx context.Context, m *history.Message, d *history.Dialog) error
	// DeliverSystem delivers a system notification (a headline) to the
	// other user of a private dialog.
	DeliverSystem(ctx context.Context, m *history.Message, d *history.Dialog) error
}

// Server is the QuickBlox-shaped REST API. It is safe for concurrent use once
// New has returned.
type Server struct {
	cfg      Config
	accounts *account.Service
	history  *history.Service
	chat     Chat
	turn     *turn.Issuer
	statsFn  func() map[string]any
	log      *slog.Logger
	echo     *echo.Echo

	anyOrigin bool
	origins   map[string]bool
}

// New builds the REST API over deps. Invalid configuration values are
// replaced by defaults; check them first with Config.Validate.
func New(cfg Config, deps Deps, log *slog.Logger) *Server {
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, accounts: deps.Accounts, history: deps.History, chat: deps.Chat, turn: deps.TURN,
		statsFn: deps.Stats, log: log, origins: make(map[string]bool)}
	for _, o := range cfg.CORSOrigins {
		if o == "*" {
			s.anyOrigin = true
		}
		s.origins[strings.TrimSuffix(o, "/")] = true
	}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.IPExtractor = echo.ExtractIPDirect()
	e.HTTPErrorHandler = s.writeError
	// Pre middleware runs before routing, in this order, for every request,
	// matched or not. None of them may replace the *http.Request before
	// stripJSON: echo routes the request it was given.
	e.Pre(s.requestID, s.accessLog, s.renderErrors, s.recoverPanics, s.cors, stripJSON)
	s.echo = e

	// One route table per area of the API.
	s.register(s.sessionRoutes())
	s.register(s.userRoutes())
	if s.history != nil {
		s.register(s.dialogRoutes())
		s.register(s.messageRoutes())
	}
	if s.turn != nil {
		s.register(s.turnRoutes())
	}
	if cfg.AdminToken != "" {
		s.register(s.adminRoutes())
	}
	return s
}

// Handler returns the http.Handler serving the API.
func (s *Server) Handler() http.Handler { return s.echo }

// access is what a route requires of its caller.
type access uint8

const (
	// public: no session (POST /session.json).
	public access = iota
	// anySession: an application or a user session, or an API key.
	anySession
	// userSession: a session bound to a user (or an API key acting on behalf
	// of one); an application session is refused with 403.
	userSession
)

// route is one endpoint: paths are written without ".json" (stripJSON
// removes it before routing) and with echo's ":name" parameters.
type route struct {
	method string
	path   string
	access access
	handle func(*request) error
}

// register adds routes; a GET route also answers HEAD.
func (s *Server) register(routes []route) {
	for _, rt := range routes {
		h := s.endpoint(rt)
		s.echo.Add(rt.method, rt.path, h)
		if rt.method == http.MethodGet {
			s.echo.Add(http.MethodHead, rt.path, h)
		}
	}
}

// request is what a handler works with: the decoded parameters, the
// authenticated principal, and helpers to answer.
type request struct {
	c         echo.Context
	params    params
	pairs     []pair // every parameter as sent, for signatures
	principal *account.Principal
	// sessionEnded stops QB-Token-ExpirationDate once the session is gone.
	sessionEnded bool
}

// endpoint wraps a route's handler: decode the parameters (400, 413),
// authenticate as the route requires (401, 403), then handle.
func (s *Server) endpoint(rt route) echo.HandlerFunc {
	return func(c echo.Context) error {
		d, err := decodeRequest(c.Request(), s.cfg.MaxBodyBytes)
		if err != nil {
			return err
		}
		r := &request{c: c, params: d.params, pairs: d.pairs}
		if rt.access != public {
			p, err := s.authenticate(r)
			if err != nil {
				return err
			}
			r.bind(p)
			if rt.access == userSession && p.UserID == 0 {
				return account.ErrNeedUser
			}
		}
		return rt.handle(r)
	}
}

func (r *request) ctx() context.Context { return r.c.Request().Context() }

// app returns the caller's application id.
func (r *request) app() int64 { return r.principal.App.ID }

// pathID returns the integer path parameter name; anything else is not
// found.
func (r *request) pathID(name string) (int64, error) {
	id, err := strconv.ParseInt(r.c.Param(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, account.ErrNotFound
	}
	return id, nil
}

// required returns the string parameter key, or a 422 naming it when it is
// missing or blank.
func (r *request) required(key string) (string, error) {
	v := r.params.String(key)
	if strings.TrimSpace(v) == "" {
		return "", blank(key)
	}
	return v, nil
}

func blank(field string) error {
	return &account.ValidationError{Fields: []account.FieldError{{Field: field, Message: "can't be blank"}}}
}

// json answers status with v as JSON.
func (r *request) json(status int, v any) error { return writeJSON(r.c, status, v) }

// empty answers status with an empty body (the SDK reads such answers as
// text).
func (r *request) empty(status int) error { return r.c.NoContent(status) }
