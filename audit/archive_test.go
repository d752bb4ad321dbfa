package audit_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var chainKey = func() hash.Hash { return hmac.New(sha256.New, bytes.Repeat([]byte{9}, 32)) }

// archived is a keyed log of n records, one a minute from epoch, in a
// memstore.
func archivedLog(t *testing.T, n int) (*memstore.Store, *audit.Logger) {
	return archivedLogFrom(t, 0, n)
}

// archivedLogFrom is archivedLog whose records start at epoch + from
// minutes.
func archivedLogFrom(t *testing.T, from, n int) (*memstore.Store, *audit.Logger) {
	t.Helper()
	st := memstore.New()
	l := audit.New(audit.WithStore(st), audit.WithMAC(chainKey))
	t.Cleanup(func() { l.Close() })
	appendRecords(t, l, from, from+n)
	return st, l
}

// appendRecords logs records from..to-1, record i at epoch + i minutes.
func appendRecords(t *testing.T, l *audit.Logger, from, to int) {
	t.Helper()
	ctx := t.Context()
	for i := from; i < to; i++ {
		op := keyring.OpEncrypt
		if i%3 == 0 {
			op = keyring.OpDecrypt
		}
		require.NoError(t, l.Audit(ctx, keyring.AuditEvent{Time: epoch.Add(time.Duration(i) * time.Minute), Operation: op, KeyID: fmt.Sprintf("key-%d", i%4), Version: 1}))
	}
	require.NoError(t, l.Flush(ctx))
}

func archiveOpts() []audit.VerifyOption {
	return []audit.VerifyOption{audit.VerifyWithMAC(chainKey), audit.ArchiveSegmentRecords(10)}
}

func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// Archiving moves the records before T into segments and digests, deletes
// them from the store but the last, and the archive and the store verify
// as one chain; a later run continues the archive's chain.
func TestArchiveMovesAndVerifies(t *testing.T) {
	ctx := t.Context()
	st, l := archivedLog(t, 45)
	before, err := audit.Verify(ctx, st, audit.VerifyWithMAC(chainKey))
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "archive")

	res, err := audit.Archive(ctx, st, dir, epoch.Add(35*time.Minute), archiveOpts()...)
	require.NoError(t, err)
	assert.Equal(t, 4, res.Segments, "35 records in segments of 10")
	assert.Equal(t, uint64(35), res.Records)
	assert.Equal(t, uint64(1), res.FirstSeq)
	assert.Equal(t, uint64(35), res.LastSeq)
	assert.Len(t, dirFiles(t, dir), 8, "a segment and a digest each")
	for _, name := range dirFiles(t, dir) {
		fi, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "%s is created 0600", name)
	}
	stored, err := st.ReadAudit(ctx, store.AuditQuery{})
	require.NoError(t, err)
	require.Len(t, stored, 11, "records 35 (the anchor) to 45 stay in the store")
	assert.Equal(t, uint64(35), stored[0].Seq)

	_, err = audit.Verify(ctx, st, audit.VerifyWithMAC(chainKey))
	var te *audit.TamperError
	require.ErrorAs(t, err, &te, "without the archive, the store's log does not start at 1")
	assert.Contains(t, err.Error(), "archived")

	v, err := audit.Verify(ctx, st, audit.VerifyWithMAC(chainKey), audit.VerifyWithArchive(dir))
	require.NoError(t, err)
	assert.Equal(t, before.Head, v.Head, "the same chain, the same head")
	assert.Equal(t, uint64(45), v.Records)
	assert.Equal(t, uint64(1), v.FirstSeq)
	assert.Equal(t, uint64(45), v.LastSeq)
	assert.Equal(t, 4, v.Segments)
	assert.Equal(t, uint64(35), v.ArchivedThrough)

	// New records continue the chain; a second run continues the archive.
	appendRecords(t, l, 45, 60)
	res, err = audit.Archive(ctx, st, dir, epoch.Add(55*time.Minute), archiveOpts()...)
	require.NoError(t, err)
	assert.Equal(t, uint64(36), res.FirstSeq)
	assert.Equal(t, uint64(55), res.LastSeq)
	v, err = audit.Verify(ctx, st, audit.VerifyWithMAC(chainKey), audit.VerifyWithArchive(dir))
	require.NoError(t, err)
	assert.Equal(t, uint64(60), v.Records)
	assert.Equal(t, 6, v.Segments)

	// Nothing older than T is left: a repeat does nothing.
	res, err = audit.Archive(ctx, st, dir, epoch.Add(55*time.Minute), archiveOpts()...)
	require.NoError(t, err)
	assert.Zero(t, res.Records)

	// Walk hands every record over once, in order.
	var seqs []uint64
	_, err = audit.Walk(ctx, st, func(r audit.Record) error { seqs = append(seqs, r.Seq); return nil }, audit.VerifyWithMAC(chainKey), audit.VerifyWithArchive(dir))
	require.NoError(t, err)
	require.Len(t, seqs, 60)
	assert.True(t, slices.IsSorted(seqs) && seqs[0] == 1 && seqs[59] == 60, "1..60 in order")
}

