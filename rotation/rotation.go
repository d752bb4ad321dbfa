// Package rotation rotates keyrings automatically, each on its own period,
// and tells when a key's rotation is overdue.
//
// A [Scheduler] holds keyrings and calls keyring.Keyring.RotateIfDue on
// each when it is due. [Scheduler.Run] sleeps on the injected clock until the
// earliest due time, so a test that passes a clockwork.FakeClock lives
// through years of rotations in milliseconds; [Scheduler.RunOnce] does one
// pass for callers that drive their own loop.
//
// # Clocks
//
// The keyring's clock stamps versions and decides whether a key is due; the
// scheduler's clock only decides when to wake. Pass the same clock to both.
//
// # Many replicas
//
// Any number of schedulers, in one process or many sharing a store, may hold
// the same key: RotateIfDue is a compare-and-swap, so a due period yields
// exactly one new version and the other schedulers adopt it. Run re-reads
// its keys from the store at the refresh interval (WithRefreshInterval) to
// see schedules changed elsewhere, and wakes at once when a key it holds
// changes its schedule in this process.
package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
)

// Event records one rotation.
type Event struct {
	KeyID string
	// Version is the new current version; Previous the one it replaced.
	Version, Previous uint32
	// At is when the rotation happened: the new version's creation time.
	At     time.Time
	Origin keyring.Origin
}

// DefaultRefreshInterval is how often Run re-reads its keys from the store
// by default.
const DefaultRefreshInterval = time.Minute

// Option configures a Scheduler.
type Option func(*Scheduler)

// WithClock sets the clock Run sleeps on. The default is the wall clock.
func WithClock(c keyring.Clock) Option { return func(s *Scheduler) { s.clock = c } }

// WithRefreshInterval sets how often Run re-reads its keys from the store
// to see changes made by other processes, and the longest it sleeps.
// Non-positive values keep DefaultRefreshInterval.
func WithRefreshInterval(d time.Duration) Option {
	return func(s *Scheduler) {
		if d > 0 {
			s.refresh = d
		}
	}
}

// WithLogger sets the logger Run reports rotations and failures to. The
// default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(s *Scheduler) { s.log = l } }

// WithOnRotate sets a function Run calls, from its own goroutine, for every
// rotation it carries out. It should return quickly.
func WithOnRotate(f func(Event)) Option { return func(s *Scheduler) { s.onRotate = f } }

// WithOverdue makes every pass check each key with Overdue(grace) and call
// f, from the pass's goroutine, once for each due time a key is overdue
// past. The check comes before the key's rotation in the same pass, so a
// scheduler that was down past the grace period raises the alarm on its
// first pass, then rotates. f gets the key's metadata as it was before the
// rotation, its ReadAt the keyring clock's time of the check. (The keys'
// cached metadata is used; Run refreshes it at the refresh interval.)
func WithOverdue(grace time.Duration, f func(keyring.Metadata)) Option {
	return func(s *Scheduler) { s.overdueGrace, s.onOverdue = grace, f }
}

// DefaultPrincipal is the principal the scheduler's automatic rotations and
// scheduled destructions are recorded under (keyring.ContextWithPrincipal),
// as AWS records automatic rotations under the KMS service rather than a
// caller.
const DefaultPrincipal = "kmsring:rotation"

// WithPrincipal sets the principal the scheduler acts as (default
// DefaultPrincipal), replacing any principal on the context given to
// RunOnce or Run. "" keeps the context's.
func WithPrincipal(p string) Option { return func(s *Scheduler) { s.principal = p } }

// WithOnError sets a function Run calls, from its own goroutine, for every
// failed pass (the error joins one error per failed key). Run retries
// failed keys with a backoff of up to the refresh interval.
func WithOnError(f func(error)) Option { return func(s *Scheduler) { s.onError = f } }

// Scheduler rotates the keyrings it holds when they are due. It is safe for
// concurrent use; Add may be called while Run runs.
type Scheduler struct {
	clock    keyring.Clock
	refresh  time.Duration
	log      *slog.Logger
	onRotate func(Event)
	onError  func(error)
	// principal is what the scheduler's operations are audited as.
	principal string

	overdueGrace time.Duration
	onOverdue    func(keyring.Metadata)
	reported     map[string]time.Time // key ID -> the due time reported overdue

	wake chan struct{} // buffered; a schedule changed in this process
	// woken is set by Wake and cleared as a pass starts: a Wake during a
	// pass (news the pass may have missed) is kept apart from the wake
	// signals of the pass's own rotations, which are dropped.
	woken atomic.Bool
	// pace is the clock Wake-started passes are spaced on (minWakeGap):
	// real time, whatever clock the keys run on.
	pace keyring.Clock

	mu    sync.Mutex
	keys  []*keyring.Keyring
	stops []func()
	// held indexes keys by identity, so that Add is not a scan.
	held map[*keyring.Keyring]int

	// set, if any, is a set made by keyring.OpenSet whose store's due
	// index tells the scheduler which keys to look at (WithSet).
	set *keyring.Set
	// dueResume is where the next pass reads the due index from: the
	// entry a pass stopped at when it read MaxDuePerPass entries, so that
	// the following pass goes on from there (zero: from the start).
	dueResume store.DueEntry
}

