package rotation_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
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

const day = 24 * time.Hour

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestRunOnce(t *testing.T) {
	ctx := t.Context()
	clk := clockwork.NewFakeClockAt(epoch)
	a, err := keyring.New(ctx, keyring.WithClock(clk), keyring.WithRotationPeriod(30*day))
	require.NoError(t, err)
	b, err := keyring.New(ctx, keyring.WithClock(clk), keyring.WithRotationPeriod(90*day))
	require.NoError(t, err)
	c, err := keyring.New(ctx, keyring.WithClock(clk)) // rotation off
	require.NoError(t, err)
	s := rotation.New(rotation.WithClock(clk))
	s.Add(a)
	s.Add(b)
	s.Add(c)
	s.Add(a)

	events, err := s.RunOnce(ctx)
	require.NoError(t, err)
	assert.Empty(t, events)

	clk.Advance(30 * day)
	events, err = s.RunOnce(ctx)
	require.NoError(t, err)
	assert.Equal(t, []rotation.Event{{KeyID: a.ID(), Version: 2, Previous: 1, At: epoch.Add(30 * day), Origin: keyring.OriginAutomatic}}, events)

	clk.Advance(60 * day)
	events, err = s.RunOnce(ctx)
	require.NoError(t, err)
	require.Len(t, events, 2, "both keys due at day 90")
	assert.ElementsMatch(t, []string{a.ID(), b.ID()}, []string{events[0].KeyID, events[1].KeyID})
}

func TestRunTenYears(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	clk := clockwork.NewFakeClockAt(epoch)
	k, err := keyring.New(ctx, keyring.WithClock(clk), keyring.WithRotationPeriod(365*day))
	require.NoError(t, err)
	got := make(chan rotation.Event, 100)
	s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(quiet),
		rotation.WithRefreshInterval(10000*day),
		rotation.WithOnRotate(func(e rotation.Event) { got <- e }))
	s.Add(k)
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()

	for year := 1; year <= 10; year++ {
		require.NoError(t, clk.BlockUntilContext(ctx, 1), "Run sleeps on the clock")
		clk.Advance(365 * day)
		e := <-got
		assert.Equal(t, uint32(year+1), e.Version)
		assert.Equal(t, uint32(year), e.Previous)
		assert.Equal(t, epoch.Add(time.Duration(year)*365*day), e.At)
	}
	md, err := k.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint32(11), md.CurrentVersion)
	assert.False(t, rotation.Overdue(md, clk.Now(), 0))
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled, "Run returns ctx.Err()")
	select {
	case e := <-got:
		t.Fatalf("unexpected rotation %+v", e)
	default:
	}
}

func TestRunWakesOnScheduleChange(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clk := clockwork.NewFakeClockAt(epoch)
	k, err := keyring.New(ctx, keyring.WithClock(clk))
	require.NoError(t, err)
	got := make(chan rotation.Event, 10)
	s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(quiet),
		rotation.WithRefreshInterval(10000*day),
		rotation.WithOnRotate(func(e rotation.Event) { got <- e }))
	s.Add(k)
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	require.NoError(t, clk.BlockUntilContext(ctx, 1))

	// Run sleeps for the refresh interval; enabling rotation wakes it so
	// that it sleeps only until the key is due.
	require.NoError(t, k.EnableRotation(ctx, time.Hour))
	require.NoError(t, clk.BlockUntilContext(ctx, 2), "Run woke and sleeps again")
	clk.Advance(time.Hour)
	e := <-got
	assert.Equal(t, uint32(2), e.Version)
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
}

