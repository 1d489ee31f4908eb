package restapi

import (
	"net/http"
	"slices"

	"chatd/history"
)

// dialogRoutes are the chat dialog endpoints (compat §6.1–6.2). Every one
// needs a user session.
func (s *Server) dialogRoutes() []route {
	return []route{
		{http.MethodGet, "/chat/Dialog", userSession, s.listDialogs},
		{http.MethodPost, "/chat/Dialog", userSession, s.createDialog},
		{http.MethodGet, "/chat/Dialog/:id", userSession, s.getDialog},
		{http.MethodPut, "/chat/Dialog/:id", userSession, s.updateDialog},
		{http.MethodDelete, "/chat/Dialog/:id", userSession, s.deleteDialogs},
		{http.MethodGet, "/chat/Dialog/:id/notifications", userSession, s.getNotifications},
		{http.MethodPut, "/chat/Dialog/:id/notifications", userSession, s.setNotifications},
	}
}

// user returns the caller's user id (routes with userSession access have
// one).
func (r *request) user() int64 { return r.principal.UserID }

// dialogListKeys are the parameters of GET /chat/Dialog that are not
// filters.
var dialogListKeys = map[string]bool{
	"limit": true, "skip": true, "sort_asc": true, "sort_desc": true, "count": true, "token": true,
}

// listDialogs: GET /chat/Dialog.json with filters (field=v, field[op]=v,
// data[field]=v), sort_asc|sort_desc, limit, skip →
// {"total_entries","skip","limit","items"}; count=1 → {"items_count":N}.
func (s *Server) listDialogs(r *request) error {
	p := r.params
	filters, err := filterParams(p, dialogListKeys, true)
	if err != nil {
		return err
	}
	count, err := p.Bool("count", false)
	if err != nil {
		return err
	}
	q, err := history.ParseDialogQuery(filters, p.String("sort_asc"), p.String("sort_desc"),
		p.String("limit"), p.String("skip"), count)
	if err != nil {
		return err
	}
	dialogs, total, err := s.history.FindDialogs(r.ctx(), r.app(), r.user(), q)
	if err != nil {
		return err
	}
	if count {
		return r.json(http.StatusOK, itemsCount{total})
	}
	page := dialogPage{TotalEntries: total, Skip: q.Skip, Limit: q.Limit, Items: make([]dialogJSON, 0, len(dialogs))}
	for _, d := range dialogs {
		page.Items = append(page.Items, renderDialog(d, s.cfg.XMPPDomain))
	}
	return r.json(http.StatusOK, page)
}

// itemsCount is the answer to a list with count=1: {"items_count":N}.
type itemsCount struct {
	ItemsCount int `json:"items_count"`
}

// getDialog: GET /chat/Dialog/{id}.json → the dialog.
func (s *Server) getDialog(r *request) error {
	d, err := s.history.Dialog(r.ctx(), r.app(), r.user(), r.c.Param("id"))
	if err != nil {
		return err
	}
	return r.json(http.StatusOK, renderDialog(d, s.cfg.XMPPDomain))
}

// createDialog: POST /chat/Dialog.json with type, occupants_ids ("1,2",
// "1, 2", a list, occupants_ids[]), name, photo, data[…], is_join_required
// → 201 and the bare dialog; the existing private dialog of a pair → 200
// and that dialog. A group (type 2) needs an occupant other than the
// caller.
func (s *Server) createDialog(r *request) error {
	p := r.params
	if _, err := r.required("type"); err != nil {
		return err
	}
	typ, err := p.Int("type", 0)
	if err != nil {
		return err
	}
	occupants, err := p.Ints("occupants_ids")
	if err != nil {
		return err
	}
	data, err := stringMap(p, "data")
	if err != nil {
		return err
	}
	in := history.DialogInput{
		Type:      history.DialogType(typ),
		Name:      p.String("name"),
		Photo:     p.String("photo"),
		Occupants: occupants,
		Data:      data,
	}
	if len(in.Data) == 0 {
		in.Data = nil
	}
	if p.Has("is_join_required") {
		j, err := p.Bool("is_join_required", false)
		if err != nil {
			return err
		}
		in.JoinRequired = &j
	}
	if in.Type == history.Group && !slices.ContainsFunc(occupants, func(id int64) bool { return id != r.user() }) {
		// QuickBlox requires occupants_ids for a group. A room made by
		// joining it over XMPP starts with its creator alone, so the rule is
		// this endpoint's, not history's.
		return invalid("occupants_ids", "can't be blank")
	}
	d, created, err := s.history.CreateDialog(r.ctx(), r.app(), r.user(), in)
	if err != nil {
		return err
	}
	if !created {
		// The pair's private dialog: read it again for the caller's
		// unread count.
		if d, err = s.history.Dialog(r.ctx(), r.app(), r.user(), d.ID); err != nil {
			return err
		}
		return r.json(http.StatusOK, renderDialog(d, s.cfg.XMPPDomain))
	}
	return r.json(http.StatusCreated, renderDialog(d, s.cfg.XMPPDomain))
}

