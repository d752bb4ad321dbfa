// Package storetest is the conformance suite that every store.Store backend
// passes. A backend's test is a harness and one line:
//
//	func TestConformance(t *testing.T) {
//		storetest.RunConformanceTests(t, func(t *testing.T) store.Store { return memstore.New() })
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsring/kmsring/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// NewStore returns an empty store for one test. The suite closes it at the
// end of the test if it implements io.Closer; the harness cleans up the rest
// with t.Cleanup.
type NewStore func(t *testing.T) store.Store

// RunConformanceTests runs the suite against stores from newStore.
func RunConformanceTests(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"CreateGet", testCreateGet},
		{"GetMissing", testGetMissing},
		{"CreateDuplicate", testCreateDuplicate},
		{"UpdateCompareAndSwap", testUpdate},
		{"UpdateAliases", testUpdateAliases},
		{"Versions", testVersions},
		{"List", testList},
		{"ConcurrentUpdatesOneWinner", testConcurrentUpdates},
		{"CancelledContext", testCancelled},
		{"Close", testClose},
		{"AuditAppendRead", testAuditAppendRead},
		{"AuditSequence", testAuditSequence},
		{"AuditConcurrentAppends", testAuditConcurrent},
		{"DueIndex", testDueIndex},
		{"DueIndexPaging", testDuePaging},
		{"DueIndexConcurrentUpdates", testDueConcurrent},
		{"ListPage", testListPage},
		{"ListAliasPage", testListAliasPage},
		{"PageLimits", testPageLimits},
		{"ChangeFeed", testChangeFeed},
		{"AuditPrune", testAuditPrune},
		{"AuditPruneMissing", testAuditPruneMissing},
		{"AuditAppendNext", testAuditAppendNext},
		{"AuditAppendNextConcurrent", testAuditAppendNextConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newStore(t)
			if c, ok := st.(io.Closer); ok && tc.name != "Close" {
				t.Cleanup(func() { c.Close() })
			}
			tc.fn(t, st)
		})
	}
}

const keyA = "8a0c9f1e-2d4b-4c6a-9e1f-0b2c3d4e5f60"
const keyB = "1b2c3d4e-5f60-4a1b-8c2d-3e4f5a6b7c8d"

func rec(id string, aliases ...string) store.Record {
	return store.Record{KeyID: id, Aliases: aliases, Data: []byte(`{"k":"` + id + `"}`)}
}

func ver(n uint32) store.Version {
	return store.Version{Number: n, Data: []byte(fmt.Sprintf("version %d", n))}
}

func testCreateGet(t *testing.T, st store.Store) {
	ctx := t.Context()
	in := rec(keyA, "alias/a")
	got, err := st.Create(ctx, in, []store.Version{ver(1)})
	require.NoError(t, err)
	assert.Equal(t, uint64(1), got.Revision, "Create returns revision 1")
	assert.Equal(t, in.Data, got.Data)
	for _, name := range []string{keyA, "alias/a"} {
		r, err := st.Get(ctx, name)
		require.NoError(t, err, "Get(%q)", name)
		assert.Equal(t, keyA, r.KeyID)
		assert.Equal(t, []string{"alias/a"}, r.Aliases)
		assert.Equal(t, uint64(1), r.Revision)
		assert.Equal(t, in.Data, r.Data)
	}
	in.Data[0] = 'X' // the store must have copied
	r, err := st.Get(ctx, keyA)
	require.NoError(t, err)
	assert.Equal(t, byte('{'), r.Data[0], "the store keeps its own copy")
}

func testGetMissing(t *testing.T, st store.Store) {
	ctx := t.Context()
	_, err := st.Get(ctx, keyA)
	assert.ErrorIs(t, err, store.ErrNotFound)
	_, err = st.Get(ctx, "alias/none")
	assert.ErrorIs(t, err, store.ErrNotFound)
	_, err = st.Update(ctx, store.Record{KeyID: keyA, Revision: 1}, nil)
	assert.ErrorIs(t, err, store.ErrNotFound)
}

