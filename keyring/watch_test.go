package keyring_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// failing is a persistent store whose Get fails with err once set.
type failing struct {
	store.Store
	err atomic.Pointer[error]
}

func (f *failing) Get(ctx context.Context, idOrAlias string) (store.Record, error) {
	if err := f.err.Load(); err != nil {
		return store.Record{}, *err
	}
	return f.Store.Get(ctx, idOrAlias)
}

// lines is an io.Writer that hands each log line to a channel.
type lines chan string

func (l lines) Write(p []byte) (int, error) { l <- string(p); return len(p), nil }

func watched(t *testing.T, ctx context.Context) (*keyring.Keyring, *failing, *clockwork.FakeClock, lines, chan error) {
	t.Helper()
	st := &failing{Store: memstore.New()}
	clk := clockwork.NewFakeClockAt(epoch)
	logged := make(lines, 10)
	rk, err := keyring.NewRootKey(make([]byte, 32))
	require.NoError(t, err)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithClock(clk),
		keyring.WithLogger(slog.New(slog.NewTextHandler(logged, nil))))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- k.Watch(ctx, time.Minute) }()
	require.NoError(t, clk.BlockUntilContext(ctx, 1), "Watch sleeps on the clock")
	return k, st, clk, logged, done
}

// Once its store is closed, Watch returns (an error wrapping
// store.ErrClosed) instead of logging a failed reload every interval.
func TestWatchStopsWhenStoreCloses(t *testing.T) {
	_, st, clk, logged, done := watched(t, t.Context())
	closed := error(store.ErrClosed)
	st.err.Store(&closed)
	clk.Advance(time.Minute)
	select {
	case err := <-done:
		require.ErrorIs(t, err, store.ErrClosed)
		t.Log(err)
	case line := <-logged:
		t.Fatalf("Watch logged instead of stopping: %s", line)
	}
}

// Other failures are logged to the keyring's logger (WithLogger), and
// Watch carries on.
func TestWatchLogsToItsLogger(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	k, st, clk, logged, done := watched(t, ctx)
	down := errors.New("database unreachable")
	st.err.Store(&down)
	clk.Advance(time.Minute)
	line := <-logged
	assert.Contains(t, line, "reloading key failed")
	assert.Contains(t, line, k.ID())
	assert.Contains(t, line, "database unreachable")
	require.NoError(t, clk.BlockUntilContext(ctx, 1), "Watch sleeps again after a failed reload")
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
}
