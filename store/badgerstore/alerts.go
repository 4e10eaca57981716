package badgerstore

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tollgate-dev/tollgate/store"
)

// alertTxn writes the webhook events of one spend batch in the batch's own
// transaction. It is the seam between the spend writer and the event policy
// (store.Alerting): it finds each customer's budget and alert marks, asks the
// policy, then gives the events their sequence and files them in the outbox.
// Like the customers in applySpend, budgets, marks and the sequence are read
// once per batch and written once at its end.
type alertTxn struct {
	s       *Store
	txn     *badger.Txn
	budgets map[string]*budgetRec // nil value: no such budget
	marks   map[string]store.AlertMarks
	changed map[string]bool // customers whose marks to write
	seq     uint64
	loaded  bool // seq has been read
	wrote   bool // some event was written
}

func (s *Store) newAlertTxn(txn *badger.Txn) *alertTxn {
	return &alertTxn{
		s:       s,
		txn:     txn,
		budgets: map[string]*budgetRec{},
		marks:   map[string]store.AlertMarks{},
		changed: map[string]bool{},
	}
}

// record files the events that l caused; c is the customer after the increment.
func (a *alertTxn) record(l store.SpendLog, c store.Customer, now time.Time) ([]store.Event, error) {
	b, err := a.budgetOf(c)
	if err != nil {
		return nil, err
	}
	var marks store.AlertMarks
	if b != nil {
		if marks, err = a.marksOf(c.UserID); err != nil {
			return nil, err
		}
	}
	events := a.s.alerting.SpendEvents(l, c, b, marks, now)
	for i := range events {
		e := &events[i]
		if e.Type != store.EventSpendTracked {
			a.changed[c.UserID] = true
		}
		if !a.loaded {
			if a.seq, err = readUint64(a.txn, []byte(keySequence)); err != nil {
				return nil, err
			}
			a.loaded = true
		}
		a.seq++
		e.Seq, e.ID, e.CreatedAt = a.seq, eventID(a.s.dbID, a.seq), now
		if err := put(a.txn, pendingKey(c.UserID, a.seq), eventRecOf(*e)); err != nil {
			return nil, err
		}
		a.wrote = true
	}
	return events, nil
}

// budgetOf returns the customer's budget, or the default budget when it has
// none; nil when neither exists.
func (a *alertTxn) budgetOf(c store.Customer) (*store.Budget, error) {
	id := a.s.alerting.DefaultBudgetID
	if c.BudgetID != nil {
		id = *c.BudgetID
	}
	if id == "" {
		return nil, nil
	}
	rec, seen := a.budgets[id]
	if !seen {
		var r budgetRec
		err := get(a.txn, key(prefixBudget, id), &r)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			rec = &r
		}
		a.budgets[id] = rec
	}
	if rec == nil {
		return nil, nil
	}
	b := rec.budget(id)
	return &b, nil
}

func (a *alertTxn) marksOf(userID string) (store.AlertMarks, error) {
	if m, ok := a.marks[userID]; ok {
		return m, nil
	}
	var rec marksRec
	err := get(a.txn, key(prefixMarks, userID), &rec)
	switch {
	case errors.Is(err, store.ErrNotFound):
		rec = marksRec{}
	case err != nil:
		return nil, err
	}
	a.marks[userID] = store.AlertMarks(rec)
	return a.marks[userID], nil
}

// flush writes the changed marks and the sequence.
func (a *alertTxn) flush() error {
	for userID := range a.changed {
		if err := put(a.txn, key(prefixMarks, userID), marksRec(a.marks[userID])); err != nil {
			return err
		}
	}
	if !a.loaded {
		return nil
	}
	return a.txn.Set([]byte(keySequence), binary.BigEndian.AppendUint64(nil, a.seq))
}
