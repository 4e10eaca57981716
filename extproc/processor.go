package extproc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate-dev/tollgate/store"
)

// meteredPaths are the OpenAI-style endpoints whose POSTs are admitted and
// charged. Everything else passes through with only the credential handling.
var meteredPaths = map[string]bool{
	"/chat/completions":    true,
	"/v1/chat/completions": true,
	"/completions":         true,
	"/v1/completions":      true,
	"/embeddings":          true,
	"/v1/embeddings":       true,
}

// customerHeaders are LiteLLM's standard customer-id headers, in priority order.
var customerHeaders = []string{"x-litellm-customer-id", "x-litellm-end-user-id"}

// costHeader carries the request's cost on buffered responses, as LiteLLM does.
const costHeader = "x-litellm-response-cost"

// processor is the state of one ext_proc stream, that is of one HTTP request.
type processor struct {
	s   *Server
	log *slog.Logger

	// requestID is tollgate's own id for the request: the at-most-once key of
	// its spend record. The client's x-request-id is kept for correlation only,
	// because a client can repeat it.
	requestID       string
	clientRequestID string
	start           time.Time
	path            string
	metered         bool
	customerID      string
	model           string

	// usage reads the response body; nil when the response is not metered.
	usage usageReader
}

func (p *processor) handle(ctx context.Context, req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	switch r := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return p.requestHeaders(ctx, r.RequestHeaders), nil
	case *extprocv3.ProcessingRequest_RequestBody:
		return p.requestBody(ctx, r.RequestBody), nil
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return p.responseHeaders(ctx, r.ResponseHeaders), nil
	case *extprocv3.ProcessingRequest_ResponseBody:
		return p.responseBody(ctx, r.ResponseBody), nil
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{
			RequestTrailers: &extprocv3.TrailersResponse{}}}, nil
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{
			ResponseTrailers: &extprocv3.TrailersResponse{}}}, nil
	default:
		return nil, status.Errorf(codes.InvalidArgument, "unexpected ext_proc message %T", r)
	}
}

func (p *processor) requestHeaders(ctx context.Context, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	hdr := headerMap(h.GetHeaders())
	p.start = p.s.cfg.Now()
	p.requestID = p.s.cfg.NewID()
	p.clientRequestID = hdr["x-request-id"]
	p.log = p.s.log.With("request_id", p.requestID)
	p.path, _, _ = strings.Cut(hdr[":path"], "?")
	p.metered = hdr[":method"] == "POST" && meteredPaths[p.path]
	p.log.Debug("request", "method", hdr[":method"], "path", p.path, "metered", p.metered, "client_request_id", p.clientRequestID)

	if p.s.cfg.DataPlaneAuth {
		if reject := p.authenticate(hdr); reject != nil {
			return reject
		}
	}
	resp := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
		RequestHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{
			HeaderMutation: p.credentialMutation(),
		}},
	}}
	if !p.metered {
		// Nothing more to see: Envoy sends no body or response for this request.
		resp.ModeOverride = &filterv3.ProcessingMode{
			RequestBodyMode:    filterv3.ProcessingMode_NONE,
			ResponseHeaderMode: filterv3.ProcessingMode_SKIP,
			ResponseBodyMode:   filterv3.ProcessingMode_NONE,
		}
		return resp
	}
	if id := customerFromHeaders(hdr, p.s.cfg.UserHeaderName); id != "" {
		// The cheapest reject: the body is never read and the upstream never called.
		p.customerID = id
		if reject := p.admit(ctx); reject != nil {
			return reject
		}
	}
	return resp
}

// authenticate returns the 401 to send, or nil when the caller presented the master key.
func (p *processor) authenticate(hdr map[string]string) *extprocv3.ProcessingResponse {
	key := apiKey(hdr)
	if key == "" {
		p.log.Info("rejected", "reason", "no api key")
		return errorResponse(401, "auth_error", "Authentication Error, No api key passed in.", "tollgate_auth_missing")
	}
	if !p.s.validKey(key) {
		p.log.Info("rejected", "reason", "invalid api key")
		return errorResponse(401, "auth_error", "Authentication Error, Invalid proxy server token passed.", "tollgate_auth_invalid")
	}
	return nil
}

// apiKey finds the caller's key where LiteLLM looks: authorization (Bearer),
// then Azure's api-key, then Anthropic's x-api-key.
func apiKey(hdr map[string]string) string {
	if auth := hdr["authorization"]; len(auth) > len("bearer ") && strings.EqualFold(auth[:len("bearer ")], "bearer ") {
		if key := strings.TrimSpace(auth[len("bearer "):]); key != "" {
			return key
		}
	}
	if key := strings.TrimSpace(hdr["api-key"]); key != "" {
		return key
	}
	return strings.TrimSpace(hdr["x-api-key"])
}

