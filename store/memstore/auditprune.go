package memstore

import (
	"context"
	"fmt"

	"github.com/kmsring/kmsring/store"
)

// The audit slice holds entries numbered audit[0].Seq, audit[0].Seq+1, ...
// without gaps: 1 onwards until PruneAudit drops a prefix.

// lastSeq returns the number of the newest audit entry, 0 in an empty log.
// The caller holds s.mu.
func (s *Store) lastSeq() uint64 {
	if len(s.audit) == 0 {
		return 0
	}
	return s.audit[len(s.audit)-1].Seq
}

// auditIndex returns the index in s.audit of entry seq, clamped to the
// slice. The caller holds s.mu.
func (s *Store) auditIndex(seq uint64) int {
	if len(s.audit) == 0 || seq <= s.audit[0].Seq {
		return 0
	}
	return int(min(seq-s.audit[0].Seq, uint64(len(s.audit))))
}

// PruneAudit implements [store.AuditPruner].
func (s *Store) PruneAudit(ctx context.Context, keep uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.audit) > 0 && keep <= s.audit[0].Seq {
		return nil
	}
	i := s.auditIndex(keep)
	if i >= len(s.audit) || s.audit[i].Seq != keep {
		return fmt.Errorf("memstore: prune audit log: no entry %d: %w", keep, store.ErrNotFound)
	}
	// A fresh slice, so the pruned entries are freed.
	s.audit = append([]store.AuditEntry(nil), s.audit[i:]...)
	return nil
}
