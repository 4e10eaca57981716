package badgerstore

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tollgate-dev/tollgate/store"
)

// Outbox keys. Pending events are keyed by customer, then sequence, so a
// customer's oldest event is the first key under its prefix and the worker
// finds every customer's head with one seek each. Only the spend writer writes
// the sequence and marks; only the worker writes the counters; so the hot
// path never conflicts with deliveries.
const (
	prefixPending  = 'h' // h<len><user id><seq>: pending event → eventRec
	prefixDead     = 'x' // x<seq>: dead event → eventRec
	prefixMarks    = 'm' // m<user id>: the customer's alert marks → marksRec
	prefixCounter  = 'k' // k<name>: delivered/retried counter (uint64)
	keySequence    = "q" // the last event sequence given out (uint64)
	keyDatabaseID  = "i" // 8 random bytes naming this database in event ids
	counterDone    = "delivered"
	counterRetried = "retried"
	eventIDPrefix  = "evt_"
)

// seqLen is the size of an encoded sequence in a key.
const seqLen = 8

func pendingKey(userID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(pairPrefix(prefixPending, userID, seqLen), seq)
}

// afterCustomer is a seek key past every pending key of userID: those are
// exactly seqLen bytes longer than its prefix.
func afterCustomer(userID string) []byte {
	k := pairPrefix(prefixPending, userID, seqLen+1)
	for range seqLen + 1 {
		k = append(k, 0xff)
	}
	return k
}

// splitPendingKey returns the user id and sequence of a pending key.
func splitPendingKey(k []byte) (string, uint64, error) {
	rest := k[1:]
	n, w := binary.Uvarint(rest)
	if w <= 0 || uint64(len(rest)-w) != n+seqLen {
		return "", 0, fmt.Errorf("%w: pending key %q", errCorrupt, k)
	}
	rest = rest[w:]
	return string(rest[:n]), binary.BigEndian.Uint64(rest[n:]), nil
}

func deadKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixDead}, seq)
}

// eventRec is the stored form of store.Event (see codec.go); the sequence is
// the key and the id is derived from it.
type eventRec struct {
	Type           string
	CustomerID     string
	RequestID      string
	Spend          store.Nano
	MaxBudget      *store.Nano
	SoftBudget     *store.Nano
	Token          *string
	ProjectedSpend *store.Nano
	ProjectedDate  *time.Time
	Message        string
	CreatedAt      time.Time
	Attempts       int
	LastError      string
	DeadAt         time.Time
}

func eventRecOf(e store.Event) eventRec {
	r := eventRec{
		Type:           string(e.Type),
		CustomerID:     e.CustomerID,
		RequestID:      e.RequestID,
		Spend:          e.Spend,
		MaxBudget:      e.MaxBudget,
		SoftBudget:     e.SoftBudget,
		Token:          e.Token,
		ProjectedSpend: e.ProjectedSpend,
		Message:        e.Message,
		CreatedAt:      e.CreatedAt.UTC().Round(0),
		Attempts:       e.Attempts,
		LastError:      e.LastError,
		DeadAt:         e.DeadAt.UTC().Round(0),
	}
	if e.ProjectedExceededDate != nil {
		t := e.ProjectedExceededDate.UTC().Round(0)
		r.ProjectedDate = &t
	}
	return r
}

func (r eventRec) event(dbID string, seq uint64) store.Event {
	return store.Event{
		ID:                    eventID(dbID, seq),
		Seq:                   seq,
		Type:                  store.EventType(r.Type),
		CustomerID:            r.CustomerID,
		RequestID:             r.RequestID,
		Spend:                 r.Spend,
		MaxBudget:             r.MaxBudget,
		SoftBudget:            r.SoftBudget,
		Token:                 r.Token,
		ProjectedSpend:        r.ProjectedSpend,
		ProjectedExceededDate: r.ProjectedDate,
		Message:               r.Message,
		CreatedAt:             r.CreatedAt,
		Attempts:              r.Attempts,
		LastError:             r.LastError,
		DeadAt:                r.DeadAt,
	}
}

// eventID names event seq of database dbID: stable across restarts and
// unique across databases, so a receiver's dedup never drops a new event of a
// fresh data directory.
func eventID(dbID string, seq uint64) string {
	return eventIDPrefix + dbID + "_" + strconv.FormatUint(seq, 10)
}

// parseEventID returns the sequence of an id of this database.
func parseEventID(dbID, id string) (uint64, bool) {
	rest, ok := strings.CutPrefix(id, eventIDPrefix+dbID+"_")
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(rest, 10, 64)
	return seq, err == nil && strconv.FormatUint(seq, 10) == rest
}

// loadDatabaseID reads this database's id, creating it on first open.
func loadDatabaseID(db *badger.DB) (string, error) {
	var id string
	err := db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyDatabaseID))
		if errors.Is(err, badger.ErrKeyNotFound) {
			raw := []byte(randomID())[:16]
			id = string(raw)
			return txn.Set([]byte(keyDatabaseID), raw)
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if _, err := hex.DecodeString(string(v)); err != nil || len(v) != 16 {
			return fmt.Errorf("%w: database id %q", errCorrupt, v)
		}
		id = string(v)
		return nil
	})
	return id, err
}

// signalEvents wakes the worker without ever blocking the caller.
func (s *Store) signalEvents() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// EventsReady receives a value after a commit made events pending.
func (s *Store) EventsReady() <-chan struct{} { return s.ready }

