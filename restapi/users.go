package restapi

import (
	"net/http"
	"strings"

	"chatd/account"
)

// userRoutes are the user endpoints (compat §5). Static paths take
// precedence over /users/:id in echo's router.
func (s *Server) userRoutes() []route {
	return []route{
		{http.MethodPost, "/users", anySession, s.createUser},
		{http.MethodGet, "/users", anySession, s.listUsers},
		{http.MethodGet, "/users/by_login", anySession, s.userBy(account.FieldLogin, "login")},
		{http.MethodGet, "/users/by_email", anySession, s.userBy(account.FieldEmail, "email")},
		{http.MethodGet, "/users/phone", anySession, s.userBy(account.FieldPhone, "phone")},
		{http.MethodGet, "/users/by_facebook_id", anySession, s.userBy(account.FieldFacebookID, "facebook_id")},
		{http.MethodGet, "/users/by_twitter_id", anySession, s.userBy(account.FieldTwitterID, "twitter_id")},
		{http.MethodGet, "/users/by_full_name", anySession, s.usersByFullName},
		{http.MethodGet, "/users/by_tags", anySession, s.usersByTags},
		{http.MethodGet, "/users/external/:id", anySession, s.getExternalUser},
		{http.MethodDelete, "/users/external/:id", userSession, s.deleteExternalUser},
		{http.MethodGet, "/users/:id", anySession, s.getUser},
		{http.MethodPut, "/users/:id", userSession, s.updateUser},
		{http.MethodDelete, "/users/:id", userSession, s.deleteUser},
	}
}

// userInput reads the user[…] attributes of a create or update. Absent keys
// stay nil (unchanged); an empty external_user_id or blob_id clears it.
func userInput(p params) (account.UserInput, error) {
	in := account.UserInput{
		Login:       p.OptString("login"),
		Email:       p.OptString("email"),
		FullName:    p.OptString("full_name"),
		Phone:       p.OptString("phone"),
		Website:     p.OptString("website"),
		FacebookID:  p.OptString("facebook_id"),
		TwitterID:   p.OptString("twitter_id"),
		CustomData:  p.OptString("custom_data"),
		Password:    p.OptString("password"),
		OldPassword: p.OptString("old_password"),
	}
	var err error
	if in.ExternalUserID, err = p.OptInt("external_user_id"); err != nil {
		return in, err
	}
	if in.BlobID, err = p.OptInt("blob_id"); err != nil {
		return in, err
	}
	if p.Has("tag_list") {
		tags := p.Strings("tag_list")
		in.Tags = &tags
	}
	return in, nil
}

// createUser: POST /users.json (application or user session) → 201
// {"user":{…}}.
func (s *Server) createUser(r *request) error {
	in, err := userInput(r.params.Sub("user"))
	if err != nil {
		return err
	}
	u, err := s.accounts.CreateUser(r.ctx(), r.app(), in)
	if err != nil {
		return err
	}
	return r.json(http.StatusCreated, oneUser(u))
}

// listUsers: GET /users.json?filter[]=…&order=…&page=&per_page= → a page.
func (s *Server) listUsers(r *request) error {
	q, pg, err := userQuery(r.params)
	if err != nil {
		return err
	}
	return s.findUsers(r, q, pg)
}

func (s *Server) findUsers(r *request, q account.UserQuery, pg page) error {
	users, total, err := s.accounts.FindUsers(r.ctx(), r.app(), q)
	if err != nil {
		return err
	}
	return r.json(http.StatusOK, pageOfUsers(pg, total, users))
}

// getUser: GET /users/{id}.json → {"user":{…}}.
func (s *Server) getUser(r *request) error {
	id, err := r.pathID("id")
	if err != nil {
		return err
	}
	u, err := s.accounts.User(r.ctx(), r.app(), id)
	if err != nil {
		return err
	}
	return r.json(http.StatusOK, oneUser(u))
}

// updateUser: PUT /users/{id}.json with user[…] (the caller only; a new
// user[password] needs user[old_password]) → {"user":{…}}.
func (s *Server) updateUser(r *request) error {
	id, err := r.pathID("id")
	if err != nil {
		return err
	}
	in, err := userInput(r.params.Sub("user"))
	if err != nil {
		return err
	}
	u, err := s.accounts.UpdateUser(r.ctx(), r.principal, id, in)
	if err != nil {
		return err
	}
	return r.json(http.StatusOK, oneUser(u))
}

// deleteUser: DELETE /users/{id}.json (the caller only) → 200, empty body.
func (s *Server) deleteUser(r *request) error {
	id, err := r.pathID("id")
	if err != nil {
		return err
	}
	if err := s.accounts.DeleteUser(r.ctx(), r.principal, id); err != nil {
		return err
	}
	r.sessionEnded = true // a deleted user's sessions go with it
	return r.empty(http.StatusOK)
}

// userBy answers GET /users/by_<field>.json?<param>= with the one user
// whose field equals the value → {"user":{…}}.
func (s *Server) userBy(field account.UserField, param string) func(*request) error {
	return func(r *request) error {
		v, err := r.required(param)
		if err != nil {
			return err
		}
		u, err := s.accounts.UserBy(r.ctx(), r.app(), field, v)
		if err != nil {
			return err
		}
		return r.json(http.StatusOK, oneUser(u))
	}
}

// usersByFullName: GET /users/by_full_name.json?full_name= → a page of the
// users whose full name contains it, ignoring case.
func (s *Server) usersByFullName(r *request) error {
	name, err := r.required("full_name")
	if err != nil {
		return err
	}
	f, err := account.ParseFilter(string(account.FieldFullName), string(account.OpContains), strings.TrimSpace(name))
	if err != nil {
		return err
	}
	return s.pagedFind(r, f)
}

// usersByTags: GET /users/by_tags.json?tags=a,b (or tags[]=a,b) → a page of
// the users having any of the tags.
func (s *Server) usersByTags(r *request) error {
	tags := r.params.Strings("tags")
	if len(tags) == 0 {
		return blank("tags")
	}
	f, err := account.ParseFilter(string(account.FieldTags), string(account.OpIn), strings.Join(tags, ","))
	if err != nil {
		return err
	}
	return s.pagedFind(r, f)
}

func (s *Server) pagedFind(r *request, f account.Filter) error {
	pg, err := paging(r.params)
	if err != nil {
		return err
	}
	q := account.UserQuery{Filters: []account.Filter{f}, Limit: pg.perPage, Offset: pg.offset()}
	return s.findUsers(r, q, pg)
}

// getExternalUser: GET /users/external/{external_user_id}.json → {"user":{…}}.
func (s *Server) getExternalUser(r *request) error {
	u, err := s.accounts.UserBy(r.ctx(), r.app(), account.FieldExternalUserID, r.c.Param("id"))
	if err != nil {
		return err
	}
	return r.json(http.StatusOK, oneUser(u))
}

// deleteExternalUser: DELETE /users/external/{external_user_id}.json (the
// caller only) → 200, empty body.
func (s *Server) deleteExternalUser(r *request) error {
	u, err := s.accounts.UserBy(r.ctx(), r.app(), account.FieldExternalUserID, r.c.Param("id"))
	if err != nil {
		return err
	}
	if err := s.accounts.DeleteUser(r.ctx(), r.principal, u.ID); err != nil {
		return err
	}
	r.sessionEnded = true
	return r.empty(http.StatusOK)
}