func testCreateDuplicate(t *testing.T, st store.Store) {
	ctx := t.Context()
	_, err := st.Create(ctx, rec(keyA, "alias/a"), []store.Version{ver(1)})
	require.NoError(t, err)
	_, err = st.Create(ctx, rec(keyA), []store.Version{ver(1)})
	assert.ErrorIs(t, err, store.ErrExists, "duplicate key ID")
	_, err = st.Create(ctx, rec(keyB, "alias/a"), []store.Version{ver(1)})
	assert.ErrorIs(t, err, store.ErrExists, "duplicate alias")
	_, err = st.Get(ctx, keyB)
	assert.ErrorIs(t, err, store.ErrNotFound, "a failed Create writes nothing")
}

func testUpdate(t *testing.T, st store.Store) {
	ctx := t.Context()
	r, err := st.Create(ctx, rec(keyA), []store.Version{ver(1)})
	require.NoError(t, err)
	r.Data = []byte("two")
	r2, err := st.Update(ctx, r, []store.Version{ver(2)})
	require.NoError(t, err)
	assert.Equal(t, uint64(2), r2.Revision)

	r.Data = []byte("stale")
	_, err = st.Update(ctx, r, []store.Version{ver(3)})
	assert.ErrorIs(t, err, store.ErrConflict, "update from a stale revision")
	got, err := st.Get(ctx, keyA)
	require.NoError(t, err)
	assert.Equal(t, "two", string(got.Data), "a conflicting update writes nothing")
	vs, err := st.Versions(ctx, keyA, 0)
	require.NoError(t, err)
	assert.Len(t, vs, 2, "nor its versions")

	// Replace a version in place.
	changed := store.Version{Number: 1, Data: []byte("disabled")}
	r3, err := st.Update(ctx, r2, []store.Version{changed})
	require.NoError(t, err)
	assert.Equal(t, uint64(3), r3.Revision)
	vs, err = st.Versions(ctx, keyA, 0)
	require.NoError(t, err)
	assert.Equal(t, []store.Version{changed, ver(2)}, vs)
}

func testUpdateAliases(t *testing.T, st store.Store) {
	ctx := t.Context()
	a, err := st.Create(ctx, rec(keyA, "alias/a"), []store.Version{ver(1)})
	require.NoError(t, err)
	_, err = st.Create(ctx, rec(keyB, "alias/b"), []store.Version{ver(1)})
	require.NoError(t, err)
	a.Aliases = []string{"alias/b"}
	_, err = st.Update(ctx, a, nil)
	assert.ErrorIs(t, err, store.ErrExists, "alias of another key")
	a.Aliases = []string{"alias/a2"}
	_, err = st.Update(ctx, a, nil)
	require.NoError(t, err)
	_, err = st.Get(ctx, "alias/a")
	assert.ErrorIs(t, err, store.ErrNotFound, "a removed alias no longer resolves")
	got, err := st.Get(ctx, "alias/a2")
	require.NoError(t, err)
	assert.Equal(t, keyA, got.KeyID)
}

func testVersions(t *testing.T, st store.Store) {
	ctx := t.Context()
	r, err := st.Create(ctx, rec(keyA), []store.Version{ver(1)})
	require.NoError(t, err)
	for n := uint32(2); n <= 5; n++ {
		r, err = st.Update(ctx, r, []store.Version{ver(n)})
		require.NoError(t, err)
	}
	vs, err := st.Versions(ctx, keyA, 0)
	require.NoError(t, err)
	assert.Equal(t, []store.Version{ver(1), ver(2), ver(3), ver(4), ver(5)}, vs)
	vs, err = st.Versions(ctx, keyA, 3)
	require.NoError(t, err)
	assert.Equal(t, []store.Version{ver(4), ver(5)}, vs, "only versions after 3")
	vs, err = st.Versions(ctx, keyA, 5)
	require.NoError(t, err)
	assert.Empty(t, vs)
	_, err = st.Versions(ctx, keyB, 0)
	assert.ErrorIs(t, err, store.ErrNotFound)

	vr, ok := st.(store.VersionRanger)
	if !ok {
		return // an optional capability
	}
	vs, err = vr.VersionRange(ctx, keyA, 1, 3)
	require.NoError(t, err)
	assert.Equal(t, []store.Version{ver(2), ver(3)}, vs, "versions 2 through 3")
	vs, err = vr.VersionRange(ctx, keyA, 0, 0)
	require.NoError(t, err)
	assert.Empty(t, vs)
	vs, err = vr.VersionRange(ctx, keyA, 4, 1<<32-1)
	require.NoError(t, err)
	assert.Equal(t, []store.Version{ver(5)}, vs)
	_, err = vr.VersionRange(ctx, keyB, 0, 10)
	assert.ErrorIs(t, err, store.ErrNotFound)
}

