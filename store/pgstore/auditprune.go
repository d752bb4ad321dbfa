package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/kmsring/kmsring/store"
)

var _ store.AuditPruner = (*Store)(nil)

// PruneAudit implements [store.AuditPruner]. PostgreSQL reuses the space
// after autovacuum (VACUUM FULL returns it to the system).
func (s *Store) PruneAudit(ctx context.Context, keep uint64) error {
	err := s.run(ctx, false, func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var first *int64
			var found bool
			if err := tx.QueryRow(ctx, `SELECT min(seq), EXISTS (SELECT 1 FROM kmsring_audit WHERE seq = $1) FROM kmsring_audit`,
				int64(keep)).Scan(&first, &found); err != nil {
				return err
			}
			if first != nil && int64(keep) <= *first {
				return nil
			}
			if !found {
				return fmt.Errorf("pgstore: prune audit log: no entry %d: %w", keep, store.ErrNotFound)
			}
			_, err := tx.Exec(ctx, `DELETE FROM kmsring_audit WHERE seq < $1`, int64(keep))
			return err
		})
	})
	if err != nil {
		return wrap("prune audit", err)
	}
	return nil
}