// credentialMutation keeps the caller's key away from the upstream, and gives
// the upstream tollgate's key when one is configured.
func (p *processor) credentialMutation() *extprocv3.HeaderMutation {
	m := &extprocv3.HeaderMutation{RemoveHeaders: []string{"api-key", "x-api-key"}}
	if key := p.s.cfg.UpstreamAPIKey; key != "" {
		// Overwriting replaces the caller's authorization; it is not also
		// removed, because the order of removes and sets is Envoy's business.
		m.SetHeaders = []*corev3.HeaderValueOption{setHeader("authorization", "Bearer "+key)}
	} else {
		m.RemoveHeaders = append(m.RemoveHeaders, "authorization")
	}
	return m
}

func (p *processor) requestBody(ctx context.Context, b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	resp := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{
		RequestBody: &extprocv3.BodyResponse{},
	}}
	if !p.metered {
		return resp
	}
	body := b.GetBody()
	if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
		p.log.Info("rejected", "reason", "request body is not a JSON object", "bytes", len(body))
		return errorResponse(400, "invalid_request_error", "Invalid request body: expected a JSON object.", "tollgate_invalid_body")
	}
	if m := gjson.GetBytes(body, "model"); m.Type == gjson.String {
		p.model = m.Str
	}
	if p.customerID == "" { // a header naming the customer wins, and was checked already
		if p.customerID = customerFromBody(body); p.customerID != "" {
			if reject := p.admit(ctx); reject != nil {
				return reject
			}
		}
	}
	return resp
}

// admit runs the admission check for p.customerID: blocked customers and
// customers at or over their budget are rejected; a store failure fails closed.
func (p *processor) admit(ctx context.Context) *extprocv3.ProcessingResponse {
	ctx, cancel := context.WithTimeout(ctx, p.s.cfg.StoreTimeout)
	defer cancel()

	id := p.customerID
	c, err := p.s.store.GetCustomer(ctx, id)
	known := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return p.unavailable(fmt.Errorf("get customer %q: %w", id, err))
	}
	if known && c.Blocked {
		p.log.Info("rejected", "reason", "customer blocked", "customer", id)
		return errorResponse(403, "customer_blocked",
			"User blocked from making LLM API Calls. User="+id, "tollgate_customer_blocked")
	}
	b, ok, err := p.budget(ctx, c, known)
	if err != nil {
		return p.unavailable(err)
	}
	if !ok || b.MaxBudget == nil {
		return nil
	}
	// An unknown customer has spent nothing, so a default budget of 0 still
	// blocks it: >= rather than LiteLLM's >.
	if c.Spend >= *b.MaxBudget {
		p.log.Info("rejected", "reason", "budget exceeded", "customer", id, "budget_id", b.BudgetID,
			"spend", c.Spend.String(), "max_budget", b.MaxBudget.String())
		return errorResponse(p.s.cfg.BudgetExceededStatus, "budget_exceeded",
			fmt.Sprintf("ExceededBudget: End User=%s over budget. Spend=%s, Budget=%s", id, c.Spend, *b.MaxBudget),
			"tollgate_budget_exceeded")
	}
	return nil
}

// budget returns the budget that limits customer c: its own, else the default
// budget. ok is false when no budget applies.
func (p *processor) budget(ctx context.Context, c store.Customer, known bool) (b store.Budget, ok bool, err error) {
	if known && c.BudgetID != nil {
		b, err := p.s.store.GetBudget(ctx, *c.BudgetID)
		if err == nil {
			return b, true, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return store.Budget{}, false, fmt.Errorf("get budget %q: %w", *c.BudgetID, err)
		}
		p.log.Warn("customer's budget does not exist; applying the default budget", "customer", c.UserID, "budget_id", *c.BudgetID)
	}
	id := p.s.cfg.DefaultBudgetID
	if id == "" {
		return store.Budget{}, false, nil
	}
	b, err = p.s.store.GetBudget(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		if p.s.defaultBudgetMissingLogged.CompareAndSwap(false, true) {
			p.s.log.Warn("default end-user budget (max_end_user_budget_id) does not exist; customers without a budget are not limited", "budget_id", id)
		}
		return store.Budget{}, false, nil
	}
	if err != nil {
		return store.Budget{}, false, fmt.Errorf("get default budget %q: %w", id, err)
	}
	return b, true, nil
}

func (p *processor) unavailable(err error) *extprocv3.ProcessingResponse {
	p.log.Error("admission check failed; rejecting the request", "customer", p.customerID, "err", err)
	return errorResponse(503, "service_unavailable",
		"Spend tracking is unavailable, so the budget could not be checked. Try again later.", "tollgate_store_unavailable")
}

