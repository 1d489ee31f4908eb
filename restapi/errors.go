package restapi

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"chatd/account"
	"chatd/history"
)

// The texts clients see. msgNoSession must contain "session does not exist":
// the QuickBlox SDK fires its sessionExpired hook on a 401 whose body does.
const (
	msgNoSession       = "Required session does not exist"
	msgUnauthorized    = "Unauthorized"
	msgTooManyAttempts = "Too many failed login attempts for this user; retry after the time in Retry-After"
	msgBadSignature    = "Unexpected signature"
	msgNeedUser        = "Forbidden. Need user."
	msgForbidden       = "You don't have appropriate permissions to perform this operation"
	msgNotFound        = "Entity you are looking for was not found"
	msgTooLarge        = "Request entity too large"
	msgUnsupported     = "Unsupported content type: send application/x-www-form-urlencoded or application/json"
	msgNoChat          = "Chat delivery is not available"
	msgInternalServer  = "Internal server error"
)

// errPanic stands for a recovered panic; the panic itself is logged where it
// is recovered.
var errPanic = errors.New("restapi: handler panicked")

// errNoChat: send_to_chat or system asked for live delivery and the API has
// no chat server to deliver with (503).
var errNoChat = errors.New("restapi: no chat server to deliver with")

// fieldErrors is a QuickBlox validation body: {"errors":{"field":["msg"]}}.
type fieldErrors map[string][]string

// errorsBody is the body of every error response: {"errors": …} where … is a
// list of messages or a fieldErrors.
type errorsBody struct {
	Errors any `json:"errors"`
}

func list(msgs ...string) errorsBody                 { return errorsBody{msgs} }
func fields(field string, msgs ...string) errorsBody { return errorsBody{fieldErrors{field: msgs}} }

// errorResponse is the one place where an error becomes an HTTP status and a
// QuickBlox error body. internal reports an error whose cause is ours (5xx):
// its details are logged, never sent.
func errorResponse(err error) (status int, body errorsBody, internal bool) {
	var (
		verr  *account.ValidationError
		dup   *account.DuplicateError
		perr  *paramError
		herr  *echo.HTTPError
		hverr *history.ValidationError
		qerr  *history.QueryError
	)
	switch {
	case errors.As(err, &hverr):
		return http.StatusUnprocessableEntity, fields(hverr.Field, hverr.Msg), false
	case errors.As(err, &qerr):
		return http.StatusBadRequest, list(qerr.Msg), false
	case errors.Is(err, history.ErrNotFound):
		return http.StatusNotFound, list(msgNotFound), false
	case errors.Is(err, history.ErrForbidden):
		return http.StatusForbidden, list(msgForbidden), false
	case errors.Is(err, history.ErrDuplicate):
		return http.StatusUnprocessableEntity, fields("base", "already exists"), false
	case errors.Is(err, errNoChat):
		return http.StatusServiceUnavailable, list(msgNoChat), false
	case errors.Is(err, errAdmin):
		return http.StatusUnauthorized, list("Admin token required"), false
	case errors.As(err, &verr):
		fe := fieldErrors{}
		for _, f := range verr.Fields {
			fe[f.Field] = append(fe[f.Field], f.Message)
		}
		return http.StatusUnprocessableEntity, errorsBody{fe}, false
	case errors.As(err, &dup):
		return http.StatusUnprocessableEntity, fields(dup.Field, "has already been taken"), false
	case errors.As(err, &perr):
		return http.StatusBadRequest, list(perr.Msg), false
	case errors.Is(err, errBodyTooLarge):
		return http.StatusRequestEntityTooLarge, list(msgTooLarge), false
	case errors.Is(err, errUnsupportedMedia):
		return http.StatusUnsupportedMediaType, list(msgUnsupported), false
	case errors.Is(err, account.ErrNoSession):
		return http.StatusUnauthorized, fields("base", msgNoSession), false
	case errors.Is(err, account.ErrTooManyAttempts):
		return http.StatusTooManyRequests, fields("base", msgTooManyAttempts), false
	case errors.Is(err, account.ErrBadCredentials):
		return http.StatusUnauthorized, list(msgUnauthorized), false
	case errors.Is(err, account.ErrBadSignature):
		return http.StatusUnprocessableEntity, fields("base", msgBadSignature), false
	case errors.Is(err, account.ErrStaleTimestamp):
		return http.StatusUnprocessableEntity, fields("timestamp", "is too far from the server's clock"), false
	case errors.Is(err, account.ErrNonceReused):
		return http.StatusUnprocessableEntity, fields("nonce", "has already been used"), false
	case errors.Is(err, account.ErrNeedUser):
		return http.StatusForbidden, list(msgNeedUser), false
	case errors.Is(err, account.ErrForbidden):
		return http.StatusForbidden, list(msgForbidden), false
	case errors.Is(err, account.ErrNotFound):
		return http.StatusNotFound, list(msgNotFound), false
	case errors.As(err, &herr) && herr.Code < http.StatusInternalServerError:
		return herr.Code, list(http.StatusText(herr.Code)), false
	}
	return http.StatusInternalServerError, list(msgInternalServer), true
}
