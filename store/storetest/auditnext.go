package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/kmsring/kmsring/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// auditSequencer returns st as a store.AuditLog and store.AuditSequencer
// or skips the test.
func auditSequencer(t *testing.T, st store.Store) (store.AuditLog, store.AuditSequencer) {
	return auditLog(t, st), capability[store.AuditSequencer](t, st, "does not number audit appends")
}

// testAuditAppendNext: AppendAuditNext numbers entries on from the last
// stored one (after AppendAudit's and after a prune's anchor), ignoring
// their Seq, and AppendAudit's compare-and-swap sees its numbers.
func testAuditAppendNext(t *testing.T, st store.Store) {
	al, sq := auditSequencer(t, st)
	ctx := context.Background()
	first, err := sq.AppendAuditNext(ctx, []store.AuditEntry{seqAs(entry(1, keyA, "Encrypt"), 99), seqAs(entry(2, keyB, "Decrypt"), 0)})
	require.NoError(t, err)
	assert.Equal(t, uint64(1), first, "an empty log numbers from 1")
	require.NoError(t, al.AppendAudit(ctx, []store.AuditEntry{entry(3, keyA, "x")}))
	assert.ErrorIs(t, al.AppendAudit(ctx, []store.AuditEntry{entry(3, keyA, "x")}), store.ErrConflict)
	first, err = sq.AppendAuditNext(ctx, []store.AuditEntry{seqAs(entry(4, keyB, "y"), 1)})
	require.NoError(t, err)
	assert.Equal(t, uint64(4), first)
	got, err := al.ReadAudit(ctx, store.AuditQuery{})
	require.NoError(t, err)
	assert.Equal(t, []store.AuditEntry{entry(1, keyA, "Encrypt"), entry(2, keyB, "Decrypt"), entry(3, keyA, "x"), entry(4, keyB, "y")}, got)
	if p, ok := st.(store.AuditPruner); ok {
		require.NoError(t, p.PruneAudit(ctx, 4))
		first, err = sq.AppendAuditNext(ctx, []store.AuditEntry{seqAs(entry(5, keyA, "z"), 0)})
		require.NoError(t, err)
		assert.Equal(t, uint64(5), first, "numbering goes on after the anchor")
	}
	first, err = sq.AppendAuditNext(ctx, nil)
	require.NoError(t, err, "appending nothing is not an error")
	assert.Zero(t, first)
}

// seqAs returns e numbered seq, for AppendAuditNext to ignore.
func seqAs(e store.AuditEntry, seq uint64) store.AuditEntry {
	e.Seq = seq
	return e
}

// testAuditAppendNextConcurrent: writers appending at once never fail
// and never interleave: each batch gets consecutive numbers, and the log
// has no gaps.
func testAuditAppendNextConcurrent(t *testing.T, st store.Store) {
	al, sq := auditSequencer(t, st)
	ctx := context.Background()
	const writers, batches, size = 4, 10, 3
	var wg sync.WaitGroup
	firsts := make([][]uint64, writers)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				var es []store.AuditEntry
				for i := range size {
					es = append(es, entry(0, keyA, fmt.Sprintf("w%d-b%d-%d", w, b, i)))
				}
				first, err := sq.AppendAuditNext(ctx, es)
				if !assert.NoError(t, err) {
					return
				}
				firsts[w] = append(firsts[w], first)
			}
		})
	}
	wg.Wait()
	got, err := al.ReadAudit(ctx, store.AuditQuery{})
	require.NoError(t, err)
	require.Len(t, got, writers*batches*size)
	for i, e := range got {
		assert.Equal(t, uint64(i+1), e.Seq, "no gaps")
	}
	for w, fs := range firsts {
		for b, first := range fs {
			for i := range size {
				assert.Equal(t, fmt.Sprintf("w%d-b%d-%d", w, b, i), got[first-1+uint64(i)].Operation, "a batch's entries are consecutive, from the number returned")
			}
		}
	}
}
