package badgerstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/tollgate-dev/tollgate/store"
)

// maxQueryScan bounds the index entries one QuerySpendLogs call reads. Only
// the model filter skips entries, and a rare model over a long range would
// otherwise read every log in it before answering; with the bound, a call
// reads at most this many logs (about 4 µs each, so 0.2 s) and hands back a
// cursor, possibly with a short or empty page.
const maxQueryScan = 50_000

// QuerySpendLogs returns one page of the logs q selects. It seeks to q.Start
// (or past q.After) in the time index, t for every log and u for one
// customer's, and reads forward until the page is full, q.End is reached or
// maxQueryScan entries were read. The cursor is the position of the last
// entry read: its start time and request id, the suffix both indexes share.
func (s *Store) QuerySpendLogs(ctx context.Context, q store.SpendLogQuery) ([]store.SpendLog, string, error) {
	if q.Limit <= 0 {
		return nil, "", fmt.Errorf("query spend logs: limit must be positive, got %d", q.Limit)
	}
	after, err := decodeCursor(q.After)
	if err != nil {
		return nil, "", fmt.Errorf("query spend logs: %w", err)
	}
	var logs []store.SpendLog
	var next string
	err = s.view(ctx, func(txn *badger.Txn) error {
		var err error
		if q.RequestID != "" {
			logs, err = queryOne(txn, q, after)
		} else {
			logs, next, err = queryScan(txn, q, after)
		}
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("query spend logs: %w", err)
	}
	if logs == nil {
		logs = []store.SpendLog{}
	}
	return logs, next, nil
}

// queryOne answers a query by request id with one read of the log itself.
func queryOne(txn *badger.Txn, q store.SpendLogQuery, after []byte) ([]store.SpendLog, error) {
	var rec logRec
	err := get(txn, key(prefixLog, q.RequestID), &rec)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("spend log %q: %w", q.RequestID, err)
	}
	pos := appendTime(nil, rec.StartTime)
	pos = append(pos, q.RequestID...)
	if q.CustomerID != "" && rec.CustomerID != q.CustomerID ||
		q.Model != "" && rec.Model != q.Model ||
		!q.Start.IsZero() && bytes.Compare(pos, appendTime(nil, q.Start)) < 0 ||
		!q.End.IsZero() && bytes.Compare(pos, appendTime(nil, q.End)) >= 0 ||
		after != nil && bytes.Compare(pos, after) <= 0 {
		return nil, nil
	}
	return []store.SpendLog{rec.spendLog(q.RequestID)}, nil
}

// queryScan reads the time index from the query's first position on.
func queryScan(txn *badger.Txn, q store.SpendLogQuery, after []byte) ([]store.SpendLog, string, error) {
	prefix := []byte{prefixLogTime}
	if q.CustomerID != "" {
		prefix = pairPrefix(prefixCustomerLog, q.CustomerID, 0)
	}
	seek := prefix
	if !q.Start.IsZero() {
		seek = appendTime(bytes.Clone(prefix), q.Start)
	}
	if after != nil {
		// The byte after the cursor's position is the first key past it.
		if resume := append(append(bytes.Clone(prefix), after...), 0); bytes.Compare(resume, seek) > 0 {
			seek = resume
		}
	}
	var end []byte
	if !q.End.IsZero() {
		end = appendTime(bytes.Clone(prefix), q.End)
	}

	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	var logs []store.SpendLog
	var last []byte
	read := 0
	for it.Seek(seek); it.Valid(); it.Next() {
		k := it.Item().Key()
		if end != nil && bytes.Compare(k, end) >= 0 {
			break
		}
		// Stopping only when another entry is in range spares the caller an
		// empty last page, unless the entries left are all another model's.
		if len(logs) == q.Limit || read == maxQueryScan {
			return logs, encodeCursor(last), nil
		}
		read++
		last = append(last[:0], k[len(prefix):]...)
		id := string(last[timeLen:])
		var rec logRec
		if err := get(txn, key(prefixLog, id), &rec); err != nil {
			return nil, "", fmt.Errorf("spend log %q: %w", id, err)
		}
		if q.Model != "" && rec.Model != q.Model {
			continue
		}
		logs = append(logs, rec.spendLog(id))
	}
	return logs, "", nil
}

// encodeCursor makes an index position (start time, request id) opaque and
// safe in a URL.
func encodeCursor(pos []byte) string { return base64.RawURLEncoding.EncodeToString(pos) }

// decodeCursor returns the position a cursor holds; nil for "".
func decodeCursor(c string) ([]byte, error) {
	if c == "" {
		return nil, nil
	}
	pos, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(pos) <= timeLen {
		return nil, store.ErrBadCursor
	}
	return pos, nil
}
