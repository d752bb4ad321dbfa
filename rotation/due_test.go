package rotation_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/rotation"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// indexStore is a memstore that counts reads of key records and due index
// queries, and can add entries of its own to what the index lists.
type indexStore struct {
	*memstore.Store
	gets, dues atomic.Int64
	extra      []store.DueEntry // merged into the first page ListDue returns
}

func (s *indexStore) Get(ctx context.Context, id string) (store.Record, error) {
	if !keyring.IsReserved(id) {
		s.gets.Add(1)
	}
	return s.Store.Get(ctx, id)
}

func (s *indexStore) ListDue(ctx context.Context, through time.Time, after store.DueEntry, limit int) ([]store.DueEntry, error) {
	s.dues.Add(1)
	es, err := s.Store.ListDue(ctx, through, after, limit)
	if after == (store.DueEntry{}) && len(s.extra) > 0 {
		es = append(append([]store.DueEntry(nil), s.extra...), es...)
		slices.SortFunc(es, func(a, b store.DueEntry) int {
			if a.Less(b) {
				return -1
			}
			return 1
		})
	}
	return es, err
}

func newIndexStore() *indexStore { return &indexStore{Store: memstore.New()} }

func makeKeys(t *testing.T, st store.Store, clk keyring.Clock, n int, opts ...keyring.Option) []*keyring.Keyring {
	t.Helper()
	ks := make([]*keyring.Keyring, n)
	for i := range ks {
		k, err := keyring.New(t.Context(), append([]keyring.Option{keyring.WithStore(st), keyring.WithClock(clk)}, opts...)...)
		require.NoError(t, err)
		ks[i] = k
	}
	return ks
}

// An idle pass reads no key, whether the store holds 10 keys or 1,000:
// one due index query. A due key is read, rotated once, and not read again.
func TestWithSetIdlePassReadsNoKey(t *testing.T) {
	for _, n := range []int{10, 1000} {
		ctx := t.Context()
		clk := clockwork.NewFakeClockAt(epoch)
		st := newIndexStore()
		makeKeys(t, st, clk, n)
		due := makeKeys(t, st, clk, 3, keyring.WithRotationPeriod(time.Hour))
		set, err := keyring.OpenSet(ctx, st, keyring.WithClock(clk), keyring.WithMaxLoaded(2))
		require.NoError(t, err)
		s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(quiet), rotation.WithSet(set))

		st.gets.Store(0)
		st.dues.Store(0)
		events, err := s.RunOnce(ctx)
		require.NoError(t, err)
		assert.Empty(t, events)
		assert.Zero(t, st.gets.Load(), "%d keys: an idle pass reads no key", n)
		assert.Equal(t, int64(1), st.dues.Load(), "%d keys: one index query", n)

		clk.Advance(time.Hour)
		events, err = s.RunOnce(ctx)
		require.NoError(t, err)
		require.Len(t, events, 3, "%d keys", n)
		for _, e := range events {
			assert.Equal(t, uint32(2), e.Version)
		}
		assert.LessOrEqual(t, set.Loaded(), 2, "the set stays bounded")
		st.gets.Store(0)
		events, err = s.RunOnce(ctx)
		require.NoError(t, err)
		assert.Empty(t, events)
		assert.Zero(t, st.gets.Load(), "rotated keys are due an hour later")
		md, err := due[0].Describe(ctx)
		require.NoError(t, err)
		assert.Equal(t, uint32(2), md.CurrentVersion)
	}
}

// The index is a hint: entries naming a missing key, a key whose record
// fails authentication, a key listed twice, a key that is not due or a
// record that is not a key give clear errors or are put right, and the
// real work is done once.
func TestWithSetUntrustedIndex(t *testing.T) {
	ctx := t.Context()
	clk := clockwork.NewFakeClockAt(epoch)
	st := newIndexStore()
	ks := makeKeys(t, st, clk, 3)
	dueKey := makeKeys(t, st, clk, 1, keyring.WithRotationPeriod(time.Hour))[0]
	notDue, foreign := ks[0], ks[1]

	rec, err := st.Store.Get(ctx, foreign.ID())
	require.NoError(t, err)
	rec.Data[1] ^= 1
	_, err = st.Update(ctx, rec, nil)
	require.NoError(t, err)

	// A record written before the index, due "at once" but not due.
	rec, err = st.Store.Get(ctx, notDue.ID())
	require.NoError(t, err)
	rec.Due = time.Unix(0, 0).UTC()
	_, err = st.Update(ctx, rec, nil)
	require.NoError(t, err)

	const missing = "00000000-0000-4000-8000-000000000000"
	past := epoch.Add(-time.Hour)
	st.extra = []store.DueEntry{
		{KeyID: missing, Due: past},
		{KeyID: foreign.ID(), Due: past},
		{KeyID: dueKey.ID(), Due: past}, // listed twice with the real entry
		{KeyID: "not a key id", Due: past},
	}
	set, err := keyring.OpenSet(ctx, st, keyring.WithClock(clk))
	require.NoError(t, err)
	s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(quiet), rotation.WithSet(set))
	clk.Advance(time.Hour)
	events, err := s.RunOnce(ctx)
	require.Error(t, err)
	assert.ErrorIs(t, err, keyring.ErrKeyNotFound)
	assert.ErrorIs(t, err, keyring.ErrTampered)
	assert.Contains(t, err.Error(), missing)
	assert.Contains(t, err.Error(), foreign.ID())
	require.Len(t, events, 1, "the due key rotated once")
	assert.Equal(t, dueKey.ID(), events[0].KeyID)

	rec, err = st.Store.Get(ctx, notDue.ID())
	require.NoError(t, err)
	assert.True(t, rec.Due.IsZero(), "the stale entry was put right")
	md, err := notDue.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint32(1), md.CurrentVersion, "a key the index wrongly lists is not rotated")
}

