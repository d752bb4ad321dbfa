package boltstore_test

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// edit changes a closed store file with bbolt directly, as someone who can
// write the file (or a damaged disk) might.
func edit(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(fn))
	require.NoError(t, db.Close())
}

// Open checks the file's structure, not each record: a file whose every
// record is damaged opens, and each read of a record fails with ErrCorrupt
// naming its key, as does a write over it; never a panic, never an empty
// record in its place.
func TestDamagedRecordsReportedAtUse(t *testing.T) {
	ctx := t.Context()
	path, _ := fill(t)
	edit(t, path, func(tx *bolt.Tx) error {
		keys := tx.Bucket([]byte("keys"))
		for i := range 20 {
			if err := keys.Put(fmt.Appendf(nil, "key-%02d", i), []byte("{not a record")); err != nil {
				return err
			}
		}
		return nil
	})
	st, err := boltstore.Open(path)
	require.NoError(t, err, "Open reads no record")
	defer st.Close()
	ids, err := st.List(ctx)
	require.NoError(t, err)
	require.Len(t, ids, 20)
	for _, id := range ids {
		_, err := st.Get(ctx, id)
		require.ErrorIs(t, err, boltstore.ErrCorrupt)
		assert.Contains(t, err.Error(), id, "the error names the key")
		_, err = st.Get(ctx, "alias/"+id)
		require.ErrorIs(t, err, boltstore.ErrCorrupt, "through its alias too")
		_, err = st.Update(ctx, store.Record{KeyID: id, Revision: 20}, nil)
		require.ErrorIs(t, err, boltstore.ErrCorrupt)
		assert.Contains(t, err.Error(), id)
	}
}

// A keyring over a damaged record fails to load with ErrCorrupt naming the
// key; the other keys of the file load.
func TestDamagedRecordFailsItsKeyOnly(t *testing.T) {
	ctx := t.Context()
	rk, st, path := keyringStore(t)
	good, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)
	bad, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)
	require.NoError(t, st.Close())
	edit(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("keys")).Put([]byte(bad.ID()), []byte(`{"revision":"x"}`))
	})

	st, err = boltstore.Open(path)
	require.NoError(t, err)
	defer st.Close()
	_, err = keyring.Load(ctx, st, bad.ID(), keyring.WithRootKey(rk))
	require.ErrorIs(t, err, boltstore.ErrCorrupt)
	assert.Contains(t, err.Error(), bad.ID())
	_, err = keyring.Load(ctx, st, good.ID(), keyring.WithRootKey(rk))
	require.NoError(t, err)
}

// Damage between records, found where it is read: an alias naming a
// missing key, a key without its versions, a version that is a bucket.
func TestDanglingReferencesReportedAtUse(t *testing.T) {
	ctx := t.Context()
	path, _ := fill(t)
	edit(t, path, func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("aliases")).Put([]byte("alias/ghost"), []byte("no-such-key")); err != nil {
			return err
		}
		vers := tx.Bucket([]byte("versions"))
		if err := vers.DeleteBucket([]byte("key-03")); err != nil {
			return err
		}
		_, err := vers.Bucket([]byte("key-04")).CreateBucket(binary.BigEndian.AppendUint32(nil, 21))
		return err
	})
	st, err := boltstore.Open(path)
	require.NoError(t, err)
	defer st.Close()

	_, err = st.Get(ctx, "alias/ghost")
	require.ErrorIs(t, err, boltstore.ErrCorrupt)
	assert.Contains(t, err.Error(), "alias/ghost")
	assert.NotErrorIs(t, err, store.ErrNotFound, "a dangling alias is damage, not a missing key")

	_, err = st.Versions(ctx, "key-03", 0)
	require.ErrorIs(t, err, boltstore.ErrCorrupt)
	assert.Contains(t, err.Error(), "key-03")

	_, err = st.Versions(ctx, "key-04", 0)
	require.ErrorIs(t, err, boltstore.ErrCorrupt)
	assert.Contains(t, err.Error(), "key-04")

	_, err = st.Versions(ctx, "no-such-key", 0)
	require.ErrorIs(t, err, store.ErrNotFound, "a key that is not there is still not found")
	vs, err := st.Versions(ctx, "key-05", 0)
	require.NoError(t, err)
	assert.Len(t, vs, 20)
}

// What Open still checks without reading records: the key count against
// the keys actually held (a record removed or added behind the store's
// back), and a bucket where a key record belongs.
func TestKeyCountAndShapeCheckedAtOpen(t *testing.T) {
	for name, fn := range map[string]func(tx *bolt.Tx) error{
		"record removed": func(tx *bolt.Tx) error { return tx.Bucket([]byte("keys")).Delete([]byte("key-07")) },
		"record added": func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("keys")).Put([]byte("key-99"), []byte(`{"revision":1,"data":""}`))
		},
		"count edited": func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("meta")).Put([]byte("keys"), binary.BigEndian.AppendUint64(nil, 21))
		},
		"count missing": func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Delete([]byte("keys")) },
		"bucket among records": func(tx *bolt.Tx) error {
			if err := tx.Bucket([]byte("keys")).Delete([]byte("key-07")); err != nil {
				return err
			}
			_, err := tx.Bucket([]byte("keys")).CreateBucket([]byte("key-07"))
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			path, _ := fill(t)
			edit(t, path, fn)
			_, err := boltstore.Open(path)
			require.ErrorIs(t, err, boltstore.ErrCorrupt)
			t.Log(err)
		})
	}
}