func (p *processor) responseHeaders(ctx context.Context, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	headersResp := &extprocv3.HeadersResponse{}
	resp := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: headersResp}}
	if !p.metered {
		return resp
	}
	hdr := headerMap(h.GetHeaders())
	code, _ := strconv.Atoi(hdr[":status"])
	switch {
	case code < 200 || code > 299:
		// Errors pass through untouched and cost nothing.
		resp.ModeOverride = &filterv3.ProcessingMode{ResponseBodyMode: filterv3.ProcessingMode_NONE}
	case isEventStream(hdr["content-type"]):
		// Streamed bodies are passed on chunk by chunk, unread for now, so
		// they record nothing; an SSE usageReader set here would meter them.
		// content-length must go, or Envoy cuts the stream after one chunk.
		resp.ModeOverride = &filterv3.ProcessingMode{ResponseBodyMode: filterv3.ProcessingMode_STREAMED}
		headersResp.Response = &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{
			RemoveHeaders: []string{"content-length"},
		}}
	case h.GetEndOfStream():
		// No body follows, so this is the last chance to record the request.
		cost := p.record(ctx, responseUsage{}, errors.New("response has no body"))
		headersResp.Response = &extprocv3.CommonResponse{HeaderMutation: costMutation(cost)}
	default:
		p.usage = &jsonUsage{encoding: hdr["content-encoding"]}
	}
	return resp
}

func (p *processor) responseBody(ctx context.Context, b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	bodyResp := &extprocv3.BodyResponse{}
	resp := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: bodyResp}}
	if p.usage == nil {
		return resp
	}
	p.usage.Write(b.GetBody())
	if !b.GetEndOfStream() {
		return resp
	}
	u, err := p.usage.Usage()
	p.usage = nil
	cost := p.record(ctx, u, err)
	// A reply to a BUFFERED body may still change the response headers.
	bodyResp.Response = &extprocv3.CommonResponse{HeaderMutation: costMutation(cost)}
	return resp
}

// record prices the served request and writes its spend log before Envoy gets
// the reply, so the spend is durable by the time the client sees the response.
// A response without readable usage is still recorded, with 0 tokens, so the
// request is visible in the spend logs.
func (p *processor) record(ctx context.Context, u responseUsage, usageErr error) store.Nano {
	if usageErr != nil {
		p.log.Warn("no usage in response; recording 0 tokens", "model", p.model, "err", usageErr)
	}
	model, price, priced := p.s.price(p.model, u.Model)
	if !priced {
		p.s.logUnpriced(model)
	}
	cost := price.Cost(u.Usage)
	l := store.SpendLog{
		RequestID:           p.requestID,
		ClientRequestID:     p.clientRequestID,
		CustomerID:          p.customerID,
		Model:               model,
		Path:                p.path,
		PromptTokens:        u.PromptTokens,
		CompletionTokens:    u.CompletionTokens,
		TotalTokens:         u.TotalTokens,
		CacheReadTokens:     u.CachedTokens,
		CacheCreationTokens: u.CacheCreationTokens,
		ReasoningTokens:     u.ReasoningTokens,
		Cost:                cost,
		Unpriced:            !priced,
		StartTime:           p.start,
		EndTime:             p.s.cfg.Now(),
	}
	// The upstream has been paid for even if Envoy gives up on this stream, so
	// the write outlives the stream's context.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.s.cfg.StoreTimeout)
	defer cancel()
	_, err := p.s.store.RecordSpend(ctx, l)
	switch {
	case errors.Is(err, store.ErrDuplicateRequest):
		p.log.Debug("spend already recorded", "err", err)
	case err != nil:
		p.log.Error("record spend failed", "customer", p.customerID, "model", model, "cost", cost.String(), "err", err)
	default:
		p.log.Info("spend recorded", "customer", p.customerID, "model", model,
			"prompt_tokens", u.PromptTokens, "completion_tokens", u.CompletionTokens, "cost", cost.String(), "unpriced", !priced)
	}
	return cost
}

func costMutation(cost store.Nano) *extprocv3.HeaderMutation {
	return &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader(costHeader, cost.String())}}
}

func setHeader(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: key, RawValue: []byte(value)},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// headerMap flattens Envoy's header list; the first value of a repeated header wins.
func headerMap(hm *corev3.HeaderMap) map[string]string {
	m := make(map[string]string, len(hm.GetHeaders()))
	for _, h := range hm.GetHeaders() {
		k := strings.ToLower(h.GetKey())
		if _, dup := m[k]; dup {
			continue
		}
		v := string(h.GetRawValue())
		if v == "" {
			v = h.GetValue()
		}
		m[k] = v
	}
	return m
}

func isEventStream(contentType string) bool {
	mediaType, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mediaType), "text/event-stream")
}