// LookupArchive searches the archive and then the store, paging across
// the boundary without repeating the anchor.
func TestLookupArchive(t *testing.T) {
	ctx := t.Context()
	st, _ := archivedLog(t, 40)
	dir := t.TempDir()
	_, err := audit.Archive(ctx, st, dir, epoch.Add(25*time.Minute), archiveOpts()...)
	require.NoError(t, err)

	var seqs []uint64
	q := audit.Query{KeyID: "key-1", Limit: 3}
	for {
		recs, next, err := audit.LookupArchive(ctx, st, dir, q)
		require.NoError(t, err)
		for _, r := range recs {
			assert.Equal(t, "key-1", r.KeyID)
			seqs = append(seqs, r.Seq)
		}
		if next == 0 {
			break
		}
		q.After = next
	}
	assert.Equal(t, []uint64{2, 6, 10, 14, 18, 22, 26, 30, 34, 38}, seqs, "every key-1 record once, archived and stored")

	recs, _, err := audit.LookupArchive(ctx, st, dir, audit.Query{Since: epoch.Add(20 * time.Minute), Until: epoch.Add(27 * time.Minute), Limit: 100})
	require.NoError(t, err)
	require.Len(t, recs, 7, "records 21..27 by time")
	assert.Equal(t, uint64(21), recs[0].Seq)
	assert.Equal(t, uint64(27), recs[6].Seq)
}

// tamperedArchive archives 30 records of a 40-record log in three
// segments and returns the store and the directory.
func tamperedArchive(t *testing.T) (*memstore.Store, string) {
	t.Helper()
	st, _ := archivedLog(t, 40)
	dir := t.TempDir()
	_, err := audit.Archive(t.Context(), st, dir, epoch.Add(30*time.Minute), archiveOpts()...)
	require.NoError(t, err)
	return st, dir
}

const (
	seg1 = "segment-00000000000000000001-00000000000000000010"
	seg2 = "segment-00000000000000000011-00000000000000000020"
	seg3 = "segment-00000000000000000021-00000000000000000030"
)

func readGz(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	b, err := io.ReadAll(zr)
	require.NoError(t, err)
	return strings.SplitAfter(string(b), "\n")
}

func writeGz(t *testing.T, path string, lines []string) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(strings.Join(lines, "")))
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
}

