package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/rotation"
)

// serveRefresh is the longest serve's scheduler sleeps before it looks at
// the store's due index again, so that schedules changed by other
// processes are seen. The tests shorten it.
var serveRefresh = rotation.DefaultRefreshInterval

// serveKeys runs a rotation.Scheduler over every key of the store while
// serve runs, so that automatic rotations, key deletions and version
// destructions happen at their dates. It holds no key: the scheduler finds
// due keys from the store's due index and loads them through a
// keyring.Set of its own (the handler's keys are inside kmsapi), which
// keeps at most schedulerLoaded of them: a pass reads each due key once, so
// keeping more would only add to the --max-loaded-keys the handler holds. A change the handler makes to a key's schedule wakes the
// scheduler at once, and so does one another process makes, through the
// control socket or, on PostgreSQL, the store's change feed; without
// either, the refresh interval bounds how late it is seen.
type serveKeys struct {
	clock keyring.Clock
	set   *keyring.Set
	sched *rotation.Scheduler
}

func (a *app) newServeKeys(ctx context.Context, logger *slog.Logger, maxLoaded int) (*serveKeys, error) {
	clock := keyring.RealClock()
	if testClock != nil {
		if c := testClock(); c != nil {
			clock = c
		}
	}
	set, err := keyring.OpenSet(ctx, a.st, append(a.serveOptions(clock), keyring.WithMaxLoaded(min(maxLoaded, schedulerLoaded)))...)
	if err != nil {
		return nil, err
	}
	return &serveKeys{
		clock: clock,
		set:   set,
		sched: rotation.New(rotation.WithClock(clock), rotation.WithLogger(logger),
			rotation.WithRefreshInterval(serveRefresh), rotation.WithSet(set)),
	}, nil
}

// schedulerLoaded bounds the keys serve's scheduler keeps loaded between
// passes.
const schedulerLoaded = 64

// scheduleOps are the operations after which the scheduler must look at
// the due index again: a new key, or a changed rotation, state or
// destruction date.
var scheduleOps = map[keyring.Operation]bool{
	keyring.OpCreateKey:                  true,
	keyring.OpEnableKeyRotation:          true,
	keyring.OpDisableKeyRotation:         true,
	keyring.OpEnableKey:                  true,
	keyring.OpDisableKey:                 true,
	keyring.OpScheduleKeyDeletion:        true,
	keyring.OpCancelKeyDeletion:          true,
	keyring.OpScheduleVersionDestruction: true,
	keyring.OpCancelVersionDestruction:   true,
}

// Audit implements keyring.Auditor for the handler's keys: it wakes the
// scheduler after every successful operation in scheduleOps, without
// blocking, and never fails the operation.
func (s *serveKeys) Audit(_ context.Context, e keyring.AuditEvent) error {
	if e.Err == nil && e.KeyID != "" && scheduleOps[e.Operation] {
		s.sched.Wake()
	}
	return nil
}

// run runs the scheduler until ctx ends, waking it every refresh interval
// of the wall clock too (the scheduler's own clock may be a test's).
func (s *serveKeys) run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		s.sched.Run(ctx)
		close(done)
	}()
	defer func() { <-done }()
	t := time.NewTicker(serveRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sched.Wake()
		}
	}
}

// changed tells the scheduler that another process changed key id (a
// command through the control socket, a replica through the store's change
// feed), without blocking: it looks at the due index again.
func (s *serveKeys) changed(id string) {
	if keyring.IsReserved(id) {
		return // an access key, the store key: not a key to schedule
	}
	s.sched.Wake()
}
