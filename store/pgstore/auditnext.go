package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/kmsring/kmsring/store"
)

var _ store.AuditSequencer = (*Store)(nil)

// lockAudit makes the transaction the only one of this release appending
// to the schema's audit log until it ends: appends queue on the lock
// instead of colliding on the next sequence number and rolling back. It
// is an advisory lock (one per schema), not a table lock, so a role that
// may only insert into the audit table (an append-only grant) can take
// it, and readers and pruning are not blocked. An older release's
// writer, which does not take it, can still collide with an append:
// that transaction then rolls back as before.
const lockAudit = `SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '.kmsring_audit', 0))`

// AppendAuditNext implements [store.AuditSequencer]: in one transaction,
// it takes the audit log's append lock, reads the last sequence number
// and copies the entries in after it. Replicas appending at once wait on
// the lock for a moment; none rolls back.
func (s *Store) AppendAuditNext(ctx context.Context, entries []store.AuditEntry) (first uint64, err error) {
	if len(entries) == 0 {
		return 0, s.check(ctx)
	}
	err = s.run(ctx, false, func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, lockAudit); err != nil {
				return err
			}
			var last int64
			if err := tx.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM kmsring_audit`).Scan(&last); err != nil {
				return err
			}
			first = uint64(last) + 1
			return copyAudit(ctx, tx, first, entries)
		})
	})
	if err != nil {
		return 0, wrap("append audit", err)
	}
	return first, nil
}

// copyAudit inserts entries numbered from first.
func copyAudit(ctx context.Context, tx pgx.Tx, first uint64, entries []store.AuditEntry) error {
	rows := make([][]any, len(entries))
	for i, e := range entries {
		rows[i] = []any{int64(first + uint64(i)), e.Time, e.KeyID, e.Operation, e.Data}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"kmsring_audit"}, []string{"seq", "time", "key_id", "operation", "data"}, pgx.CopyFromRows(rows))
	return err
}
