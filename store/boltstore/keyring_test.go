package boltstore_test

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// keyringStore opens a fresh store file with a root key file beside it.
func keyringStore(t *testing.T) (tink.AEAD, *boltstore.Store, string) {
	t.Helper()
	dir := t.TempDir()
	rk, err := keyring.RootKeyFile(filepath.Join(dir, "root.key"))
	require.NoError(t, err)
	path := filepath.Join(dir, "kmsring.db")
	st, err := boltstore.Open(path)
	require.NoError(t, err)
	return rk, st, path
}

// Two keyring handles on one file rotating at once: every rotation gets its
// own version, none is lost, and a reopened file holds them all.
func TestKeyringHandlesRotateAtOnce(t *testing.T) {
	ctx := t.Context()
	rk, st, path := keyringStore(t)
	a, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)
	b, err := keyring.Load(ctx, st, a.ID(), keyring.WithRootKey(rk))
	require.NoError(t, err)
	const each = 25
	var wg sync.WaitGroup
	for _, k := range []*keyring.Keyring{a, b} {
		wg.Go(func() {
			for range each {
				_, err := k.Rotate(ctx)
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	require.NoError(t, st.Close())

	st, err = boltstore.Open(path)
	require.NoError(t, err)
	defer st.Close()
	k, err := keyring.Load(ctx, st, a.ID(), keyring.WithRootKey(rk))
	require.NoError(t, err)
	md, err := k.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint32(1+2*each), md.CurrentVersion)
	assert.Len(t, md.Versions, 1+2*each)
}

func TestNoRootKeyRefused(t *testing.T) {
	st, _ := newStore(t)
	defer st.Close()
	_, err := keyring.New(t.Context(), keyring.WithStore(st))
	assert.ErrorIs(t, err, keyring.ErrInvalidArgument, "a persistent store needs a root key")
}