// Each way of damaging an archive is named: the segment file or digest,
// and the record, in a *TamperError.
func TestVerifyArchiveNamesDamage(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		file   string
		seq    uint64
	}{
		{"segment deleted", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, seg2+".jsonl.gz")))
		}, seg2 + ".jsonl.gz", 11},
		{"segment and digest deleted", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, seg2+".jsonl.gz")))
			require.NoError(t, os.Remove(filepath.Join(dir, seg2+".digest.json")))
		}, seg3 + ".digest.json", 21},
		{"digest deleted", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, seg2+".digest.json")))
		}, seg3 + ".digest.json", 21},
		{"record edited", func(t *testing.T, dir string) {
			p := filepath.Join(dir, seg2+".jsonl.gz")
			lines := readGz(t, p)
			lines[4] = strings.Replace(lines[4], `"key-`, `"kez-`, 1)
			writeGz(t, p, lines)
		}, seg2 + ".jsonl.gz", 15},
		{"record removed", func(t *testing.T, dir string) {
			p := filepath.Join(dir, seg2+".jsonl.gz")
			lines := readGz(t, p)
			writeGz(t, p, append(lines[:4:4], lines[5:]...))
		}, seg2 + ".jsonl.gz", 15},
		{"records reordered", func(t *testing.T, dir string) {
			p := filepath.Join(dir, seg2+".jsonl.gz")
			lines := readGz(t, p)
			lines[3], lines[4] = lines[4], lines[3]
			writeGz(t, p, lines)
		}, seg2 + ".jsonl.gz", 14},
		{"segment recompressed", func(t *testing.T, dir string) {
			p := filepath.Join(dir, seg2+".jsonl.gz")
			writeGz(t, p, readGz(t, p))
		}, seg2 + ".jsonl.gz", 11},
		{"bytes appended to a segment", func(t *testing.T, dir string) {
			f, err := os.OpenFile(filepath.Join(dir, seg1+".jsonl.gz"), os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			f.Write([]byte("x"))
			f.Close()
		}, seg1 + ".jsonl.gz", 1},
		{"segments swapped", func(t *testing.T, dir string) {
			a, b := filepath.Join(dir, seg1+".jsonl.gz"), filepath.Join(dir, seg2+".jsonl.gz")
			require.NoError(t, os.Rename(a, a+".x"))
			require.NoError(t, os.Rename(b, a))
			require.NoError(t, os.Rename(a+".x", b))
		}, seg1 + ".jsonl.gz", 1},
		{"digests swapped", func(t *testing.T, dir string) {
			a, b := filepath.Join(dir, seg1+".digest.json"), filepath.Join(dir, seg2+".digest.json")
			require.NoError(t, os.Rename(a, a+".x"))
			require.NoError(t, os.Rename(b, a))
			require.NoError(t, os.Rename(a+".x", b))
		}, seg1 + ".digest.json", 1},
		{"digest edited", func(t *testing.T, dir string) {
			p := filepath.Join(dir, seg2+".digest.json")
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, bytes.Replace(b, []byte(`"count":10`), []byte(`"count":11`), 1), 0o600))
		}, seg2 + ".digest.json", 11},
		{"digest MAC removed", func(t *testing.T, dir string) {
			p := filepath.Join(dir, seg3+".digest.json")
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			i := bytes.Index(b, []byte(`,"mac"`))
			require.NoError(t, os.WriteFile(p, append(b[:i:i], "}\n"...), 0o600))
		}, seg3 + ".digest.json", 21},
		{"last segment and digest deleted", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, seg3+".jsonl.gz")))
			require.NoError(t, os.Remove(filepath.Join(dir, seg3+".digest.json")))
		}, "", 21},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, dir := tamperedArchive(t)
			tc.damage(t, dir)
			before := dirFiles(t, dir)
			_, err := audit.Verify(t.Context(), st, audit.VerifyWithMAC(chainKey), audit.VerifyWithArchive(dir))
			var te *audit.TamperError
			require.ErrorAs(t, err, &te, "the damage is found")
			assert.ErrorIs(t, err, audit.ErrTampered)
			assert.Equal(t, tc.file, te.File, "the file is named: %v", err)
			assert.Equal(t, tc.seq, te.Seq, "the record is named: %v", err)
			assert.Equal(t, before, dirFiles(t, dir), "verify changes nothing")

			_, err = audit.Archive(t.Context(), st, dir, epoch.Add(time.Hour), archiveOpts()...)
			if err == nil {
				_, err = audit.Verify(t.Context(), st, audit.VerifyWithMAC(chainKey), audit.VerifyWithArchive(dir))
			}
			require.Error(t, err, "archiving onto a damaged archive does not hide the damage")
		})
	}
}

// The store's copy of the archive's last record must be the archive's;
// a store record after the archive edited is named too.
func TestVerifyArchiveStoreSide(t *testing.T) {
	ctx := t.Context()
	st, dir := tamperedArchive(t)
	es, err := st.ReadAudit(ctx, store.AuditQuery{})
	require.NoError(t, err)
	require.Equal(t, uint64(30), es[0].Seq, "the anchor")

	edit := func(i int) *tamperable {
		cp := append([]store.AuditEntry(nil), es...)
		cp[i].Data = bytes.Replace(bytes.Clone(cp[i].Data), []byte(`"key-`), []byte(`"kez-`), 1)
		return &tamperable{Store: st, entries: cp}
	}
	_, err = audit.Verify(ctx, edit(0), audit.VerifyWithMAC(chainKey), audit.VerifyWithArchive(dir))
	var te *audit.TamperError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, uint64(30), te.Seq, "the anchor that differs from the archive: %v", err)
	_, err = audit.Verify(ctx, edit(3), audit.VerifyWithMAC(chainKey), audit.VerifyWithArchive(dir))
	require.ErrorAs(t, err, &te)
	assert.Equal(t, uint64(33), te.Seq, "%v", err)

	// A record deleted just after the archive's end.
	cut := &tamperable{Store: st, entries: append([]store.AuditEntry{es[0]}, es[2:]...)}
	_, err = audit.Verify(ctx, cut, audit.VerifyWithMAC(chainKey), audit.VerifyWithArchive(dir))
	require.ErrorAs(t, err, &te)
	assert.Equal(t, uint64(31), te.Seq, "%v", err)
}

