// Package restapi serves chatd's QuickBlox-shaped REST API, the one the
// unmodified QuickBlox JavaScript SDK talks to (docs: the compatibility spec,
// quickblox-compat.md §3–§5). It is built on echo, whose types stay inside
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
// # Extending
//
// Each area of the API (sessions, users; later dialogs, messages, TURN
// credentials, administration) is a table of routes — method, path, the
// access it needs and a handler taking a *request — registered in New.
// A handler reads r.params and r.principal and answers with r.json or
// r.empty.
//
// A Server is safe for concurrent use once New returns; routes are only
// added inside New.
package restapi
