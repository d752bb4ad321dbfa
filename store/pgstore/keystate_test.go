package pgstore_test

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReplicasAgreeOnKeyState: replicas with their own pools see each
// other's key state changes, refuse a disabled key after a reload, and of
// several replicas deleting a key at its date exactly one does.
func TestReplicasAgreeOnKeyState(t *testing.T) {
	ctx := t.Context()
	dsn := freshDSN(t)
	rk, err := keyring.NewRootKey(bytes.Repeat([]byte{7}, keyring.RootKeySize))
	require.NoError(t, err)
	clk := clockwork.NewFakeClockAt(epoch)
	a, created, err := keyring.LoadOrNew(ctx, "alias/shared", keyring.WithStore(open(t, dsn)), keyring.WithRootKey(rk), keyring.WithClock(clk))
	require.NoError(t, err)
	require.True(t, created)
	const n = 4
	replicas := make([]*keyring.Keyring, n)
	for i := range replicas {
		k, created, err := keyring.LoadOrNew(ctx, "alias/shared", keyring.WithStore(open(t, dsn)), keyring.WithRootKey(rk), keyring.WithClock(clk))
		require.NoError(t, err)
		require.False(t, created, "replica %d loads the key the first one made", i)
		require.Equal(t, a.ID(), k.ID())
		replicas[i] = k
	}

	require.NoError(t, a.DisableKey(ctx))
	for _, k := range replicas {
		require.NoError(t, k.Refresh(ctx))
		assert.Equal(t, keyring.KeyDisabled, k.KeyState())
		_, err := k.GenerateDataKey(ctx)
		require.ErrorIs(t, err, keyring.ErrKeyDisabled)
	}

	_, err = replicas[0].ScheduleKeyDeletion(ctx, 7*24*time.Hour)
	require.NoError(t, err)
	clk.Advance(7 * 24 * time.Hour)
	var deleted sync.Map
	var wg sync.WaitGroup
	for i, k := range replicas {
		wg.Go(func() {
			ok, err := k.DeleteIfDue(ctx)
			assert.NoError(t, err)
			deleted.Store(i, ok)
		})
	}
	wg.Wait()
	count := 0
	deleted.Range(func(_, v any) bool {
		if v.(bool) {
			count++
		}
		return true
	})
	assert.Equal(t, 1, count, "exactly one replica deletes the key")
	md, err := a.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, keyring.KeyDeleted, md.KeyState)
}
