package boltstore

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmsring/kmsring/store"
	"github.com/stretchr/testify/require"
)

// BenchmarkPutAudit measures what AppendAuditNext does per entry inside
// its transaction (the commit, and its fsync, left out): a batch of the
// writer's size, encoded and put.
func BenchmarkPutAudit(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "kms.db"))
	require.NoError(b, err)
	defer s.Close()
	e := auditValueEntry
	e.Data = bytes.Repeat([]byte("x"), 560)
	entries := make([]store.AuditEntry, 500)
	for i := range entries {
		entries[i] = e
	}
	b.ReportAllocs()
	for b.Loop() {
		tx, err := s.db.Begin(true)
		require.NoError(b, err)
		require.NoError(b, putAudit(tx, 1, entries))
		require.NoError(b, tx.Rollback())
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(entries)), "ns/entry")
}

// TestPutAuditSharedBuffer: entries put from one buffer read back each as
// it was, whatever their sizes and forms (a time only the JSON form holds,
// in the middle of a batch, outgrows the buffer's estimate).
func TestPutAuditSharedBuffer(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "kms.db"))
	require.NoError(t, err)
	defer s.Close()
	var entries []store.AuditEntry
	for i := range 20 {
		e := auditValueEntry
		e.Seq = uint64(i + 1)
		e.KeyID = strings.Repeat("k", i)
		e.Data = bytes.Repeat([]byte{byte('a' + i)}, 100*i)
		if i == 7 {
			e.Time = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
		}
		entries = append(entries, e)
	}
	first, err := s.AppendAuditNext(t.Context(), entries)
	require.NoError(t, err)
	require.Equal(t, uint64(1), first)
	got, err := s.ReadAudit(t.Context(), store.AuditQuery{})
	require.NoError(t, err)
	require.Equal(t, entries, got, "every entry reads back as appended")
}
