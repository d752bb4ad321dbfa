package audit

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// appendCounter is a store that remembers the size of every append.
type appendCounter struct {
	*memstore.Store
	mu    sync.Mutex
	sizes []int
}

func (a *appendCounter) AppendAudit(ctx context.Context, es []store.AuditEntry) error {
	a.mu.Lock()
	a.sizes = append(a.sizes, len(es))
	a.mu.Unlock()
	return a.Store.AppendAudit(ctx, es)
}

func (a *appendCounter) AppendAuditNext(ctx context.Context, es []store.AuditEntry) (uint64, error) {
	a.mu.Lock()
	a.sizes = append(a.sizes, len(es))
	a.mu.Unlock()
	return a.Store.AppendAuditNext(ctx, es)
}

func (a *appendCounter) appends() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]int(nil), a.sizes...)
}

func event(op string) keyring.AuditEvent {
	return keyring.AuditEvent{Time: time.Unix(0, 0), Operation: keyring.Operation(op), KeyID: "k"}
}

// Fail-open records that arrive while the writer waits for more are
// stored in one append, and Flush ends the wait instead of waiting it out
// (the delay here is an hour: without the early end the test would hang).
func TestGroupCommitFlushEndsWait(t *testing.T) {
	st := &appendCounter{Store: memstore.New()}
	l := New(WithStore(st), func(l *Logger) { l.groupDelay = time.Hour })
	defer l.Close()
	ctx := context.Background()
	require.NoError(t, l.Audit(ctx, event("Encrypt")))
	for len(l.queue) > 0 { // the writer has taken the first record
		runtime.Gosched()
	}
	for _, op := range []string{"Decrypt", "GenerateDataKey"} {
		require.NoError(t, l.Audit(ctx, event(op)))
	}
	require.NoError(t, l.Flush(ctx))
	assert.Equal(t, []int{3}, st.appends(), "one append for the three records")
	es, err := st.ReadAudit(ctx, store.AuditQuery{})
	require.NoError(t, err)
	require.Len(t, es, 3)
	assert.Equal(t, "GenerateDataKey", es[2].Operation)
}

// Close ends the wait too, and stores what was held.
func TestGroupCommitCloseEndsWait(t *testing.T) {
	st := &appendCounter{Store: memstore.New()}
	l := New(WithStore(st), func(l *Logger) { l.groupDelay = time.Hour })
	require.NoError(t, l.Audit(context.Background(), event("Encrypt")))
	require.NoError(t, l.Close())
	assert.Equal(t, []int{1}, st.appends())
	assert.Zero(t, l.Dropped())
}

// A fail-closed caller never waits for the group: its record is written
// as soon as the writer takes it.
func TestGroupCommitNotForFailClosed(t *testing.T) {
	st := &appendCounter{Store: memstore.New()}
	l := New(WithStore(st), WithFailClosed(time.Hour), func(l *Logger) { l.groupDelay = time.Hour })
	defer l.Close()
	require.NoError(t, l.Audit(context.Background(), event("Encrypt")))
	assert.Equal(t, []int{1}, st.appends())
}

// gatedStore holds each append until the test lets it through, and says
// how many records each one carried.
type gatedStore struct {
	*memstore.Store
	gate  chan struct{}
	sizes chan int
}

func (g *gatedStore) AppendAudit(ctx context.Context, es []store.AuditEntry) error {
	g.sizes <- len(es)
	<-g.gate
	return g.Store.AppendAudit(ctx, es)
}

func (g *gatedStore) AppendAuditNext(ctx context.Context, es []store.AuditEntry) (uint64, error) {
	g.sizes <- len(es)
	<-g.gate
	return g.Store.AppendAuditNext(ctx, es)
}

// A full batch is written without waiting for more: under a load that
// fills batches, grouping must not cap throughput at one batch per wait.
func TestGroupCommitFullBatchDoesNotWait(t *testing.T) {
	st := &gatedStore{Store: memstore.New(), gate: make(chan struct{}), sizes: make(chan int, 8)}
	l := New(WithStore(st), func(l *Logger) { l.groupDelay = time.Hour })
	ctx := context.Background()
	require.NoError(t, l.Audit(ctx, event("Encrypt")))
	// End the hour's wait as Flush does, but with no Flush item that could
	// leave a second kick behind: the writer stores the record and blocks
	// in the store, and no kick is pending.
	l.kick <- struct{}{}
	require.Equal(t, 1, <-st.sizes)
	for range maxBatch + 1 {
		require.NoError(t, l.Audit(ctx, event("Decrypt")))
	}
	st.gate <- struct{}{} // the first append completes; maxBatch+1 records are queued
	select {
	case n := <-st.sizes:
		assert.Equal(t, maxBatch, n, "a full batch, written at once")
	case <-time.After(time.Minute): // the wait is an hour: a minute means it waited
		t.Fatal("a full batch waited for more records")
	}
	close(st.gate)
	require.NoError(t, l.Close())
	assert.Zero(t, l.Dropped())
}