func TestCatchUpAfterDowntime(t *testing.T) {
	ctx := t.Context()
	clk := clockwork.NewFakeClockAt(epoch)
	k, err := keyring.New(ctx, keyring.WithClock(clk), keyring.WithRotationPeriod(30*day))
	require.NoError(t, err)
	s := rotation.New(rotation.WithClock(clk))
	s.Add(k)
	clk.Advance(3650 * day)
	events, err := s.RunOnce(ctx)
	require.NoError(t, err)
	require.Len(t, events, 1, "one catch-up rotation, not one per missed period")
	events, err = s.RunOnce(ctx)
	require.NoError(t, err)
	assert.Empty(t, events)
	assert.Equal(t, clk.Now().Add(30*day), k.NextRotationAt())
}

func TestManySchedulersOneVersionPerPeriod(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	clk := clockwork.NewFakeClockAt(epoch)
	k0, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithClock(clk), keyring.WithRotationPeriod(day))
	require.NoError(t, err)
	var scheds []*rotation.Scheduler
	for range 4 {
		k, err := keyring.Load(ctx, st, k0.ID(), keyring.WithClock(clk))
		require.NoError(t, err)
		s := rotation.New(rotation.WithClock(clk))
		s.Add(k)
		scheds = append(scheds, s)
	}
	const periods = 50
	for range periods {
		clk.Advance(day)
		var wg sync.WaitGroup
		var mu sync.Mutex
		rotated := 0
		for _, s := range scheds {
			wg.Go(func() {
				events, err := s.RunOnce(ctx)
				assert.NoError(t, err)
				mu.Lock()
				rotated += len(events)
				mu.Unlock()
			})
		}
		wg.Wait()
		require.Equal(t, 1, rotated, "exactly one scheduler rotates per period")
	}
	md, err := k0.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint32(periods+1), md.CurrentVersion)
}

// failingStore fails every update while fail is set.
type failingStore struct {
	*memstore.Store
	mu   sync.Mutex
	fail bool
}

var errDown = errors.New("database down")

func (f *failingStore) Update(ctx context.Context, rec store.Record, vs []store.Version) (store.Record, error) {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return store.Record{}, errDown
	}
	return f.Store.Update(ctx, rec, vs)
}

func TestRunRetriesFailures(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	st := &failingStore{Store: memstore.New(), fail: true}
	clk := clockwork.NewFakeClockAt(epoch)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithClock(clk), keyring.WithRotationPeriod(day))
	require.NoError(t, err)
	errs := make(chan error, 10)
	got := make(chan rotation.Event, 10)
	s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(quiet),
		rotation.WithOnError(func(err error) { errs <- err }),
		rotation.WithOnRotate(func(e rotation.Event) { got <- e }))
	s.Add(k)

	clk.Advance(day)
	_, err = s.RunOnce(ctx)
	assert.ErrorIs(t, err, errDown, "RunOnce reports the failure")

	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	assert.ErrorIs(t, <-errs, errDown, "Run reports the failure and keeps going")
	require.NoError(t, clk.BlockUntilContext(ctx, 1))
	st.mu.Lock()
	st.fail = false
	st.mu.Unlock()
	clk.Advance(time.Second) // the first retry
	e := <-got
	assert.Equal(t, uint32(2), e.Version)
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
}

func TestOverdue(t *testing.T) {
	next := epoch.Add(365 * day)
	md := keyring.Metadata{RotationEnabled: true, RotationPeriod: 365 * day, NextRotationAt: next}
	grace := 35 * day
	assert.False(t, rotation.Overdue(md, next, grace))
	assert.False(t, rotation.Overdue(md, next.Add(grace), grace), "at the limit is not overdue")
	assert.True(t, rotation.Overdue(md, next.Add(grace+time.Nanosecond), grace))
	md.RotationEnabled, md.NextRotationAt = false, time.Time{}
	assert.False(t, rotation.Overdue(md, next.Add(100*365*day), grace), "disabled is never overdue")
}