// Run sleeps until the index's next due time, and Wake makes it look again
// after a change made through a handle it does not hold.
func TestRunWithSet(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clk := clockwork.NewFakeClockAt(epoch)
	st := memstore.New()
	makeKeys(t, st, clk, 1, keyring.WithRotationPeriod(time.Hour))
	set, err := keyring.OpenSet(ctx, st, keyring.WithClock(clk))
	require.NoError(t, err)
	got := make(chan rotation.Event, 10)
	s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(quiet), rotation.WithSet(set),
		rotation.WithRefreshInterval(10000*day), rotation.WithOnRotate(func(e rotation.Event) { got <- e }))
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()

	require.NoError(t, clk.BlockUntilContext(ctx, 1))
	clk.Advance(time.Hour)
	assert.Equal(t, uint32(2), (<-got).Version)

	// A key made elsewhere, due in ten minutes: Wake brings it in.
	require.NoError(t, clk.BlockUntilContext(ctx, 1))
	k := makeKeys(t, st, clk, 1, keyring.WithRotationPeriod(10*time.Minute))[0]
	s.Wake()
	require.NoError(t, clk.BlockUntilContext(ctx, 2))
	clk.Advance(10 * time.Minute)
	e := <-got
	assert.Equal(t, k.ID(), e.KeyID)
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
}

// stuckIndex lists the same full page whatever the cursor: a broken or
// edited store. A pass must end, with an error, not loop.
type stuckIndex struct{ *memstore.Store }

func (s stuckIndex) ListDue(_ context.Context, _ time.Time, _ store.DueEntry, limit int) ([]store.DueEntry, error) {
	es := make([]store.DueEntry, limit)
	for i := range es {
		es[i] = store.DueEntry{KeyID: "00000000-0000-4000-8000-000000000000", Due: epoch}
	}
	return es, nil
}

func TestWithSetStuckIndexEnds(t *testing.T) {
	ctx := t.Context()
	clk := clockwork.NewFakeClockAt(epoch)
	st := stuckIndex{memstore.New()}
	makeKeys(t, st, clk, 1)
	set, err := keyring.OpenSet(ctx, st, keyring.WithClock(clk))
	require.NoError(t, err)
	s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(quiet), rotation.WithSet(set))
	_, err = s.RunOnce(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "out of order")
}

// floodIndex is a store whose due index also lists flood: entries, due
// early, naming keys the store does not hold (what someone who can write
// the store can add).
type floodIndex struct {
	*memstore.Store
	flood []store.DueEntry // sorted
}

func (s *floodIndex) ListDue(ctx context.Context, through time.Time, after store.DueEntry, limit int) ([]store.DueEntry, error) {
	es, err := s.Store.ListDue(ctx, through, after, limit)
	if err != nil {
		return nil, err
	}
	for _, e := range s.flood {
		if (after == (store.DueEntry{}) || after.Less(e)) && !e.Due.After(through) {
			es = append(es, e)
		}
	}
	slices.SortFunc(es, func(a, b store.DueEntry) int {
		if a.Less(b) {
			return -1
		}
		return 1
	})
	return es[:min(limit, len(es))], nil
}

