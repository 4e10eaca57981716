package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
)

// envelope is the JSON shape an error is rendered in. LiteLLM uses two, and
// clients parse whichever the route has always returned.
type envelope int

const (
	// envError is LiteLLM's ProxyException:
	// {"error":{"message":...,"type":...,"param":...,"code":"<status>"}}.
	envError envelope = iota
	// envDetail is FastAPI's HTTPException with a dict detail:
	// {"detail":{"error":...}}. LiteLLM uses it on /budget/*, /customer/block
	// and /customer/unblock.
	envDetail
)

// Error types LiteLLM puts in the "type" member of the error envelope.
const (
	typeAuth       = "auth_error"
	typeBadRequest = "bad_request" // literal used by the customer endpoints
	// typeBadRequestError is ProxyErrorTypes.bad_request_error, which its
	// validation_error aliases: used for 422s and the body size limit.
	typeBadRequestError = "bad_request_error"
	typeNotFound        = "not_found"
	typeInternal        = "internal_server_error"
)

// apiError is what a client may see of a failure. The cause, if any, is only
// logged.
type apiError struct {
	status  int
	env     envelope
	message string
	typ     string // envError only
	param   string // envError only; "" renders as null
	cause   error
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%d %s: %v", e.status, e.message, e.cause)
	}
	return fmt.Sprintf("%d %s", e.status, e.message)
}

func (e *apiError) Unwrap() error { return e.cause }

// errorEnv builds an error rendered in the {"error":{...}} envelope.
func errorEnv(status int, typ, param, message string) *apiError {
	return &apiError{status: status, env: envError, typ: typ, param: param, message: message}
}

// detailEnv builds an error rendered in the {"detail":{"error":...}} envelope.
func detailEnv(status int, message string) *apiError {
	return &apiError{status: status, env: envDetail, message: message}
}

// inEnv builds a client error in env; type and param only show in envError.
func inEnv(env envelope, status int, typ, param, message string) *apiError {
	if env == envDetail {
		return detailEnv(status, message)
	}
	return errorEnv(status, typ, param, message)
}

// internalError hides cause from the client behind a generic 500.
func internalError(env envelope, cause error) *apiError {
	e := inEnv(env, http.StatusInternalServerError, typeInternal, "", "Internal Server Error")
	e.cause = cause
	return e
}

type errorBody struct {
	Error errorMember `json:"error"`
}

type errorMember struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

type detailBody struct {
	Detail detailMember `json:"detail"`
}

type detailMember struct {
	Error string `json:"error"`
}

// fail answers the request with err. Errors that are not *apiError become a
// generic 500 in the route's envelope; causes go to the log only.
func fail(w http.ResponseWriter, log *slog.Logger, routeEnv envelope, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = internalError(routeEnv, err)
	}
	if ae.status >= http.StatusInternalServerError {
		log.Error("request failed", "status", ae.status, "err", err)
	} else {
		log.Debug("request rejected", "status", ae.status, "err", err)
	}
	var body any
	if ae.env == envDetail {
		body = detailBody{Detail: detailMember{Error: ae.message}}
	} else {
		m := errorMember{Message: ae.message, Type: ae.typ, Code: strconv.Itoa(ae.status)}
		if ae.param != "" {
			m.Param = &ae.param
		}
		body = errorBody{Error: m}
	}
	if err := writeJSON(w, ae.status, body); err != nil {
		log.Error("write error response", "err", err)
	}
}

// writeJSON sends v as the whole response body. HTML escaping is off so ids
// such as "a&b" come back as sent, as they do from LiteLLM.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// A failed write means the client went away; there is no one left to tell.
	_, _ = w.Write(buf.Bytes())
	return nil
}
