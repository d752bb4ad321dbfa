package audit_test

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/rotation"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const day = 24 * time.Hour

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// The overdue event is dated on the keyring's clock, as rotation events
// are, not on the wall clock.
func TestOverdueEventDatedOnKeyringClock(t *testing.T) {
	ctx := t.Context()
	clk := clockwork.NewFakeClockAt(epoch)
	bus := audit.NewBus()
	sub := bus.Subscribe(audit.Filter{Types: []audit.EventType{audit.EventRotationOverdue}}, 4)
	defer sub.Close()
	k, err := keyring.New(ctx, keyring.WithClock(clk), keyring.WithRotationPeriod(365*day))
	require.NoError(t, err)
	s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(quiet), rotation.WithOverdue(35*day, bus.Overdue))
	s.Add(k)
	clk.Advance(401 * day)
	_, err = s.RunOnce(ctx)
	require.NoError(t, err)
	var e audit.Event
	select {
	case e = <-sub.Events(): // published during RunOnce
	default:
		t.Fatal("no overdue event from the pass that found the key overdue")
	}
	assert.Equal(t, k.ID(), e.KeyID)
	assert.Equal(t, epoch.Add(401*day), e.Time, "when the scheduler found it overdue, on the fake clock")
	assert.Equal(t, epoch.Add(365*day), e.NextRotationAt)
}

// Automatic rotations and scheduled destructions are attributed to the
// service, as AWS attributes them to KMS, whatever principal the
// scheduler's context carries.
func TestSchedulerPrincipal(t *testing.T) {
	ctx := audit.WithPrincipal(t.Context(), "svc-orders")
	clk := clockwork.NewFakeClockAt(epoch)
	st := memstore.New()
	l := audit.New(audit.WithStore(st))
	defer l.Close()
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithClock(clk), keyring.WithAuditor(l), keyring.WithRotationPeriod(day))
	require.NoError(t, err)
	_, err = k.Rotate(ctx) // on demand: the caller's principal
	require.NoError(t, err)
	_, err = k.ScheduleVersionDestruction(ctx, 1, time.Hour)
	require.NoError(t, err)
	s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(quiet))
	s.Add(k)
	clk.Advance(day)
	_, err = s.RunOnce(ctx)
	require.NoError(t, err)
	require.NoError(t, l.Flush(ctx))

	principals := map[string]string{}
	recs, _, err := audit.LookupEvents(ctx, st, audit.Query{})
	require.NoError(t, err)
	for _, r := range recs {
		principals[r.Operation+"/"+r.Origin] = r.Principal
	}
	assert.Equal(t, "svc-orders", principals["RotateKey/on-demand"])
	assert.Equal(t, rotation.DefaultPrincipal, principals["RotateKey/automatic"])
	assert.Equal(t, rotation.DefaultPrincipal, principals["DestroyKeyVersion/"])
	assert.Equal(t, "kmsring:rotation", rotation.DefaultPrincipal)

	other := rotation.New(rotation.WithClock(clk), rotation.WithLogger(quiet), rotation.WithPrincipal("ops:cron"))
	other.Add(k)
	clk.Advance(day)
	_, err = other.RunOnce(ctx)
	require.NoError(t, err)
	require.NoError(t, l.Flush(ctx))
	recs, _, err = audit.LookupEvents(ctx, st, audit.Query{Operation: string(keyring.OpRotateKey)})
	require.NoError(t, err)
	assert.Equal(t, "ops:cron", recs[len(recs)-1].Principal)
}

// slowStore holds audit appends while hold is set, until release is
// closed; each append says on entered that it started. With honorCtx it
// gives up when the append's context ends (as pgstore does); without, it
// finishes the append whatever the context says (the worst case: a store
// that ignores cancellation).
type slowStore struct {
	*memstore.Store
	hold     atomic.Bool
	release  chan struct{}
	entered  chan struct{}
	honorCtx bool
}

func newSlowStore(honorCtx bool) *slowStore {
	return &slowStore{Store: memstore.New(), release: make(chan struct{}), entered: make(chan struct{}, 10), honorCtx: honorCtx}
}

func (s *slowStore) AppendAudit(ctx context.Context, es []store.AuditEntry) error {
	if s.hold.Load() {
		s.entered <- struct{}{}
		done := ctx.Done()
		if !s.honorCtx {
			done = nil
		}
		select {
		case <-s.release:
		case <-done:
			return ctx.Err()
		}
	}
	return s.Store.AppendAudit(context.WithoutCancel(ctx), es)
}

func (s *slowStore) AppendAuditNext(ctx context.Context, es []store.AuditEntry) (uint64, error) {
	if s.hold.Load() {
		s.entered <- struct{}{}
		done := ctx.Done()
		if !s.honorCtx {
			done = nil
		}
		select {
		case <-s.release:
		case <-done:
			return 0, ctx.Err()
		}
	}
	return s.Store.AppendAuditNext(context.WithoutCancel(ctx), es)
}

const bound = time.Second

