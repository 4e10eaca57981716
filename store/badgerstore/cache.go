package badgerstore

import (
	"context"
	"encoding"
	"errors"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/tollgate-dev/tollgate/store"
)

// DefaultCacheSize is Options.CacheSize's default. A cached customer or
// simple budget takes about 300 bytes of heap (measured: 271 and 284), so
// both caches full hold about 20 MB, however many customers are stored.
const DefaultCacheSize = 32768

// cache keeps decoded records by id, and which ids do not exist, so the data
// plane's reads of a customer and its budget on every request skip Badger
// and the decoding. The store is the database's only writer, so every write
// path can keep the cache right itself:
//
//   - A write that commits a record it knows (the spend writer's customer
//     rows) installs it, unless an invalidation ran since the write began:
//     then a newer commit may already be in, and the entry is dropped instead.
//   - Every other write drops its ids after its commit (invalidate).
//   - A read that misses leaves a placeholder before reading Badger, and its
//     result goes in only if the placeholder is still there: any commit it
//     may have missed was followed by an install or an invalidation, which
//     replaced the placeholder.
//
// So once a write has returned, no read returns what it replaced. Entries
// are immutable once ready; a full cache evicts an entry at random (Go's map
// order), which needs no bookkeeping on hits.
type cache[V any] struct {
	mu  sync.RWMutex
	max int
	m   map[string]*entry[V]
	gen uint64 // counts invalidations
}

// entry is a cached record; val nil means the id does not exist. A
// placeholder (ready false) marks a read in progress.
type entry[V any] struct {
	val   *V
	ready bool
}

func newCache[V any](size int) *cache[V] {
	return &cache[V]{max: size, m: make(map[string]*entry[V])}
}

// lookup returns the record for id when it is cached (hit). On a miss it
// returns the placeholder to pass to fill after reading the record.
func (c *cache[V]) lookup(id string) (val *V, hit bool, placeholder *entry[V]) {
	c.mu.RLock()
	e := c.m[id]
	if e != nil && e.ready {
		val, hit = e.val, true
	}
	c.mu.RUnlock()
	if hit {
		return val, true, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e = c.m[id]
	switch {
	case e == nil:
		e = &entry[V]{}
		c.set(id, e)
	case e.ready:
		return e.val, true, nil
	}
	return nil, false, e
}

// fill caches what a read that missed found (nil: no such id), unless a
// write replaced the placeholder meanwhile.
func (c *cache[V]) fill(id string, placeholder *entry[V], val *V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[id] == placeholder && !placeholder.ready {
		placeholder.val, placeholder.ready = val, true
	}
}

// generation is the invalidation count, taken before a write that will install.
func (c *cache[V]) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// install caches records a write committed, which must have begun after
// generation returned gen; when an invalidation ran since, it drops them.
// vals must not be changed afterwards.
func (c *cache[V]) install(gen uint64, vals map[string]*V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, v := range vals {
		if c.gen != gen {
			delete(c.m, id)
			continue
		}
		c.set(id, &entry[V]{val: v, ready: true})
	}
}

// invalidate drops ids after a write that may have changed them.
func (c *cache[V]) invalidate(ids ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, id := range ids {
		delete(c.m, id)
	}
}

// set stores e, evicting an entry first when a new id would overfill the
// cache. The caller holds c.mu.
func (c *cache[V]) set(id string, e *entry[V]) {
	if _, ok := c.m[id]; !ok && len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[id] = e
}

// readCached returns the record at prefix+id through c: from c when it is
// there, else from Badger, caching what it finds. The record is shared with
// the cache, so the caller must copy what it hands out. store.ErrNotFound
// when there is no such record.
func readCached[V any, P interface {
	*V
	encoding.BinaryUnmarshaler
}](ctx context.Context, s *Store, c *cache[V], prefix byte, id string) (*V, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	val, hit, placeholder := c.lookup(id)
	if !hit {
		var rec V
		err := translate(s.db.View(func(txn *badger.Txn) error {
			return get(txn, key(prefix, id), P(&rec))
		}))
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			val = &rec
		}
		c.fill(id, placeholder, val)
	}
	if val == nil {
		return nil, store.ErrNotFound
	}
	return val, nil
}
