package extproc

import (
	"bytes"
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

	"github.com/tollgate-dev/tollgate/admin/metrics"
	"github.com/tollgate-dev/tollgate/extproc/limits"
	"github.com/tollgate-dev/tollgate/extproc/pricing"
	"github.com/tollgate-dev/tollgate/store"
)

// customerHeaders are LiteLLM's standard customer-id headers, in priority order.
var customerHeaders = []string{"x-litellm-customer-id", "x-litellm-end-user-id"}

// costHeader carries the request's cost on buffered responses, as LiteLLM does.
const costHeader = "x-litellm-response-cost"

// credentialHeaders are where callers present keys; none reaches the upstream.
var credentialHeaders = []string{"api-key", "x-api-key", "authorization"}

// The mode overrides tollgate sends. Envoy only reads them, so every
// stream shares them, as it shares Server.credentials.
var (
	// skipTheRest: the request is not metered, so Envoy sends nothing more.
	skipTheRest = &filterv3.ProcessingMode{
		RequestBodyMode:    filterv3.ProcessingMode_NONE,
		ResponseHeaderMode: filterv3.ProcessingMode_SKIP,
		ResponseBodyMode:   filterv3.ProcessingMode_NONE,
	}
	// partialRequestBody reads a body of unknown length. Body modes in an
	// override are always explicit, hence the response's.
	partialRequestBody = &filterv3.ProcessingMode{
		RequestBodyMode:  filterv3.ProcessingMode_BUFFERED_PARTIAL,
		ResponseBodyMode: filterv3.ProcessingMode_BUFFERED,
	}
	// responseBodyModes set how the response body is read.
	responseBodyModes = map[filterv3.ProcessingMode_BodySendMode]*filterv3.ProcessingMode{
		filterv3.ProcessingMode_NONE:             {ResponseBodyMode: filterv3.ProcessingMode_NONE},
		filterv3.ProcessingMode_STREAMED:         {ResponseBodyMode: filterv3.ProcessingMode_STREAMED},
		filterv3.ProcessingMode_BUFFERED:         {ResponseBodyMode: filterv3.ProcessingMode_BUFFERED},
		filterv3.ProcessingMode_BUFFERED_PARTIAL: {ResponseBodyMode: filterv3.ProcessingMode_BUFFERED_PARTIAL},
	}
)

// processor is the state of one ext_proc stream, that is of one HTTP request.
type processor struct {
	s *Server
	// log is the request's logger, made by logger on first use.
	log *slog.Logger

	// requestID is tollgate's own id for the request: the at-most-once key of
	// its spend record. The client's x-request-id is kept for correlation only,
	// because a client can repeat it.
	requestID       string
	clientRequestID string
	start           time.Time
	path            string
	route           route
	metered         bool
	customerID      string
	model           string

	// reqBody is the request body, kept to count its prompt tokens locally
	// should the upstream report no usage.
	reqBody []byte
	// partialRequest: the request's length was not announced, so Envoy sends
	// its body BUFFERED_PARTIAL, and a body not ended is one over its buffer.
	partialRequest bool
	// forcedUsage: tollgate set stream_options.include_usage, so the
	// usage-only chunk it adds to the stream is removed again.
	forcedUsage bool

	// body reads the response body; nil when the response is not metered, and
	// once its spend is recorded.
	body bodyReader
	// bufferedResponse: the response body arrives in one message (BUFFERED or
	// BUFFERED_PARTIAL), whose reply may still set response headers.
	bufferedResponse bool
	// partialResponse: the body is BUFFERED_PARTIAL, so its first message is
	// the only one tollgate sees, ended or not.
	partialResponse bool
	// bodyChunks counts the response body messages read, for the logs.
	bodyChunks int

	// cust is the customer as admission read it (zero when not stored yet),
	// and budget the budget that limits it (its own or the default), nil for
	// none.
	cust   store.Customer
	budget *store.Budget
	// modelBudget is the model_max_budget entry the request counts against.
	modelBudget string
	// ticket and modelTicket hold the request's place in the rate and
	// parallel limits, holds its strict-budget reservations; finish gives
	// them back.
	ticket, modelTicket *limits.Ticket
	holds               []*limits.Hold
	// forwarded: every check passed and the request went upstream, so it
	// counts against the rate limits with usedTokens.
	forwarded  bool
	usedTokens int64
}

