package boltstore_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// A file written before the due index existed gets one at Open: every
// record without a due time is indexed at the Unix epoch ("look at once"),
// a record with one where it says.
func TestDueIndexBuiltForOlderFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kmsring.db")
	st, err := boltstore.Open(path)
	require.NoError(t, err)
	const a, b = "8a0c9f1e-2d4b-4c6a-9e1f-0b2c3d4e5f60", "1b2c3d4e-5f60-4a1b-8c2d-3e4f5a6b7c8d"
	due := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = st.Create(ctx, store.Record{KeyID: a, Data: []byte("a")}, []store.Version{{Number: 1, Data: []byte("v")}})
	require.NoError(t, err)
	_, err = st.Create(ctx, store.Record{KeyID: b, Data: []byte("b"), Due: due}, []store.Version{{Number: 1, Data: []byte("v")}})
	require.NoError(t, err)
	require.NoError(t, st.Close())

	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("due")) }))
	require.NoError(t, db.Close())

	st, err = boltstore.Open(path)
	require.NoError(t, err)
	defer st.Close()
	got, err := st.ListDue(ctx, due, store.DueEntry{}, 10)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, a, got[0].KeyID)
	assert.True(t, got[0].Due.Equal(time.Unix(0, 0)), "a record without a due time is due at once")
	assert.Equal(t, b, got[1].KeyID)
	assert.True(t, got[1].Due.Equal(due))
	rec, err := st.Get(ctx, a)
	require.NoError(t, err)
	assert.True(t, rec.Due.Equal(time.Unix(0, 0)), "the record says what the index says")
}

// Open maps a large file again after building its due index (which reads
// every record), so that the pages it read are not kept resident; the
// store works the same after.
func TestRemapAfterCheck(t *testing.T) {
	defer boltstore.SetRemapAbove(0)()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kmsring.db")
	st, err := boltstore.Open(path)
	require.NoError(t, err)
	const a = "8a0c9f1e-2d4b-4c6a-9e1f-0b2c3d4e5f60"
	_, err = st.Create(ctx, store.Record{KeyID: a, Data: []byte("a")}, []store.Version{{Number: 1, Data: []byte("v")}})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("due")) }))
	require.NoError(t, db.Close())
	st, err = boltstore.Open(path)
	require.NoError(t, err)
	defer st.Close()
	rec, err := st.Get(ctx, a)
	require.NoError(t, err)
	assert.Equal(t, []byte("a"), rec.Data)
	due, err := st.ListDue(ctx, time.Unix(0, 0), store.DueEntry{}, 10)
	require.NoError(t, err)
	assert.Len(t, due, 1, "the index built before the remap is there after it")
	_, err = boltstore.Open(path)
	require.ErrorIs(t, err, boltstore.ErrLocked, "still held once")
}
