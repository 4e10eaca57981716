package admin

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/tollgate-dev/tollgate/store"
)

// The response shapes below copy LiteLLM's, key order included. LiteLLM has
// two renderings of each row: the raw Prisma row (every column) and a typed
// pydantic model (fewer columns), and each route uses a specific one.

// usd renders nano-USD as a float the way Python's repr does ("0.0",
// "0.001413", "8e-05"), which is what LiteLLM's JSON shows.
type usd store.Nano

// MarshalJSON writes the amount in USD.
func (u usd) MarshalJSON() ([]byte, error) { return []byte(store.Nano(u).String()), nil }

func usdPtr(n *store.Nano) *usd {
	if n == nil {
		return nil
	}
	u := usd(*n)
	return &u
}

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// modelBudgetJSON is one model_max_budget entry; unset members are left out,
// as they would be in the JSON the client stored.
type modelBudgetJSON struct {
	MaxBudget      *usd    `json:"max_budget,omitempty"`
	BudgetDuration *string `json:"budget_duration,omitempty"`
	TPMLimit       *int64  `json:"tpm_limit,omitempty"`
	RPMLimit       *int64  `json:"rpm_limit,omitempty"`
}

func modelBudgets(m map[string]store.ModelBudget) map[string]modelBudgetJSON {
	if m == nil {
		return nil
	}
	out := make(map[string]modelBudgetJSON, len(m))
	for k, v := range m {
		out[k] = modelBudgetJSON{
			MaxBudget:      usdPtr(v.MaxBudget),
			BudgetDuration: v.BudgetDuration,
			TPMLimit:       v.TPMLimit,
			RPMLimit:       v.RPMLimit,
		}
	}
	return out
}

// budgetRow is the full LiteLLM_BudgetTable row, as /budget/* return it and
// as it is nested in the Prisma customer row.
type budgetRow struct {
	BudgetID            string                     `json:"budget_id"`
	MaxBudget           *usd                       `json:"max_budget"`
	SoftBudget          *usd                       `json:"soft_budget"`
	MaxParallelRequests *int64                     `json:"max_parallel_requests"`
	TPMLimit            *int64                     `json:"tpm_limit"`
	RPMLimit            *int64                     `json:"rpm_limit"`
	ModelMaxBudget      map[string]modelBudgetJSON `json:"model_max_budget"`
	BudgetDuration      *string                    `json:"budget_duration"`
	BudgetResetAt       *string                    `json:"budget_reset_at"`
	AllowedModels       []string                   `json:"allowed_models"`
	CreatedAt           string                     `json:"created_at"`
	CreatedBy           string                     `json:"created_by"`
	UpdatedAt           string                     `json:"updated_at"`
	UpdatedBy           string                     `json:"updated_by"`
}

// budgetRowSparse is budgetRow with nulls left out (pydantic's exclude_none).
// Its fields must stay identical to budgetRow's so one converts to the other.
type budgetRowSparse struct {
	BudgetID            string                     `json:"budget_id"`
	MaxBudget           *usd                       `json:"max_budget,omitzero"`
	SoftBudget          *usd                       `json:"soft_budget,omitzero"`
	MaxParallelRequests *int64                     `json:"max_parallel_requests,omitzero"`
	TPMLimit            *int64                     `json:"tpm_limit,omitzero"`
	RPMLimit            *int64                     `json:"rpm_limit,omitzero"`
	ModelMaxBudget      map[string]modelBudgetJSON `json:"model_max_budget,omitzero"`
	BudgetDuration      *string                    `json:"budget_duration,omitzero"`
	BudgetResetAt       *string                    `json:"budget_reset_at,omitzero"`
	AllowedModels       []string                   `json:"allowed_models"`
	CreatedAt           string                     `json:"created_at"`
	CreatedBy           string                     `json:"created_by"`
	UpdatedAt           string                     `json:"updated_at"`
	UpdatedBy           string                     `json:"updated_by"`
}

func newBudgetRow(b store.Budget) budgetRow {
	row := budgetRow{
		BudgetID:            b.BudgetID,
		MaxBudget:           usdPtr(b.MaxBudget),
		SoftBudget:          usdPtr(b.SoftBudget),
		MaxParallelRequests: b.MaxParallelRequests,
		TPMLimit:            b.TPMLimit,
		RPMLimit:            b.RPMLimit,
		ModelMaxBudget:      modelBudgets(b.ModelMaxBudget),
		BudgetDuration:      b.BudgetDuration,
		AllowedModels:       b.AllowedModels,
		CreatedAt:           timestamp(b.CreatedAt),
		CreatedBy:           b.CreatedBy,
		UpdatedAt:           timestamp(b.UpdatedAt),
		UpdatedBy:           b.UpdatedBy,
	}
	if b.BudgetResetAt != nil {
		t := timestamp(*b.BudgetResetAt)
		row.BudgetResetAt = &t
	}
	// Budgets the store creates on its own (a customer's max_budget moving
	// off a shared tier) have no recorded author. Every change arrives with
	// the master key, so the author is LiteLLM's fallback for it.
	if row.CreatedBy == "" {
		row.CreatedBy = adminName
	}
	if row.UpdatedBy == "" {
		row.UpdatedBy = adminName
	}
	if row.AllowedModels == nil {
		row.AllowedModels = []string{} // the column defaults to [], never null
	}
	return row
}