// minRetry is the first retry delay after a failed pass.
const minRetry = time.Second

// minWakeGap is the least real time between the end of a pass and the
// start of a pass a Wake asked for. serve calls Wake for every key
// another replica creates or changes; a stream of them costs a pass per
// gap, not a pass per change.
const minWakeGap = 50 * time.Millisecond

// New returns a scheduler holding no keys.
func New(opts ...Option) *Scheduler {
	s := &Scheduler{
		clock:     keyring.RealClock(),
		pace:      keyring.RealClock(),
		refresh:   DefaultRefreshInterval,
		log:       slog.Default(),
		wake:      make(chan struct{}, 1),
		principal: DefaultPrincipal,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Add makes the scheduler rotate k. Adding a keyring twice has no effect.
func (s *Scheduler) Add(k *keyring.Keyring) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.held[k]; ok {
		return
	}
	if s.held == nil {
		s.held = make(map[*keyring.Keyring]int)
	}
	s.held[k] = len(s.keys)
	s.keys = append(s.keys, k)
	s.stops = append(s.stops, k.NotifyScheduleChange(s.wake))
	s.signal()
}

// Remove stops the scheduler rotating k.
func (s *Scheduler) Remove(k *keyring.Keyring) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.held[k]
	if !ok {
		return
	}
	s.stops[i]()
	last := len(s.keys) - 1
	s.keys[i], s.stops[i] = s.keys[last], s.stops[last]
	s.held[s.keys[i]] = i
	s.keys, s.stops = s.keys[:last], s.stops[:last]
	delete(s.held, k)
}

// Wake makes Run look at its keys, and at the due index of its set, at
// once (at most one such look per 50 ms of real time, however many Wakes):
// for a caller that changed a key's schedule through a handle the
// scheduler does not hold.
func (s *Scheduler) Wake() {
	s.woken.Store(true)
	s.signal()
}

func (s *Scheduler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Scheduler) snapshot() []*keyring.Keyring {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*keyring.Keyring(nil), s.keys...)
}

// RunOnce rotates every key that is due at its keyring clock's current
// time, deletes every key whose deletion date has come
// (keyring.Keyring.DeleteIfDue) and destroys every version whose scheduled
// destruction is due (keyring.Keyring.DestroyDueVersions), as the
// scheduler's principal (WithPrincipal). Before rotating a key it checks
// whether the key is overdue (WithOverdue). It returns an event for each
// rotation it carried out and the errors.Join of the failures; a failure on
// one key does not stop the others.
func (s *Scheduler) RunOnce(ctx context.Context) ([]Event, error) {
	p := s.runOnce(ctx)
	return p.events, errors.Join(p.errs...)
}

// runOnce is RunOnce, also telling whether the due index has more due.
func (s *Scheduler) runOnce(ctx context.Context) *pass {
	if s.principal != "" {
		ctx = keyring.ContextWithPrincipal(ctx, s.principal)
	}
	var p pass
	for _, k := range s.snapshot() {
		s.handle(ctx, k, &p)
	}
	if s.set != nil {
		s.handleDue(ctx, &p)
	}
	return &p
}

// pass collects what one pass did.
type pass struct {
	events []Event
	errs   []error
	// more is set when the due index listed more due entries than one
	// pass reads.
	more bool
}

// handle does what is due for k: its overdue check, its rotation, its
// deletion and the destruction of its versions.
func (s *Scheduler) handle(ctx context.Context, k *keyring.Keyring, p *pass) {
	s.checkOverdue(k)
	v, rotated, err := k.RotateIfDue(ctx)
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("rotation: key %s: %w", k.ID(), err))
	} else if rotated {
		p.events = append(p.events, Event{KeyID: k.ID(), Version: v.Number, Previous: v.Number - 1, At: v.CreatedAt, Origin: v.Origin})
	}
	if k.KeyState() == keyring.KeyPendingDeletion {
		deleted, err := k.DeleteIfDue(ctx)
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("rotation: key %s: deleting the key: %w", k.ID(), err))
		}
		if deleted {
			s.log.Info("kmsring: key deleted", "key_id", k.ID())
		}
	}
	if !k.NextDestructionAt().IsZero() {
		destroyed, err := k.DestroyDueVersions(ctx)
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("rotation: key %s: destroying versions: %w", k.ID(), err))
		}
		for _, d := range destroyed {
			s.log.Info("kmsring: key version destroyed", "key_id", k.ID(), "version", d.Number)
		}
	}
}

