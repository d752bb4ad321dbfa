package rotation

import (
	"context"
	"fmt"
	"time"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
)

// The scheduler over a whole store (WithSet): it finds due keys from the
// store's due index instead of holding every key, so that a pass with
// nothing due costs two indexed queries however many keys the store holds.

// WithSet makes the scheduler look after every key of set's store, a set
// made by keyring.OpenSet over a store with a due index (store.DueIndex;
// every store in this module has one), without holding them: each pass
// reads the keys the index lists as due at the clock's time, loads each
// through the set (bounded by keyring.WithMaxLoaded), reads it again from
// the store, and does what its authenticated record says is due. Run
// sleeps until the index's next due time, at most the refresh interval,
// so changes made by other processes are seen within it.
//
// The index is a hint, never trusted over the record: an entry whose key
// is not due is put right (keyring.Keyring.SyncDue); an entry naming a
// key that is missing or fails authentication is reported as a failed key
// of the pass, and the others go on. A pass reads at most MaxDuePerPass
// entries; Run comes back at once for the rest.
func WithSet(set *keyring.Set) Option { return func(s *Scheduler) { s.set = set } }

// MaxDuePerPass bounds the due index entries one pass reads.
const MaxDuePerPass = 10000

// duePage is how many due entries a pass reads at a time.
const duePage = 500

// handleDue does the work the set's due index lists as due now.
func (s *Scheduler) handleDue(ctx context.Context, p *pass) {
	now := s.clock.Now()
	seen := make(map[string]bool)
	// A pass goes on where the one before stopped, so that more entries
	// than one pass reads (entries that fail every time, say) cannot keep
	// the ones after them from ever being read.
	s.mu.Lock()
	after := s.dueResume
	s.dueResume = store.DueEntry{}
	s.mu.Unlock()
	for n := 0; n < MaxDuePerPass; {
		es, err := s.set.Due(ctx, now, after, min(duePage, MaxDuePerPass-n))
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("rotation: %w", err))
			return
		}
		for _, e := range es {
			if !after.Less(e) && after != (store.DueEntry{}) {
				// The cursor would not move: a store that lists out of
				// order. Stop here rather than loop.
				p.errs = append(p.errs, fmt.Errorf("rotation: the due index listed %s at %v after %s at %v (out of order)", e.KeyID, e.Due, after.KeyID, after.Due))
				return
			}
			after = e
			if seen[e.KeyID] {
				continue // listed twice: done once
			}
			seen[e.KeyID] = true
			if err := s.handleEntry(ctx, e, p); err != nil {
				p.errs = append(p.errs, err)
			}
		}
		if len(es) < duePage {
			p.more = false
			return
		}
		n += len(es)
	}
	p.more = true
	s.mu.Lock()
	s.dueResume = after
	s.mu.Unlock()
}

// handleEntry handles one due index entry.
func (s *Scheduler) handleEntry(ctx context.Context, e store.DueEntry, p *pass) error {
	if keyring.IsReserved(e.KeyID) {
		// Not a key (the store key, an access key): never due.
		if _, err := s.set.SyncDue(ctx, e.KeyID); err != nil {
			return fmt.Errorf("rotation: due index entry %q: %w", e.KeyID, err)
		}
		return nil
	}
	k, err := s.set.Load(ctx, e.KeyID)
	if err != nil {
		return fmt.Errorf("rotation: the due index names key %q: %w", e.KeyID, err)
	}
	// The set's handle may predate changes made elsewhere; the index
	// entry may be newer than it.
	if err := k.Refresh(ctx); err != nil {
		return fmt.Errorf("rotation: key %s: %w", e.KeyID, err)
	}
	s.handle(ctx, k, p)
	if _, err := k.SyncDue(ctx); err != nil {
		return fmt.Errorf("rotation: key %s: %w", e.KeyID, err)
	}
	return nil
}

// nextDue returns the earliest due time the set's index lists at or after
// now, or the zero time.
func (s *Scheduler) nextDue(ctx context.Context, now time.Time) (time.Time, error) {
	es, err := s.set.Due(ctx, farFuture, store.DueEntry{Due: now}, 1)
	if err != nil || len(es) == 0 {
		return time.Time{}, err
	}
	return es[0].Due, nil
}

var farFuture = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
