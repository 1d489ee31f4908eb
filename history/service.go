package history

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"chatd/internal/oid"
)

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// Users tells whether users exist; the account service provides it.
type Users interface {
	UserExists(ctx context.Context, app, id int64) (bool, error)
}

// Config tunes the service.
type Config struct {
	// JoinRequiredDefault is is_join_required for group dialogs created
	// without it. Defaults to false (QuickBlox's current default).
	JoinRequiredDefault bool
	// MaxOccupants bounds a group dialog. Defaults to 5000.
	MaxOccupants int
	// ClockSkew is how far a client's date_sent may be from the server's
	// clock and still be used. Defaults to 5 seconds (QuickBlox's rule).
	ClockSkew time.Duration
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
}

// EventKind says what happened to a dialog.
type EventKind int

// Dialog events.
const (
	DialogCreated EventKind = iota + 1
	DialogUpdated
	DialogDeleted
	MessagesDeleted
)

// Event tells observers (the MUC service, push alerts) about a change.
type Event struct {
	Kind    EventKind
	Dialog  *Dialog
	Actor   int64   // who made the change
	Added   []int64 // occupants added
	Removed []int64 // occupants removed
	// Messages deleted for everyone (MessagesDeleted), with their senders.
	Messages []*Message
}

// Service applies the history rules over a Store.
type Service struct {
	store  Store
	users  Users
	cfg    Config
	log    *slog.Logger
	commit *committer
	pairs  pairCache

	mu        sync.RWMutex
	observers []func(context.Context, Event)
}

// NewService returns a service; Close stops its committer.
func NewService(store Store, users Users, cfg Config, log *slog.Logger) *Service {
	if cfg.MaxOccupants <= 0 {
		cfg.MaxOccupants = 5000
	}
	if cfg.ClockSkew <= 0 {
		cfg.ClockSkew = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{store: store, users: users, cfg: cfg, log: log}
	s.commit = newCommitter(store, log)
	return s
}

// Close stops accepting messages and waits for those being stored.
func (s *Service) Close() { s.commit.close() }

// Store returns the underlying store (for tests and repair tools).
func (s *Service) Store() Store { return s.store }

// Observe registers fn to be told about changes, after they are stored.
func (s *Service) Observe(fn func(context.Context, Event)) {
	s.mu.Lock()
	s.observers = append(s.observers, fn)
	s.mu.Unlock()
}

func (s *Service) emit(ctx context.Context, ev Event) {
	s.mu.RLock()
	obs := s.observers
	s.mu.RUnlock()
	for _, fn := range obs {
		fn(ctx, ev)
	}
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Second) }

// DialogInput describes a dialog to create.
type DialogInput struct {
	Type         DialogType
	Name         string
	Photo        string
	Occupants    []int64
	Data         map[string]string
	JoinRequired *bool
	// RoomName names the XMPP room of a group made by joining it; empty
	// for dialogs made over REST (the room is named by the dialog id).
	RoomName string
}

const maxNameLen = 200

// CreateDialog creates a dialog owned by user. For a private dialog that
// already exists between the pair, that dialog is returned with created
// false, and shown again to user if they had hidden (deleted) it: asking
// for the dialog opens the conversation again.
func (s *Service) CreateDialog(ctx context.Context, app, user int64, in DialogInput) (*Dialog, bool, error) {
	if !in.Type.Valid() {
		return nil, false, invalid("type", "must be 1, 2 or 3")
	}
	in.Name = strings.TrimSpace(in.Name)
	if utf8.RuneCountInString(in.Name) > maxNameLen {
		return nil, false, invalid("name", "is too long (maximum is %d characters)", maxNameLen)
	}
	now := s.now()
	d := &Dialog{AppID: app, Type: in.Type, Name: in.Name, Photo: in.Photo, OwnerID: user, Data: in.Data,
		CreatedAt: now, UpdatedAt: now}
	switch in.Type {
	case Private:
		var others []int64
		for _, o := range in.Occupants {
			if o != user && !slices.Contains(others, o) {
				others = append(others, o)
				if len(others) > 1 {
					break // too many already: no need to read the rest
				}
			}
		}
		if len(others) != 1 {
			return nil, false, invalid("occupants_ids", "must name exactly one other user for a private dialog")
		}
		if err := s.checkUsers(ctx, app, others); err != nil {
			return nil, false, err
		}
		if d, err := s.store.PrivateDialog(ctx, app, user, others[0]); err == nil {
			return s.reopen(ctx, d, user)
		} else if !errors.Is(err, ErrNotFound) {
			return nil, false, err
		}
		d.Occupants = sortedIDs(append(others, user))
		d.Name, d.Photo = "", ""
	case Group, PublicGroup:
		if in.Name == "" {
			return nil, false, invalid("name", "can't be blank")
		}
		if in.Type == Group {
			d.Occupants = sortedIDs(append(slices.Clone(in.Occupants), user))
			if len(d.Occupants) > s.cfg.MaxOccupants {
				return nil, false, invalid("occupants_ids", "too many occupants (maximum is %d)", s.cfg.MaxOccupants)
			}
			if err := s.checkUsers(ctx, app, d.Occupants); err != nil {
				return nil, false, err
			}
			d.JoinRequired = s.cfg.JoinRequiredDefault
			if in.JoinRequired != nil {
				d.JoinRequired = *in.JoinRequired
			}
		} else {
			d.JoinRequired = true
		}
	}
	d.ID = oid.New(now)
	if d.Type != Private {
		d.RoomName = d.ID
		if in.RoomName != "" {
			d.RoomName = in.RoomName
		}
	}
	if err := s.store.CreateDialog(ctx, d); err != nil {
		if errors.Is(err, ErrDuplicate) && d.Type == Private {
			// Created concurrently by the other side: return that one.
			existing, err2 := s.store.PrivateDialog(ctx, app, d.Occupants[0], d.Occupants[1])
			if err2 == nil {
				return s.reopen(ctx, existing, user)
			}
		}
		return nil, false, err
	}
	s.emit(ctx, Event{Kind: DialogCreated, Dialog: d, Actor: user, Added: d.Occupants})
	return d, true, nil
}