func testList(t *testing.T, st store.Store) {
	ctx := t.Context()
	ids, err := st.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, ids)
	for _, id := range []string{keyA, keyB} {
		_, err := st.Create(ctx, rec(id), []store.Version{ver(1)})
		require.NoError(t, err)
	}
	ids, err = st.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{keyB, keyA}, ids, "sorted key IDs")
}

func testConcurrentUpdates(t *testing.T, st store.Store) {
	ctx := t.Context()
	r, err := st.Create(ctx, rec(keyA), []store.Version{ver(1)})
	require.NoError(t, err)
	const writers = 16
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range writers {
		wg.Go(func() {
			<-start
			mine := r
			mine.Data = []byte(fmt.Sprintf("writer %d", i))
			_, err := st.Update(ctx, mine, []store.Version{{Number: 2, Data: mine.Data}})
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, store.ErrConflict):
				conflicts.Add(1)
			default:
				t.Errorf("update: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	assert.Equal(t, int32(1), wins.Load(), "exactly one winner")
	assert.Equal(t, int32(writers-1), conflicts.Load())
	got, err := st.Get(ctx, keyA)
	require.NoError(t, err)
	vs, err := st.Versions(ctx, keyA, 1)
	require.NoError(t, err)
	require.Len(t, vs, 1)
	assert.Equal(t, got.Data, vs[0].Data, "the winner's record and version were written together")
}

func testCancelled(t *testing.T, st store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	r, err := st.Create(ctx, rec(keyA), []store.Version{ver(1)})
	require.NoError(t, err)
	cancel()
	_, err = st.Get(ctx, keyA)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = st.Update(ctx, r, []store.Version{ver(2)})
	assert.ErrorIs(t, err, context.Canceled)
	_, err = st.Create(ctx, rec(keyB), nil)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = st.List(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = st.Versions(ctx, keyA, 0)
	assert.ErrorIs(t, err, context.Canceled)
	got, err := st.Get(t.Context(), keyA)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), got.Revision, "a cancelled update writes nothing")
}

func testClose(t *testing.T, st store.Store) {
	c, ok := st.(io.Closer)
	if !ok {
		t.Skip("store has no Close")
	}
	ctx := t.Context()
	_, err := st.Create(ctx, rec(keyA), []store.Version{ver(1)})
	require.NoError(t, err)
	require.NoError(t, c.Close())
	_, err = st.Get(ctx, keyA)
	assert.ErrorIs(t, err, store.ErrClosed, "use after Close")
}

// testChangeFeed: a store.ChangeFeed calls its subscriber with "" once it
// listens, then with the key ID of every committed Create and Update (a
// key made by another process is news too: a scheduler must look at its
// dates). Other stores sharing a database may be heard too: the key IDs
// here are this run's own.
func testChangeFeed(t *testing.T, st store.Store) {
	feed := capability[store.ChangeFeed](t, st, "reports no changes")
	ctx := t.Context()
	id := fmt.Sprintf("changefeed-%d", time.Now().UnixNano())
	r, err := st.Create(ctx, rec(id), []store.Version{ver(1)})
	require.NoError(t, err)
	got := make(chan string, 1000)
	stop := feed.Changes(func(keyID string) {
		select {
		case got <- keyID:
		default:
		}
	})
	defer stop()
	for <-got != "" {
	}
	_, err = st.Update(ctx, r, nil)
	require.NoError(t, err)
	for <-got != id {
	}
	_, err = st.Create(ctx, rec(id+"-new"), []store.Version{ver(1)})
	require.NoError(t, err)
	for <-got != id+"-new" {
	}
}

// auditLog returns st as a store.AuditLog or skips the test.
func auditLog(t *testing.T, st store.Store) store.AuditLog {
	return capability[store.AuditLog](t, st, "keeps no audit log")
}

// capability returns st as the optional interface T, or skips the test
// saying that the store lacks it ("store " + lacks).
func capability[T any](t *testing.T, st store.Store, lacks string) T {
	t.Helper()
	c, ok := st.(T)
	if !ok {
		t.Skip("store " + lacks)
	}
	return c
}

var auditEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func entry(seq uint64, key, op string) store.AuditEntry {
	return store.AuditEntry{
		Seq: seq, Time: auditEpoch.Add(time.Duration(seq) * time.Minute), KeyID: key, Operation: op,
		Data: []byte(fmt.Sprintf(`{"seq":%d}`, seq)),
	}
}

func testAuditAppendRead(t *testing.T, st store.Store) {
	al := auditLog(t, st)
	ctx := t.Context()
	_, err := al.LastAudit(ctx)
	assert.ErrorIs(t, err, store.ErrNotFound, "empty log")
	all := []store.AuditEntry{
		entry(1, keyA, "GenerateDataKey"), entry(2, keyB, "Decrypt"), entry(3, keyA, "Decrypt"),
		entry(4, keyA, "RotateKey"), entry(5, keyB, "GenerateDataKey"),
	}
	require.NoError(t, al.AppendAudit(ctx, all[:2]))
	require.NoError(t, al.AppendAudit(ctx, all[2:]))
	last, err := al.LastAudit(ctx)
	require.NoError(t, err)
	assert.Equal(t, all[4], last)

	got, err := al.ReadAudit(ctx, store.AuditQuery{})
	require.NoError(t, err)
	assert.Equal(t, all, got, "everything, in order, times kept")
	got, err = al.ReadAudit(ctx, store.AuditQuery{After: 1, Limit: 2})
	require.NoError(t, err)
	assert.Equal(t, all[1:3], got, "a page")
	got, err = al.ReadAudit(ctx, store.AuditQuery{KeyID: keyA})
	require.NoError(t, err)
	assert.Equal(t, []store.AuditEntry{all[0], all[2], all[3]}, got, "by key")
	got, err = al.ReadAudit(ctx, store.AuditQuery{KeyID: keyA, Operation: "Decrypt"})
	require.NoError(t, err)
	assert.Equal(t, []store.AuditEntry{all[2]}, got, "by key and operation")
	got, err = al.ReadAudit(ctx, store.AuditQuery{Since: all[1].Time, Until: all[3].Time})
	require.NoError(t, err)
	assert.Equal(t, all[1:3], got, "by time range, since inclusive, until exclusive")
	got, err = al.ReadAudit(ctx, store.AuditQuery{After: 5})
	require.NoError(t, err)
	assert.Empty(t, got)
}

func testAuditSequence(t *testing.T, st store.Store) {
	al := auditLog(t, st)
	ctx := t.Context()
	assert.ErrorIs(t, al.AppendAudit(ctx, []store.AuditEntry{entry(2, keyA, "x")}), store.ErrConflict, "must start at 1")
	require.NoError(t, al.AppendAudit(ctx, []store.AuditEntry{entry(1, keyA, "x")}))
	assert.ErrorIs(t, al.AppendAudit(ctx, []store.AuditEntry{entry(1, keyA, "x")}), store.ErrConflict, "seq taken")
	assert.ErrorIs(t, al.AppendAudit(ctx, []store.AuditEntry{entry(2, keyA, "x"), entry(4, keyA, "x")}), store.ErrConflict, "gap")
	got, err := al.ReadAudit(ctx, store.AuditQuery{})
	require.NoError(t, err)
	assert.Len(t, got, 1, "a refused append writes nothing")
}

func testAuditConcurrent(t *testing.T, st store.Store) {
	al := auditLog(t, st)
	ctx := t.Context()
	const writers = 8
	var wins atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range writers {
		wg.Go(func() {
			<-start
			err := al.AppendAudit(ctx, []store.AuditEntry{entry(1, fmt.Sprint(i), "x"), entry(2, fmt.Sprint(i), "x")})
			if err == nil {
				wins.Add(1)
			} else if !errors.Is(err, store.ErrConflict) {
				t.Errorf("append: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	assert.Equal(t, int32(1), wins.Load(), "exactly one appender gets seq 1")
	got, err := al.ReadAudit(ctx, store.AuditQuery{})
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, got[0].KeyID, got[1].KeyID, "the winner's batch is whole")
}