func (s *Scheduler) checkOverdue(k *keyring.Keyring) {
	if s.onOverdue == nil {
		return
	}
	// Decide on the cached schedule (NextRotationAt is zero when rotation
	// is off); only an overdue key pays for a copy of its metadata.
	next := k.NextRotationAt()
	if !Overdue(keyring.Metadata{RotationEnabled: !next.IsZero(), NextRotationAt: next, KeyState: k.KeyState()}, s.clock.Now(), s.overdueGrace) {
		return
	}
	md := k.Cached()
	s.mu.Lock()
	if s.reported == nil {
		s.reported = make(map[string]time.Time)
	}
	already := s.reported[md.KeyID].Equal(md.NextRotationAt)
	s.reported[md.KeyID] = md.NextRotationAt
	s.mu.Unlock()
	if !already {
		s.log.Warn("kmsring: key rotation overdue", "key_id", md.KeyID, "next_rotation_at", md.NextRotationAt)
		s.onOverdue(md)
	}
}

// Run rotates keys as they fall due until ctx ends, then returns ctx.Err().
// It sleeps on the clock until the earliest next rotation time, at most
// the refresh interval, and wakes early when a key it holds changes its
// schedule in this process. A failed rotation is logged, reported to the
// WithOnError function and retried; it never ends Run. Run leaves no
// goroutine behind.
func (s *Scheduler) Run(ctx context.Context) error {
	lastRefresh := s.clock.Now()
	retry := time.Duration(0)
	var lastPass time.Time // on s.pace
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if s.woken.Load() && !lastPass.IsZero() {
			if gap := minWakeGap - s.pace.Now().Sub(lastPass); gap > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-s.pace.After(gap):
				}
			}
		}
		if now := s.clock.Now(); now.Sub(lastRefresh) >= s.refresh {
			lastRefresh = now
			for _, k := range s.snapshot() {
				if err := k.Refresh(ctx); err != nil && ctx.Err() == nil {
					s.log.Warn("kmsring: refreshing key failed", "key_id", k.ID(), "err", err)
				}
			}
		}
		s.woken.Store(false)
		p := s.runOnce(ctx)
		lastPass = s.pace.Now()
		events, err := p.events, errors.Join(p.errs...)
		// RunOnce's own rotations signalled wake; the wait below
		// accounts for them.
		select {
		case <-s.wake:
		default:
		}
		for _, e := range events {
			s.log.Info("kmsring: key rotated", "key_id", e.KeyID, "version", e.Version, "previous", e.Previous, "origin", e.Origin.String())
			if s.onRotate != nil {
				s.onRotate(e)
			}
		}
		wait := s.refresh - s.clock.Now().Sub(lastRefresh)
		if err != nil && ctx.Err() == nil {
			s.log.Error("kmsring: rotation failed", "err", err)
			if s.onError != nil {
				s.onError(err)
			}
			retry = min(max(2*retry, minRetry), s.refresh)
			wait = min(wait, retry)
		} else {
			retry = 0
		}
		now := s.clock.Now()
		for _, k := range s.snapshot() {
			if next := k.NextRotationAt(); !next.IsZero() {
				wait = min(wait, next.Sub(now))
			}
			if next := k.NextDestructionAt(); !next.IsZero() {
				wait = min(wait, next.Sub(now))
			}
			if k.KeyState() == keyring.KeyPendingDeletion {
				wait = min(wait, k.DeletionDate().Sub(now))
			}
		}
		if s.set != nil {
			if p.more {
				wait = 0
			} else if next, err := s.nextDue(ctx, now); err != nil {
				if ctx.Err() == nil {
					s.log.Warn("kmsring: reading the due index failed", "err", err)
				}
			} else if !next.IsZero() {
				wait = min(wait, next.Sub(now))
			}
		}
		if s.woken.Load() {
			// Woken during the pass, perhaps about a key made after it
			// read the due index and already due: look again now.
			continue
		}
		wait = max(wait, time.Millisecond)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.clock.After(wait):
		case <-s.wake:
		}
	}
}

// Overdue reports whether md's automatic rotation is more than grace past
// due at now: rotation enabled and now > NextRotationAt + grace. A key with
// rotation disabled is never overdue, nor is a key that is disabled or
// pending deletion (its rotation is paused; a re-enabled key past due
// rotates at once). The classic alarm "no rotation in 400
// days" on a yearly key is Overdue(md, now, 35*24*time.Hour).
func Overdue(md keyring.Metadata, now time.Time, grace time.Duration) bool {
	paused := md.KeyState != 0 && md.KeyState != keyring.KeyEnabled
	return md.RotationEnabled && !paused && now.After(md.NextRotationAt.Add(grace))
}
