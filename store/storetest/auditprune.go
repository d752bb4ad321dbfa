package storetest

import (
	"context"
	"testing"

	"github.com/kmsring/kmsring/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// auditPruner returns st as a store.AuditLog and store.AuditPruner or skips
// the test.
func auditPruner(t *testing.T, st store.Store) (store.AuditLog, store.AuditPruner) {
	return auditLog(t, st), capability[store.AuditPruner](t, st, "cannot prune its audit log")
}

// testAuditPrune: PruneAudit deletes the entries below keep, keeps entry
// keep as the anchor appends continue from, and is idempotent.
func testAuditPrune(t *testing.T, st store.Store) {
	al, p := auditPruner(t, st)
	ctx := context.Background()
	var all []store.AuditEntry
	for i := uint64(1); i <= 5; i++ {
		all = append(all, entry(i, keyA, "Encrypt"))
	}
	require.NoError(t, al.AppendAudit(ctx, all))

	require.NoError(t, p.PruneAudit(ctx, 3))
	got, err := al.ReadAudit(ctx, store.AuditQuery{})
	require.NoError(t, err)
	assert.Equal(t, all[2:], got, "entries 1 and 2 are gone, 3 (the anchor) stays")
	got, err = al.ReadAudit(ctx, store.AuditQuery{After: 1, Limit: 1})
	require.NoError(t, err)
	assert.Equal(t, all[2:3], got, "a read after a pruned entry starts at the anchor")

	require.NoError(t, p.PruneAudit(ctx, 3), "pruning again to the same anchor is not an error")
	require.NoError(t, p.PruneAudit(ctx, 2), "pruning what is already pruned changes nothing")
	got, err = al.ReadAudit(ctx, store.AuditQuery{})
	require.NoError(t, err)
	assert.Equal(t, all[2:], got)

	require.NoError(t, p.PruneAudit(ctx, 5), "pruning to the last entry keeps it")
	last, err := al.LastAudit(ctx)
	require.NoError(t, err)
	assert.Equal(t, all[4], last, "the anchor is the last entry")
	assert.ErrorIs(t, al.AppendAudit(ctx, []store.AuditEntry{entry(1, keyA, "x")}), store.ErrConflict, "numbering goes on after the anchor")
	require.NoError(t, al.AppendAudit(ctx, []store.AuditEntry{entry(6, keyB, "Decrypt")}))
	got, err = al.ReadAudit(ctx, store.AuditQuery{KeyID: keyB})
	require.NoError(t, err)
	assert.Equal(t, []store.AuditEntry{entry(6, keyB, "Decrypt")}, got)
}

// testAuditPruneMissing: pruning to an entry that does not exist deletes
// nothing.
func testAuditPruneMissing(t *testing.T, st store.Store) {
	al, p := auditPruner(t, st)
	ctx := context.Background()
	assert.ErrorIs(t, p.PruneAudit(ctx, 1), store.ErrNotFound, "empty log")
	all := []store.AuditEntry{entry(1, keyA, "x"), entry(2, keyA, "x")}
	require.NoError(t, al.AppendAudit(ctx, all))
	assert.ErrorIs(t, p.PruneAudit(ctx, 3), store.ErrNotFound, "beyond the end")
	got, err := al.ReadAudit(ctx, store.AuditQuery{})
	require.NoError(t, err)
	assert.Equal(t, all, got, "nothing was deleted")
}
