package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/rotation"
)

// serveRefresh is how often serve reads the store's key list again, so
// that keys created by other processes join the scheduler, and how often
// the scheduler re-reads the keys it holds. The tests shorten it.
var serveRefresh = rotation.DefaultRefreshInterval

// touchedQueue bounds the key IDs waiting for the key list; when it is
// full, the next periodic read of the store catches up.
const touchedQueue = 1024

// serveKeys keeps a rotation.Scheduler holding every key of the store
// while serve runs, so that automatic rotations, key deletions and version
// destructions happen at their dates. The scheduler has handles of its own
// (the handler's are inside kmsapi); a key joins it when serve starts, when
// the handler creates it (seen through the handler's audit events), or at
// the next periodic read of the store's key list (keys created by another
// process). A change the handler makes to a key's schedule refreshes the
// scheduler's handle at once.
type serveKeys struct {
	a       *app
	clock   keyring.Clock
	sched   *rotation.Scheduler
	log     *slog.Logger
	touched chan string
	// collector, when set, reports every key the scheduler holds
	// (serve's /metrics).
	collector *audit.Collector

	// owned by sync and touch, which run in one goroutine
	held   map[string]*keyring.Keyring
	failed map[string]bool // keys that failed to load, reported once
}

func (a *app) newServeKeys(logger *slog.Logger) *serveKeys {
	clock := keyring.RealClock()
	if testClock != nil {
		if c := testClock(); c != nil {
			clock = c
		}
	}
	return &serveKeys{
		a:     a,
		clock: clock,
		sched: rotation.New(rotation.WithClock(clock), rotation.WithLogger(logger),
			rotation.WithRefreshInterval(serveRefresh)),
		log:     logger,
		touched: make(chan string, touchedQueue),
		held:    make(map[string]*keyring.Keyring),
		failed:  make(map[string]bool),
	}
}

// scheduleOps are the operations after which the scheduler must see the
// key: a new key, or a changed rotation, state or destruction date.
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

// Audit implements keyring.Auditor for the handler's keys: it queues the
// key of every successful operation in scheduleOps, without blocking, and
// never fails the operation.
func (s *serveKeys) Audit(_ context.Context, e keyring.AuditEvent) error {
	if e.Err == nil && e.KeyID != "" && scheduleOps[e.Operation] {
		select {
		case s.touched <- e.KeyID:
		default:
		}
	}
	return nil
}

// changed queues a key another command changed through the control
// socket, without blocking, so that the scheduler sees it.
func (s *serveKeys) changed(id string) {
	if strings.HasPrefix(id, keyring.ReservedPrefix) {
		return // an access key, the audit key: not a key to schedule
	}
	select {
	case s.touched <- id:
	default:
	}
}

// run runs the scheduler and keeps its keys until ctx ends.
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
			s.sync(ctx)
		case id := <-s.touched:
			s.touch(ctx, id)
		}
	}
}

// sync adds the store's keys that the scheduler does not hold yet.
func (s *serveKeys) sync(ctx context.Context) {
	ids, err := keyring.List(ctx, s.a.st)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("kmsring: listing the store's keys failed", "err", err)
		}
		return
	}
	for _, id := range ids {
		if _, ok := s.held[id]; !ok {
			s.add(ctx, id)
		}
	}
}

// touch brings the scheduler's view of key id up to date: it refreshes the
// handle the scheduler holds (which wakes the scheduler if the schedule
// moved), or loads and adds a new key.
func (s *serveKeys) touch(ctx context.Context, id string) {
	k, ok := s.held[id]
	if !ok {
		s.add(ctx, id)
		return
	}
	if k == nil { // deleted: nothing to schedule
		return
	}
	if err := k.Refresh(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("kmsring: refreshing key failed", "key_id", id, "err", err)
	}
}

// add loads key id and gives it to the scheduler. A deleted key (a
// tombstone) is remembered but not scheduled.
func (s *serveKeys) add(ctx context.Context, id string) {
	k, err := keyring.Load(ctx, s.a.st, id, s.a.serveOptions(s.clock)...)
	if err != nil {
		if ctx.Err() == nil && !s.failed[id] {
			s.failed[id] = true
			s.log.Warn("kmsring: loading key for the rotation scheduler failed; retrying every refresh", "key_id", id, "err", s.a.explain(err))
		}
		return
	}
	delete(s.failed, id)
	if k.KeyState() == keyring.KeyDeleted {
		s.held[id] = nil
		return
	}
	s.held[id] = k
	s.sched.Add(k)
	if s.collector != nil {
		s.collector.Add(k)
	}
}