// logger returns the request's logger. It is made on first use because
// most requests log nothing at the default level and With allocates.
func (p *processor) logger() *slog.Logger {
	if p.requestID == "" {
		return p.s.log
	}
	if p.log == nil {
		p.log = p.s.log.With("request_id", p.requestID)
	}
	return p.log
}

// handle answers one message, and measures it: how long it took, and the
// request's admission decision once there is one.
func (p *processor) handle(ctx context.Context, req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	start := time.Now()
	var (
		phase string
		resp  *extprocv3.ProcessingResponse
		// decided: a metered request goes upstream unless resp rejects it.
		decided bool
	)
	switch r := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		phase, resp = metrics.PhaseRequestHeaders, p.requestHeaders(ctx, r.RequestHeaders)
		decided = p.metered && r.RequestHeaders.GetEndOfStream()
	case *extprocv3.ProcessingRequest_RequestBody:
		phase, resp = metrics.PhaseRequestBody, p.requestBody(ctx, r.RequestBody)
		decided = p.metered
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		phase, resp = metrics.PhaseResponseHeaders, p.responseHeaders(ctx, r.ResponseHeaders)
	case *extprocv3.ProcessingRequest_ResponseBody:
		phase, resp = metrics.PhaseResponseBody, p.responseBody(ctx, r.ResponseBody)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		phase, resp = metrics.PhaseRequestTrailers, &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{
			RequestTrailers: &extprocv3.TrailersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		phase, resp = metrics.PhaseResponseTrailers, &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{
			ResponseTrailers: &extprocv3.TrailersResponse{}}}
	default:
		return nil, status.Errorf(codes.InvalidArgument, "unexpected ext_proc message %T", r)
	}
	m := p.s.cfg.Metrics
	if ir := resp.GetImmediateResponse(); ir != nil {
		m.Decision(outcomes[ir.GetDetails()])
	} else if decided {
		m.Decision(metrics.OutcomeAllowed)
	}
	m.ObservePhase(phase, time.Since(start))
	return resp, nil
}

