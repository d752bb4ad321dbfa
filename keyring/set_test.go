package keyring_test

import (
	"context"
	"strings"
	"sync"
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

// gateStore is a memstore (every optional interface included) that counts
// the reads of key records and can hold the Get of one key until released.
type gateStore struct {
	*memstore.Store
	keyGets atomic.Int64
	lists   atomic.Int64

	mu    sync.Mutex
	gates map[string]chan struct{} // key ID -> closed to release its Gets
	seen  chan string              // a gated Get started
}

func newGateStore() *gateStore {
	return &gateStore{Store: memstore.New(), gates: make(map[string]chan struct{}), seen: make(chan string, 16)}
}

func (g *gateStore) Get(ctx context.Context, id string) (store.Record, error) {
	if !keyring.IsReserved(id) {
		g.keyGets.Add(1)
	}
	g.mu.Lock()
	gate := g.gates[id]
	g.mu.Unlock()
	if gate != nil {
		g.seen <- id
		<-gate
	}
	return g.Store.Get(ctx, id)
}

func (g *gateStore) List(ctx context.Context) ([]string, error) {
	g.lists.Add(1)
	return g.Store.List(ctx)
}

func (g *gateStore) gate(id string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := make(chan struct{})
	g.gates[id] = c
	return c
}

func newKeys(t *testing.T, st store.Store, n int, opts ...keyring.Option) []*keyring.Keyring {
	t.Helper()
	ks := make([]*keyring.Keyring, n)
	for i := range ks {
		k, err := keyring.New(t.Context(), append([]keyring.Option{keyring.WithStore(st)}, opts...)...)
		require.NoError(t, err)
		ks[i] = k
	}
	return ks
}

func TestOpenSetLoadsOnFirstUseAndKeepsAtMostMaxLoaded(t *testing.T) {
	ctx := t.Context()
	st := newGateStore()
	ks := newKeys(t, st, 12)
	blobs := make([][]byte, len(ks))
	for i, k := range ks {
		b, err := k.Encrypt(ctx, []byte{byte(i)})
		require.NoError(t, err)
		blobs[i] = b
	}
	st.keyGets.Store(0)
	st.lists.Store(0)

	set, err := keyring.OpenSet(ctx, st, keyring.WithMaxLoaded(5))
	require.NoError(t, err)
	assert.Zero(t, st.keyGets.Load(), "OpenSet reads no key")
	assert.Zero(t, st.lists.Load(), "OpenSet does not list the store")
	assert.Zero(t, set.Loaded())

	for round := range 2 {
		for i, b := range blobs {
			pt, err := set.Decrypt(ctx, b)
			require.NoError(t, err, "round %d key %d", round, i)
			assert.Equal(t, []byte{byte(i)}, pt)
			assert.LessOrEqual(t, set.Loaded(), 5)
		}
	}
	// The last five used are the ones held.
	for i, k := range ks {
		_, held := set.Get(k.ID())
		assert.Equal(t, i >= len(ks)-5, held, "key %d held", i)
	}
	// A loaded key is used without reading the store.
	before := st.keyGets.Load()
	_, err = set.Decrypt(ctx, blobs[len(blobs)-1])
	require.NoError(t, err)
	assert.Equal(t, before, st.keyGets.Load())
}

func TestOpenSetConcurrentFirstUses(t *testing.T) {
	ctx := t.Context()
	st := newGateStore()
	ks := newKeys(t, st, 2)
	set, err := keyring.OpenSet(ctx, st)
	require.NoError(t, err)
	slow := st.gate(ks[0].ID())

	// Eight first uses of key 0 wait on one load, held in the store.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := set.Load(ctx, ks[0].ID())
			assert.NoError(t, err)
		})
	}
	assert.Equal(t, ks[0].ID(), <-st.seen)
	// Meanwhile key 1 loads: first uses of different keys do not wait on
	// each other.
	k1, err := set.Load(ctx, ks[1].ID())
	require.NoError(t, err)
	assert.Equal(t, ks[1].ID(), k1.ID())
	close(slow)
	wg.Wait()
	select {
	case id := <-st.seen:
		t.Fatalf("a second load of %s", id)
	default:
	}
	assert.Equal(t, 2, set.Loaded())
}

