// Package badgerstore is the Badger backend of store.Store and store.Outbox:
// customers, budgets, spend logs and the webhook outbox in one embedded
// key-value database, with RecordSpend batched into group commits so one
// fsync covers many requests and their events.
package badgerstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/tollgate-dev/tollgate/store"
)

var (
	_ store.Store  = (*Store)(nil)
	_ store.Outbox = (*Store)(nil)
)

// Badger's defaults (five 64 MiB memtables, a 256 MiB block cache, Snappy
// compression, tables doubling in size per level) reach several hundred MB
// under a sustained spend load, mostly in table builders during compaction.
// These keep the heap in use near 100 MB at ~45,000 records/s (see README):
// three 8 MiB memtables at most, no compression (our values are small
// and compression's per-block buffers dominated the heap), every table 2 MiB so
// a compaction's builders stay small, and a small block cache (without
// compression it holds parsed block handles; the data stays in mmap).
const (
	memTableSize     = 8 << 20
	numMemtables     = 2
	tableSize        = 2 << 20
	blockCacheSize   = 8 << 20
	valueLogFileSize = 64 << 20
)

// queueSize bounds the RecordSpend callers waiting for the writer; beyond it
// callers block (honouring ctx), which is the backpressure we want.
const queueSize = 4096

// Options configures Open.
type Options struct {
	// Dir is the database directory; required unless InMemory.
	Dir string
	// InMemory keeps everything in memory (tests); Dir is ignored.
	InMemory bool
	// SyncWrites makes every commit wait for fsync, so nothing acknowledged
	// is lost on a crash. Group commit keeps its cost low (see README).
	SyncWrites bool
	// Logger receives Badger's warnings and errors; nil discards them.
	Logger *slog.Logger
	// Now is the clock for CreatedAt/UpdatedAt; nil means time.Now.
	Now func() time.Time
	// NewID generates budget ids; nil means 128 random bits in hex.
	NewID func() string
	// Alerting is the webhook event policy RecordSpend applies; the zero
	// value writes no events.
	Alerting store.Alerting
	// CacheSize caps the customers, and apart from them the budgets, that
	// GetCustomer and GetBudget keep decoded in memory; 0 means
	// DefaultCacheSize.
	CacheSize int
}

// Store is a store.Store backed by Badger. Create it with Open.
type Store struct {
	db    *badger.DB
	log   *slog.Logger
	now   func() time.Time
	newID func() string

	// mu guards closed: every call holds it shared while it uses db or sends on
	// queue, so Close (exclusive) never races an in-flight call.
	mu     sync.RWMutex
	closed bool

	queue      chan *spendReq
	writerDone chan struct{}

	alerting store.Alerting
	dbID     string        // names this database in event ids
	ready    chan struct{} // EventsReady

	// customers and budgets cache what GetCustomer and GetBudget read; every
	// write of either keeps them right (cache.go).
	customers *cache[customerRec]
	budgets   *cache[budgetRec]
}

// Open opens (or creates) the database and starts the spend writer.
func Open(opts Options) (*Store, error) {
	if !opts.InMemory && opts.Dir == "" {
		return nil, errors.New("open badger store: Dir is required unless InMemory")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir := opts.Dir
	if opts.InMemory {
		dir = ""
	}
	bopts := badger.DefaultOptions(dir).
		WithInMemory(opts.InMemory).
		WithSyncWrites(opts.SyncWrites).
		WithLogger(badgerLogger{logger}).
		WithMemTableSize(memTableSize).
		WithNumMemtables(numMemtables).
		WithBaseTableSize(tableSize).
		WithCompression(options.None).
		WithBlockCacheSize(blockCacheSize).
		WithValueLogFileSize(valueLogFileSize).
		WithNumCompactors(2).
		WithMetricsEnabled(false)
	bopts.TableSizeMultiplier = 1
	db, err := badger.Open(bopts)
	if err != nil {
		return nil, fmt.Errorf("open badger store: %w", err)
	}
	dbID, err := loadDatabaseID(db)
	if err != nil {
		_ = db.Close() // the id error is the one worth reporting
		return nil, fmt.Errorf("open badger store: %w", err)
	}
	s := &Store{
		db:         db,
		log:        logger,
		now:        opts.Now,
		newID:      opts.NewID,
		queue:      make(chan *spendReq, queueSize),
		writerDone: make(chan struct{}),
		alerting:   opts.Alerting,
		dbID:       dbID,
		ready:      make(chan struct{}, 1),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.newID == nil {
		s.newID = randomID
	}
	size := opts.CacheSize
	if size <= 0 {
		size = DefaultCacheSize
	}
	s.customers, s.budgets = newCache[customerRec](size), newCache[budgetRec](size)
	go s.writeLoop()
	return s, nil
}

// Close stops accepting calls, commits every queued spend record, and closes
// the database. Calls after Close, including Close, return store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	s.closed = true
	s.mu.Unlock()

	close(s.queue)
	<-s.writerDone
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close badger store: %w", err)
	}
	return nil
}

// acquire marks a call in flight; the caller must call s.mu.RUnlock after.
func (s *Store) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return store.ErrClosed
	}
	return nil
}

// view runs fn in a read-only transaction.
func (s *Store) view(ctx context.Context, fn func(txn *badger.Txn) error) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	return translate(s.db.View(fn))
}

// update runs fn in a read-write transaction, retrying on conflict until ctx
// ends. fn must be safe to run more than once.
func (s *Store) update(ctx context.Context, fn func(txn *badger.Txn) error) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	return s.retry(ctx, fn)
}

// retry is update without the in-flight bookkeeping; the spend writer uses it
// directly because Close waits for the writer, not the other way round.
func (s *Store) retry(ctx context.Context, fn func(txn *badger.Txn) error) error {
	for {
		err := s.db.Update(fn)
		if !errors.Is(err, badger.ErrConflict) {
			return translate(err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// translate turns Badger's sentinels into store errors so no Badger type
// leaks to callers. ErrKeyNotFound is handled where it means something.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, badger.ErrDBClosed):
		return store.ErrClosed
	case errors.Is(err, badger.ErrTxnTooBig):
		return errTxnTooBig
	}
	return err
}

// errTxnTooBig means one transaction touched more than Badger accepts in one
// commit (about 1.2 MB or 12,000 keys with our memtable size).
var errTxnTooBig = errors.New("too many changes for one transaction")

// stamp is the store clock in UTC without a monotonic reading, so a value
// returned by a write equals the one read back later.
func (s *Store) stamp() time.Time { return s.now().UTC().Round(0) }

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24).
	return hex.EncodeToString(b[:])
}

// badgerLogger forwards Badger's warnings and errors to slog and drops its
// INFO/DEBUG chatter (compaction and flush notices on every start).
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(format string, args ...any) {
	b.l.Error(strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "badger")
}

func (b badgerLogger) Warningf(format string, args ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "badger")
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}
