package webhook

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/tollgate-dev/tollgate/store"
)

// Payload is LiteLLM's WebhookEvent, the JSON body of every delivery. Every
// key is always sent, null when unset, in LiteLLM's order. Amounts are USD
// floats written the way Python writes them ("0.001112", "4.0", "1e-05").
type Payload struct {
	Spend                 store.Nano
	MaxBudget             *store.Nano
	SoftBudget            *store.Nano
	Token                 *string
	CustomerID            *string
	UserID                *string
	TeamID                *string
	TeamAlias             *string
	UserEmail             *string
	KeyAlias              *string
	ProjectedExceededDate *time.Time
	ProjectedSpend        *store.Nano
	Event                 string
	EventGroup            string
	EventMessage          string
}

// eventGroupCustomer is LiteLLM's event_group for customer (end user) events.
const eventGroupCustomer = "customer"

// PayloadOf is the body delivered for an outbox event. LiteLLM sends no
// user, team or key alias with customer events; tollgate has none to send.
func PayloadOf(e store.Event) Payload {
	return Payload{
		Spend:                 e.Spend,
		MaxBudget:             e.MaxBudget,
		SoftBudget:            e.SoftBudget,
		Token:                 e.Token,
		CustomerID:            &e.CustomerID,
		ProjectedExceededDate: e.ProjectedExceededDate,
		ProjectedSpend:        e.ProjectedSpend,
		Event:                 string(e.Type),
		EventGroup:            eventGroupCustomer,
		EventMessage:          e.Message,
	}
}

type wirePayload struct {
	Spend                 json.Number  `json:"spend"`
	MaxBudget             *json.Number `json:"max_budget"`
	SoftBudget            *json.Number `json:"soft_budget"`
	Token                 *string      `json:"token"`
	CustomerID            *string      `json:"customer_id"`
	UserID                *string      `json:"user_id"`
	TeamID                *string      `json:"team_id"`
	TeamAlias             *string      `json:"team_alias"`
	UserEmail             *string      `json:"user_email"`
	KeyAlias              *string      `json:"key_alias"`
	ProjectedExceededDate *string      `json:"projected_exceeded_date"`
	ProjectedSpend        *json.Number `json:"projected_spend"`
	Event                 string       `json:"event"`
	EventGroup            string       `json:"event_group"`
	EventMessage          string       `json:"event_message"`
}

func usd(n store.Nano) json.Number { return json.Number(n.String()) }

func optUSD(n *store.Nano) *json.Number {
	if n == nil {
		return nil
	}
	v := usd(*n)
	return &v
}

// MarshalJSON writes the payload. projected_exceeded_date is an RFC 3339 UTC
// time (LiteLLM sends a date; tollgate's windows can be shorter than a day).
func (p Payload) MarshalJSON() ([]byte, error) {
	w := wirePayload{
		Spend:          usd(p.Spend),
		MaxBudget:      optUSD(p.MaxBudget),
		SoftBudget:     optUSD(p.SoftBudget),
		Token:          p.Token,
		CustomerID:     p.CustomerID,
		UserID:         p.UserID,
		TeamID:         p.TeamID,
		TeamAlias:      p.TeamAlias,
		UserEmail:      p.UserEmail,
		KeyAlias:       p.KeyAlias,
		ProjectedSpend: optUSD(p.ProjectedSpend),
		Event:          p.Event,
		EventGroup:     p.EventGroup,
		EventMessage:   p.EventMessage,
	}
	if p.ProjectedExceededDate != nil {
		s := p.ProjectedExceededDate.UTC().Format(time.RFC3339)
		w.ProjectedExceededDate = &s
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Customer ids such as "a&b" arrive as sent, as pydantic writes them.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