func TestOpenSetBadInput(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	newKeys(t, st, 1)
	_, err := keyring.OpenSet(ctx, st, keyring.WithMaxLoaded(0))
	require.ErrorIs(t, err, keyring.ErrInvalidArgument)
	_, err = keyring.OpenSet(ctx, st, keyring.WithAlias("alias/x"))
	require.ErrorIs(t, err, keyring.ErrInvalidArgument)
	_, err = keyring.OpenSet(ctx, nil)
	require.ErrorIs(t, err, keyring.ErrInvalidArgument)
	_, err = keyring.New(ctx, keyring.WithMaxLoaded(3))
	require.ErrorIs(t, err, keyring.ErrInvalidArgument, "New rejects WithMaxLoaded")
	_, err = keyring.Load(ctx, st, "alias/none", keyring.WithMaxLoaded(3))
	require.ErrorIs(t, err, keyring.ErrInvalidArgument, "Load rejects WithMaxLoaded")

	set, err := keyring.OpenSet(ctx, st)
	require.NoError(t, err)
	// A blob of a key the store does not hold.
	other, err := keyring.New(ctx)
	require.NoError(t, err)
	blob, err := other.Encrypt(ctx, []byte("x"))
	require.NoError(t, err)
	_, err = set.Decrypt(ctx, blob)
	require.ErrorIs(t, err, keyring.ErrKeyNotFound)
	assert.Zero(t, set.Loaded(), "a failed load is not kept")
	_, err = set.Decrypt(ctx, []byte("not a blob"))
	require.Error(t, err)
	_, err = set.Load(ctx, "kmsring:store-key")
	require.ErrorIs(t, err, keyring.ErrKeyNotFound)
}

func TestOpenSetTamperedKeyIsNotKept(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	ks := newKeys(t, st, 1)
	blob, err := ks[0].Encrypt(ctx, []byte("x"))
	require.NoError(t, err)
	rec, err := st.Get(ctx, ks[0].ID())
	require.NoError(t, err)
	rec.Data[0] ^= 1
	_, err = st.Update(ctx, rec, nil)
	require.NoError(t, err)

	set, err := keyring.OpenSet(ctx, st)
	require.NoError(t, err)
	_, err = set.Decrypt(ctx, blob)
	require.ErrorIs(t, err, keyring.ErrTampered)
	assert.Contains(t, err.Error(), ks[0].ID())
	assert.Zero(t, set.Loaded())
}

func TestOpenSetAliasAndAdd(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	ks := newKeys(t, st, 1, keyring.WithAlias("alias/tenant-1"))
	set, err := keyring.OpenSet(ctx, st, keyring.WithMaxLoaded(1))
	require.NoError(t, err)
	k, err := set.Load(ctx, "alias/tenant-1")
	require.NoError(t, err)
	assert.Equal(t, ks[0].ID(), k.ID())
	_, held := set.Get(ks[0].ID())
	assert.True(t, held, "held under its key ID")
	other := newKeys(t, st, 1)[0]
	set.Add(other)
	_, held = set.Get(ks[0].ID())
	assert.False(t, held, "Add counts toward the bound")
	set.Forget(other.ID())
	assert.Zero(t, set.Loaded())
}