// An archive directory holding files that are not the archive's is
// refused, and an archive of another log is refused.
func TestArchiveRefusesForeignDirectories(t *testing.T) {
	ctx := t.Context()
	st, _ := archivedLog(t, 20)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600))
	_, err := audit.Archive(ctx, st, dir, epoch.Add(time.Hour), archiveOpts()...)
	require.ErrorIs(t, err, audit.ErrForeignDir)
	assert.Equal(t, []string{"notes.txt"}, dirFiles(t, dir), "nothing written")
	_, err = audit.Verify(ctx, st, audit.VerifyWithMAC(chainKey), audit.VerifyWithArchive(dir))
	require.ErrorIs(t, err, audit.ErrForeignDir)

	sub := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(sub, "segment-x"), 0o700))
	_, err = audit.Archive(ctx, st, sub, epoch.Add(time.Hour), archiveOpts()...)
	require.ErrorIs(t, err, audit.ErrForeignDir, "a subdirectory too")

	// Another store's archive.
	other, _ := archivedLogFrom(t, 100, 20)
	odir := t.TempDir()
	_, err = audit.Archive(ctx, other, odir, epoch.Add(110*time.Minute), archiveOpts()...)
	require.NoError(t, err)
	stored, err := st.ReadAudit(ctx, store.AuditQuery{})
	require.NoError(t, err)
	_, err = audit.Archive(ctx, st, odir, epoch.Add(time.Hour), archiveOpts()...)
	require.ErrorIs(t, err, audit.ErrOtherLog)
	after, err := st.ReadAudit(ctx, store.AuditQuery{})
	require.NoError(t, err)
	assert.Equal(t, stored, after, "nothing deleted from the store")
	_, err = audit.Verify(ctx, st, audit.VerifyWithMAC(chainKey), audit.VerifyWithArchive(odir))
	require.ErrorIs(t, err, audit.ErrTampered, "another log's archive does not verify with this store")

	// The store's own records archived elsewhere: a fresh directory
	// cannot continue.
	_, err = audit.Archive(ctx, other, t.TempDir(), epoch.Add(3*time.Hour), archiveOpts()...)
	require.ErrorIs(t, err, audit.ErrOtherLog)
}

// failingPrune is a store whose PruneAudit fails: an archive interrupted
// after its files are durable.
type failingPrune struct {
	*memstore.Store
	fail bool
}

func (f *failingPrune) PruneAudit(ctx context.Context, keep uint64) error {
	if f.fail {
		return errors.New("interrupted")
	}
	return f.Store.PruneAudit(ctx, keep)
}

// An interrupted archive loses nothing: files durable but the store not
// pruned verifies, a leftover temporary file and a segment without its
// digest are cleaned up, and a repeat completes the move.
func TestArchiveResumes(t *testing.T) {
	ctx := t.Context()
	st, _ := archivedLog(t, 30)
	fp := &failingPrune{Store: st, fail: true}
	dir := t.TempDir()
	_, err := audit.Archive(ctx, fp, dir, epoch.Add(25*time.Minute), archiveOpts()...)
	require.Error(t, err, "the prune failed")
	assert.Len(t, dirFiles(t, dir), 2, "the first segment and digest are durable")
	_, err = audit.Verify(ctx, st, audit.VerifyWithMAC(chainKey), audit.VerifyWithArchive(dir))
	require.NoError(t, err, "archive and unpruned store overlap and verify")

	// What a crash leaves: a temporary file, a segment without a digest.
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".kmsring-archive-tmp-0123"), []byte("half"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, seg2+".jsonl.gz"), []byte("half"), 0o600))
	_, err = audit.Verify(ctx, st, audit.VerifyWithMAC(chainKey), audit.VerifyWithArchive(dir))
	require.NoError(t, err, "a crash's leftovers are not the archive")

	fp.fail = false
	res, err := audit.Archive(ctx, fp, dir, epoch.Add(25*time.Minute), archiveOpts()...)
	require.NoError(t, err)
	assert.Equal(t, 2, res.RemovedTempFiles)
	assert.Equal(t, uint64(11), res.FirstSeq)
	assert.Equal(t, uint64(25), res.LastSeq)
	stored, err := st.ReadAudit(ctx, store.AuditQuery{})
	require.NoError(t, err)
	assert.Equal(t, uint64(25), stored[0].Seq)
	v, err := audit.Verify(ctx, st, audit.VerifyWithMAC(chainKey), audit.VerifyWithArchive(dir))
	require.NoError(t, err)
	assert.Equal(t, uint64(30), v.Records)
}

