package memstore

import (
	"context"
	"slices"

	"github.com/kmsring/kmsring/store"
)

var _ store.AuditSequencer = (*Store)(nil)

// AppendAuditNext implements [store.AuditSequencer].
func (s *Store) AppendAuditNext(ctx context.Context, entries []store.AuditEntry) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if len(entries) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.lastSeq() + 1
	for i, e := range entries {
		e.Seq, e.Data = first+uint64(i), slices.Clone(e.Data)
		s.audit = append(s.audit, e)
	}
	return first, nil
}
