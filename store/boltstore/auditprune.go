package boltstore

import (
	"bytes"
	"context"
	"fmt"

	"github.com/kmsring/kmsring/store"
	bolt "go.etcd.io/bbolt"
)

var _ store.AuditPruner = (*Store)(nil)

// PruneAudit implements [store.AuditPruner]. The pages the pruned entries
// held go to the file's free list and are reused by later writes; the file
// does not shrink (bbolt compacts only into a new file: `bbolt compact`).
func (s *Store) PruneAudit(ctx context.Context, keep uint64) error {
	return s.do(ctx, true, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		k := seqKey(keep)
		if first, _ := b.Cursor().First(); first != nil && bytes.Compare(k, first) <= 0 {
			return nil
		}
		if b.Get(k) == nil {
			return fmt.Errorf("boltstore: prune audit log: no entry %d: %w", keep, store.ErrNotFound)
		}
		// Collect, then delete: re-seeking the first key after each
		// cursor delete walks the emptied leaves again and again
		// (quadratic in the entries pruned).
		var doomed [][]byte
		c := b.Cursor()
		for ck, _ := c.First(); ck != nil && bytes.Compare(ck, k) < 0; ck, _ = c.Next() {
			doomed = append(doomed, bytes.Clone(ck))
		}
		for _, dk := range doomed {
			if err := b.Delete(dk); err != nil {
				return err
			}
		}
		return nil
	})
}
