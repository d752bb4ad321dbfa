// Package lru is a bounded map of loaded values with least-recently-used
// eviction and one load per key at a time: what keyring.Set and the kmsapi
// handler keep their loaded keys in.
//
// A miss loads outside the cache's lock, so first uses of different keys
// load concurrently; concurrent first uses of one key wait for one load.
package lru

import (
	"container/list"
	"context"
	"errors"
	"sync"
)

// Cache holds at most Max values (0: no bound). It is safe for concurrent
// use. The zero value is not usable; call New.
type Cache[V any] struct {
	max int

	mu      sync.Mutex
	ll      *list.List // of *entry[V], most recently used first
	m       map[string]*list.Element
	loading map[string]*call[V]
}

type entry[V any] struct {
	key string
	v   V
}

type call[V any] struct {
	done chan struct{}
	v    V
	err  error
	// removed is set by Remove while the load is in flight, so that
	// the load does not bring the value back.
	removed bool
}

// New returns an empty cache of at most max values (0: no bound).
func New[V any](max int) *Cache[V] {
	return &Cache[V]{max: max, ll: list.New(), m: make(map[string]*list.Element), loading: make(map[string]*call[V])}
}

// Max returns the bound the cache was made with.
func (c *Cache[V]) Max() int { return c.max }

// Peek returns the value held for key, marking it used.
func (c *Cache[V]) Peek(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		c.ll.MoveToFront(el)
		return el.Value.(*entry[V]).v, true
	}
	var zero V
	return zero, false
}

// Get returns the value held for key, or calls load to make it and holds
// the result (a failed load is not held). Of concurrent Gets of one key,
// one calls load and the others wait for it; a waiter whose ctx ends
// returns ctx.Err().
func (c *Cache[V]) Get(ctx context.Context, key string, load func(context.Context) (V, error)) (V, error) {
	for {
		c.mu.Lock()
		if el, ok := c.m[key]; ok {
			c.ll.MoveToFront(el)
			v := el.Value.(*entry[V]).v
			c.mu.Unlock()
			return v, nil
		}
		if cl, ok := c.loading[key]; ok {
			c.mu.Unlock()
			select {
			case <-cl.done:
			case <-ctx.Done():
				var zero V
				return zero, ctx.Err()
			}
			if cl.err != nil && ctx.Err() == nil && isContextError(cl.err) {
				continue // the loader's context ended, not ours: load again
			}
			return cl.v, cl.err
		}
		cl := &call[V]{done: make(chan struct{})}
		c.loading[key] = cl
		c.mu.Unlock()

		cl.v, cl.err = load(ctx)
		c.mu.Lock()
		delete(c.loading, key)
		if cl.err == nil && !cl.removed {
			cl.v = c.putLocked(key, cl.v)
		}
		c.mu.Unlock()
		close(cl.done)
		return cl.v, cl.err
	}
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Put holds v for key unless a value is held already, and returns the
// value held.
func (c *Cache[V]) Put(key string, v V) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.putLocked(key, v)
}

// Replace holds v for key, replacing any value held.
func (c *Cache[V]) Replace(key string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		el.Value.(*entry[V]).v = v
		c.ll.MoveToFront(el)
		return
	}
	c.putLocked(key, v)
}

func (c *Cache[V]) putLocked(key string, v V) V {
	if el, ok := c.m[key]; ok {
		c.ll.MoveToFront(el)
		return el.Value.(*entry[V]).v
	}
	c.m[key] = c.ll.PushFront(&entry[V]{key, v})
	for c.max > 0 && c.ll.Len() > c.max {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.m, last.Value.(*entry[V]).key)
	}
	return v
}

// Remove drops key's value, if held; a load of key in flight is not held.
func (c *Cache[V]) Remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		c.ll.Remove(el)
		delete(c.m, key)
	}
	if cl, ok := c.loading[key]; ok {
		cl.removed = true
	}
}

// Len returns the number of values held.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// Values returns the values held, most recently used first.
func (c *Cache[V]) Values() []V {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]V, 0, c.ll.Len())
	for el := c.ll.Front(); el != nil; el = el.Next() {
		out = append(out, el.Value.(*entry[V]).v)
	}
	return out
}
