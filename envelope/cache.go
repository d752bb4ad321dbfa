package envelope

import (
	"bytes"
	"fmt"
	"sync"
	"time"

	"github.com/kmsring/kmsring/keyring"
)

// Cache lets Seal reuse a data key across messages, as the AWS Encryption
// SDK's caching materials manager does, to save the data key generation
// (and, with a remote keyring, a round trip) per message.
//
// A cached data key is used for at most MaxMessages messages and
// MaxBytes bytes of plaintext, and for at most MaxAge; whichever comes
// first retires it, as does a rotation of the key (a new current version).
// Entries are partitioned by key ID and encryption context: a data key is
// never shared across contexts. Every message still gets a fresh random
// salt, hence its own payload key, commitment and nonce space: a leaked
// payload key opens one message, and reuse does not weaken any one message.
// What it trades is blast radius: a leaked data key opens every message
// sealed with it, and the audit trail shows one GenerateDataKey per cached
// key rather than per message.
//
// Caching is off unless a Cache is passed to Seal with WithCache. Streams
// (NewWriter) always use a fresh data key. A Cache is safe for concurrent
// use; Purge erases its keys. Concurrent Seals that find no usable entry
// may each make a data key; the last one made is cached.
type Cache struct {
	maxAge      time.Duration
	maxMessages uint64
	maxBytes    uint64
	capacity    int
	clock       keyring.Clock

	mu      sync.Mutex
	entries map[string]map[string]*cacheEntry // by key ID, then encoded context
	n       int                               // entries in all
}

type cacheEntry struct {
	dek      [dekSize]byte
	blob     []byte
	version  uint32
	created  time.Time
	messages uint64
	bytes    uint64
}

// CacheOption configures a Cache.
type CacheOption func(*Cache)

// WithMaxAge sets how long a data key may be used (default 5 minutes).
func WithMaxAge(d time.Duration) CacheOption { return func(c *Cache) { c.maxAge = d } }

// WithMaxMessages sets how many messages a data key may seal (default
// 2^32).
func WithMaxMessages(n uint64) CacheOption { return func(c *Cache) { c.maxMessages = n } }

// WithMaxBytes sets how many bytes of plaintext a data key may seal in all
// (default 2^40).
func WithMaxBytes(n uint64) CacheOption { return func(c *Cache) { c.maxBytes = n } }

// WithCapacity sets how many data keys the cache holds at most (default
// 1,000); when full, the oldest is evicted.
func WithCapacity(n int) CacheOption { return func(c *Cache) { c.capacity = n } }

// WithCacheClock sets the clock that ages entries (default the wall clock).
func WithCacheClock(clk keyring.Clock) CacheOption { return func(c *Cache) { c.clock = clk } }

// NewCache returns an empty cache. Limits must be positive.
func NewCache(opts ...CacheOption) (*Cache, error) {
	c := &Cache{
		maxAge: 5 * time.Minute, maxMessages: 1 << 32, maxBytes: 1 << 40, capacity: 1000,
		clock: keyring.RealClock(), entries: make(map[string]map[string]*cacheEntry),
	}
	for _, o := range opts {
		o(c)
	}
	if c.maxAge <= 0 || c.maxMessages == 0 || c.maxBytes == 0 || c.capacity <= 0 || c.clock == nil {
		return nil, fmt.Errorf("%w: cache limits must be positive", keyring.ErrInvalidArgument)
	}
	return c, nil
}

// WithCache makes Seal and AppendSeal take their data key from c (see
// Cache). NewWriter ignores it.
func WithCache(c *Cache) Option { return Option{cache: c} }

// Purge erases and forgets every cached data key.
func (c *Cache) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, m := range c.entries {
		for ec, e := range m {
			c.remove(id, ec, e)
		}
	}
}

// Len returns the number of cached data keys.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// remove erases and forgets entry e of key id and encoded context ec. The
// caller holds c.mu.
func (c *Cache) remove(id, ec string, e *cacheEntry) {
	clear(e.dek[:])
	delete(c.entries[id], ec)
	if len(c.entries[id]) == 0 {
		delete(c.entries, id)
	}
	c.n--
}

// appendDataKey takes a usable cached data key for a message of n bytes
// under k and the encryption context encoded as ec: it counts the message,
// copies the key into dek, appends its blob to dst, and returns dst and
// true. Without one it returns dst and false: the caller makes a data key
// and may put it.
func (c *Cache) appendDataKey(dst []byte, k *keyring.Keyring, ec []byte, n int, dek []byte, blobSize int) ([]byte, bool) {
	if uint64(n) > c.maxBytes {
		return dst, false
	}
	current := k.CurrentVersion()
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k.ID()][string(ec)]
	if !ok {
		return dst, false
	}
	// A key that is no longer enabled (disabled, pending deletion,
	// deleted, or a handle that saw its store go back) takes the uncached
	// path, which refuses, audited, as every use of such a key must be.
	// A blob of another format than the suite's (another handle on the
	// key, with or without keyring.WithApprovedAlgorithms) is no use.
	if e.version != current || len(e.blob) != blobSize || k.KeyState() != keyring.KeyEnabled || k.Suspect() ||
		now.Sub(e.created) >= c.maxAge || e.messages >= c.maxMessages || e.bytes+uint64(n) > c.maxBytes {
		c.remove(k.ID(), string(ec), e)
		return dst, false
	}
	e.messages++
	e.bytes += uint64(n)
	copy(dek, e.dek[:])
	return append(dst, e.blob...), true
}

// put caches data key dek and its blob under key version version, just
// used for a message of n bytes under k and the encryption context encoded
// as ec, replacing any entry for them and evicting the oldest entry when
// the cache is full.
func (c *Cache) put(k *keyring.Keyring, ec []byte, n int, dek, blob []byte, version uint32) {
	if uint64(n) > c.maxBytes {
		return // too large to cache: it had a fresh key of its own
	}
	e := &cacheEntry{blob: bytes.Clone(blob), version: version, created: c.clock.Now(), messages: 1, bytes: uint64(n)}
	copy(e.dek[:], dek)
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[k.ID()][string(ec)]; ok {
		c.remove(k.ID(), string(ec), old)
	}
	if c.n >= c.capacity {
		c.evictOldest()
	}
	m := c.entries[k.ID()]
	if m == nil {
		m = make(map[string]*cacheEntry)
		c.entries[k.ID()] = m
	}
	m[string(ec)] = e
	c.n++
}

func (c *Cache) evictOldest() {
	var oldest *cacheEntry
	var oldID, oldEC string
	for id, m := range c.entries {
		for ec, e := range m {
			if oldest == nil || e.created.Before(oldest.created) {
				oldest, oldID, oldEC = e, id, ec
			}
		}
	}
	if oldest != nil {
		c.remove(oldID, oldEC, oldest)
	}
}
