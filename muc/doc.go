// Package muc is chatd's XEP-0045 Multi-User Chat service on muc.<domain>,
// whose rooms are the group dialogs of chat history, with the semantics the
// QuickBlox SDK expects (see /work/shared/spec/quickblox-compat.md §7.5).
//
// # Rooms are dialogs
//
// Group (type 2) and public group (type 1) dialogs are rooms. A room's JID
// is <application_id>_<name>@muc.<domain>, where <name> is the dialog's
// RoomName: the dialog id for dialogs made over REST, the name a client
// chose for rooms made by joining. One room, one dialog, one history,
// whichever side made it. The dialog is the source of truth:
//
//   - a type 2 room is members-only: its members are the dialog's
//     occupants (affiliation member), its owner the dialog's creator
//     (affiliation owner, role moderator), its admins the dialog's admin_ids;
//   - a type 1 room is open to every user of the application;
//   - the nick is always the user id. A join with another nick is accepted
//     under the user id with status 210 (no impersonation, and QuickBlox
//     clients keep parsing user ids out of occupant JIDs); the reserved nick
//     a client may ask for (disco#info node x-roomuser-item, XEP-0045 §7.12)
//     is the user id. A user joined from
//     several resources is one occupant: the others see its join on the
//     first and its leave on the last;
//   - a room exists while its dialog exists. A join to a room that does not
//     exist, by a user of that application, creates a group dialog owned by
//     the joiner whose RoomName is the name (XEP-0045 §10.1.1, status 201).
//     The room is usable at once: it is members-only and its only member is
//     its owner, so locking it until configured would protect nothing; an
//     empty submitted form (instant room) or a full one (reserved room) are
//     both accepted afterwards. Names shaped like dialog ids (24 hex digits)
//     are never created by joining: joining the room of a deleted dialog
//     answers item-not-found instead of bringing it back as a new one. A
//     join without <x xmlns='http://jabber.org/protocol/muc'/> (groupchat
//     1.0) enters existing rooms only. Config.NoCreateByJoin (config
//     muc.create_by_join: false) turns creation by joining off: such a
//     join gets not-allowed (§10.1.1) and rooms are the dialogs made over
//     REST;
//   - a stanza to a room of another application is answered item-not-found:
//     nothing crosses applications.
//
// REST changes reach the rooms through history.Service.Observe: occupants
// removed by pull_all (or by leaving the dialog) who are in the room get an
// unavailable presence with status 301 and <item><actor jid=…/></item> (the
// only kick status the SDK handles), the others an unavailable presence
// without status codes (the SDK reads a status-less muc#user presence as a
// join or a leave); a deleted dialog destroys its room (unavailable with
// <destroy/> to everyone in it); push_all needs nothing, the new occupant may
// join; a rename is announced as the subject to standard clients.
//
// XEP-0045 use cases map onto the dialog where they can: the owner's
// configuration form changes the name (muc#roomconfig_roomname) and, for
// groups, is_join_required (field chatd#is_join_required); other fields
// follow from the dialog's type and are ignored when submitted. Destroying
// the room deletes the dialog for everyone; the occupants' <destroy/>
// carries the alternate venue and reason the owner gave. Affiliation member
// is push_all, none and outcast are pull_all (under the dialog's rules: any
// occupant may add, only the owner removes others), owner and admin cannot
// be given, and the owner stays the owner (conflict when it tries to change
// its own affiliation, the only owner, §10.6; not-allowed for others); an
// admin cannot ban itself (conflict, §9.1). An admin item sets an
// affiliation or a role, not both, of a user it names (bad-request
// otherwise, §17.4). A subject change renames the dialog. A kick (role none,
// moderators only) only takes the occupant out of the room: its presence
// carries statuses 307 then 110 (the SDK reads the first), the others' 307,
// except QuickBlox SDK sessions', which read a leave only without a status.
// A mediated invitation adds the invitee to the group, as adding them over
// REST does; direct invitations (XEP-0249) are plain 1:1 messages the XMPP
// server routes. Private messages go between joined occupants, marked with
// the service's empty muc#user <x/> in place of any the client added. IQs to
// an occupant other than the XEP-0410 self-ping are not forwarded.
//
// # Joining and leaving, as the SDK expects
//
// A join gets the other occupants' presences first (no status codes, each
// with an id), then its self-presence echoing the join's id with statuses
// 110 — first, as the SDK reads only the first <status> — then 100 (the
// room shows real JIDs: the nick is the user id anyway; items carry the bare
// JID), and 201/210 when they apply; then the history asked for; then the
// subject. Every presence the service emits carries an id.
// Join errors echo the id, include <x xmlns='http://jabber.org/protocol/muc'/>,
// come from the occupant JID asked for and carry the legacy error code
// (registration-required, 407, for a members-only room one is not in;
// item-not-found, 404, for no such room; jid-malformed without a nick).
//
// The subject heuristic: the QuickBlox SDK must not get a subject message
// on join (it would surface as an empty chat message), while standard
// clients need one to know the join is over (slixmpp's join_muc_wait waits
// for it). The SDK's join ids end with ":join"; a join whose id does not is
// sent the subject (the dialog's name) and later subject changes, one whose
// id does never is.
//
// History on join comes from chat history (Messages, newest first by
// date_sent, not marking anything read, then reversed), each message as the
// room delivered it with <delay from=room stamp=date_sent/>, honouring
// maxstanzas, maxchars (counted on the stanzas as sent), seconds and since,
// capped by Config.MaxHistory; a join without <history/> gets
// Config.DefaultHistory (20). QuickBlox clients send maxstanzas='0' and read
// history over REST. The history is sent after the self-presence outside
// the room's lock, so a live message may arrive between them.
//
// Leaving answers with the self-presence (110, the leave's id) and tells the
// others; a session's end (xmpp.Server.OnSessionEnd) removes it from every
// room it joined and tells the others.
//
// # Messages
//
// A groupchat message goes out from room/<sender id>, type groupchat, with
// the sender's id and payload and a <delay/> stamp (QuickBlox's MUC adds
// one; typing notifications get none), and comes back to its sender. With
// save_to_history it is first recorded through chat history (message_id,
// dialog_id and date_sent injected with xmpp.Annotate, unread counters of
// every occupant raised); a message from the REST API (a Sender without a
// Session, send_to_chat=1) is already stored and annotated and is only
// fanned out. Chat states are routed and never stored; chat markers belong
// in 1:1 messages to the sender's bare JID (XEP-0333 as QuickBlox uses it)
// and are only routed when sent to a room; corrections (XEP-0308) edit the
// stored text.
//
// When the dialog does not require joining (is_join_required 0, a group),
// occupants who did not join get the room's messages at their bare JID (on
// every available session that is not in the room) and may send without
// joining, as QuickBlox's own MUC does; when it does (and always for public
// groups) a session that did not join gets not-acceptable back.
//
// # Large rooms
//
// A message is encoded once (xmpp.NewItem) and the same item is enqueued to
// every recipient. The room keeps an immutable snapshot of its joined
// sessions, rebuilt on the first message after a membership change; fan-out
// reads it under the room's lock and enqueues with no lock held. Presence
// floods are bounded: in a room with more than Config.MaxBroadcastOccupants
// occupants (default 500), joins and leaves of others are not broadcast and
// a joiner gets only its own presence. An occupant's presence as the others
// see it is encoded once, when first needed, and shared; above the bound
// none is kept. BENCHMARKS.md has the figures.
//
// # Concurrency and lock ordering
//
// Route runs on the sender's reader goroutine (or a REST request's),
// observe on the goroutine that changed the dialog, sessionEnded on the
// ending session's reader goroutine; all of them only enqueue. State lives
// in memory: rooms are created on first join and dropped when empty.
//
//   - Service.mu guards the registry of live rooms and Service.smu the
//     rooms each session joined. Both are leaves: nothing else is taken
//     while either is held.
//   - room.mu guards one room. At most one room lock is held at a time, and
//     never while calling chat history (whose observers call back into this
//     package) or taking Service.mu or Service.smu.
//   - Sessions' queue locks (inside xmpp.Session.Enqueue) are taken under a
//     room lock in one place only: a joiner's own initial presences are
//     enqueued under its room's lock (one session, enqueues never block), so
//     that its self-presence precedes any message fanned out to it. Every
//     other enqueue happens with no lock of this package held.
//
// A joiner registers the room before reading its dialog, so a dialog change
// made meanwhile reaches the room; admission is checked under the room's
// lock against the newest state the room knows. A room that emptied or was
// destroyed is marked closed, and a join that raced with that starts again.
package muc