func (p *processor) requestHeaders(ctx context.Context, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	hdr := headers(h.GetHeaders().GetHeaders())
	p.start = p.s.cfg.Now()
	p.requestID = p.s.cfg.NewID()
	p.clientRequestID = hdr.get("x-request-id")
	p.path, _, _ = strings.Cut(hdr.get(":path"), "?")
	p.route = parseRoute(p.path)
	p.metered = hdr.get(":method") == "POST" && p.route.api != apiNone
	if p.s.log.Enabled(ctx, slog.LevelDebug) {
		p.logger().Debug("request", "method", hdr.get(":method"), "path", p.path, "metered", p.metered, "client_request_id", p.clientRequestID)
	}

	if p.s.cfg.DataPlaneAuth {
		if reject := p.authenticate(hdr); reject != nil {
			return reject
		}
	}
	resp := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
		RequestHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{
			HeaderMutation: p.s.credentials[credentialStyleFor(p.route, p.path, hdr)],
		}},
	}}
	if !p.metered {
		// Nothing more to see: Envoy sends no body or response for this request.
		resp.ModeOverride = skipTheRest
		return resp
	}
	if n, ok := contentLength(hdr); ok && n > p.s.cfg.MaxRequestBodyBytes {
		return p.tooLarge()
	} else if !ok && !h.GetEndOfStream() {
		// Without a length Envoy cannot tell a body over its buffer before it
		// has it: BUFFERED_PARTIAL hands over what fits, so tollgate answers
		// 413 itself instead of Envoy's plain-text one. Body modes in an
		// override are always explicit, hence the response's.
		p.partialRequest = true
		resp.ModeOverride = partialRequestBody
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
func (p *processor) authenticate(hdr headers) *extprocv3.ProcessingResponse {
	key := apiKey(hdr)
	if key == "" {
		p.logger().Info("rejected", "reason", "no api key")
		return errorResponse(401, "auth_error", "Authentication Error, No api key passed in.", "tollgate_auth_missing")
	}
	if !p.s.validKey(key) {
		p.logger().Info("rejected", "reason", "invalid api key")
		return errorResponse(401, "auth_error", "Authentication Error, Invalid proxy server token passed.", "tollgate_auth_invalid")
	}
	return nil
}

// apiKey finds the caller's key where LiteLLM looks: authorization (Bearer),
// then Azure's api-key, then Anthropic's x-api-key.
func apiKey(hdr headers) string {
	if auth := hdr.get("authorization"); len(auth) > len("bearer ") && strings.EqualFold(auth[:len("bearer ")], "bearer ") {
		if key := strings.TrimSpace(auth[len("bearer "):]); key != "" {
			return key
		}
	}
	if key := strings.TrimSpace(hdr.get("api-key")); key != "" {
		return key
	}
	return strings.TrimSpace(hdr.get("x-api-key"))
}

// credentialMutation keeps the caller's key away from the upstream, and gives
// the upstream tollgate's key (when key is set) where style says.
func credentialMutation(key string, style credentialStyle) *extprocv3.HeaderMutation {
	header, value := "authorization", "Bearer "+key
	switch style {
	case anthropicCredential:
		header, value = "x-api-key", key
	case azureCredential:
		header, value = "api-key", key
	}
	m := &extprocv3.HeaderMutation{}
	for _, h := range credentialHeaders {
		// The header that gets the key is overwritten rather than also
		// removed, because the order of removes and sets is Envoy's business.
		if h != header || key == "" {
			m.RemoveHeaders = append(m.RemoveHeaders, h)
		}
	}
	if key != "" {
		m.SetHeaders = []*corev3.HeaderValueOption{setHeader(header, value)}
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
	// In BUFFERED_PARTIAL mode Envoy sends a body before its end only when
	// its buffer is full. (It would also do so before request trailers, which
	// LLM clients do not send.)
	if int64(len(body)) > p.s.cfg.MaxRequestBodyBytes || (p.partialRequest && !b.GetEndOfStream()) {
		return p.tooLarge()
	}
	if !shallowJSON(body) || !gjson.ValidBytes(body) || !isObject(body) {
		p.logger().Info("rejected", "reason", "request body is not a JSON object", "bytes", len(body))
		return errorResponse(400, "invalid_request_error", "Invalid request body: expected a JSON object.", "tollgate_invalid_body")
	}
	p.reqBody = body
	if m := gjson.GetBytes(body, "model"); m.Type == gjson.String {
		p.model = m.Str
	}
	if p.model == "" {
		p.model = p.route.deployment
	}
	if p.customerID == "" { // a header naming the customer wins, and was checked already
		if p.customerID = customerFromBody(body); p.customerID != "" {
			if reject := p.admit(ctx); reject != nil {
				return reject
			}
		}
	}
	if reject := p.limit(ctx, body); reject != nil {
		return reject
	}
	if mutated := p.includeUsage(body); mutated != nil {
		resp.GetRequestBody().Response = mutated
	}
	return resp
}

// includeUsage asks an OpenAI-compatible upstream to end a stream with its
// usage, when the client did not ask: only then does a stream say what it
// cost. It returns the body mutation, or nil.
func (p *processor) includeUsage(body []byte) *extprocv3.CommonResponse {
	if p.route.api != apiChat && p.route.api != apiCompletions ||
		gjson.GetBytes(body, "stream").Type != gjson.True {
		return nil
	}
	out, ok := forceIncludeUsage(body)
	if !ok {
		return nil
	}
	p.forcedUsage = true
	if p.s.log.Enabled(context.Background(), slog.LevelDebug) {
		p.logger().Debug("set stream_options.include_usage", "bytes", len(out))
	}
	common := &extprocv3.CommonResponse{
		BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: out}},
	}
	if !p.partialRequest {
		// BUFFERED keeps content-length, and Envoy rejects a body that no
		// longer matches it.
		common.HeaderMutation = &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
			setHeader("content-length", strconv.Itoa(len(out))),
		}}
	}
	return common
}

// tooLarge rejects a request body over MaxRequestBodyBytes.
func (p *processor) tooLarge() *extprocv3.ProcessingResponse {
	limit := p.s.cfg.MaxRequestBodyBytes
	p.logger().Info("rejected", "reason", "request body too large", "limit", limit)
	return errorResponse(413, "invalid_request_error",
		fmt.Sprintf("Request body is too large: the limit is %d bytes.", limit), "tollgate_body_too_large")
}

