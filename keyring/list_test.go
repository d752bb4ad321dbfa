package keyring_test

import (
	"context"
	"testing"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestListPage(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	ks := newKeys(t, st, 5)
	all, err := keyring.List(ctx, st)
	require.NoError(t, err)
	require.Len(t, all, len(ks))

	var got []string
	after := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		ids, more, err := keyring.ListPage(ctx, st, after, 2)
		require.NoError(t, err)
		got = append(got, ids...)
		if !more {
			break
		}
		after = ids[len(ids)-1]
	}
	assert.Equal(t, all, got, "pages together are List, reserved records left out")

	// The same through a store without store.Pager.
	ids, more, err := keyring.ListPage(ctx, durable{st}, all[1], 2)
	require.NoError(t, err)
	assert.Equal(t, all[2:4], ids)
	assert.True(t, more)

	_, _, err = keyring.ListPage(ctx, st, "", 0)
	require.ErrorIs(t, err, keyring.ErrInvalidArgument)
	require.ErrorIs(t, err, store.ErrPageLimit)
}

func TestListAliasPage(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	a := newKeys(t, st, 1, keyring.WithAlias("alias/a"), keyring.WithAlias("alias/c"))[0]
	b := newKeys(t, st, 1, keyring.WithAlias("alias/b"))[0]
	page, more, err := keyring.ListAliasPage(ctx, st, "", 2)
	require.NoError(t, err)
	assert.True(t, more)
	assert.Equal(t, []keyring.AliasEntry{{Alias: "alias/a", KeyID: a.ID()}, {Alias: "alias/b", KeyID: b.ID()}}, page)
	page, more, err = keyring.ListAliasPage(ctx, st, "alias/b", 2)
	require.NoError(t, err)
	assert.False(t, more)
	assert.Equal(t, []keyring.AliasEntry{{Alias: "alias/c", KeyID: a.ID()}}, page)

	// A store writer points alias/b's index entry at key a: the record of
	// a does not claim it.
	rec, err := st.Get(ctx, a.ID())
	require.NoError(t, err)
	brec, err := st.Get(ctx, b.ID())
	require.NoError(t, err)
	brec.Aliases = nil
	_, err = st.Update(ctx, brec, nil)
	require.NoError(t, err)
	rec.Aliases = append(rec.Aliases, "alias/b")
	_, err = st.Update(ctx, rec, nil)
	require.NoError(t, err)
	_, _, err = keyring.ListAliasPage(ctx, st, "", 10)
	require.ErrorIs(t, err, keyring.ErrTampered)
	assert.Contains(t, err.Error(), a.ID())
}

// dupStore lists every key twice: a store edited, or a broken backend.
type dupStore struct{ *memstore.Store }

func (d dupStore) ListPage(ctx context.Context, after string, limit int) ([]string, error) {
	ids, err := d.Store.ListPage(ctx, after, limit)
	if len(ids) > 0 {
		ids = append([]string{ids[0]}, ids...)
	}
	return ids, err
}

func (d dupStore) ListAliasPage(ctx context.Context, after string, limit int) ([]store.AliasEntry, error) {
	as, err := d.Store.ListAliasPage(ctx, after, limit)
	if len(as) > 0 {
		as = append([]store.AliasEntry{as[0]}, as...)
	}
	return as, err
}

func TestListPageStoreListsTwice(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	newKeys(t, st, 2)
	newKeys(t, st, 1, keyring.WithAlias("alias/x"))
	_, _, err := keyring.ListPage(ctx, dupStore{st}, "", 10)
	require.ErrorIs(t, err, keyring.ErrTampered)
	assert.Contains(t, err.Error(), "listed twice or out of order")
	_, _, err = keyring.ListAliasPage(ctx, dupStore{st}, "", 10)
	require.ErrorIs(t, err, keyring.ErrTampered)
}
