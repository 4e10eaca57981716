package extproc

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"

	"github.com/tollgate-dev/tollgate/extproc/limits"
	"github.com/tollgate-dev/tollgate/extproc/pricing"
	"github.com/tollgate-dev/tollgate/store"
)

// The limits that need the request body: model budgets, rpm/tpm, parallel
// requests and strict budgets. They run after the cheap checks (blocked,
// budget) passed, and whatever they take is given back in finish, however
// the ext_proc stream ends.

// defaultMaxOutputTokens is what strict budgets reserve for the completion of
// a request that sets no max_tokens, for a model whose price map entry has no
// max_output_tokens: LiteLLM's DEFAULT_MAX_TOKENS_ESTIMATE.
const defaultMaxOutputTokens = 4096

// minTokenEstimate is the completion LiteLLM's rate limiter reserves when a
// request sets no max_tokens (a quarter of its DEFAULT_MAX_TOKENS_ESTIMATE).
const minTokenEstimate = 1024

// charsPerToken is LiteLLM's rule of thumb for a prompt's tokens when it
// reserves tpm.
const charsPerToken = 4

// resetFormat is how LiteLLM writes "Limit resets at".
const resetFormat = "2006-01-02 15:04:05 UTC"

// modelKey keys a customer's limits on one model.
func modelKey(customer, model string) string { return customer + "\x00" + model }

// limit admits the request against the limits of the customer's budget
// (p.budget, its own or the default): the model's budget from
// model_max_budget, max_parallel_requests, rpm_limit and tpm_limit (the
// budget's, then the model entry's), and the strict-budget reservation. It
// returns the rejection to send, or nil.
func (p *processor) limit(ctx context.Context, body []byte) *extprocv3.ProcessingResponse {
	b := p.budget
	if b == nil {
		return nil
	}
	now, loc := p.start, p.s.cfg.Location
	mb, hasModel := b.ModelMaxBudget[p.model]
	if hasModel {
		p.modelBudget = p.model
		if mb.MaxBudget != nil {
			spend := p.cust.ModelSpendIn(p.model, store.ModelWindow(*b, p.model, now, loc), now)
			if spend >= *mb.MaxBudget {
				return p.modelBudgetExceeded(spend, *mb.MaxBudget, "")
			}
		}
	}
	tokens := p.estimateTokens(body)
	lim := limits.Limits{RPM: b.RPMLimit, TPM: b.TPMLimit, MaxParallel: b.MaxParallelRequests}
	tk, rej := p.s.rates.Admit(p.customerID, lim, tokens)
	if rej != nil {
		return p.rateLimited(rej, lim, "")
	}
	p.ticket = tk
	if hasModel && (mb.RPMLimit != nil || mb.TPMLimit != nil) {
		lim := limits.Limits{RPM: mb.RPMLimit, TPM: mb.TPMLimit}
		tk, rej := p.s.rates.Admit(modelKey(p.customerID, p.model), lim, tokens)
		if rej != nil {
			p.giveBack()
			return p.rateLimited(rej, lim, p.model)
		}
		p.modelTicket = tk
	}
	if !p.s.cfg.DisableBudgetReservation && (b.MaxBudget != nil || hasModel && mb.MaxBudget != nil) {
		if reject := p.reserve(ctx, body, *b, mb); reject != nil {
			p.giveBack()
			return reject
		}
	}
	p.forwarded = true
	return nil
}