// OutboxHeads returns the oldest pending event of up to n customers, in key
// order of customers, starting after customer after ("" = from the start).
func (s *Store) OutboxHeads(ctx context.Context, after string, n int) ([]store.Event, error) {
	var out []store.Event
	err := s.view(ctx, func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte{prefixPending}
		it := txn.NewIterator(opts)
		defer it.Close()
		seek := opts.Prefix
		if after != "" {
			seek = afterCustomer(after)
		}
		for it.Seek(seek); it.Valid() && len(out) < n; it.Seek(afterCustomer(out[len(out)-1].CustomerID)) {
			item := it.Item()
			userID, seq, err := splitPendingKey(item.Key())
			if err != nil {
				return err
			}
			var rec eventRec
			if err := item.Value(rec.UnmarshalBinary); err != nil {
				return fmt.Errorf("decode %q: %w", item.Key(), err)
			}
			out = append(out, rec.event(s.dbID, seq))
			if rec.CustomerID != userID {
				return fmt.Errorf("%w: event %d is filed under customer %q", errCorrupt, seq, userID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox heads: %w", err)
	}
	return out, nil
}

// RecordDeliveries applies delivery outcomes in one transaction.
func (s *Store) RecordDeliveries(ctx context.Context, ds []store.Delivery) error {
	err := s.update(ctx, func(txn *badger.Txn) error {
		now := s.stamp()
		var delivered, retried uint64
		for _, d := range ds {
			pk := pendingKey(d.Event.CustomerID, d.Event.Seq)
			var rec eventRec
			err := get(txn, pk, &rec)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if err := txn.Delete(pk); err != nil {
				return err
			}
			if d.Attempts > 1 {
				retried++
			}
			if !d.Dead {
				delivered++
				continue
			}
			rec.Attempts, rec.LastError, rec.DeadAt = d.Attempts, d.LastError, now
			if err := put(txn, deadKey(d.Event.Seq), rec); err != nil {
				return err
			}
		}
		if err := addCounter(txn, counterDone, delivered); err != nil {
			return err
		}
		return addCounter(txn, counterRetried, retried)
	})
	if err != nil {
		return fmt.Errorf("record deliveries: %w", err)
	}
	return nil
}

// DeadEvents returns every dead event ordered by Seq.
func (s *Store) DeadEvents(ctx context.Context) ([]store.Event, error) {
	out := []store.Event{}
	err := s.view(ctx, func(txn *badger.Txn) error {
		return scanValues(txn, []byte{prefixDead}, func(rest, v []byte) error {
			if len(rest) != seqLen {
				return fmt.Errorf("%w: dead key", errCorrupt)
			}
			var rec eventRec
			if err := rec.UnmarshalBinary(v); err != nil {
				return err
			}
			out = append(out, rec.event(s.dbID, binary.BigEndian.Uint64(rest)))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("dead events: %w", err)
	}
	return out, nil
}

// ReplayDead makes the dead events with these ids pending again, all or none.
func (s *Store) ReplayDead(ctx context.Context, ids []string) ([]store.Event, error) {
	ids = dedupe(ids)
	var out []store.Event
	err := s.update(ctx, func(txn *badger.Txn) error {
		out = make([]store.Event, 0, len(ids))
		recs := make([]eventRec, len(ids))
		seqs := make([]uint64, len(ids))
		var missing []string
		for i, id := range ids {
			seq, ok := parseEventID(s.dbID, id)
			if ok {
				err := get(txn, deadKey(seq), &recs[i])
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				ok = err == nil
			}
			if !ok {
				missing = append(missing, id)
			}
			seqs[i] = seq
		}
		if len(missing) > 0 {
			return &store.MissingError{IDs: missing}
		}
		for i, rec := range recs {
			if err := txn.Delete(deadKey(seqs[i])); err != nil {
				return err
			}
			rec.Attempts, rec.LastError, rec.DeadAt = 0, "", time.Time{}
			if err := put(txn, pendingKey(rec.CustomerID, seqs[i]), rec); err != nil {
				return err
			}
			out = append(out, rec.event(s.dbID, seqs[i]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("replay dead events: %w", err)
	}
	if len(out) > 0 {
		s.signalEvents()
	}
	return out, nil
}

// OutboxStats counts delivered, retried, pending and dead events.
func (s *Store) OutboxStats(ctx context.Context) (store.OutboxStats, error) {
	var st store.OutboxStats
	err := s.view(ctx, func(txn *badger.Txn) error {
		st.Pending = countKeys(txn, []byte{prefixPending})
		st.Dead = countKeys(txn, []byte{prefixDead})
		var err error
		if st.Delivered, err = readCounter(txn, counterDone); err != nil {
			return err
		}
		st.Retried, err = readCounter(txn, counterRetried)
		return err
	})
	if err != nil {
		return store.OutboxStats{}, fmt.Errorf("outbox stats: %w", err)
	}
	return st, nil
}

func countKeys(txn *badger.Txn, prefix []byte) int64 {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	var n int64
	for it.Rewind(); it.Valid(); it.Next() {
		n++
	}
	return n
}

// readUint64 reads a uint64 value; 0 when k is absent.
func readUint64(txn *badger.Txn, k []byte) (uint64, error) {
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var n uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: counter %q", errCorrupt, k)
		}
		n = binary.BigEndian.Uint64(v)
		return nil
	})
	return n, err
}

func readCounter(txn *badger.Txn, name string) (int64, error) {
	n, err := readUint64(txn, key(prefixCounter, name))
	return int64(n), err
}

func addCounter(txn *badger.Txn, name string, delta uint64) error {
	if delta == 0 {
		return nil
	}
	k := key(prefixCounter, name)
	n, err := readUint64(txn, k)
	if err != nil {
		return err
	}
	return txn.Set(k, binary.BigEndian.AppendUint64(nil, n+delta))
}
