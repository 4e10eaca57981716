package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/tollgate-dev/tollgate/store"
)

// bothBudgetsMessage is NewCustomerRequest's validator message in LiteLLM.
const bothBudgetsMessage = "Set either 'max_budget' or 'budget_id', not both."

// customerNew handles POST /customer/new.
func (s *server) customerNew(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(w, r, envError, s.maxBody)
	if err != nil {
		return err
	}
	userID, err := b.id("user_id")
	if err != nil {
		return err
	}
	if _, hasMax := b.value("max_budget"); hasMax {
		if _, hasID := b.value("budget_id"); hasID {
			return errorEnv(http.StatusUnprocessableEntity, typeBadRequestError, "budget_id", bothBudgetsMessage)
		}
	}
	c := store.Customer{UserID: userID}
	var blocked *bool
	var spend *store.Nano
	for _, err := range []error{
		into(&c.Alias)(b.str("alias")),
		into(&blocked)(b.boolean("blocked")),
		into(&c.BudgetID)(b.str("budget_id")),
		into(&spend)(b.money("spend")),
		into(&c.AllowedModelRegion)(b.region()),
		into(&c.DefaultModel)(b.str("default_model")),
	} {
		if err != nil {
			return err
		}
	}
	if blocked != nil {
		c.Blocked = *blocked
	}
	if spend != nil {
		c.Spend = *spend
	}
	patch, set, err := b.budgetPatch()
	if err != nil {
		return err
	}
	now := s.now().UTC()
	c.CreatedAt, c.UpdatedAt = now, now
	var inline *store.Budget
	if set {
		// Like LiteLLM, budget columns create a budget for this customer, and
		// that budget wins over a budget_id sent with it.
		inline = &store.Budget{CreatedAt: now, CreatedBy: adminName, UpdatedAt: now, UpdatedBy: adminName}
		patch.apply(inline)
		s.scheduleResets(inline, false, false)
		c.BudgetID = nil
	}
	created, err := s.st.CreateCustomer(r.Context(), c, inline)
	switch {
	case errors.Is(err, store.ErrBudgetNotFound) && c.BudgetID != nil:
		return budgetMissing(*c.BudgetID)
	case errors.Is(err, store.ErrExists):
		return errorEnv(http.StatusBadRequest, typeBadRequest, "user_id",
			fmt.Sprintf("Customer already exists, passed user_id=%s. Please pass a new user_id.", userID))
	case err != nil:
		return fmt.Errorf("create customer: %w", err)
	}
	shown, budget, err := s.presentOne(r.Context(), created)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newCustomerRow(shown, budget))
}

// into adapts a (value, error) getter so several can be checked in one loop.
func into[T any](dst *T) func(T, error) error {
	return func(v T, err error) error {
		*dst = v
		return err
	}
}

// budgetMissing reports a budget_id that names no budget: a client error, not
// the foreign-key 500 LiteLLM gives.
func budgetMissing(id string) *apiError {
	return errorEnv(http.StatusBadRequest, typeBadRequest, "budget_id",
		fmt.Sprintf("Budget with id '%s' does not exist.", id))
}

// customerInfo handles GET /customer/info and, with sparse set, /end_user/info.
// LiteLLM answers the alias with the Prisma row minus its nulls instead of the
// typed model, and clients of either may rely on the difference.
func (s *server) customerInfo(sparse bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		const param = "end_user_id"
		q := r.URL.Query()
		if !q.Has(param) {
			return errorEnv(http.StatusUnprocessableEntity, typeBadRequestError, param, param+" is required")
		}
		id := q.Get(param)
		if msg := checkID(param, id); msg != "" {
			return errorEnv(http.StatusBadRequest, typeBadRequest, param, msg)
		}
		c, err := s.st.GetCustomer(r.Context(), id)
		if errors.Is(err, store.ErrNotFound) {
			return customerMissing(id, param)
		}
		if err != nil {
			return fmt.Errorf("get customer: %w", err)
		}
		c, budget, err := s.presentOne(r.Context(), c)
		if err != nil {
			return err
		}
		if sparse {
			return writeJSON(w, http.StatusOK, newCustomerRowSparse(c, budget))
		}
		return writeJSON(w, http.StatusOK, newCustomerInfo(c, budget))
	}
}

func customerMissing(id, param string) *apiError {
	return errorEnv(http.StatusNotFound, typeNotFound, param, fmt.Sprintf("End User Id=%s does not exist in db", id))
}

// customerUpdate handles POST /customer/update. Unlike LiteLLM, false, 0 and
// "" are applied; null and absent fields are left as they are. max_budget
// never resizes a shared tier: the store gives the customer its own budget.
func (s *server) customerUpdate(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(w, r, envError, s.maxBody)
	if err != nil {
		return err
	}
	userID, err := b.id("user_id")
	if err != nil {
		return err
	}
	var p store.CustomerPatch
	for _, err := range []error{
		into(&p.Alias)(b.str("alias")),
		into(&p.Blocked)(b.boolean("blocked")),
		into(&p.MaxBudget)(b.money("max_budget")),
		into(&p.BudgetID)(b.str("budget_id")),
		into(&p.AllowedModelRegion)(b.region()),
		into(&p.DefaultModel)(b.str("default_model")),
	} {
		if err != nil {
			return err
		}
	}
	c, err := s.st.UpdateCustomer(r.Context(), userID, p)
	switch {
	case errors.Is(err, store.ErrBudgetNotFound) && p.BudgetID != nil:
		return budgetMissing(*p.BudgetID)
	case errors.Is(err, store.ErrNotFound):
		return customerMissing(userID, "user_id")
	case err != nil:
		return fmt.Errorf("update customer: %w", err)
	}
	c, budget, err := s.presentOne(r.Context(), c)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newCustomerRow(c, budget))
}