func TestSchedulerDestroysAndReportsOverdue(t *testing.T) {
	ctx := t.Context()
	clk := clockwork.NewFakeClockAt(epoch)
	k, err := keyring.New(ctx, keyring.WithClock(clk), keyring.WithRotationPeriod(365*day))
	require.NoError(t, err)
	blob, err := k.Encrypt(ctx, []byte("x"))
	require.NoError(t, err)
	_, err = k.Rotate(ctx)
	require.NoError(t, err)
	_, err = k.ScheduleVersionDestruction(ctx, 1, 7*day)
	require.NoError(t, err)

	var overdue []keyring.Metadata
	s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(quiet),
		rotation.WithOverdue(35*day, func(md keyring.Metadata) { overdue = append(overdue, md) }))
	s.Add(k)
	clk.Advance(7 * day)
	_, err = s.RunOnce(ctx)
	require.NoError(t, err)
	_, err = k.Decrypt(ctx, blob)
	assert.ErrorIs(t, err, keyring.ErrVersionDestroyed, "the scheduler carried out the due destruction")

	// A key whose rotations fail (its store is down) goes overdue: the
	// scheduler reports it once per missed due time, not on every pass.
	st := &failingStore{Store: memstore.New()}
	failing, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithClock(clk), keyring.WithRotationPeriod(365*day))
	require.NoError(t, err)
	s.Add(failing)
	st.mu.Lock()
	st.fail = true
	st.mu.Unlock()
	clk.Advance(400 * day)
	_, err = s.RunOnce(ctx)
	require.ErrorIs(t, err, errDown)
	// k, due at day 365, found at day 407 by a scheduler that slept
	// through its grace: the alarm, then the catch-up rotation. The
	// failing key is exactly 400 days old: not overdue.
	require.Len(t, overdue, 1)
	assert.Equal(t, k.ID(), overdue[0].KeyID)
	clk.Advance(day)
	for range 3 {
		_, err = s.RunOnce(ctx)
		require.ErrorIs(t, err, errDown)
	}
	require.Len(t, overdue, 2, "the failing key reported once")
	assert.Equal(t, failing.ID(), overdue[1].KeyID)
	assert.False(t, rotation.Overdue(k.Cached(), clk.Now(), 35*day), "k was rotated, not overdue")
}

func TestRunDeletesKeyAtItsDate(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clk := clockwork.NewFakeClockAt(epoch)
	k, err := keyring.New(ctx, keyring.WithClock(clk), keyring.WithRotationPeriod(365*day), keyring.WithAlias("alias/doomed"))
	require.NoError(t, err)
	at, err := k.ScheduleKeyDeletion(ctx, 7*day)
	require.NoError(t, err)
	s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(quiet), rotation.WithRefreshInterval(10000*day))
	s.Add(k)
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()

	require.NoError(t, clk.BlockUntilContext(ctx, 1), "Run sleeps until the deletion date")
	assert.Equal(t, keyring.KeyPendingDeletion, k.KeyState())
	clk.Advance(7 * day)
	require.Eventually(t, func() bool { return k.KeyState() == keyring.KeyDeleted }, 10*time.Second, time.Millisecond,
		"the scheduler deletes the key at its deletion date")
	md, err := k.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, at, md.DeletionDate)
	assert.Empty(t, md.Aliases)
	assert.False(t, rotation.Overdue(md, clk.Now().Add(1000*day), 0), "a deleted key is never overdue")
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
}

func TestOverduePausedKey(t *testing.T) {
	md := keyring.Metadata{RotationEnabled: true, NextRotationAt: epoch}
	late := epoch.Add(100 * day)
	assert.True(t, rotation.Overdue(md, late, 35*day), "zero KeyState reads as enabled")
	md.KeyState = keyring.KeyEnabled
	assert.True(t, rotation.Overdue(md, late, 35*day))
	md.KeyState = keyring.KeyDisabled
	assert.False(t, rotation.Overdue(md, late, 35*day), "rotation of a disabled key is paused")
	md.KeyState = keyring.KeyPendingDeletion
	assert.False(t, rotation.Overdue(md, late, 35*day), "rotation of a key pending deletion is paused")
}
