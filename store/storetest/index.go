package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kmsring/kmsring/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Conformance of the optional indexes: store.DueIndex and store.Pager.
// Every store in this module implements both; a backend that does not
// skips these tests.

func dueIndex(t *testing.T, st store.Store) store.DueIndex {
	return capability[store.DueIndex](t, st, "does not implement store.DueIndex")
}

func pager(t *testing.T, st store.Store) store.Pager {
	return capability[store.Pager](t, st, "does not implement store.Pager")
}

// t0 is a due time with microsecond precision, as every store keeps it.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)

func keyN(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

func withDue(id string, due time.Time, aliases ...string) store.Record {
	r := rec(id, aliases...)
	r.Due = due
	return r
}

func allDue(t *testing.T, d store.DueIndex, through time.Time) []store.DueEntry {
	t.Helper()
	got, err := d.ListDue(t.Context(), through, store.DueEntry{}, store.MaxPage)
	require.NoError(t, err)
	return got
}

func testDueIndex(t *testing.T, st store.Store) {
	ctx := t.Context()
	d := dueIndex(t, st)
	assert.Empty(t, allDue(t, d, t0.Add(1000*time.Hour)), "an empty store has nothing due")

	// keyN(3) and keyN(1) share a due time: ordered by key ID.
	_, err := st.Create(ctx, withDue(keyN(3), t0), []store.Version{ver(1)})
	require.NoError(t, err)
	_, err = st.Create(ctx, withDue(keyN(1), t0), []store.Version{ver(1)})
	require.NoError(t, err)
	_, err = st.Create(ctx, withDue(keyN(2), t0.Add(-time.Hour)), []store.Version{ver(1)})
	require.NoError(t, err)
	r4, err := st.Create(ctx, withDue(keyN(4), time.Time{}), []store.Version{ver(1)})
	require.NoError(t, err)
	_, err = st.Create(ctx, withDue(keyN(5), t0.Add(time.Hour)), []store.Version{ver(1)})
	require.NoError(t, err)

	got, err := st.Get(ctx, keyN(2))
	require.NoError(t, err)
	assert.True(t, got.Due.Equal(t0.Add(-time.Hour)), "Get returns the record's Due, got %v", got.Due)
	got, err = st.Get(ctx, keyN(4))
	require.NoError(t, err)
	assert.True(t, got.Due.IsZero(), "a zero Due reads back zero")

	want := []store.DueEntry{de(keyN(2), t0.Add(-time.Hour)), de(keyN(1), t0), de(keyN(3), t0)}
	assertDue(t, want, allDue(t, d, t0), "through is inclusive; zero Due is never listed")
	assertDue(t, nil, allDue(t, d, t0.Add(-2*time.Hour)), "nothing due before the earliest")

	// Update moves the entry; a zero Due removes it.
	r4.Due = t0.Add(-2 * time.Hour)
	r4, err = st.Update(ctx, r4, nil)
	require.NoError(t, err)
	r2, err := st.Get(ctx, keyN(2))
	require.NoError(t, err)
	r2.Due = time.Time{}
	_, err = st.Update(ctx, r2, nil)
	require.NoError(t, err)
	want = []store.DueEntry{de(keyN(4), t0.Add(-2*time.Hour)), de(keyN(1), t0), de(keyN(3), t0), de(keyN(5), t0.Add(time.Hour))}
	assertDue(t, want, allDue(t, d, t0.Add(time.Hour)), "after updates")

	// A failed update (stale revision) leaves the index as it was.
	stale := r4
	stale.Revision--
	stale.Due = t0.Add(-3 * time.Hour)
	_, err = st.Update(ctx, stale, nil)
	require.ErrorIs(t, err, store.ErrConflict)
	assertDue(t, want, allDue(t, d, t0.Add(time.Hour)), "after a failed update")

	// The earliest due time is a page of one.
	first, err := d.ListDue(ctx, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), store.DueEntry{}, 1)
	require.NoError(t, err)
	assertDue(t, want[:1], first, "page of one")
}

func assertDue(t *testing.T, want, got []store.DueEntry, msg string) {
	t.Helper()
	require.Len(t, got, len(want), "%s: %v", msg, got)
	for i := range want {
		assert.Equal(t, want[i].KeyID, got[i].KeyID, "%s: entry %d", msg, i)
		assert.True(t, want[i].Due.Equal(got[i].Due), "%s: entry %d due %v, want %v", msg, i, got[i].Due, want[i].Due)
	}
}

