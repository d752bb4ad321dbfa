package keyring

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kmsring/kmsring/store"
)

// The due time kept with a key's store record (store.Record.Due): when
// something is next due for the key, so that a scheduler finds due keys
// from the store's index (store.DueIndex) instead of reading every key.
// It is derived from the authenticated record, written beside it, and
// never trusted over it: a scheduler reads the key before acting, and
// SyncDue rewrites a Due that disagrees with the record.

// due returns when something is next due for a key with document d and
// versions a followed by b (passed apart so that a mutation need not join
// them): its automatic rotation (while enabled), its deletion (while
// pending deletion) or a version's destruction. Zero: nothing is.
func (d *keyDoc) due(a, b []*version) time.Time {
	var next time.Time
	earlier := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	switch d.keyState() {
	case KeyEnabled:
		if d.RotationPeriod > 0 {
			earlier(d.NextRotationAt)
		}
	case KeyPendingDeletion:
		earlier(d.DeletionDate)
	case KeyDeleted:
		return time.Time{}
	}
	for _, vs := range [][]*version{a, b} {
		for _, v := range vs {
			if v.State == VersionPendingDestruction {
				earlier(v.DestroyAt)
			}
		}
	}
	return store.DueTime(next)
}

// NextDueAt returns when something is next due for the key, as this handle
// last saw it: its automatic rotation, its deletion or a version's
// scheduled destruction; the zero time if nothing is. It is the time the
// store's due index holds for the key.
func (k *Keyring) NextDueAt() time.Time {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.doc.due(k.versions, nil)
}

// SyncDue makes the store's due index agree with the key's authenticated
// record as this handle last saw it: if the Due stored beside the record
// is not the one the record implies (a record written before the index
// existed, or an index entry someone who can write the store moved), it
// writes the record back unchanged with the right Due. Of concurrent
// writers, the one whose compare-and-swap wins decides; SyncDue then
// reloads and checks again. It reports whether it wrote.
func (k *Keyring) SyncDue(ctx context.Context) (bool, error) {
	for attempt := 0; attempt < 3; attempt++ {
		k.mu.RLock()
		rec, want := k.rec, k.doc.due(k.versions, nil)
		k.mu.RUnlock()
		if rec.Due.Equal(want) {
			return false, nil
		}
		rec.Due = want
		newRec, err := k.st.Update(ctx, rec, nil)
		if errors.Is(err, store.ErrConflict) {
			if err := k.Refresh(ctx); err != nil {
				return false, err
			}
			continue
		}
		if err != nil {
			return false, fmt.Errorf("keyring: %s: write its due time: %w", k.id, err)
		}
		k.mu.Lock()
		if k.rec.Revision == rec.Revision {
			k.rec = newRec
		}
		k.mu.Unlock()
		return true, nil
	}
	return false, fmt.Errorf("keyring: %s: write its due time: %w", k.id, store.ErrConflict)
}
