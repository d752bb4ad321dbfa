package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// singleChain hides a store's AuditSequencer, as a store of an older
// release (or a third party's) would: Loggers then append to the log's
// one chain.
type singleChain struct{ store.AuditLog }

// partitionedLog returns a keyed (or unkeyed) log of 15 records: 3 on
// one chain, written as older releases wrote every record (seq 1-3),
// then two writers' chains, A and B, interleaved: A1-3 (4-6), B1-3
// (7-9), A4-6 (10-12), B4-6 (13-15).
func partitionedLog(t *testing.T, keyed bool) (*tamperable, []audit.VerifyOption) {
	t.Helper()
	ctx := t.Context()
	st := &tamperable{Store: memstore.New()}
	var opts []audit.Option
	var vopts []audit.VerifyOption
	if keyed {
		opts, vopts = append(opts, audit.WithMAC(chainKey)), append(vopts, audit.VerifyWithMAC(chainKey))
	}
	write := func(l *audit.Logger, from, to int) {
		for i := from; i < to; i++ {
			require.NoError(t, l.Audit(ctx, keyring.AuditEvent{Time: epoch.Add(time.Duration(i) * time.Minute), Operation: keyring.OpEncrypt, KeyID: fmt.Sprintf("key-%d", i), Version: 1}))
		}
		require.NoError(t, l.Flush(ctx))
	}
	legacy := audit.New(append(opts, audit.WithStore(singleChain{st.Store}))...)
	write(legacy, 1, 4)
	require.NoError(t, legacy.Close())
	a := audit.New(append(opts, audit.WithStore(st.Store))...)
	b := audit.New(append(opts, audit.WithStore(st.Store))...)
	write(a, 4, 7)
	write(b, 7, 10)
	write(a, 10, 13)
	write(b, 13, 16)
	require.NoError(t, a.Close())
	require.NoError(t, b.Close())
	require.NoError(t, st.snapshot(ctx))
	require.Len(t, st.entries, 15)
	return st, vopts
}

// TestPartitionedLogVerifies: a log of one chain (older releases) that
// goes on as a chain per writer verifies; records carry their chain and
// place, lookups their store number.
func TestPartitionedLogVerifies(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		t.Run(fmt.Sprint("keyed=", keyed), func(t *testing.T) {
			st, vopts := partitionedLog(t, keyed)
			var recs []audit.Record
			v, err := audit.Walk(t.Context(), st, func(r audit.Record) error { recs = append(recs, r); return nil }, vopts...)
			require.NoError(t, err)
			assert.Equal(t, uint64(15), v.Records)
			assert.Equal(t, uint64(15), v.LastSeq)
			require.Len(t, v.Chains, 2)
			for i, r := range recs {
				assert.Equal(t, uint64(i+1), r.Seq)
				assert.Equal(t, fmt.Sprintf("key-%d", i+1), r.KeyID)
			}
			assert.Empty(t, recs[0].Chain, "older records are on the one chain")
			a, b := recs[3].Chain, recs[6].Chain
			assert.NotEqual(t, a, b, "each writer has its own chain")
			assert.Equal(t, []any{a, uint64(4)}, []any{recs[9].Chain, recs[9].ChainSeq})
			assert.Equal(t, recs[8].Link, recs[12].Prev, "B4 links to B3")
			heads := map[string]audit.ChainHead{v.Chains[0].Chain: v.Chains[0], v.Chains[1].Chain: v.Chains[1]}
			assert.Equal(t, audit.ChainHead{Chain: a, Records: 6, LastSeq: 12, Head: recs[11].Link}, heads[a])
			assert.Equal(t, audit.ChainHead{Chain: b, Records: 6, LastSeq: 15, Head: recs[14].Link}, heads[b])

			got, _, err := audit.LookupEvents(t.Context(), st, audit.Query{KeyID: "key-11"})
			require.NoError(t, err)
			require.Len(t, got, 1)
			assert.Equal(t, uint64(11), got[0].Seq, "a lookup gives the store's number")
		})
	}
}