func testDuePaging(t *testing.T, st store.Store) {
	ctx := t.Context()
	d := dueIndex(t, st)
	const n = 25
	for i := range n {
		// Two keys per due time, so that pages break inside a time.
		_, err := st.Create(ctx, withDue(keyN(i), t0.Add(time.Duration(i/2)*time.Minute)), []store.Version{ver(1)})
		require.NoError(t, err)
	}
	var got []store.DueEntry
	var after store.DueEntry
	for pages := 0; ; pages++ {
		require.Less(t, pages, n, "paging does not end")
		page, err := d.ListDue(ctx, t0.Add(time.Hour), after, 3)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), 3)
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1]
	}
	require.Len(t, got, n)
	for i := range got {
		assert.Equal(t, keyN(i), got[i].KeyID, "entry %d", i)
		if i > 0 {
			assert.True(t, got[i-1].Less(got[i]), "entries in order")
		}
	}
	// A cursor that names no entry starts after where it would be.
	page, err := d.ListDue(ctx, t0.Add(time.Hour), store.DueEntry{KeyID: "zzz", Due: t0.Add(5 * time.Minute)}, 10)
	require.NoError(t, err)
	require.NotEmpty(t, page)
	assert.Equal(t, keyN(12), page[0].KeyID)
}

func testDueConcurrent(t *testing.T, st store.Store) {
	ctx := t.Context()
	d := dueIndex(t, st)
	r, err := st.Create(ctx, withDue(keyA, t0), []store.Version{ver(1)})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			u := r
			u.Due = t0.Add(time.Duration(i+1) * time.Minute)
			st.Update(ctx, u, nil) // one wins
		})
	}
	wg.Wait()
	won, err := st.Get(ctx, keyA)
	require.NoError(t, err)
	assertDue(t, []store.DueEntry{de(keyA, won.Due)}, allDue(t, d, t0.Add(time.Hour)), "one entry, the winner's")
}

func testListPage(t *testing.T, st store.Store) {
	ctx := t.Context()
	p := pager(t, st)
	ids, err := p.ListPage(ctx, "", 10)
	require.NoError(t, err)
	assert.Empty(t, ids)
	const n = 11
	for i := n - 1; i >= 0; i-- {
		_, err := st.Create(ctx, rec(keyN(i)), []store.Version{ver(1)})
		require.NoError(t, err)
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, n, "paging does not end")
		page, err := p.ListPage(ctx, after, 4)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), 4)
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1]
	}
	all, err := st.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, all, got, "the pages together are List")
	// A cursor that is no key ID pages from where it would sort.
	for _, c := range []struct {
		after string
		want  []string
	}{
		{"00000000-0000-4000-8000-000000000004x", []string{keyN(5), keyN(6)}},
		{"!", []string{keyN(0), keyN(1)}},
		{"zzzz", nil},
	} {
		page, err := p.ListPage(ctx, c.after, 2)
		require.NoError(t, err, "cursor %q", c.after)
		if c.want == nil {
			assert.Empty(t, page, "cursor %q", c.after)
		} else {
			assert.Equal(t, c.want, page, "cursor %q", c.after)
		}
	}
}

func testListAliasPage(t *testing.T, st store.Store) {
	ctx := t.Context()
	p := pager(t, st)
	a, err := st.Create(ctx, rec(keyA, "alias/c", "alias/a"), []store.Version{ver(1)})
	require.NoError(t, err)
	_, err = st.Create(ctx, rec(keyB, "alias/b"), []store.Version{ver(1)})
	require.NoError(t, err)
	page, err := p.ListAliasPage(ctx, "", 2)
	require.NoError(t, err)
	assert.Equal(t, []store.AliasEntry{ae("alias/a", keyA), ae("alias/b", keyB)}, page)
	page, err = p.ListAliasPage(ctx, "alias/b", 2)
	require.NoError(t, err)
	assert.Equal(t, []store.AliasEntry{ae("alias/c", keyA)}, page)

	// Aliases moved by Update are listed where they now are.
	a.Aliases = []string{"alias/d"}
	_, err = st.Update(ctx, a, nil)
	require.NoError(t, err)
	page, err = p.ListAliasPage(ctx, "", 10)
	require.NoError(t, err)
	assert.Equal(t, []store.AliasEntry{ae("alias/b", keyB), ae("alias/d", keyA)}, page)
	page, err = p.ListAliasPage(ctx, "alias/zzz", 10)
	require.NoError(t, err)
	assert.Empty(t, page)
}

func testPageLimits(t *testing.T, st store.Store) {
	ctx := t.Context()
	d, p := dueIndex(t, st), pager(t, st)
	for _, limit := range []int{0, -1, store.MaxPage + 1} {
		_, err := d.ListDue(ctx, t0, store.DueEntry{}, limit)
		assert.ErrorIs(t, err, store.ErrPageLimit, "ListDue limit %d", limit)
		_, err = p.ListPage(ctx, "", limit)
		assert.ErrorIs(t, err, store.ErrPageLimit, "ListPage limit %d", limit)
		_, err = p.ListAliasPage(ctx, "", limit)
		assert.ErrorIs(t, err, store.ErrPageLimit, "ListAliasPage limit %d", limit)
	}
}

func de(id string, due time.Time) store.DueEntry { return store.DueEntry{KeyID: id, Due: due} }

func ae(alias, id string) store.AliasEntry { return store.AliasEntry{Alias: alias, KeyID: id} }
