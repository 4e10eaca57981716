package admin

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/tollgate-dev/tollgate/store"
)

// Every /budget/* error uses the {"detail":{"error":...}} envelope.

func budgetNotFound(id string) *apiError {
	return detailEnv(http.StatusNotFound, fmt.Sprintf("Budget with id '%s' does not exist.", id))
}

// budgetNew handles POST /budget/new. A missing budget_id gets a generated one.
func (s *server) budgetNew(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(w, r, envDetail, s.maxBody)
	if err != nil {
		return err
	}
	id, err := b.str("budget_id")
	if err != nil {
		return err
	}
	patch, _, err := b.budgetPatch()
	if err != nil {
		return err
	}
	now := s.now().UTC()
	nb := store.Budget{CreatedAt: now, CreatedBy: adminName, UpdatedAt: now, UpdatedBy: adminName}
	if id != nil {
		if msg := checkID("budget_id", *id); msg != "" {
			return b.invalid("budget_id", msg)
		}
		nb.BudgetID = *id
	}
	patch.apply(&nb)
	s.scheduleResets(&nb, false, false)
	created, err := s.st.CreateBudget(r.Context(), nb)
	if errors.Is(err, store.ErrExists) {
		return detailEnv(http.StatusBadRequest, fmt.Sprintf("Budget with id '%s' already exists.", nb.BudgetID))
	}
	if err != nil {
		return fmt.Errorf("create budget: %w", err)
	}
	return writeJSON(w, http.StatusOK, newBudgetRow(s.current(created)))
}

// budgetUpdate handles POST /budget/update with LiteLLM's exclude_unset
// semantics: absent columns are kept, an explicit null clears one.
func (s *server) budgetUpdate(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(w, r, envDetail, s.maxBody)
	if err != nil {
		return err
	}
	id, err := b.str("budget_id")
	if err != nil {
		return err
	}
	if id == nil {
		return b.missing("budget_id")
	}
	patch, _, err := b.budgetPatch()
	if err != nil {
		return err
	}
	now := s.now().UTC()
	_, resetGiven := b.value("budget_reset_at")
	updated, err := s.st.UpdateBudget(r.Context(), *id, func(d *store.Budget) error {
		before := d.BudgetDuration
		patch.apply(d)
		s.scheduleResets(d, !sameDuration(before, d.BudgetDuration), resetGiven)
		d.UpdatedAt, d.UpdatedBy = now, adminName
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return budgetNotFound(*id)
	}
	if err != nil {
		return fmt.Errorf("update budget: %w", err)
	}
	return writeJSON(w, http.StatusOK, newBudgetRow(s.current(updated)))
}

// budgetInfo handles POST /budget/info: the rows of the named budgets that
// exist, in the order asked, each once.
func (s *server) budgetInfo(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(w, r, envDetail, s.maxBody)
	if err != nil {
		return err
	}
	ids, err := b.ids("budgets", "Specify list of budget id's to query. Passed in=[]")
	if err != nil {
		return err
	}
	out := []budgetRow{}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		bud, err := s.st.GetBudget(r.Context(), id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("get budget: %w", err)
		}
		out = append(out, newBudgetRow(s.current(bud)))
	}
	return writeJSON(w, http.StatusOK, out)
}

// budgetList handles GET /budget/list.
func (s *server) budgetList(w http.ResponseWriter, r *http.Request) error {
	bs, err := s.st.ListBudgets(r.Context())
	if err != nil {
		return fmt.Errorf("list budgets: %w", err)
	}
	out := make([]budgetRow, len(bs))
	for i, bud := range bs {
		out[i] = newBudgetRow(s.current(bud))
	}
	return writeJSON(w, http.StatusOK, out)
}

// budgetDelete handles POST /budget/delete {"id": ...} and answers with the
// deleted row. The store unlinks the budget's customers.
func (s *server) budgetDelete(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(w, r, envDetail, s.maxBody)
	if err != nil {
		return err
	}
	id, err := b.str("id")
	if err != nil {
		return err
	}
	if id == nil {
		return b.missing("id")
	}
	deleted, err := s.st.DeleteBudget(r.Context(), *id)
	if errors.Is(err, store.ErrNotFound) {
		return budgetNotFound(*id)
	}
	if err != nil {
		return fmt.Errorf("delete budget: %w", err)
	}
	return writeJSON(w, http.StatusOK, newBudgetRow(s.current(deleted)))
}

// settingsItem is LiteLLM's ConfigList: one editable field for the admin UI.
type settingsItem struct {
	FieldName         string  `json:"field_name"`
	FieldType         string  `json:"field_type"`
	FieldDescription  string  `json:"field_description"`
	FieldValue        any     `json:"field_value"`
	StoredInDB        bool    `json:"stored_in_db"`
	FieldDefaultValue any     `json:"field_default_value"`
	PremiumField      bool    `json:"premium_field"`
	NestedFields      any     `json:"nested_fields"`
	FieldOptions      any     `json:"field_options"`
	FieldTab          *string `json:"field_tab"`
}

// budgetSettings handles GET /budget/settings?budget_id=: the editable
// fields in BudgetNewRequest order, with LiteLLM's pydantic descriptions.
func (s *server) budgetSettings(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if !q.Has("budget_id") {
		return detailEnv(http.StatusBadRequest, "budget_id is required")
	}
	id := q.Get("budget_id")
	bud, err := s.st.GetBudget(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return budgetNotFound(id)
	}
	if err != nil {
		return fmt.Errorf("get budget: %w", err)
	}
	row := newBudgetRow(s.current(bud))
	item := func(name, typ, desc string, value any) settingsItem {
		return settingsItem{FieldName: name, FieldType: typ, FieldDescription: desc, FieldValue: value, StoredInDB: true}
	}
	return writeJSON(w, http.StatusOK, []settingsItem{
		item("max_budget", "Float", "Requests will fail if this budget (in USD) is exceeded.", row.MaxBudget),
		item("soft_budget", "Float", "Requests will NOT fail if this is exceeded. Will fire alerting though.", row.SoftBudget),
		item("max_parallel_requests", "Integer", "Max concurrent requests allowed for this budget id.", row.MaxParallelRequests),
		item("tpm_limit", "Integer", "Max tokens per minute, allowed for this budget id.", row.TPMLimit),
		item("rpm_limit", "Integer", "Max requests per minute, allowed for this budget id.", row.RPMLimit),
		item("budget_duration", "String", "Max duration budget should be set for (e.g. '1hr', '1d', '28d')", row.BudgetDuration),
		item("model_max_budget", "Object", "Max budget for each model (e.g. {'gpt-4o': {'max_budget': '0.0000001', 'budget_duration': '1d', 'tpm_limit': 1000, 'rpm_limit': 1000}})", row.ModelMaxBudget),
	})
}