type deleteResponse struct {
	DeletedCustomers int    `json:"deleted_customers"`
	Message          string `json:"message"`
}

// customerDelete handles POST /customer/delete: all ids or none.
func (s *server) customerDelete(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(w, r, envError, s.maxBody)
	if err != nil {
		return err
	}
	ids, err := b.ids("user_ids", "user_ids must list at least one customer id")
	if err != nil {
		return err
	}
	n, err := s.st.DeleteCustomers(r.Context(), ids)
	if missing, ok := errors.AsType[*store.MissingError](err); ok {
		return errorEnv(http.StatusNotFound, typeNotFound, "user_ids",
			fmt.Sprintf("End User Id(s)=%s do not exist in db", strings.Join(missing.IDs, ", ")))
	}
	if err != nil {
		return fmt.Errorf("delete customers: %w", err)
	}
	return writeJSON(w, http.StatusOK, deleteResponse{
		DeletedCustomers: n,
		Message:          "Successfully deleted customers with ids: " + pyList(ids),
	})
}

// customerList handles GET /customer/list. LiteLLM declares
// response_model=List[LiteLLM_EndUserTable], so rows have the typed shape of
// /customer/info, not the Prisma shape of /customer/new.
func (s *server) customerList(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.st.ListCustomers(r.Context())
	if err != nil {
		return fmt.Errorf("list customers: %w", err)
	}
	budgets, err := s.budgetsOf(r.Context(), cs)
	if err != nil {
		return err
	}
	out := make([]customerInfo, len(cs))
	for i, c := range cs {
		out[i] = newCustomerInfo(s.present(c, budgets))
	}
	return writeJSON(w, http.StatusOK, out)
}

type blockedResponse struct {
	BlockedUsers []customerRow `json:"blocked_users"`
}

// customerBlock handles POST /customer/block. Unknown ids are created blocked,
// so a customer can be shut out before its first request.
func (s *server) customerBlock(w http.ResponseWriter, r *http.Request) error {
	return s.setBlocked(w, r, true)
}

// customerUnblock handles POST /customer/unblock. LiteLLM's version only edits
// an in-memory list and leaves the stored flag set, so customers stay blocked
// (bug #41575, PR #34696). Here it clears the same stored flag that block sets
// and the data plane enforces, and answers with the given ids' rows that
// exist, now blocked:false; unknown ids are skipped rather than created.
func (s *server) customerUnblock(w http.ResponseWriter, r *http.Request) error {
	return s.setBlocked(w, r, false)
}

func (s *server) setBlocked(w http.ResponseWriter, r *http.Request, blocked bool) error {
	b, err := readBody(w, r, envDetail, s.maxBody)
	if err != nil {
		return err
	}
	ids, err := b.ids("user_ids", "user_ids must list at least one customer id")
	if err != nil {
		return err
	}
	cs, err := s.st.SetBlocked(r.Context(), ids, blocked)
	if err != nil {
		return fmt.Errorf("set blocked=%t: %w", blocked, err)
	}
	budgets, err := s.budgetsOf(r.Context(), cs)
	if err != nil {
		return err
	}
	out := blockedResponse{BlockedUsers: make([]customerRow, len(cs))}
	for i, c := range cs {
		out.BlockedUsers[i] = newCustomerRow(s.present(c, budgets))
	}
	return writeJSON(w, http.StatusOK, out)
}

// budgetsOf fetches each distinct budget the customers link to, and the
// default budget when one of them has none. A budget deleted since the
// customer was read is left out: the store unlinks its customers, so null is
// what a re-read would show.
func (s *server) budgetsOf(ctx context.Context, cs []store.Customer) (map[string]store.Budget, error) {
	out := make(map[string]store.Budget)
	fetch := func(id string) error {
		if _, ok := out[id]; ok {
			return nil
		}
		b, err := s.st.GetBudget(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("get budget %q: %w", id, err)
		}
		out[id] = b
		return nil
	}
	for _, c := range cs {
		if c.BudgetID != nil {
			if err := fetch(*c.BudgetID); err != nil {
				return nil, err
			}
		}
	}
	if s.defaultBudgetID == "" {
		return out, nil
	}
	for _, c := range cs {
		if lookup(out, c.BudgetID) == nil {
			return out, fetch(s.defaultBudgetID)
		}
	}
	return out, nil
}

func lookup(budgets map[string]store.Budget, id *string) *store.Budget {
	if id == nil {
		return nil
	}
	b, ok := budgets[*id]
	if !ok {
		return nil
	}
	return &b
}
