package restapi

import (
	"net/http"
	"sort"
	"strings"

	"chatd/account"
)

// sessionRoutes are the session and login endpoints (compat §4).
func (s *Server) sessionRoutes() []route {
	return []route{
		{http.MethodPost, "/session", public, s.createSession},
		{http.MethodGet, "/session", anySession, s.getSession},
		{http.MethodDelete, "/session", anySession, s.deleteSession},
		{http.MethodPost, "/login", anySession, s.login},
		{http.MethodDelete, "/login", anySession, s.logout},
	}
}

// createSession: POST /session.json with application_id, auth_key, nonce,
// timestamp, signature and optionally user[login] or user[email] with
// user[password]. 201 {"session":{…}}.
func (s *Server) createSession(r *request) error {
	p := r.params
	verr := &account.ValidationError{}
	for _, k := range []string{"application_id", "auth_key", "nonce", "timestamp", "signature"} {
		if strings.TrimSpace(p.String(k)) == "" {
			verr.Fields = append(verr.Fields, account.FieldError{Field: k, Message: "can't be blank"})
		}
	}
	if p.Has("provider") {
		verr.Fields = append(verr.Fields, account.FieldError{Field: "provider", Message: "is not supported"})
	}
	if len(verr.Fields) > 0 {
		return verr
	}
	appID, err := p.Int("application_id", 0)
	if err != nil {
		return err
	}
	nonce, err := p.Int("nonce", 0)
	if err != nil {
		return err
	}
	ts, err := p.Int("timestamp", 0)
	if err != nil {
		return err
	}
	user := p.Sub("user")
	principal, err := s.accounts.StartSession(r.ctx(), account.SessionRequest{
		AppID:     appID,
		AuthKey:   p.String("auth_key"),
		Nonce:     nonce,
		Timestamp: ts,
		Signature: strings.TrimSpace(p.String("signature")),
		Signed:    signedString(r.pairs),
		Login:     user.String("login"),
		Email:     user.String("email"),
		Password:  user.String("password"),
	})
	if err != nil {
		return err
	}
	r.bind(principal)
	return r.json(http.StatusCreated, renderSession(principal))
}

// signedString is the string a session signature covers (compat §4.1):
// every parameter but signature as "key=value", keys as sent
// ("user[login]"), values unescaped, sorted byte-wise and joined by "&".
func signedString(pairs []pair) string {
	items := make([]string, 0, len(pairs))
	for _, p := range pairs {
		if p.key != "signature" {
			items = append(items, p.key+"="+p.value)
		}
	}
	sort.Strings(items)
	return strings.Join(items, "&")
}

// getSession: GET /session.json → {"session":{…}} of the caller's session.
func (s *Server) getSession(r *request) error {
	if r.principal.Session == nil {
		return account.ErrForbidden // an API key has no session
	}
	return r.json(http.StatusOK, renderSession(r.principal))
}

// deleteSession: DELETE /session.json → 200, empty body.
func (s *Server) deleteSession(r *request) error {
	if err := s.accounts.EndSession(r.ctx(), r.principal); err != nil {
		return err
	}
	r.sessionEnded = true
	return r.empty(http.StatusOK)
}

// login: POST /login.json with login or email, and password: binds the
// caller's session to that user. 202 {"user":{…}}.
func (s *Server) login(r *request) error {
	p := r.params
	u, err := s.accounts.Login(r.ctx(), r.principal, p.String("login"), p.String("email"), p.String("password"))
	if err != nil {
		return err
	}
	return r.json(http.StatusAccepted, oneUser(u))
}

// logout: DELETE /login.json turns the user session back into an
// application session. 200, empty body.
func (s *Server) logout(r *request) error {
	if err := s.accounts.Logout(r.ctx(), r.principal); err != nil {
		return err
	}
	return r.empty(http.StatusOK)
}
