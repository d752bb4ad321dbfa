package boltstore_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/kmsring/kmsring/store/storetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func TestConformance(t *testing.T) {
	storetest.RunConformanceTests(t, func(t *testing.T) store.Store {
		st, err := boltstore.Open(filepath.Join(t.TempDir(), "kmsring.db"))
		require.NoError(t, err)
		return st
	})
}

func newStore(t *testing.T) (*boltstore.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kmsring.db")
	st, err := boltstore.Open(path)
	require.NoError(t, err)
	return st, path
}

func TestFileMode(t *testing.T) {
	st, path := newStore(t)
	require.NoError(t, st.Close())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestLockedFailsFast(t *testing.T) {
	st, path := newStore(t)
	defer st.Close()
	start := time.Now()
	_, err := boltstore.Open(path)
	assert.ErrorIs(t, err, boltstore.ErrLocked)
	// Not a timing assertion: a blocked Open would never return at all.
	t.Logf("second Open failed after %v", time.Since(start))
	require.NoError(t, st.Close())
	st2, err := boltstore.Open(path)
	require.NoError(t, err, "the file opens once released")
	require.NoError(t, st2.Close())
}

func TestPersists(t *testing.T) {
	ctx := t.Context()
	st, path := newStore(t)
	_, err := st.Create(ctx, store.Record{KeyID: "k1", Aliases: []string{"alias/one"}, Data: []byte("d")}, []store.Version{{Number: 1, Data: []byte("v1")}})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	st, err = boltstore.Open(path)
	require.NoError(t, err)
	defer st.Close()
	rec, err := st.Get(ctx, "alias/one")
	require.NoError(t, err)
	assert.Equal(t, "k1", rec.KeyID)
	vs, err := st.Versions(ctx, "k1", 0)
	require.NoError(t, err)
	assert.Equal(t, []store.Version{{Number: 1, Data: []byte("v1")}}, vs)
}

func TestNotAStore(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	require.NoError(t, os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 1000), 0o600))
	_, err := boltstore.Open(garbage)
	assert.ErrorIs(t, err, boltstore.ErrCorrupt)

	other := filepath.Join(dir, "other.db")
	db, err := bolt.Open(other, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("someone else's"))
		return err
	}))
	require.NoError(t, db.Close())
	_, err = boltstore.Open(other)
	assert.ErrorIs(t, err, boltstore.ErrCorrupt, "a bbolt file of another program")
}

func TestLayoutVersion(t *testing.T) {
	st, path := newStore(t)
	require.NoError(t, st.Close())
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("layout"), []byte{0, 0, 0, 9})
	}))
	require.NoError(t, db.Close())
	_, err = boltstore.Open(path)
	assert.ErrorIs(t, err, boltstore.ErrLayoutVersion)
}

// fill writes keys with versions to a fresh store file and returns its path
// and bytes.
func fill(t *testing.T) (string, []byte) {
	ctx := t.Context()
	st, path := newStore(t)
	for i := range 20 {
		id := fmt.Sprintf("key-%02d", i)
		rec, err := st.Create(ctx, store.Record{KeyID: id, Aliases: []string{"alias/" + id}, Data: bytes.Repeat([]byte{'r'}, 100)}, []store.Version{{Number: 1, Data: bytes.Repeat([]byte{'v'}, 150)}})
		require.NoError(t, err)
		for n := uint32(2); n <= 20; n++ {
			rec, err = st.Update(ctx, rec, []store.Version{{Number: n, Data: bytes.Repeat([]byte{'v'}, 150)}})
			require.NoError(t, err)
		}
	}
	require.NoError(t, st.Close())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return path, b
}

// readAll reads everything in the store; it must not panic.
func readAll(t *testing.T, st *boltstore.Store) error {
	ctx := t.Context()
	ids, err := st.List(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := st.Get(ctx, id); err != nil {
			return err
		}
		if _, err := st.Versions(ctx, id, 0); err != nil {
			return err
		}
	}
	return nil
}

func TestTruncatedFile(t *testing.T) {
	path, orig := fill(t)
	intact := 0
	for n := 0; n < len(orig); n += 512 {
		require.NoError(t, os.WriteFile(path, orig[:n], 0o600))
		st, err := boltstore.Open(path)
		if n == 0 {
			// An empty file is a new store, as a missing one is.
			require.NoError(t, err)
			require.NoError(t, st.Close())
			continue
		}
		if err != nil {
			require.ErrorIs(t, err, boltstore.ErrCorrupt, "truncated to %d of %d bytes", n, len(orig))
			continue
		}
		// The cut fell in space bbolt had allocated but not used: all
		// data must be there.
		ids, err := st.List(t.Context())
		require.NoError(t, err)
		require.Len(t, ids, 20, "truncated to %d bytes: no key silently lost", n)
		for _, id := range ids {
			vs, err := st.Versions(t.Context(), id, 0)
			require.NoError(t, err)
			require.Len(t, vs, 20, "truncated to %d bytes: no version silently lost", n)
		}
		require.NoError(t, st.Close())
		intact++
	}
	t.Logf("%d of %d truncations cut only unused space", intact, len(orig)/512)
}

func TestCorruptedFile(t *testing.T) {
	path, orig := fill(t)
	rng := rand.New(rand.NewPCG(1, 2))
	opened := 0
	for range 100 {
		b := bytes.Clone(orig)
		for range 1 + rng.IntN(8) {
			b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		}
		require.NoError(t, os.WriteFile(path, b, 0o600))
		st, err := boltstore.Open(path)
		if err != nil {
			require.ErrorIs(t, err, boltstore.ErrCorrupt)
			continue
		}
		opened++
		_ = readAll(t, st) // must not panic; damage Open did not see may surface here
		require.NoError(t, st.Close())
	}
	t.Logf("%d of 100 damaged files still opened", opened)
}

// Opening a file this release prepared writes nothing to it (no commit, no
// fsync at start-up).
func TestOpenWritesNothing(t *testing.T) {
	path, orig := fill(t)
	st, err := boltstore.Open(path)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(orig, after), "the file is unchanged by Open and Close")
}
