package keyring

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kmsring/kmsring/store"
)

// errNoChange ends a mutation without writing.
var errNoChange = errors.New("no change")

// maxAttempts bounds the compare-and-swap retries of one mutation.
const maxAttempts = 1000

// mutate applies fn to the latest known state and writes the result with a
// compare-and-swap, reloading and retrying on conflict. fn changes doc in
// place and returns the versions to add or replace; it may run several
// times. If fn returns errNoChange, mutate returns it without writing.
func (k *Keyring) mutate(ctx context.Context, op string, fn func(doc *keyDoc, vs []*version, now time.Time) ([]*version, error)) error {
	return k.mutateAliases(ctx, op, func(_ *[]string, doc *keyDoc, vs []*version, now time.Time) ([]*version, error) {
		return fn(doc, vs, now)
	})
}

// mutateAliases is mutate for a change that may also edit the aliases.
func (k *Keyring) mutateAliases(ctx context.Context, op string, fn func(aliases *[]string, doc *keyDoc, vs []*version, now time.Time) ([]*version, error)) error {
	for attempt := 1; ; attempt++ {
		k.mu.RLock()
		rec, doc, vs, chain := k.rec, k.doc, k.versions, k.chain
		k.mu.RUnlock()
		rec.Aliases = slices.Clone(rec.Aliases)
		put, err := fn(&rec.Aliases, &doc, vs, k.now())
		if err != nil {
			return err
		}
		lo, tail, tailChain := k.changedVersions(vs, chain, put)
		if len(tail) > 0 {
			doc.Versions = tailChain[len(tailChain)-1]
		}
		if int(doc.Current) != lo+len(tail) {
			panic("keyring: mutation left current version " + fmt.Sprint(doc.Current) + " with " + fmt.Sprint(lo+len(tail)) + " versions")
		}
		doc.Aliases = sortedAliases(rec.Aliases)
		rec.Aliases = doc.Aliases
		doc.Seq++
		old := len(rec.Data)
		rec.Data = doc.seal(k.sk, k.bid)
		rec.Due = doc.due(vs[:lo], tail)
		if err := checkRecordSize(k.bid, len(rec.Data), old); err != nil {
			return fmt.Errorf("keyring: %s: %w", op, err)
		}
		svs := make([]store.Version, len(put))
		for i, v := range put {
			svs[i] = store.Version{Number: v.Number, Data: v.data}
		}
		newRec, err := k.st.Update(ctx, rec, svs)
		if errors.Is(err, store.ErrConflict) && attempt < maxAttempts {
			if err := k.Refresh(ctx); err != nil {
				return fmt.Errorf("keyring: %s: %w", op, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("keyring: %s: %w", op, err)
		}
		k.mu.Lock()
		changed := false
		if doc.Seq > k.doc.Seq {
			changed = scheduleChanged(&k.doc, &doc)
			// k.versions is still vs: no newer change was installed. Appends
			// share the backing arrays (readers never look past their own
			// length, and only the writer whose update won writes, under
			// the lock); a replacement copies them.
			if lo == len(vs) {
				vs, chain = append(vs, tail...), append(chain, tailChain...)
			} else {
				vs, chain = slices.Concat(vs[:lo], tail), slices.Concat(chain[:lo], tailChain)
			}
			k.installLocked(newRec, doc, vs, chain)
		}
		k.mu.Unlock()
		if changed {
			k.notifyWatchers()
		}
		return nil
	}
}

// changedVersions returns what put (versions to replace or append) makes of
// vs from index lo on, with the digests of those versions: an append costs
// one digest, a replacement of version i recomputes the chain from i.
func (k *Keyring) changedVersions(vs []*version, chain []digest, put []*version) (lo int, tail []*version, tailChain []digest) {
	lo = len(vs)
	for _, v := range put {
		lo = min(lo, int(v.Number)-1)
	}
	tail = slices.Clone(vs[lo:])
	for _, v := range put {
		if i := int(v.Number) - 1 - lo; i < len(tail) {
			tail[i] = v
		} else if i == len(tail) {
			tail = append(tail, v)
		} else {
			panic("keyring: version " + fmt.Sprint(v.Number) + " appended out of order")
		}
	}
	d := chainStart(k.bid)
	if lo > 0 {
		d = chain[lo-1]
	}
	tailChain = make([]digest, len(tail))
	for i, v := range tail {
		d = chainNext(d, v.Number, v.data)
		tailChain[i] = d
	}
	return lo, tail, tailChain
}

// scheduleChanged reports whether a scheduler's next wake-up for the key
// may have moved from a to b: its next rotation, its state or its deletion
// date.
func scheduleChanged(a, b *keyDoc) bool {
	return !a.NextRotationAt.Equal(b.NextRotationAt) || a.State != b.State || !a.DeletionDate.Equal(b.DeletionDate)
}

// NotifyScheduleChange arranges for a value to be sent on c, without
// blocking, whenever this handle sees the key's next rotation time, state
// or deletion date change: when rotation is enabled, disabled or carried
// out, the key is disabled, enabled or scheduled for deletion, or a reload
// finds such a change made elsewhere. The rotation scheduler uses it to wake early. Call stop
// to end the notifications.
func (k *Keyring) NotifyScheduleChange(c chan<- struct{}) (stop func()) {
	k.watchMu.Lock()
	defer k.watchMu.Unlock()
	if k.watchers == nil {
		k.watchers = make(map[*chan<- struct{}]struct{})
	}
	p := &c
	k.watchers[p] = struct{}{}
	return func() {
		k.watchMu.Lock()
		defer k.watchMu.Unlock()
		delete(k.watchers, p)
	}
}

func (k *Keyring) notifyWatchers() {
	k.watchMu.Lock()
	defer k.watchMu.Unlock()
	for p := range k.watchers {
		select {
		case *p <- struct{}{}:
		default:
		}
	}
}