// reserve is the strict-budget check (limits.Ledger's protocol): set the
// request's worst-case cost aside, then read the customer's spend, and admit
// only if spend + everything set aside stays within max_budget (and the
// model's budget). The reservations are released in finish, after the real
// cost has been recorded.
func (p *processor) reserve(ctx context.Context, body []byte, b store.Budget, mb store.ModelBudget) *extprocv3.ProcessingResponse {
	worst := p.worstCase(body)
	if b.MaxBudget != nil {
		p.holds = append(p.holds, p.s.ledger.Reserve(p.customerID, worst))
	}
	var modelHold *limits.Hold
	if mb.MaxBudget != nil {
		modelHold = p.s.ledger.Reserve(modelKey(p.customerID, p.model), worst)
		p.holds = append(p.holds, modelHold)
	}
	ctx, cancel := context.WithTimeout(ctx, p.s.cfg.StoreTimeout)
	defer cancel()
	c, err := p.s.store.GetCustomer(ctx, p.customerID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return p.unavailable(fmt.Errorf("get customer %q: %w", p.customerID, err))
	}
	now, loc := p.start, p.s.cfg.Location
	if b.MaxBudget != nil {
		spend, reserved := c.SpendIn(store.BudgetWindow(b, now, loc), now), p.holds[0].Total()
		if spend+reserved > *b.MaxBudget {
			p.logger().Info("rejected", "reason", "budget exceeded with requests in flight", "customer", p.customerID,
				"spend", spend.String(), "reserved", reserved.String(), "worst_case", worst.String(), "max_budget", b.MaxBudget.String())
			return errorResponse(p.s.cfg.BudgetExceededStatus, "budget_exceeded",
				fmt.Sprintf("ExceededBudget: End User=%s over budget. Spend=%s, Budget=%s, Reserved=%s (requests in flight, this one's worst case included)",
					p.customerID, spend, *b.MaxBudget, reserved),
				"tollgate_budget_exceeded")
		}
	}
	if modelHold != nil {
		spend := c.ModelSpendIn(p.model, store.ModelWindow(b, p.model, now, loc), now)
		if spend+modelHold.Total() > *mb.MaxBudget {
			return p.modelBudgetExceeded(spend, *mb.MaxBudget, fmt.Sprintf(", Reserved=%s (requests in flight, this one's worst case included)", modelHold.Total()))
		}
	}
	return nil
}

func (p *processor) modelBudgetExceeded(spend, limit store.Nano, more string) *extprocv3.ProcessingResponse {
	p.logger().Info("rejected", "reason", "model budget exceeded", "customer", p.customerID, "model", p.model,
		"spend", spend.String(), "max_budget", limit.String())
	return errorResponse(p.s.cfg.BudgetExceededStatus, "model_budget_exceeded",
		fmt.Sprintf("ExceededModelBudget: End User=%s over budget for model=%s. Spend=%s, Budget=%s%s", p.customerID, p.model, spend, limit, more),
		"tollgate_model_budget_exceeded")
}

// rateLimited is the 429 for a rate or parallel limit, with LiteLLM's message
// and retry-after, rate_limit_type and reset_at headers, and OpenAI's
// x-ratelimit-* headers for the limits lim sets.
func (p *processor) rateLimited(rej *limits.Rejection, lim limits.Limits, model string) *extprocv3.ProcessingResponse {
	subject := "end_user: " + p.customerID
	if model != "" {
		subject += ", model: " + model
	}
	p.logger().Info("rejected", "reason", "rate limit", "customer", p.customerID, "model", model, "limit_type", rej.Kind.String(), "limit", rej.Limit)
	if rej.Kind == limits.Parallel {
		return errorResponse(429, "parallel_request_limit_exceeded",
			fmt.Sprintf("Rate limit exceeded for %s. Limit type: max_parallel_requests. Current limit: %d, Remaining: 0. In flight: %d.",
				subject, rej.Limit, rej.InFlight),
			"tollgate_parallel_request_limit",
			setHeader("retry-after", "1"),
			setHeader("rate_limit_type", rej.Kind.String()))
	}
	reset := rej.ResetAt.UTC().Format(resetFormat)
	wait := rej.ResetAt.Sub(p.s.cfg.Now())
	secs := max(1, int64(math.Ceil(wait.Seconds())))
	headers := []*corev3.HeaderValueOption{
		setHeader("retry-after", strconv.FormatInt(secs, 10)),
		setHeader("rate_limit_type", rej.Kind.String()),
		setHeader("reset_at", reset),
	}
	resetIn := (time.Duration(secs) * time.Second).String() // OpenAI's format: "45s", "1m0s"
	for _, l := range []struct {
		name      string
		limit     *int64
		remaining int64
	}{{"requests", lim.RPM, rej.RemainingRequests}, {"tokens", lim.TPM, rej.RemainingTokens}} {
		if l.limit == nil {
			continue
		}
		headers = append(headers,
			setHeader("x-ratelimit-limit-"+l.name, strconv.FormatInt(*l.limit, 10)),
			setHeader("x-ratelimit-remaining-"+l.name, strconv.FormatInt(l.remaining, 10)),
			setHeader("x-ratelimit-reset-"+l.name, resetIn))
	}
	return errorResponse(429, "rate_limit_exceeded",
		fmt.Sprintf("Rate limit exceeded for %s. Limit type: %s. Current limit: %d, Remaining: 0. Limit resets at: %s",
			subject, rej.Kind, rej.Limit, reset),
		"tollgate_rate_limit", headers...)
}

