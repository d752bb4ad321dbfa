package lru

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	c := New[int](2)
	c.Put("a", 1)
	c.Put("b", 2)
	_, ok := c.Peek("a") // a is now the most recent
	require.True(t, ok)
	c.Put("c", 3)
	assert.Equal(t, 2, c.Len())
	_, ok = c.Peek("b")
	assert.False(t, ok, "b was least recently used")
	assert.Equal(t, []int{3, 1}, c.Values())
	assert.Equal(t, 1, c.Put("a", 9), "Put keeps the value held")
	c.Replace("a", 9)
	v, _ := c.Peek("a")
	assert.Equal(t, 9, v)
	c.Remove("a")
	_, ok = c.Peek("a")
	assert.False(t, ok)
}

func TestOneLoadPerKeyConcurrentAcrossKeys(t *testing.T) {
	c := New[string](0)
	var loads atomic.Int32
	release := make(chan struct{})
	started := make(chan string, 2)
	load := func(key string) func(context.Context) (string, error) {
		return func(context.Context) (string, error) {
			loads.Add(1)
			started <- key
			<-release
			return "v" + key, nil
		}
	}
	var wg sync.WaitGroup
	results := make([]string, 10)
	for i := range 10 {
		key := fmt.Sprint(i % 2)
		wg.Go(func() {
			v, err := c.Get(t.Context(), key, load(key))
			assert.NoError(t, err)
			results[i] = v
		})
	}
	// Both keys' loads start before either finishes: loads of different
	// keys do not wait on each other.
	got := map[string]bool{<-started: true, <-started: true}
	assert.Equal(t, map[string]bool{"0": true, "1": true}, got)
	close(release)
	wg.Wait()
	assert.Equal(t, int32(2), loads.Load(), "one load per key")
	for i, v := range results {
		assert.Equal(t, fmt.Sprint("v", i%2), v)
	}
}

func TestFailedLoadIsNotHeld(t *testing.T) {
	c := New[int](0)
	boom := errors.New("boom")
	_, err := c.Get(t.Context(), "k", func(context.Context) (int, error) { return 0, boom })
	require.ErrorIs(t, err, boom)
	v, err := c.Get(t.Context(), "k", func(context.Context) (int, error) { return 7, nil })
	require.NoError(t, err)
	assert.Equal(t, 7, v)
}

func TestWaiterContextEnds(t *testing.T) {
	c := New[int](0)
	release := make(chan struct{})
	started := make(chan struct{})
	go c.Get(context.Background(), "k", func(context.Context) (int, error) { close(started); <-release; return 1, nil })
	<-started
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.Get(ctx, "k", func(context.Context) (int, error) { return 2, nil })
	require.ErrorIs(t, err, context.Canceled)
	close(release)
}

func TestRemoveDuringLoad(t *testing.T) {
	c := New[int](0)
	release := make(chan struct{})
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Get(context.Background(), "k", func(context.Context) (int, error) { close(started); <-release; return 1, nil })
	}()
	<-started
	c.Remove("k")
	close(release)
	<-done
	_, ok := c.Peek("k")
	assert.False(t, ok, "a load that raced with Remove is not held")
}

// A waiter whose own context is fine loads again when the load it waited
// for failed because the loader's context ended.
func TestWaiterRetriesAfterLoaderCancelled(t *testing.T) {
	c := New[int](0)
	loaderCtx, cancel := context.WithCancel(t.Context())
	started := make(chan struct{})
	go c.Get(loaderCtx, "k", func(ctx context.Context) (int, error) {
		close(started)
		<-ctx.Done()
		return 0, fmt.Errorf("load: %w", ctx.Err())
	})
	<-started
	done := make(chan int)
	go func() {
		v, err := c.Get(t.Context(), "k", func(context.Context) (int, error) { return 5, nil })
		assert.NoError(t, err)
		done <- v
	}()
	cancel()
	assert.Equal(t, 5, <-done)
}