// TestAttackDueIndexFloodStarvesRealKeys: more unresolvable due entries
// than one pass reads (MaxDuePerPass), due before a real key, must not
// keep the real key from rotating: each pass began again at the start of
// the index, read the same flood, said "more" and came back at once, so
// the scheduler spun and the real key never rotated.
func TestAttackDueIndexFloodStarvesRealKeys(t *testing.T) {
	ctx := t.Context()
	clk := clockwork.NewFakeClockAt(epoch)
	st := &floodIndex{Store: memstore.New()}
	real := makeKeys(t, st, clk, 1, keyring.WithRotationPeriod(time.Hour))[0]
	for i := range rotation.MaxDuePerPass + 10 {
		st.flood = append(st.flood, store.DueEntry{KeyID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Due: epoch})
	}
	set, err := keyring.OpenSet(ctx, st, keyring.WithClock(clk))
	require.NoError(t, err)
	s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(quiet), rotation.WithSet(set))
	clk.Advance(time.Hour)
	var rotated []rotation.Event
	for range 3 {
		events, err := s.RunOnce(ctx)
		require.ErrorIs(t, err, keyring.ErrKeyNotFound, "the flood's entries are reported")
		rotated = append(rotated, events...)
	}
	require.Len(t, rotated, 1, "the real key rotated, once, within a few passes")
	assert.Equal(t, real.ID(), rotated[0].KeyID)
}

// gateIndex is a memstore whose due index query waits, once armed, until
// the test lets it go: a pass caught in the middle.
type gateIndex struct {
	*memstore.Store
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (s *gateIndex) ListDue(ctx context.Context, through time.Time, after store.DueEntry, limit int) ([]store.DueEntry, error) {
	es, err := s.Store.ListDue(ctx, through, after, limit)
	if s.armed.CompareAndSwap(true, false) {
		s.entered <- struct{}{}
		<-s.release
	}
	return es, err
}

// A Wake that comes while a pass runs is not lost: the key another
// process made during the pass, already due, is rotated without waiting
// for the refresh interval (the clock never moves here).
func TestWakeDuringPassIsKept(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clk := clockwork.NewFakeClockAt(epoch)
	st := &gateIndex{Store: memstore.New(), entered: make(chan struct{}), release: make(chan struct{})}
	set, err := keyring.OpenSet(ctx, st, keyring.WithClock(clk))
	require.NoError(t, err)
	got := make(chan rotation.Event, 10)
	s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(quiet), rotation.WithSet(set),
		rotation.WithRefreshInterval(10000*day), rotation.WithOnRotate(func(e rotation.Event) { got <- e }))
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	require.NoError(t, clk.BlockUntilContext(ctx, 1)) // the first pass is over

	// The next pass stops once it has read the due index; meanwhile a
	// key is made, already due (made an hour before, with a period of an
	// hour), and Wake is called.
	st.armed.Store(true)
	s.Wake()
	<-st.entered
	before := clockwork.NewFakeClockAt(epoch.Add(-time.Hour))
	k := makeKeys(t, st.Store, before, 1, keyring.WithRotationPeriod(time.Hour))[0]
	s.Wake()
	close(st.release)

	// Once the scheduler sleeps on the clock again (its first wait is
	// still registered: two), the key has been rotated.
	require.NoError(t, clk.BlockUntilContext(ctx, 2))
	select {
	case e := <-got:
		assert.Equal(t, k.ID(), e.KeyID)
	default:
		t.Fatal("the Wake during the pass was lost: the scheduler sleeps with a due key")
	}
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
}

// countIndex is a memstore that counts its due index queries.
type countIndex struct {
	*memstore.Store
	queries atomic.Int64
}

func (s *countIndex) ListDue(ctx context.Context, through time.Time, after store.DueEntry, limit int) ([]store.DueEntry, error) {
	s.queries.Add(1)
	return s.Store.ListDue(ctx, through, after, limit)
}

// A flood of Wakes (serve calls Wake for every key another replica
// creates or changes, through PostgreSQL's notifications) costs at most a
// pass per gap of real time, not a pass, two due index queries, per Wake.
// Both clocks are fakes here: the scheduler's never moves, and the pace
// clock moves by one gap.
func TestAttackWakeFloodPassesUnbounded(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clk := clockwork.NewFakeClockAt(epoch)
	pace := clockwork.NewFakeClockAt(epoch)
	st := &countIndex{Store: memstore.New()}
	set, err := keyring.OpenSet(ctx, st, keyring.WithClock(clk))
	require.NoError(t, err)
	s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(quiet), rotation.WithSet(set),
		rotation.WithRefreshInterval(10000*day), rotation.WithPaceClock(pace))
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	require.NoError(t, clk.BlockUntilContext(ctx, 1)) // the first pass is over
	first := st.queries.Load()

	// The first Wake: the scheduler waits out the gap since that pass.
	s.Wake()
	require.NoError(t, pace.BlockUntilContext(ctx, 1))
	for range 50 {
		s.Wake()
	}
	assert.Equal(t, first, st.queries.Load(), "no pass during the gap, whatever the Wakes")
	pace.Advance(rotation.MinWakeGap)
	// One pass for all 51, then the scheduler sleeps again (the sleep
	// the first Wake ended is still on the clock: two).
	require.NoError(t, clk.BlockUntilContext(ctx, 2))
	assert.Equal(t, 2*first, st.queries.Load(), "one pass, as many queries as the first")
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
}