// admit runs the admission check for p.customerID: blocked customers and
// customers at or over their budget are rejected; a store failure fails closed.
// Only the spend of the budget's current window counts: from a reset on, the
// spend before it is zero here, whenever the store rolls it over.
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
		p.logger().Info("rejected", "reason", "customer blocked", "customer", id)
		return errorResponse(403, "customer_blocked",
			"User blocked from making LLM API Calls. User="+id, "tollgate_customer_blocked")
	}
	b, ok, err := p.budgetOf(ctx, c, known)
	if err != nil {
		return p.unavailable(err)
	}
	p.cust = c
	if !ok {
		return nil
	}
	p.budget = &b
	if b.MaxBudget == nil {
		return nil
	}
	// An unknown customer has spent nothing, so a default budget of 0 still
	// blocks it: >= rather than LiteLLM's >.
	spend := c.SpendIn(store.BudgetWindow(b, p.start, p.s.cfg.Location), p.start)
	if spend >= *b.MaxBudget {
		p.logger().Info("rejected", "reason", "budget exceeded", "customer", id, "budget_id", b.BudgetID,
			"spend", spend.String(), "max_budget", b.MaxBudget.String())
		return errorResponse(p.s.cfg.BudgetExceededStatus, "budget_exceeded",
			fmt.Sprintf("ExceededBudget: End User=%s over budget. Spend=%s, Budget=%s", id, spend, *b.MaxBudget),
			"tollgate_budget_exceeded")
	}
	return nil
}

// budgetOf returns the budget that limits customer c: its own, else the
// default budget. ok is false when no budget applies.
func (p *processor) budgetOf(ctx context.Context, c store.Customer, known bool) (b store.Budget, ok bool, err error) {
	if known && c.BudgetID != nil {
		b, err := p.s.store.GetBudget(ctx, *c.BudgetID)
		if err == nil {
			return b, true, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return store.Budget{}, false, fmt.Errorf("get budget %q: %w", *c.BudgetID, err)
		}
		p.logger().Warn("customer's budget does not exist; applying the default budget", "customer", c.UserID, "budget_id", *c.BudgetID)
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
	p.logger().Error("admission check failed; rejecting the request", "customer", p.customerID, "err", err)
	return errorResponse(503, "service_unavailable",
		"Spend tracking is unavailable, so the budget could not be checked. Try again later.", "tollgate_store_unavailable")
}

func (p *processor) responseHeaders(ctx context.Context, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	headersResp := &extprocv3.HeadersResponse{}
	resp := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: headersResp}}
	if !p.metered {
		return resp
	}
	hdr := headers(h.GetHeaders().GetHeaders())
	code, _ := strconv.Atoi(hdr.get(":status"))
	switch {
	case code < 200 || code > 299:
		// Errors pass through untouched and cost nothing.
		resp.ModeOverride = responseBodyModes[filterv3.ProcessingMode_NONE]
	case isEventStream(hdr.get("content-type")):
		// Each chunk is answered at once, so streaming is not slowed down.
		// content-length must go, or Envoy cuts the stream after one chunk.
		resp.ModeOverride = responseBodyModes[filterv3.ProcessingMode_STREAMED]
		b, decoded := newSSEBody(p.route.api, hdr.get("content-encoding"), p.forcedUsage)
		p.body = b
		remove := []string{"content-length"}
		if decoded {
			remove = append(remove, "content-encoding")
		}
		headersResp.Response = &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{RemoveHeaders: remove}}
	case h.GetEndOfStream():
		// No body follows, so this is the last chance to record the request.
		cost := p.settle(ctx, tally{}, errors.New("response has no body"), false)
		headersResp.Response = &extprocv3.CommonResponse{HeaderMutation: costMutation(cost)}
	default:
		p.body = &jsonBody{api: p.route.api, encoding: hdr.get("content-encoding")}
		n, known := contentLength(hdr)
		switch {
		case known && n <= p.s.cfg.MaxRequestBodyBytes:
			resp.ModeOverride = responseBodyModes[filterv3.ProcessingMode_BUFFERED]
			p.bufferedResponse = true
		case known:
			// Over Envoy's buffer, which would turn it into a 500: read it as
			// it streams through instead, without the cost header.
			resp.ModeOverride = responseBodyModes[filterv3.ProcessingMode_STREAMED]
		default:
			// Unknown length: whole when it fits Envoy's buffer, which keeps
			// the cost header; else only its start is seen.
			resp.ModeOverride = responseBodyModes[filterv3.ProcessingMode_BUFFERED_PARTIAL]
			p.bufferedResponse, p.partialResponse = true, true
		}
	}
	return resp
}

