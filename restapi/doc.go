// Package restapi serves chatd's QuickBlox-shaped REST API, the one the
// unmodified QuickBlox JavaScript SDK talks to (docs: the compatibility spec,
// quickblox-compat.md §3–§6). It is built on echo, whose types stay inside
// the package: callers see Config, New and Server.Handler.
//
// # Requests
//
// Every request passes, before routing, through: a request id (X-Request-Id,
// attached to every log line), an access log (debug level; paths only, never
// query strings, tokens, passwords or signatures), error rendering, panic
// recovery (a panicking handler is logged with its stack and answered 500;
// the server keeps serving), CORS (any OPTIONS request is a preflight and
// gets 204), and the removal of the ".json" suffix every QuickBlox path
// carries, so routes are written without it and paths without it work too.
//
// A routed request then has its parameters decoded (params.go) into one
// tree of strings, lists and maps — the query string, and for other methods
// than GET and HEAD a form or JSON body of at most Config.MaxBodyBytes —
// and is authenticated as its route requires (auth.go): a session token in
// the QB-Token header or the token parameter, or "Authorization: ApiKey
// <key>" with an optional On-Behalf-Of user id. The principal is kept in the
// request context, and every response to an authenticated request carries
// the session's expiry in QB-Token-ExpirationDate ("2030-01-01 10:00:00
// UTC"), except once the session is gone (DELETE /session.json, a deleted
// user) and for API keys, which have no session.
//
// # Parameters
//
// The decoder reads Rails-style keys: a=1, a[b]=1, a[b][c]=1, a[]=x,y (a
// list; the SDK joins arrays with commas, items are trimmed), a[][b]=1 (a
// list of maps), and JSON objects with nested objects and arrays, numbers and
// booleans kept as their text. Handlers read the tree through accessors
// (String, Int, Bool, Ints, Strings, Raw, Sub, List) and never see raw forms.
// Malformed input is answered 400, a body over the limit 413, a body that is
// neither a form nor JSON 415.
//
// # Errors
//
// Handlers return errors; errorResponse (errors.go) is the one place that
// turns them into a status and a QuickBlox {"errors": …} body. Errors of
// unknown cause are answered 500 with a generic message and logged with the
// request id.
//
// # Chat (compat §6)
//
// Served when Deps.History is set; every endpoint needs a user session (an
// application session is answered 403 "Forbidden. Need user."):
//
//	GET    /chat/Dialog.json                  200 {"total_entries","skip","limit","items":[dialog]}; count=1 → {"items_count":N}
//	GET    /chat/Dialog/{id}.json             200 dialog
//	POST   /chat/Dialog.json                  201 dialog (bare); the pair's existing private dialog → 200
//	PUT    /chat/Dialog/{id}.json             200 dialog
//	DELETE /chat/Dialog/{id1},{id2}.json      200 {"SuccessfullyDeleted":{"ids"},"NotFound":{"ids"},"WrongPermissions":{"ids"}}
//	GET    /chat/Dialog/{id}/notifications.json  200 {"notifications":{"enabled":1}}
//	PUT    /chat/Dialog/{id}/notifications.json  200 {"notifications":{"enabled":0}}
//	GET    /chat/Message.json?chat_dialog_id=…    200 {"skip","limit","items":[message]}; count=1 → {"items_count":N}
//	POST   /chat/Message.json                 201 message
//	PUT    /chat/Message/{id1},{id2}.json     200, empty body (also /chat/Message.json: every message of the dialog)
//	DELETE /chat/Message/{id1},{id2}.json     200 {"SuccessfullyDeleted","NotFound","WrongPermissions"}
//	GET    /chat/Message/unread.json          200 {"total":N,"<id>":n,…}
//	GET    /turn/credentials.json             200 {"username","password","ttl","uris"} (only with Deps.TURN)
//
// The rules (who may see, change or delete what; unread counting) are the
// history package's; this package reads parameters, renders, and maps its
// errors: not found 404, forbidden 403, validation 422 {"errors":{"field":
// ["msg"]}}, a malformed query 400 {"errors":["msg"]} naming the parameter,
// a duplicate 422.
//
// Decisions where QuickBlox's documents are silent or disagree:
//
//   - Lists take every parameter that is not a paging, sorting or control
//     key as a filter, field=v or field[op]=v (data[f]=v filters dialog
//     data); an unknown field or operator is 400, never ignored. count=1 is
//     answered {"items_count":N}, for dialogs and for messages alike: N is
//     the number of items the same filters select among those the caller
//     would be listed (for messages, not those they deleted for
//     themselves), limit and skip aside; counting messages marks none
//     read. A missing chat_dialog_id on GET /chat/Message is 422.
//   - ctn (dialogs, messages, and users' filter[]) is a substring match that
//     ignores the case of every letter, not only of ASCII ones
//     (name[ctn]=ärger finds "Ärger im Büro"), on either storage backend;
//     letters are folded one by one, so "ß" does not match "SS".
//   - A fraction in a filter on an integer field or a time
//     (date_sent[lt]=1700000000.5, as clients send) is compared exactly
//     with the stored whole seconds: lt 1.5 selects 1, gte 1.5 does not;
//     eq with a fraction selects nothing, ne everything; in and nin ignore
//     a fraction among their values (in with nothing else selects nothing,
//     nin everything), and all with one selects nothing. A number with an
//     exponent, an infinity or out of the 64-bit range is 400.
//   - Dialog JSON: name, photo and the last_message fields are null when
//     empty; xmpp_room_jid is null for private dialogs; occupants_ids is []
//     for public groups; is_join_required is 0/1 for groups and null
//     otherwise; data is left out when the dialog has none. Private
//     dialogs keep a null name (QuickBlox may show the opponent's).
//   - POST /chat/Dialog with type 2 needs occupants_ids naming a user other
//     than the caller, as QuickBlox requires; without one it is 422
//     {"errors":{"occupants_ids":["can't be blank"]}}. (A room made by
//     joining it over XMPP starts with its creator alone.)
//   - POST /chat/Dialog with type 3 for a pair that has its dialog answers
//     that dialog (200) and shows it again to a caller who had deleted
//     (hidden) it, so it is back in their list; their unread count in it
//     stays as it was.
//   - A PUT that empties a group deletes it (history's rule); the answer is
//     the dialog as it was, with no occupants.
//   - DELETE answers the three id lists for one id as well (the SDK reads
//     the text; QuickBlox's docs show an empty body for one id).
//   - Message JSON: recipient_id is 0 outside private dialogs; read is 1
//     when the private opponent read it; read_ids and delivered_ids are
//     sorted and hold the sender; attachments is [] when there are none;
//     markable is 1 or left out; custom parameters are top-level strings,
//     sorted, never under a standard key.
//   - POST /chat/Message: keys that name message fields (_id, sender_id,
//     dialog_id, read, created_at…) or control or extraParams words
//     (send_to_chat, system, save_to_history, moduleIdentifier, message_id,
//     attachment, token) are never custom parameters; a custom value that is
//     an object is 422, a list is joined with commas. date_sent from the
//     client is used under history's clock rule (within 5 s), as for XMPP.
//   - send_to_chat=1 stores first and then calls Chat.DeliverStored; a
//     failed live delivery (a group dialog while no MUC service is
//     registered, say) is logged and the answer is still 201: the message
//     is in the history, as for an XMPP sender whose recipient is away.
//   - system=1 is a system notification, not a chat message: it is NOT
//     stored (no history, no unread count, no last message). The message is
//     built here (a new ObjectId, date_sent = now), delivered with
//     Chat.DeliverSystem to the other user of a private dialog (named by
//     chat_dialog_id, or by recipient_id, which finds or creates the pair's
//     dialog as a first message would), and answered 201. A group dialog is
//     422. A headline to a user with no available session is dropped
//     (RFC 6121 allows it).
//   - Without Deps.Chat, send_to_chat=1 and system=1 are 503 and nothing is
//     stored.
//   - PUT /chat/Message: read=1 implies delivered; read=0 does nothing (a
//     message cannot become unread); ids of another dialog are ignored; an
//     edit (message=…) needs exactly one id of this dialog, by its sender;
//     a PUT with none of read, delivered, message is 422.
//   - GET /chat/Message/unread: "total" counts every dialog of the caller
//     (as QuickBlox's example, where total is more than the listed counts);
//     the other keys are exactly the requested ids, in request order, 0 for
//     unknown ones.
//   - GET /chat/Message marks the returned messages read (and delivered)
//     unless mark_as_read=0; HEAD never does.
//   - TURN credentials are answered with Cache-Control: no-store; ttl is in
//     seconds.
//
// # Extending
//
// Each area of the API (sessions, users, dialogs, messages, TURN
// credentials; later administration) is a table of routes — method, path,
// the access it needs and a handler taking a *request — registered in New.
// A handler reads r.params and r.principal and answers with r.json or
// r.empty.
//
// A Server is safe for concurrent use once New returns; routes are only
// added inside New. It holds no state of its own beyond configuration: the
// services in Deps are safe for concurrent use.
package restapi
