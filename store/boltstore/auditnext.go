package boltstore

import (
	"context"
	"encoding/binary"

	"github.com/kmsring/kmsring/store"
	bolt "go.etcd.io/bbolt"
)

var _ store.AuditSequencer = (*Store)(nil)

// AppendAuditNext implements [store.AuditSequencer]: one write
// transaction numbers and stores the entries.
func (s *Store) AppendAuditNext(ctx context.Context, entries []store.AuditEntry) (first uint64, err error) {
	if len(entries) == 0 {
		return 0, ctx.Err()
	}
	err = s.do(ctx, true, func(tx *bolt.Tx) error {
		first = 1
		if k, _ := tx.Bucket(bucketAudit).Cursor().Last(); k != nil {
			first = binary.BigEndian.Uint64(k) + 1
		}
		return putAudit(tx, first, entries)
	})
	return first, err
}