// updateDialog: PUT /chat/Dialog/{id}.json (JSON or form) with name, photo,
// data{…} (merged), push_all[occupants_ids], pull_all[occupants_ids],
// occupants_ids (replaces), is_join_required → 200 and the dialog.
func (s *Server) updateDialog(r *request) error {
	p := r.params
	var u history.DialogUpdate
	u.Name, u.Photo = p.OptString("name"), p.OptString("photo")
	var err error
	if u.Data, err = stringMap(p, "data"); err != nil {
		return err
	}
	if p.Has("occupants_ids") {
		if u.Occupants, err = p.Ints("occupants_ids"); err != nil {
			return err
		}
		if u.Occupants == nil {
			u.Occupants = []int64{}
		}
	}
	if u.PushAll, err = p.Sub("push_all").Ints("occupants_ids"); err != nil {
		return err
	}
	if u.PullAll, err = p.Sub("pull_all").Ints("occupants_ids"); err != nil {
		return err
	}
	if p.Has("is_join_required") {
		j, err := p.Bool("is_join_required", false)
		if err != nil {
			return err
		}
		u.JoinRequired = &j
	}
	id := r.c.Param("id")
	var before *history.Dialog
	if u.Occupants != nil || len(u.PullAll) > 0 {
		// Removing occupants may empty a group, which deletes it; keep
		// what to answer then.
		if before, err = s.history.Dialog(r.ctx(), r.app(), r.user(), id); err != nil {
			return err
		}
	}
	d, err := s.history.UpdateDialog(r.ctx(), r.app(), r.user(), id, u)
	if err != nil {
		return err
	}
	if d == nil {
		// The group lost its last occupant and is gone: answer it as it
		// was, without occupants.
		before.Occupants = nil
		before.UnreadCount = 0
		return r.json(http.StatusOK, renderDialog(before, s.cfg.XMPPDomain))
	}
	return r.json(http.StatusOK, renderDialog(d, s.cfg.XMPPDomain))
}

// deleteDialogs: DELETE /chat/Dialog/{id1},{id2}.json, force=1 in the body
// to delete for everyone (owner only) → 200
// {"SuccessfullyDeleted":{"ids"},"NotFound":{"ids"},"WrongPermissions":{"ids"}},
// for a single id too.
func (s *Server) deleteDialogs(r *request) error {
	force, err := r.params.Bool("force", false)
	if err != nil {
		return err
	}
	ids, err := pathIDs(r.c.Param("id"))
	if err != nil {
		return err
	}
	res, err := s.history.DeleteDialogs(r.ctx(), r.app(), r.user(), ids, force)
	if err != nil {
		return err
	}
	return r.json(http.StatusOK, renderDeleteResult(res))
}

// notificationsBody is {"notifications":{"enabled":0|1}}.
type notificationsBody struct {
	Notifications struct {
		Enabled int `json:"enabled"`
	} `json:"notifications"`
}

func notifications(on bool) notificationsBody {
	var b notificationsBody
	if on {
		b.Notifications.Enabled = 1
	}
	return b
}

// getNotifications: GET /chat/Dialog/{id}/notifications.json →
// {"notifications":{"enabled":1}}.
func (s *Server) getNotifications(r *request) error {
	on, err := s.history.Notifications(r.ctx(), r.app(), r.user(), r.c.Param("id"))
	if err != nil {
		return err
	}
	return r.json(http.StatusOK, notifications(on))
}

// setNotifications: PUT /chat/Dialog/{id}/notifications.json with enabled
// (JSON {"enabled":0} or "0", or a form) → the new setting.
func (s *Server) setNotifications(r *request) error {
	if _, err := r.required("enabled"); err != nil {
		return err
	}
	on, err := r.params.Bool("enabled", true)
	if err != nil {
		return err
	}
	if err := s.history.SetNotifications(r.ctx(), r.app(), r.user(), r.c.Param("id"), on); err != nil {
		return err
	}
	return r.json(http.StatusOK, notifications(on))
}