// TestPartitionedLogNamesTampering: a record deleted (with or without the
// store's numbers closed up after it), moved within its chain, copied,
// changed, or moved into another chain is named.
func TestPartitionedLogNamesTampering(t *testing.T) {
	renumber := func(es []store.AuditEntry) []store.AuditEntry {
		for i := range es {
			es[i].Seq = uint64(i + 1)
		}
		return es
	}
	cases := []struct {
		name   string
		keyed  bool
		edit   func(es []store.AuditEntry) []store.AuditEntry
		seq    uint64
		reason string
	}{
		{"deleted", true, func(es []store.AuditEntry) []store.AuditEntry {
			return append(es[:4:4], es[5:]...) // A2
		}, 5, "record 5 is missing"},
		{"deleted and renumbered", true, func(es []store.AuditEntry) []store.AuditEntry {
			return renumber(append(es[:4:4], es[5:]...))
		}, 5, "records 2 to 2 of chain"},
		{"a chain's records swapped", true, func(es []store.AuditEntry) []store.AuditEntry {
			es[3].Data, es[4].Data = es[4].Data, es[3].Data // A1, A2
			es[3].KeyID, es[4].KeyID = es[4].KeyID, es[3].KeyID
			es[3].Time, es[4].Time = es[4].Time, es[3].Time
			return es
		}, 4, "records 1 to 1 of chain"},
		{"moved after a later record of its chain", true, func(es []store.AuditEntry) []store.AuditEntry {
			moved := es[5] // A3 after A4
			es = append(es[:5:5], es[6:]...)
			es = append(es[:9:9], append([]store.AuditEntry{moved}, es[9:]...)...)
			return renumber(es)
		}, 9, "records 3 to 3 of chain"},
		{"copied", true, func(es []store.AuditEntry) []store.AuditEntry {
			cp := es[3] // A1 again, at the end
			cp.Seq = 16
			return append(es, cp)
		}, 16, "which is at record 6"},
		{"changed", true, func(es []store.AuditEntry) []store.AuditEntry {
			es[7].Data = bytes.Replace(es[7].Data, []byte(`"version":1`), []byte(`"version":2`), 1)
			return es
		}, 8, "its MAC does not verify"},
		{"moved into another chain", true, func(es []store.AuditEntry) []store.AuditEntry {
			var a, b audit.Record
			mustUnmarshal(t, es[3].Data, &a)
			mustUnmarshal(t, es[6].Data, &b)
			es[9].Data = bytes.Replace(es[9].Data, []byte(a.Chain), []byte(b.Chain), 1)
			return es
		}, 10, "its MAC does not verify"},
		{"changed, unkeyed", false, func(es []store.AuditEntry) []store.AuditEntry {
			es[7].Data = bytes.Replace(es[7].Data, []byte(`"version":1`), []byte(`"version":2`), 1)
			return es
		}, 8, "its hash does not match the link in record 9"},
		{"older record changed", true, func(es []store.AuditEntry) []store.AuditEntry {
			es[1].Data = bytes.Replace(es[1].Data, []byte(`"version":1`), []byte(`"version":2`), 1)
			return es
		}, 2, "its MAC does not verify"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, vopts := partitionedLog(t, tc.keyed)
			st.entries = tc.edit(st.entries)
			_, err := audit.Verify(context.Background(), st, vopts...)
			var te *audit.TamperError
			require.ErrorAs(t, err, &te)
			assert.ErrorIs(t, err, audit.ErrTampered)
			assert.Equal(t, tc.seq, te.Seq, "%v", err)
			assert.Contains(t, te.Reason, tc.reason)
		})
	}
}

// TestPartitionedLogArchives: a partitioned log archives and verifies
// with its archive, the chains as before.
func TestPartitionedLogArchives(t *testing.T) {
	ctx := t.Context()
	st, vopts := partitionedLog(t, true)
	before, err := audit.Verify(ctx, st.Store, vopts...)
	require.NoError(t, err)
	dir := t.TempDir()
	res, err := audit.Archive(ctx, st.Store, dir, epoch.Add(9*time.Minute+30*time.Second), append(vopts, audit.ArchiveSegmentRecords(4))...)
	require.NoError(t, err)
	assert.Equal(t, uint64(9), res.ArchivedThrough)
	l := audit.New(audit.WithStore(st.Store), audit.WithMAC(chainKey))
	require.NoError(t, l.Audit(ctx, keyring.AuditEvent{Time: epoch.Add(time.Hour), Operation: keyring.OpDecrypt, KeyID: "key-16", Version: 1}))
	require.NoError(t, l.Close())
	after, err := audit.Verify(ctx, st.Store, append(vopts, audit.VerifyWithArchive(dir))...)
	require.NoError(t, err)
	assert.Equal(t, uint64(16), after.Records)
	require.Len(t, after.Chains, 3)
	assert.Subset(t, after.Chains, before.Chains)
	recs, _, err := audit.LookupArchive(ctx, st.Store, dir, audit.Query{KeyID: "key-6"})
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, uint64(6), recs[0].Seq, "an archived record's number is its place")
}

func mustUnmarshal(t *testing.T, data []byte, r *audit.Record) {
	t.Helper()
	require.NoError(t, json.Unmarshal(data, r))
}

// TestSingleChainWriterAfterPartitioned: a writer of an older release
// (one chain: it links to the log's last record) appending to a
// partitioned log keeps it verifiable.
func TestSingleChainWriterAfterPartitioned(t *testing.T) {
	ctx := t.Context()
	st, vopts := partitionedLog(t, true)
	old := audit.New(audit.WithStore(singleChain{st.Store}), audit.WithMAC(chainKey))
	require.NoError(t, old.Audit(ctx, keyring.AuditEvent{Time: epoch.Add(time.Hour), Operation: keyring.OpDecrypt, KeyID: "key-16", Version: 1}))
	require.NoError(t, old.Close())
	require.NoError(t, st.snapshot(ctx))
	v, err := audit.Verify(ctx, st, vopts...)
	require.NoError(t, err)
	assert.Equal(t, uint64(16), v.Records)
	var r audit.Record
	mustUnmarshal(t, st.entries[15].Data, &r)
	assert.Equal(t, []any{uint64(16), ""}, []any{r.Seq, r.Chain}, "a single-chain record")
}
