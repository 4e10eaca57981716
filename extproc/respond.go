package extproc

import (
	"bytes"
	"encoding/json"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/tollgate-dev/tollgate/admin/metrics"
)

// errorEnvelope is LiteLLM's data-plane error body:
// {"error":{"message":…,"type":…,"param":null,"code":"<status>"}}.
type errorEnvelope struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// outcomes maps each rejection (by the details errorResponse gives it) to
// its metrics outcome.
var outcomes = map[string]string{
	"tollgate_auth_missing":           metrics.OutcomeUnauthenticated,
	"tollgate_auth_invalid":           metrics.OutcomeUnauthenticated,
	"tollgate_invalid_body":           metrics.OutcomeBadRequest,
	"tollgate_body_too_large":         metrics.OutcomeBadRequest,
	"tollgate_customer_blocked":       metrics.OutcomeBlocked,
	"tollgate_budget_exceeded":        metrics.OutcomeBudgetExceeded,
	"tollgate_model_budget_exceeded":  metrics.OutcomeModelBudgetExceeded,
	"tollgate_rate_limit":             metrics.OutcomeRateLimited,
	"tollgate_parallel_request_limit": metrics.OutcomeParallelLimited,
	"tollgate_store_unavailable":      metrics.OutcomeUnavailable,
}

// errorResponse is a local reply sent by Envoy instead of calling the upstream,
// with extra headers if any. details shows up in Envoy's %RESPONSE_CODE_DETAILS%.
func errorResponse(code int, typ, message, details string, headers ...*corev3.HeaderValueOption) *extprocv3.ProcessingResponse {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // ids with < or & read as sent, as in LiteLLM's bodies
	// Encoding a struct of strings cannot fail.
	_ = enc.Encode(errorEnvelope{Error: errorBody{Message: message, Type: typ, Code: strconv.Itoa(code)}})
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode(code)},
			Headers: &extprocv3.HeaderMutation{SetHeaders: append([]*corev3.HeaderValueOption{
				setHeader("content-type", "application/json"),
			}, headers...)},
			Body:    bytes.TrimSuffix(buf.Bytes(), []byte("\n")),
			Details: details,
		},
	}}
}