func (p *processor) responseBody(ctx context.Context, b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	bodyResp := &extprocv3.BodyResponse{}
	resp := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: bodyResp}}
	if p.body == nil {
		return resp
	}
	p.bodyChunks++
	out, replace := p.body.write(b.GetBody(), b.GetEndOfStream())
	if replace {
		m := &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: out}}
		if len(out) == 0 {
			m.Mutation = &extprocv3.BodyMutation_ClearBody{ClearBody: true}
		}
		bodyResp.Response = &extprocv3.CommonResponse{BodyMutation: m}
	}
	if !b.GetEndOfStream() && !p.partialResponse {
		return resp
	}
	t, err := p.body.result()
	p.body = nil
	cost := p.settle(ctx, t, err, false)
	if p.bufferedResponse {
		// A reply to a BUFFERED body may still change the response headers.
		if bodyResp.Response == nil {
			bodyResp.Response = &extprocv3.CommonResponse{}
		}
		bodyResp.Response.HeaderMutation = costMutation(cost)
	}
	return resp
}

// abandon records a response whose ext_proc stream ended before the response
// did: the client hung up, or the upstream or Envoy gave up. The upstream has
// generated, and been paid for, what was streamed so far.
func (p *processor) abandon(ctx context.Context) {
	if p.body == nil {
		return
	}
	t, err := p.body.result()
	p.body = nil
	p.settle(ctx, t, err, true)
}

// settle records the spend of a response from what its body told (t). When
// the upstream's usage is missing (err), the tokens are counted locally: the
// prompt from the request body, unless the upstream reported it, and the
// completion from the text generated; the record is marked estimated.
func (p *processor) settle(ctx context.Context, t tally, usageErr error, cut bool) store.Nano {
	u := t.usage
	estimated := !t.final
	if estimated {
		model := p.model
		if model == "" {
			model = u.Model
		}
		if !t.prompt {
			u.Usage = pricing.Usage{PromptTokens: estimatePrompt(p.route.api, model, p.reqBody)}
		}
		u.CompletionTokens = t.text.tokens(model)
		u.TotalTokens = addSat(u.PromptTokens, u.CompletionTokens)
		if cut {
			p.logger().Info("response cut short; charging the prompt and what was streamed", "model", p.model, "reason", usageErr)
		} else {
			p.logger().Warn("no usage in response; counted tokens locally", "model", p.model, "err", usageErr)
		}
	}
	p.reqBody = nil
	return p.record(ctx, u, estimated)
}

// record prices the served request and writes its spend log before Envoy gets
// the reply, so the spend is durable by the time the client sees the response.
func (p *processor) record(ctx context.Context, u responseUsage, estimated bool) store.Nano {
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
		Estimated:           estimated,
		StartTime:           p.start,
		EndTime:             p.s.cfg.Now(),
	}
	if b := p.budget; b != nil {
		// The windows the spend counts in; the store rolls the customer's
		// spend over when they are new.
		l.Window = store.BudgetWindow(*b, l.EndTime, p.s.cfg.Location)
		if p.modelBudget != "" {
			l.ModelBudget = p.modelBudget
			l.ModelWindow = store.ModelWindow(*b, p.modelBudget, l.EndTime, p.s.cfg.Location)
		}
	}
	p.usedTokens = p.s.cfg.TokenCounting.Of(u.PromptTokens, u.CompletionTokens)
	// The upstream has been paid for even if Envoy gives up on this stream, so
	// the write outlives the stream's context.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.s.cfg.StoreTimeout)
	defer cancel()
	_, err := p.s.store.RecordSpend(ctx, l)
	switch {
	case errors.Is(err, store.ErrDuplicateRequest):
		p.logger().Debug("spend already recorded", "err", err)
	case err != nil:
		p.logger().Error("record spend failed", "customer", p.customerID, "model", model, "cost", cost.String(), "err", err)
	case p.s.log.Enabled(ctx, slog.LevelDebug):
		// Every served request gets here: info would be a line per request.
		p.logger().Debug("spend recorded", "customer", p.customerID, "model", model,
			"prompt_tokens", u.PromptTokens, "completion_tokens", u.CompletionTokens, "cost", cost.String(),
			"unpriced", !priced, "estimated", estimated, "body_chunks", p.bodyChunks)
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

// contentLength reads a content-length header; ok is false when there is
// none or it is not a length.
func contentLength(hdr headers) (n int64, ok bool) {
	v, present := hdr.lookup("content-length")
	if !present {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	return n, err == nil && n >= 0
}

// isObject reports whether valid JSON is an object, without copying it as
// gjson.ParseBytes would.
func isObject(json []byte) bool {
	rest := bytes.TrimLeft(json, " \t\r\n")
	return len(rest) > 0 && rest[0] == '{'
}

func isEventStream(contentType string) bool {
	mediaType, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mediaType), "text/event-stream")
}