// reopen answers CreateDialog with the pair's existing private dialog,
// shown again to user.
func (s *Service) reopen(ctx context.Context, d *Dialog, user int64) (*Dialog, bool, error) {
	if err := s.store.UnhideDialog(ctx, d.AppID, d.ID, user); err != nil {
		return nil, false, err
	}
	return d, false, nil
}

func sortedIDs(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

func (s *Service) checkUsers(ctx context.Context, app int64, ids []int64) error {
	for _, id := range ids {
		ok, err := s.users.UserExists(ctx, app, id)
		if err != nil {
			return err
		}
		if !ok {
			return invalid("occupants_ids", "user %d does not exist", id)
		}
	}
	return nil
}

// FindDialogs lists the dialogs a user sees.
func (s *Service) FindDialogs(ctx context.Context, app, user int64, q DialogQuery) ([]*Dialog, int, error) {
	if q.None {
		return nil, 0, nil
	}
	return s.store.FindDialogs(ctx, app, user, q)
}

// visible loads a dialog the user may read: an occupant's, or a public group.
func (s *Service) visible(ctx context.Context, app, user int64, id string) (*Dialog, error) {
	if !oid.Valid(id) {
		return nil, ErrNotFound
	}
	d, err := s.store.Dialog(ctx, app, oid.Normalize(id))
	if err != nil {
		return nil, err
	}
	if d.Type != PublicGroup && !d.HasOccupant(user) {
		return nil, ErrForbidden
	}
	return d, nil
}

// Dialog returns a dialog the user may see, with the user's unread count.
func (s *Service) Dialog(ctx context.Context, app, user int64, id string) (*Dialog, error) {
	d, err := s.visible(ctx, app, user, id)
	if err != nil {
		return nil, err
	}
	counts, _, err := s.store.UnreadCounts(ctx, app, user, []string{d.ID})
	if err != nil {
		return nil, err
	}
	d.UnreadCount = counts[d.ID]
	return d, nil
}

// DialogAny returns a dialog whoever asks (for the MUC service).
func (s *Service) DialogAny(ctx context.Context, app int64, id string) (*Dialog, error) {
	if !oid.Valid(id) {
		return nil, ErrNotFound
	}
	return s.store.Dialog(ctx, app, oid.Normalize(id))
}

// RoomDialog returns the group dialog of an XMPP room name.
func (s *Service) RoomDialog(ctx context.Context, app int64, name string) (*Dialog, error) {
	return s.store.RoomDialog(ctx, app, name)
}

// DialogUpdate describes changes to a dialog; nil fields stay.
type DialogUpdate struct {
	Name         *string
	Photo        *string
	Data         map[string]string // merged into the dialog's data
	Occupants    []int64           // replaces the occupants when not nil
	PushAll      []int64
	PullAll      []int64
	JoinRequired *bool
}

// UpdateDialog changes a dialog under QuickBlox's rules: in a group, any
// occupant may add users, an occupant may remove only themselves, and only
// the owner may remove others; a public group is changed by its owner only;
// a private dialog's occupants never change. A group left without occupants
// is deleted (the returned dialog is then nil).
func (s *Service) UpdateDialog(ctx context.Context, app, user int64, id string, u DialogUpdate) (*Dialog, error) {
	d, err := s.visible(ctx, app, user, id)
	if err != nil {
		return nil, err
	}
	owner := d.OwnerID == user
	if d.Type == PublicGroup && !owner {
		return nil, ErrForbidden
	}
	occupantsChange := u.Occupants != nil || len(u.PushAll) > 0 || len(u.PullAll) > 0
	if d.Type == Private && occupantsChange {
		return nil, invalid("occupants_ids", "cannot change in a private dialog")
	}
	if d.Type == PublicGroup && occupantsChange {
		return nil, invalid("occupants_ids", "a public group has no occupant list")
	}
	if u.JoinRequired != nil && !owner {
		return nil, ErrForbidden
	}
	before := d.Occupants
	next := slices.Clone(before)
	if u.Occupants != nil {
		next = sortedIDs(u.Occupants)
	}
	next = sortedIDs(append(next, u.PushAll...))
	if len(u.PullAll) > 0 {
		pull := setOf(u.PullAll)
		next = slices.DeleteFunc(next, func(x int64) bool { return pull[x] })
	}
	// Before anything is looked up per occupant: a request naming thousands
	// of users costs no more than one naming too many by one.
	if len(next) > s.cfg.MaxOccupants {
		return nil, invalid("occupants_ids", "too many occupants (maximum is %d)", s.cfg.MaxOccupants)
	}
	added, removed := diff(before, next)
	for _, r := range removed {
		if r != user && !owner {
			return nil, ErrForbidden
		}
	}
	if len(added) > 0 {
		if err := s.checkUsers(ctx, app, added); err != nil {
			return nil, err
		}
	}
	if u.Name != nil && d.Type != Private {
		name := strings.TrimSpace(*u.Name)
		if name == "" {
			return nil, invalid("name", "can't be blank")
		}
		if utf8.RuneCountInString(name) > maxNameLen {
			return nil, invalid("name", "is too long (maximum is %d characters)", maxNameLen)
		}
		d.Name = name
	}
	if u.Photo != nil && d.Type != Private {
		d.Photo = *u.Photo
	}
	if u.Data != nil {
		if d.Data == nil {
			d.Data = map[string]string{}
		}
		for k, v := range u.Data {
			d.Data[k] = v
		}
	}
	if u.JoinRequired != nil && d.Type == Group {
		d.JoinRequired = *u.JoinRequired
	}
	d.Occupants = next
	d.UpdatedAt = s.now()
	if d.Type == Group && len(next) == 0 {
		if err := s.store.DeleteDialog(ctx, app, d.ID); err != nil {
			return nil, err
		}
		s.pairs.forget(d)
		s.emit(ctx, Event{Kind: DialogDeleted, Dialog: d, Actor: user, Removed: removed})
		return nil, nil
	}
	if err := s.store.UpdateDialog(ctx, d); err != nil {
		return nil, err
	}
	s.emit(ctx, Event{Kind: DialogUpdated, Dialog: d, Actor: user, Added: added, Removed: removed})
	if d.Type != PublicGroup && !d.HasOccupant(user) {
		return d, nil // the user left: there is no unread count to show
	}
	return s.Dialog(ctx, app, user, d.ID)
}

func diff(before, after []int64) (added, removed []int64) {
	was, is := setOf(before), setOf(after)
	for _, a := range after {
		if !was[a] {
			added = append(added, a)
		}
	}
	for _, b := range before {
		if !is[b] {
			removed = append(removed, b)
		}
	}
	return added, removed
}

func setOf(ids []int64) map[int64]bool {
	m := make(map[int64]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// DeleteResult sorts the ids of a delete request.
type DeleteResult struct {
	Deleted          []string
	NotFound         []string
	WrongPermissions []string
}

// DeleteDialogs deletes dialogs for the user, or for everyone with force
// (the owner only). Without force a private or public dialog is hidden from
// the user, and a group is left (the user stops being an occupant).
func (s *Service) DeleteDialogs(ctx context.Context, app, user int64, ids []string, force bool) (DeleteResult, error) {
	var res DeleteResult
	for _, id := range ids {
		d, err := s.visible(ctx, app, user, id)
		switch {
		case errors.Is(err, ErrNotFound):
			res.NotFound = append(res.NotFound, id)
			continue
		case errors.Is(err, ErrForbidden):
			res.WrongPermissions = append(res.WrongPermissions, id)
			continue
		case err != nil:
			return res, err
		}
		switch {
		case force:
			if d.OwnerID != user {
				res.WrongPermissions = append(res.WrongPermissions, id)
				continue
			}
			if err := s.store.DeleteDialog(ctx, app, d.ID); err != nil {
				return res, err
			}
			s.pairs.forget(d)
			s.emit(ctx, Event{Kind: DialogDeleted, Dialog: d, Actor: user, Removed: d.Occupants})
		case d.Type == Group:
			if _, err := s.UpdateDialog(ctx, app, user, d.ID, DialogUpdate{PullAll: []int64{user}}); err != nil {
				return res, err
			}
		default:
			if err := s.store.HideDialog(ctx, app, d.ID, user); err != nil {
				return res, err
			}
		}
		res.Deleted = append(res.Deleted, id)
	}
	return res, nil
}

// Notifications reads a user's push setting for a dialog.
func (s *Service) Notifications(ctx context.Context, app, user int64, id string) (bool, error) {
	d, err := s.visible(ctx, app, user, id)
	if err != nil {
		return false, err
	}
	return s.store.Notifications(ctx, app, d.ID, user)
}

// SetNotifications changes a user's push setting for a dialog.
func (s *Service) SetNotifications(ctx context.Context, app, user int64, id string, enabled bool) error {
	d, err := s.visible(ctx, app, user, id)
	if err != nil {
		return err
	}
	return s.store.SetNotifications(ctx, app, d.ID, user, enabled)
}