// The due time kept with the record follows the key's schedule: its next
// rotation while enabled, its deletion date while pending deletion, the
// earliest scheduled destruction of a version.
func TestDueFollowsTheSchedule(t *testing.T) {
	ctx := t.Context()
	clk := clockwork.NewFakeClockAt(time.Date(2030, 1, 1, 0, 0, 0, 123, time.UTC))
	st := memstore.New()
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithClock(clk), keyring.WithRotationPeriod(time.Hour))
	require.NoError(t, err)
	due := func() time.Time {
		t.Helper()
		rec, err := st.Get(ctx, k.ID())
		require.NoError(t, err)
		assert.True(t, rec.Due.Equal(k.NextDueAt()), "stored %v, handle %v", rec.Due, k.NextDueAt())
		return rec.Due
	}
	assert.True(t, due().Equal(store.DueTime(k.NextRotationAt())))
	assert.True(t, due().After(k.NextRotationAt().Add(-time.Microsecond)), "rounded up, never early")

	require.NoError(t, k.DisableKey(ctx))
	assert.True(t, due().IsZero(), "a disabled key does not rotate")
	require.NoError(t, k.EnableKey(ctx))
	require.NoError(t, k.DisableRotation(ctx))
	assert.True(t, due().IsZero())

	_, err = k.Rotate(ctx)
	require.NoError(t, err)
	at, err := k.ScheduleVersionDestruction(ctx, 1, 24*time.Hour)
	require.NoError(t, err)
	assert.True(t, due().Equal(store.DueTime(at)))

	del, err := k.ScheduleKeyDeletion(ctx, 7*24*time.Hour)
	require.NoError(t, err)
	assert.True(t, due().Equal(store.DueTime(at)), "the earlier of destruction and deletion")
	clk.Advance(25 * time.Hour)
	destroyed, err := k.DestroyDueVersions(ctx)
	require.NoError(t, err)
	require.Len(t, destroyed, 1)
	assert.True(t, due().Equal(store.DueTime(del)))
	clk.Advance(8 * 24 * time.Hour)
	deleted, err := k.DeleteIfDue(ctx)
	require.NoError(t, err)
	require.True(t, deleted)
	assert.True(t, due().IsZero(), "a deleted key is never due")
}

// The index is derived data: a Due moved by someone who can write the
// store is put back from the authenticated record by SyncDue.
func TestSyncDueRepairsTheIndex(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	k := newKeys(t, st, 1, keyring.WithRotationPeriod(time.Hour))[0]
	rec, err := st.Get(ctx, k.ID())
	require.NoError(t, err)
	want := rec.Due
	rec.Due = time.Unix(0, 0).UTC()
	_, err = st.Update(ctx, rec, nil)
	require.NoError(t, err)

	require.NoError(t, k.Refresh(ctx))
	wrote, err := k.SyncDue(ctx)
	require.NoError(t, err)
	assert.True(t, wrote)
	rec, err = st.Get(ctx, k.ID())
	require.NoError(t, err)
	assert.True(t, rec.Due.Equal(want))
	wrote, err = k.SyncDue(ctx)
	require.NoError(t, err)
	assert.False(t, wrote, "nothing to repair")
	// The rewrite changed nothing the key authenticates.
	_, err = keyring.Load(ctx, st, k.ID())
	require.NoError(t, err)
	// A handle with a stale view repairs from the current record.
	stale, err := keyring.Load(ctx, st, k.ID())
	require.NoError(t, err)
	rec.Due = time.Unix(0, 0).UTC()
	_, err = st.Update(ctx, rec, nil)
	require.NoError(t, err)
	require.NoError(t, k.DisableRotation(ctx)) // moves the revision on
	require.NoError(t, stale.Refresh(ctx))
	wrote, err = stale.SyncDue(ctx)
	require.NoError(t, err)
	assert.False(t, wrote, "the mutation wrote the right due time")
	rec, err = st.Get(ctx, k.ID())
	require.NoError(t, err)
	rec.Due = time.Unix(0, 0).UTC()
	_, err = st.Update(ctx, rec, nil)
	require.NoError(t, err)
	require.NoError(t, stale.Refresh(ctx))
	wrote, err = stale.SyncDue(ctx)
	require.NoError(t, err)
	assert.True(t, wrote)
}

func TestSetDue(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	clk := clockwork.NewFakeClockAt(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	ks := newKeys(t, st, 3, keyring.WithClock(clk), keyring.WithRotationPeriod(time.Hour))
	newKeys(t, st, 2, keyring.WithClock(clk)) // never due
	set, err := keyring.OpenSet(ctx, st, keyring.WithClock(clk))
	require.NoError(t, err)
	es, err := set.Due(ctx, clk.Now().Add(time.Hour), store.DueEntry{}, 10)
	require.NoError(t, err)
	require.Len(t, es, 3)
	for _, e := range es {
		assert.True(t, strings.Contains(ks[0].ID()+ks[1].ID()+ks[2].ID(), e.KeyID))
	}
	_, err = keyring.NewSet().Due(ctx, clk.Now(), store.DueEntry{}, 10)
	require.ErrorIs(t, err, keyring.ErrInvalidArgument)
	_, err = set.Due(ctx, clk.Now(), store.DueEntry{}, 0)
	require.ErrorIs(t, err, store.ErrPageLimit)
}