// failClosedRecords runs one fail-closed GenerateDataKey, on a fake clock,
// whose record the store cannot take within the bound: stall makes the
// store fail, inFlight waits until the writer is at it, then the bound
// passes; resume lets the store recover. It returns the stored
// GenerateDataKey records.
func failClosedRecords(t *testing.T, st store.AuditLog, base *memstore.Store, stall func(), inFlight, resume func(*clockwork.FakeClock)) []audit.Record {
	t.Helper()
	ctx := t.Context()
	clk := clockwork.NewFakeClockAt(epoch)
	l := audit.New(audit.WithStore(st), audit.WithFailClosed(bound), audit.WithClock(clk))
	k, err := keyring.New(ctx, keyring.WithStore(base), keyring.WithAuditor(l))
	require.NoError(t, err)
	clk.Advance(bound) // retire CreateKey's timer
	stall()
	errc := make(chan error, 1)
	go func() {
		dk, err := k.GenerateDataKey(ctx)
		assert.Nil(t, dk)
		errc <- err
	}()
	inFlight(clk)
	clk.Advance(bound)
	require.ErrorIs(t, <-errc, keyring.ErrAudit, "the caller is told the operation failed")
	resume(clk)
	require.NoError(t, l.Flush(ctx))
	require.NoError(t, l.Close())
	recs, _, err := audit.LookupEvents(ctx, st, audit.Query{Operation: string(keyring.OpGenerateDataKey)})
	require.NoError(t, err)
	_, err = audit.Verify(ctx, st)
	require.NoError(t, err)
	return recs
}

// Fail-closed: when the store cannot take a record within the bound, the
// caller gets ErrAudit and the log must not say the operation succeeded.
func TestFailClosedLogAgreesWithCaller(t *testing.T) {
	t.Run("store down", func(t *testing.T) {
		st := &downStore{Store: memstore.New()}
		recs := failClosedRecords(t, st, st.Store, func() { st.down.Store(true) },
			func(clk *clockwork.FakeClock) {
				require.NoError(t, clk.BlockUntilContext(t.Context(), 2), "the caller's bound and the writer's retry")
			},
			func(clk *clockwork.FakeClock) {
				require.NoError(t, clk.BlockUntilContext(t.Context(), 1), "the writer waits to retry")
				st.down.Store(false)
				clk.Advance(bound)
			})
		require.Len(t, recs, 1)
		assert.Equal(t, audit.Failure, recs[0].Outcome, "stored after the caller gave up: not a success")
		assert.Equal(t, "AuditFailed", recs[0].ErrorClass, "what the caller saw")
	})
	t.Run("store slow", func(t *testing.T) {
		st := newSlowStore(true)
		recs := failClosedRecords(t, st, st.Store, func() { st.hold.Store(true) },
			func(*clockwork.FakeClock) { <-st.entered },
			func(clk *clockwork.FakeClock) {
				require.NoError(t, clk.BlockUntilContext(t.Context(), 1), "the write was cancelled; the writer waits to retry")
				close(st.release)
				clk.Advance(bound)
			})
		require.Len(t, recs, 1)
		assert.Equal(t, audit.Failure, recs[0].Outcome)
		assert.Equal(t, "AuditFailed", recs[0].ErrorClass)
	})
	t.Run("store slow and deaf to cancellation", func(t *testing.T) {
		st := newSlowStore(false)
		recs := failClosedRecords(t, st, st.Store, func() { st.hold.Store(true) },
			func(*clockwork.FakeClock) { <-st.entered },
			func(*clockwork.FakeClock) { close(st.release) })
		// The write in flight at the bound completed: a correction follows.
		require.Len(t, recs, 2)
		assert.Equal(t, audit.Success, recs[0].Outcome)
		assert.Equal(t, audit.Failure, recs[1].Outcome)
		assert.Equal(t, "AuditFailed", recs[1].ErrorClass)
		assert.Equal(t, recs[0].Seq, recs[1].Amends, "the correction names the record it corrects")
	})
}

// Close gives up on a store that stays down when its context ends; what it
// gave up on is counted, and the failures were reported as they happened.
func TestCloseContextCountsWhatItGivesUp(t *testing.T) {
	ctx := t.Context()
	st := &downStore{Store: memstore.New()}
	var failures atomic.Int32
	l := audit.New(audit.WithStore(st), audit.WithClock(clockwork.NewFakeClockAt(epoch)), audit.WithOnError(func(error) { failures.Add(1) }))
	k, err := keyring.New(ctx, keyring.WithStore(st.Store), keyring.WithAuditor(l))
	require.NoError(t, err)
	require.NoError(t, l.Flush(ctx))
	st.down.Store(true)
	for range 3 {
		_, err := k.GenerateDataKey(ctx)
		require.NoError(t, err, "fail-open: the operation goes on")
	}
	closing, cancel := context.WithCancel(ctx)
	cancel()
	err = l.CloseContext(closing)
	require.Error(t, err, "Close says records were lost")
	assert.ErrorIs(t, err, context.Canceled)
	t.Log(err)
	assert.Equal(t, uint64(3), l.Dropped(), "the three records given up at Close are counted")
	assert.Positive(t, failures.Load(), "append failures reach WithOnError")
	assert.Equal(t, err, l.CloseContext(ctx), "later calls say the same")
	v, err := audit.Verify(ctx, st)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), v.Records, "only CreateKey was stored")
}

// Close's own bound runs on the Logger's clock: ten seconds of a store
// that stays down, not of real time.
func TestCloseBoundOnClock(t *testing.T) {
	ctx := t.Context()
	clk := clockwork.NewFakeClockAt(epoch)
	st := &downStore{Store: memstore.New()}
	st.down.Store(true)
	l := audit.New(audit.WithStore(st), audit.WithClock(clk))
	_, err := keyring.New(ctx, keyring.WithStore(st.Store), keyring.WithAuditor(l))
	require.NoError(t, err)
	closed := make(chan error)
	go func() { closed <- l.Close() }()
	require.NoError(t, clk.BlockUntilContext(ctx, 2), "the writer's retry and Close's bound")
	clk.Advance(10 * time.Second)
	err = <-closed
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, uint64(1), l.Dropped())
}
