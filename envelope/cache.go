package envelope

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kmsring/kmsring/internal/format"
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
// salt, hence its own derived payload key, commitment and nonce space, so
// reuse does not weaken any one message; what it trades is blast radius: a
// leaked data key opens every message sealed with it, and the audit trail
// shows one GenerateDataKey per cached key rather than per message.
//
// Caching is off unless a Cache is passed to Seal with WithCache. Streams
// (NewWriter) always use a fresh data key. A Cache is safe for concurrent
// use; Purge erases its keys.
type Cache struct {
	maxAge      time.Duration
	maxMessages uint64
	maxBytes    uint64
	capacity    int
	clock       keyring.Clock

	mu      sync.Mutex
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	dek      []byte
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
		clock: keyring.RealClock(), entries: make(map[string]*cacheEntry),
	}
	for _, o := range opts {
		o(c)
	}
	if c.maxAge <= 0 || c.maxMessages == 0 || c.maxBytes == 0 || c.capacity <= 0 || c.clock == nil {
		return nil, fmt.Errorf("%w: cache limits must be positive", keyring.ErrInvalidArgument)
	}
	return c, nil
}

// WithCache makes Seal take its data key from c (see Cache).
func WithCache(c *Cache) Option { return func(cfg *config) { cfg.cache = c } }

// Purge erases and forgets every cached data key.
func (c *Cache) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range c.entries {
		clear(e.dek)
		delete(c.entries, id)
	}
}

// Len returns the number of cached data keys.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// dataKey returns a copy of a data key, which the caller clears, and its
// blob, which it must not modify, for a message of n bytes under k and ec,
// from the cache if a usable entry exists; nil if the message is too large
// to cache. The lock is held while a new key is generated, so concurrent
// callers wait for it rather than each generating one.
func (c *Cache) dataKey(ctx context.Context, k *keyring.Keyring, ec map[string]string, n int) (dek, blob []byte, err error) {
	id, err := format.AppendContext([]byte(k.ID()), ec)
	if err != nil {
		return nil, nil, fmt.Errorf("envelope: %w: %v", keyring.ErrInvalidArgument, err)
	}
	if uint64(n) > c.maxBytes {
		return nil, nil, nil // too large to cache: use a fresh key
	}
	current := k.CurrentVersion()
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[string(id)]; ok {
		if e.version == current && now.Sub(e.created) < c.maxAge && e.messages < c.maxMessages && e.bytes+uint64(n) <= c.maxBytes {
			e.messages++
			e.bytes += uint64(n)
			return bytes.Clone(e.dek), e.blob, nil
		}
		clear(e.dek)
		delete(c.entries, string(id))
	}
	dk, err := k.GenerateDataKey(ctx, keyring.WithEncryptionContext(ec))
	if err != nil {
		return nil, nil, fmt.Errorf("envelope: %w", err)
	}
	if len(c.entries) >= c.capacity {
		c.evictOldest()
	}
	c.entries[string(id)] = &cacheEntry{dek: dk.Plaintext, blob: dk.Ciphertext, version: dk.Version, created: now, messages: 1, bytes: uint64(n)}
	return bytes.Clone(dk.Plaintext), dk.Ciphertext, nil
}

func (c *Cache) evictOldest() {
	var oldest string
	var at time.Time
	for id, e := range c.entries {
		if oldest == "" || e.created.Before(at) {
			oldest, at = id, e.created
		}
	}
	clear(c.entries[oldest].dek)
	delete(c.entries, oldest)
}