// budgetInfo is the typed LiteLLM_BudgetTable nested in /customer/info and
// /customer/list: no timestamps, no authors, no reset time.
type budgetInfo struct {
	BudgetID            string                     `json:"budget_id"`
	SoftBudget          *usd                       `json:"soft_budget"`
	MaxBudget           *usd                       `json:"max_budget"`
	MaxParallelRequests *int64                     `json:"max_parallel_requests"`
	TPMLimit            *int64                     `json:"tpm_limit"`
	RPMLimit            *int64                     `json:"rpm_limit"`
	ModelMaxBudget      map[string]modelBudgetJSON `json:"model_max_budget"`
	BudgetDuration      *string                    `json:"budget_duration"`
	AllowedModels       []string                   `json:"allowed_models"`
}

// customerRow is the Prisma LiteLLM_EndUserTable row with its relations, as
// /customer/new, /update, /block and /unblock return it. tollgate has no
// object permissions; their keys stay for the shape.
type customerRow struct {
	UserID             string  `json:"user_id"`
	Alias              *string `json:"alias"`
	Spend              usd     `json:"spend"`
	AllowedModelRegion *string `json:"allowed_model_region"`
	DefaultModel       *string `json:"default_model"`
	BudgetID           *string `json:"budget_id"`
	ObjectPermissionID *string `json:"object_permission_id"`
	Blocked            bool    `json:"blocked"`
	LiteLLMBudgetTable any     `json:"litellm_budget_table"`
	ObjectPermission   any     `json:"object_permission"`
}

// customerRowSparse is customerRow with nulls left out: /end_user/info returns
// model_dump(exclude_none=True) of the Prisma row. Its fields must stay
// identical to customerRow's so one converts to the other.
type customerRowSparse struct {
	UserID             string  `json:"user_id"`
	Alias              *string `json:"alias,omitzero"`
	Spend              usd     `json:"spend"`
	AllowedModelRegion *string `json:"allowed_model_region,omitzero"`
	DefaultModel       *string `json:"default_model,omitzero"`
	BudgetID           *string `json:"budget_id,omitzero"`
	ObjectPermissionID *string `json:"object_permission_id,omitzero"`
	Blocked            bool    `json:"blocked"`
	LiteLLMBudgetTable any     `json:"litellm_budget_table,omitzero"`
	ObjectPermission   any     `json:"object_permission,omitzero"`
}

// customerInfo is the typed LiteLLM_EndUserTable that /customer/info and
// /customer/list declare as their response_model: every field, nulls included.
type customerInfo struct {
	UserID             string      `json:"user_id"`
	Blocked            bool        `json:"blocked"`
	Alias              *string     `json:"alias"`
	Spend              usd         `json:"spend"`
	AllowedModelRegion *string     `json:"allowed_model_region"`
	DefaultModel       *string     `json:"default_model"`
	BudgetID           *string     `json:"budget_id"`
	LiteLLMBudgetTable *budgetInfo `json:"litellm_budget_table"`
	ObjectPermissionID *string     `json:"object_permission_id"`
	ObjectPermission   any         `json:"object_permission"`
}

// newCustomerRow renders c with its budget (nil when it has none).
func newCustomerRow(c store.Customer, b *store.Budget) customerRow {
	row := customerRow{
		UserID:             c.UserID,
		Alias:              c.Alias,
		Spend:              usd(c.Spend),
		AllowedModelRegion: c.AllowedModelRegion,
		DefaultModel:       c.DefaultModel,
		BudgetID:           c.BudgetID,
		Blocked:            c.Blocked,
	}
	if b != nil {
		row.LiteLLMBudgetTable = newBudgetRow(*b)
	}
	return row
}

func newCustomerRowSparse(c store.Customer, b *store.Budget) customerRowSparse {
	row := customerRowSparse(newCustomerRow(c, nil))
	if b != nil {
		row.LiteLLMBudgetTable = budgetRowSparse(newBudgetRow(*b))
	}
	return row
}

func newCustomerInfo(c store.Customer, b *store.Budget) customerInfo {
	info := customerInfo{
		UserID:             c.UserID,
		Blocked:            c.Blocked,
		Alias:              c.Alias,
		Spend:              usd(c.Spend),
		AllowedModelRegion: c.AllowedModelRegion,
		DefaultModel:       c.DefaultModel,
		BudgetID:           c.BudgetID,
	}
	if b != nil {
		row := newBudgetRow(*b)
		info.LiteLLMBudgetTable = &budgetInfo{
			BudgetID:            row.BudgetID,
			SoftBudget:          row.SoftBudget,
			MaxBudget:           row.MaxBudget,
			MaxParallelRequests: row.MaxParallelRequests,
			TPMLimit:            row.TPMLimit,
			RPMLimit:            row.RPMLimit,
			ModelMaxBudget:      row.ModelMaxBudget,
			BudgetDuration:      row.BudgetDuration,
			AllowedModels:       row.AllowedModels,
		}
	}
	return info
}

// pyList formats ids the way Python's str(list) does (['a', 'b']), which
// LiteLLM's /customer/delete message shows.
func pyList(ids []string) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = pyRepr(id)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// pyRepr formats s like Python's repr(str): single quotes unless s holds a
// single quote and no double quote, with backslash escapes for the rest.
func pyRepr(s string) string {
	quote := '\''
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		quote = '"'
	}
	var b strings.Builder
	b.WriteRune(quote)
	for _, r := range s {
		switch {
		case r == quote || r == '\\':
			b.WriteRune('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case unicode.IsPrint(r):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteRune(quote)
	return b.String()
}
