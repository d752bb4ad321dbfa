package kmsapi

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
)

// Changes made by other processes. Without help the handler sees them
// within its refresh interval (a key re-read at most that often, an access
// key at most half as often). Changed applies one at once; Watch applies
// every change a store with a change feed (pgstore) reports, so that a
// disabled key, a revoked access key or a tightened policy reaches every
// endpoint sharing the store within milliseconds.

// Changed tells the handler that the store record recordID changed in
// another process (or through another face of the library sharing the
// store): a key ID, an access key's record, an alias, or "" for anything.
// The handler drops or re-reads what it has cached of it before it
// returns, so that the next request sees the change. It is safe for
// concurrent use.
func (h *Handler) Changed(ctx context.Context, recordID string) {
	if id, ok := AccessKeyRecord(recordID); ok {
		h.accessKeys.forget(id)
		return
	}
	if strings.HasPrefix(recordID, keyring.ReservedPrefix) {
		return
	}
	// An alias may have moved with any key change.
	h.keys.mu.Lock()
	clear(h.keys.aliases)
	h.keys.mu.Unlock()
	var entries []*keyEntry
	if recordID == "" {
		entries = h.keys.byID.Values()
	} else if e, ok := h.keys.byID.Peek(recordID); ok {
		entries = append(entries, e)
	}
	if recordID == "" {
		h.accessKeys.forget("")
	}
	for _, e := range entries {
		e.lastRefresh.Store(h.clock.Now().UnixNano())
		if err := e.k.Refresh(ctx); err != nil {
			h.log.LogAttrs(ctx, slog.LevelWarn, "kmsapi: refresh key after a change", slog.String("key_id", e.k.ID()), slog.String("err", err.Error()))
		}
	}
}

// maxPendingChanges bounds the changes Watch queues; past it, it treats
// the backlog as "anything changed".
const maxPendingChanges = 10000

// Watch applies the changes the store reports (store.ChangeFeed, which
// pgstore implements with LISTEN/NOTIFY) until ctx ends, then returns
// ctx.Err(). With a store that reports none it just waits for ctx. Run it
// in its own goroutine beside the server.
func (h *Handler) Watch(ctx context.Context) error {
	feed, ok := h.st.(store.ChangeFeed)
	if !ok {
		<-ctx.Done()
		return ctx.Err()
	}
	var (
		mu      sync.Mutex
		pending = map[string]struct{}{}
		wake    = make(chan struct{}, 1)
	)
	stop := feed.Changes(func(id string) {
		mu.Lock()
		if len(pending) >= maxPendingChanges {
			clear(pending)
			id = ""
		}
		pending[id] = struct{}{}
		mu.Unlock()
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
		mu.Lock()
		batch := pending
		pending = map[string]struct{}{}
		mu.Unlock()
		if _, all := batch[""]; all {
			batch = map[string]struct{}{"": {}}
		}
		for id := range batch {
			h.Changed(ctx, id)
		}
	}
}