// Archive never moves a tampered record out of the store, and an unkeyed
// archive's digests carry no MAC while a keyed one's verify only with
// the key.
func TestArchiveChecksBeforeMoving(t *testing.T) {
	ctx := t.Context()
	st, _ := archivedLog(t, 20)
	es, err := st.ReadAudit(ctx, store.AuditQuery{})
	require.NoError(t, err)
	es[6].Data = bytes.Replace(es[6].Data, []byte(`"key-`), []byte(`"kez-`), 1)
	tl := &tamperable{Store: st, entries: es}
	dir := t.TempDir()
	_, err = audit.Archive(ctx, tl, dir, epoch.Add(time.Hour), archiveOpts()...)
	var te *audit.TamperError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, uint64(7), te.Seq)

	st2, _ := archivedLog(t, 20)
	dir2 := t.TempDir()
	_, err = audit.Archive(ctx, st2, dir2, epoch.Add(time.Hour), archiveOpts()...)
	require.NoError(t, err)
	_, err = audit.Verify(ctx, st2, audit.VerifyWithArchive(dir2))
	require.ErrorIs(t, err, audit.ErrKeyed, "a keyed archive needs the key")
	wrong := func() hash.Hash { return hmac.New(sha256.New, bytes.Repeat([]byte{1}, 32)) }
	_, err = audit.Verify(ctx, st2, audit.VerifyWithMAC(wrong), audit.VerifyWithArchive(dir2))
	require.ErrorIs(t, err, audit.ErrTampered, "a wrong key fails")
}

// A store that cannot prune is refused before anything is written.
func TestArchiveNeedsPruner(t *testing.T) {
	st, _ := archivedLog(t, 5)
	dir := t.TempDir()
	_, err := audit.Archive(t.Context(), struct{ store.AuditLog }{st}, dir, epoch.Add(time.Hour))
	require.ErrorIs(t, err, audit.ErrNoPrune)
	assert.Empty(t, dirFiles(t, dir))
}

// WalkWithoutContexts hands over the same records without their
// encryption contexts, and verifies the same.
func TestWalkWithoutContexts(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	l := audit.New(audit.WithStore(st), audit.WithMAC(chainKey))
	defer l.Close()
	require.NoError(t, l.Audit(ctx, keyring.AuditEvent{Time: epoch, Operation: keyring.OpEncrypt, KeyID: "k", Version: 1,
		EncryptionContext: map[string]string{"tenant": "7"}}))
	require.NoError(t, l.Flush(ctx))
	var full, lean []audit.Record
	v1, err := audit.Walk(ctx, st, func(r audit.Record) error { full = append(full, r); return nil }, audit.VerifyWithMAC(chainKey))
	require.NoError(t, err)
	v2, err := audit.Walk(ctx, st, func(r audit.Record) error { lean = append(lean, r); return nil }, audit.VerifyWithMAC(chainKey), audit.WalkWithoutContexts())
	require.NoError(t, err)
	assert.Equal(t, v1, v2)
	require.Len(t, lean, 1)
	assert.Equal(t, map[string]string{"tenant": "7"}, full[0].EncryptionContext)
	assert.Nil(t, lean[0].EncryptionContext)
	full[0].EncryptionContext = nil
	assert.Equal(t, full, lean, "every other field is the same")
}

// TestAttackLookupArchiveSegmentBomb: lookup does not verify, but a
// segment must not make it read more lines than the digest counts. A
// 61 KB gzip segment of 20 million short lines kept LookupArchive busy for
// 18 s (AMD EPYC, shared); each line past the digest's count is refused.
func TestAttackLookupArchiveSegmentBomb(t *testing.T) {
	st, dir := tamperedArchive(t)
	p := filepath.Join(dir, seg1+".jsonl.gz")
	lines := readGz(t, p)
	for range 1000 {
		lines = append(lines, "{}\n")
	}
	writeGz(t, p, lines)
	_, _, err := audit.LookupArchive(t.Context(), st, dir, audit.Query{KeyID: "key-none", Limit: 5})
	require.Error(t, err, "a segment holding more lines than its digest counts")
	assert.Contains(t, err.Error(), seg1+".jsonl.gz")
	assert.Contains(t, err.Error(), "more records than its digest")
}