// giveBack undoes an admission that a later check refused: the request never
// reaches the upstream, so it does not count.
func (p *processor) giveBack() {
	p.ticket.Cancel()
	p.modelTicket.Cancel()
	for _, h := range p.holds {
		h.Release()
	}
	p.ticket, p.modelTicket, p.holds = nil, nil, nil
}

// finish ends the request, however its ext_proc stream ended (response done,
// client gone, upstream or Envoy gave up): a response still streaming is
// recorded, then the request stops counting as in flight, its token
// reservation becomes the tokens it used, and its strict-budget reservations
// are released, only now that its cost is recorded. Every step is idempotent.
func (p *processor) finish(ctx context.Context) {
	p.abandon(ctx)
	if p.forwarded {
		p.ticket.Done(p.usedTokens)
		p.modelTicket.Done(p.usedTokens)
		for _, h := range p.holds {
			h.Release()
		}
		return
	}
	p.giveBack()
}

// estimateTokens is the tpm reservation for a request: LiteLLM's estimate,
// about four bytes a prompt token plus the completion's max_tokens (or, when
// unset, at least 1024 tokens), counted as the tpm limit counts tokens.
func (p *processor) estimateTokens(body []byte) int64 {
	prompt := (int64(len(body)) + charsPerToken - 1) / charsPerToken
	var completion int64
	if p.route.api != apiEmbeddings {
		if completion = requestedMaxTokens(p.route.api, body); completion == 0 {
			completion = max(prompt, minTokenEstimate)
		}
	}
	return p.s.cfg.TokenCounting.Of(prompt, completion)
}

// worstCase bounds what the request can cost, priced as its real cost will
// be: a prompt of as many tokens as the body has bytes (a byte-level BPE token
// covers at least one byte of text, and the body holds the prompt, tools and
// schemas), and a completion of n × max_tokens (max_completion_tokens,
// max_output_tokens for the Responses API), capped at the model's
// max_output_tokens, else that limit, else defaultMaxOutputTokens. Reasoning
// and cache-write prices apply where they are dearer. An unpriced model costs
// nothing, so it reserves nothing.
func (p *processor) worstCase(body []byte) store.Nano {
	_, price, ok := p.s.price(p.model, "")
	if !ok {
		return 0
	}
	prompt := int64(len(body))
	completion := maxCompletionTokens(p.route.api, body, price)
	var worst store.Nano
	for _, u := range []pricing.Usage{
		{PromptTokens: prompt, CompletionTokens: completion},
		{PromptTokens: prompt, CompletionTokens: completion, ReasoningTokens: completion},
		{PromptTokens: prompt, CompletionTokens: completion, CacheCreationTokens: prompt},
		{PromptTokens: prompt, CompletionTokens: completion, ReasoningTokens: completion, CacheCreationTokens: prompt},
	} {
		worst = max(worst, price.Cost(u))
	}
	return worst
}

// maxCompletionTokens is the most completion tokens a request of api may get.
func maxCompletionTokens(a api, body []byte, price pricing.Price) int64 {
	if a == apiEmbeddings {
		return 0
	}
	limit := requestedMaxTokens(a, body)
	if modelMax := price.MaxOutputTokens(); modelMax > 0 && (limit == 0 || limit > modelMax) {
		limit = modelMax
	}
	if limit == 0 {
		limit = defaultMaxOutputTokens
	}
	n := int64(1)
	if a == apiChat || a == apiCompletions {
		n = max(1, count(gjson.GetBytes(body, "n")), count(gjson.GetBytes(body, "best_of")))
	}
	if limit > math.MaxInt64/n {
		return math.MaxInt64
	}
	return limit * n
}

// requestedMaxTokens is the completion limit the request sets, 0 for none.
func requestedMaxTokens(a api, body []byte) int64 {
	switch a {
	case apiResponses:
		return count(gjson.GetBytes(body, "max_output_tokens"))
	case apiMessages:
		return count(gjson.GetBytes(body, "max_tokens"))
	default:
		if n := count(gjson.GetBytes(body, "max_completion_tokens")); n > 0 {
			return n
		}
		return count(gjson.GetBytes(body, "max_tokens"))
	}
}

// count reads a positive whole number, 0 for anything else.
func count(v gjson.Result) int64 {
	if v.Type != gjson.Number || v.Num < 1 || v.Num >= math.MaxInt64 || v.Num != math.Trunc(v.Num) {
		return 0
	}
	return int64(v.Num)
}
