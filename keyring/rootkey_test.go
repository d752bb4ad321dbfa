package keyring_test

import (
	"context"
	"errors"
	"github.com/kmsring/kmsring/internal/testvec"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// durable hides memstore's Volatile method, standing in for a persistent
// store.
type durable struct{ store.Store }

// VersionRange passes the wrapped store's range reads through.
func (d durable) VersionRange(ctx context.Context, keyID string, after, through uint32) ([]store.Version, error) {
	return d.Store.(store.VersionRanger).VersionRange(ctx, keyID, after, through)
}

// the cheapest argon2id parameters allowed, for tests; production uses the
// defaults.
var testArgon2 = keyring.Argon2Params{Time: keyring.MinArgon2Time, Memory: keyring.MinArgon2Memory, Threads: 1}

func TestPersistentStoreNeedsRootKey(t *testing.T) {
	ctx := t.Context()
	st := durable{memstore.New()}
	_, err := keyring.New(ctx, keyring.WithStore(st))
	assert.ErrorIs(t, err, keyring.ErrInvalidArgument)
	rk, err := keyring.NewRootKey(make([]byte, 32))
	require.NoError(t, err)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)
	_, err = keyring.Load(ctx, st, k.ID())
	assert.ErrorIs(t, err, keyring.ErrInvalidArgument, "Load refuses too")
}

func TestRootKeyFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "root.key")
	rk, err := keyring.RootKeyFile(path)
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "created owner-only")
	assert.Equal(t, int64(32), fi.Size())

	st := durable{memstore.New()}
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)
	again, err := keyring.RootKeyFile(path)
	require.NoError(t, err)
	_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(again))
	require.NoError(t, err, "the file's key loads what it wrapped")

	require.NoError(t, os.Chmod(path, 0o644))
	_, err = keyring.RootKeyFile(path)
	assert.ErrorIs(t, err, keyring.ErrInvalidArgument, "a world-readable key file is refused")

	short := filepath.Join(t.TempDir(), "short.key")
	require.NoError(t, os.WriteFile(short, make([]byte, 31), 0o600))
	_, err = keyring.RootKeyFile(short)
	assert.ErrorIs(t, err, keyring.ErrInvalidArgument)

	// ReadRootKeyFile never creates: a typo in the path is an error, not a
	// new root key.
	typo := filepath.Join(filepath.Dir(path), "root.kye")
	_, err = keyring.ReadRootKeyFile(typo)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.NoFileExists(t, typo, "nothing was created")
	require.NoError(t, os.Chmod(path, 0o600))
	read, err := keyring.ReadRootKeyFile(path)
	require.NoError(t, err)
	_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(read))
	require.NoError(t, err, "ReadRootKeyFile reads the key RootKeyFile made")
}

func TestPassphraseRootKey(t *testing.T) {
	testvec.SkipInFIPSMode(t, "argon2id (TestPBKDF2RootKey runs in the mode)")
	ctx := t.Context()
	st := durable{memstore.New()}
	rk, err := keyring.NewPassphraseRootKey([]byte("correct horse"), testArgon2)
	require.NoError(t, err)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)
	_, err = k.Rotate(ctx)
	require.NoError(t, err)

	// Another process: same passphrase, its own salt.
	other, err := keyring.NewPassphraseRootKey([]byte("correct horse"), testArgon2)
	require.NoError(t, err)
	l, err := keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(other))
	require.NoError(t, err)
	_, err = l.Rotate(ctx) // wraps version 3 under other's salt
	require.NoError(t, err)
	_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(rk))
	require.NoError(t, err, "versions wrapped under both salts open")

	wrong, err := keyring.NewPassphraseRootKey([]byte("battery staple"), testArgon2)
	require.NoError(t, err)
	_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(wrong))
	assert.ErrorIs(t, err, keyring.ErrRootKey, "a wrong passphrase is named as such")

	_, err = keyring.NewPassphraseRootKey(nil, testArgon2)
	assert.ErrorIs(t, err, keyring.ErrInvalidArgument)
	_, err = keyring.NewPassphraseRootKey([]byte("x"), keyring.Argon2Params{Time: 0, Memory: 64, Threads: 1})
	assert.ErrorIs(t, err, keyring.ErrInvalidArgument)
}

func TestTinkRootKey(t *testing.T) {
	testvec.SkipInFIPSMode(t, "Tink's local AES-GCM calls cipher.NewGCM, which GODEBUG=fips140=only refuses")
	ctx := t.Context()
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	require.NoError(t, err)
	rk, err := aead.New(h)
	require.NoError(t, err)
	st := durable{memstore.New()}
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)
	l, err := keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(rk))
	require.NoError(t, err)
	blob, err := k.Encrypt(ctx, []byte("tink"))
	require.NoError(t, err)
	pt, err := l.Decrypt(ctx, blob)
	require.NoError(t, err)
	assert.Equal(t, "tink", string(pt))
}

// flaky fails every Update after the first n.
type flaky struct {
	store.Store
	n atomic.Int32
}

var errInjected = errors.New("injected failure")

func (f *flaky) Update(ctx context.Context, rec store.Record, vs []store.Version) (store.Record, error) {
	if f.n.Add(-1) < 0 {
		return store.Record{}, errInjected
	}
	return f.Store.Update(ctx, rec, vs)
}

func TestRotateRootKey(t *testing.T) {
	ctx := t.Context()
	mem := memstore.New()
	st := durable{mem}
	oldRK, err := keyring.NewRootKey(make([]byte, 32))
	require.NoError(t, err)
	newRK, err := keyring.NewRootKey(append(make([]byte, 31), 7))
	require.NoError(t, err)
	var blobs [][]byte
	var keys []*keyring.Keyring
	for range 3 {
		k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(oldRK))
		require.NoError(t, err)
		_, err = k.Rotate(ctx)
		require.NoError(t, err)
		blob, err := k.Encrypt(ctx, []byte(k.ID()))
		require.NoError(t, err)
		keys, blobs = append(keys, k), append(blobs, blob)
	}

	// Interrupted after the first key.
	f := &flaky{Store: st}
	f.n.Store(1)
	n, err := keyring.RotateRootKey(ctx, f, oldRK, newRK)
	require.ErrorIs(t, err, errInjected)
	assert.Equal(t, 2, n, "one key's two versions were rewrapped before the failure")

	// A handle running with both keys keeps working mid-migration.
	mixed, err := keyring.Load(ctx, st, keys[0].ID(), keyring.WithRootKey(keyring.RootKeys(newRK, oldRK)))
	require.NoError(t, err)
	_, err = mixed.Decrypt(ctx, blobs[0])
	require.NoError(t, err)

	n, err = keyring.RotateRootKey(ctx, st, oldRK, newRK)
	require.NoError(t, err, "resumes")
	assert.Equal(t, 4, n, "only the versions not yet rewrapped")
	n, err = keyring.RotateRootKey(ctx, st, oldRK, newRK)
	require.NoError(t, err)
	assert.Zero(t, n, "nothing left to do")

	for i, k := range keys {
		l, err := keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(newRK))
		require.NoError(t, err)
		pt, err := l.Decrypt(ctx, blobs[i])
		require.NoError(t, err)
		assert.Equal(t, k.ID(), string(pt))
		_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(oldRK))
		assert.ErrorIs(t, err, keyring.ErrRootKey, "the old root key no longer opens the store")
		// A live handle with only the old key cannot reload the rewrapped
		// versions (hence RootKeys during a migration), but keeps
		// decrypting with what it has loaded.
		assert.ErrorIs(t, k.Refresh(ctx), keyring.ErrRootKey)
		_, err = k.Decrypt(ctx, blobs[i])
		require.NoError(t, err)
	}
}

// countingRootKey counts Decrypt calls, standing in for a remote KMS.
type countingRootKey struct {
	tink.AEAD
	decrypts atomic.Int32
}

func (c *countingRootKey) Decrypt(ct, ad []byte) ([]byte, error) {
	c.decrypts.Add(1)
	return c.AEAD.Decrypt(ct, ad)
}

func TestLoadUnwrapsLazily(t *testing.T) {
	ctx := t.Context()
	st := durable{memstore.New()}
	local, err := keyring.NewRootKey(make([]byte, 32))
	require.NoError(t, err)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(local))
	require.NoError(t, err)
	old, err := k.Encrypt(ctx, []byte("v1"))
	require.NoError(t, err)
	for range 49 {
		_, err := k.Rotate(ctx)
		require.NoError(t, err)
	}
	rk := &countingRootKey{AEAD: local}
	l, err := keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(rk))
	require.NoError(t, err)
	assert.Equal(t, int32(2), rk.decrypts.Load(), "Load unwraps the store key and the current version only")
	_, err = l.Decrypt(ctx, old)
	require.NoError(t, err)
	_, err = l.Decrypt(ctx, old)
	require.NoError(t, err)
	assert.Equal(t, int32(3), rk.decrypts.Load(), "an old version is unwrapped once, on first use")
	_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(rk))
	require.NoError(t, err)
	assert.Equal(t, int32(4), rk.decrypts.Load(), "a second Load unwraps the current version, not the store key again")
}

// unreachableRootKey fails Decrypt while down is set, as a remote KMS does
// during an outage.
type unreachableRootKey struct {
	tink.AEAD
	down atomic.Bool
}

var errUnreachable = errors.New("kms: connection refused")

func (u *unreachableRootKey) Decrypt(ct, ad []byte) ([]byte, error) {
	if u.down.Load() {
		return nil, errUnreachable
	}
	return u.AEAD.Decrypt(ct, ad)
}

// A root key that is unreachable when a version is first used fails that
// use, and the next use, once it is back, succeeds on the same handle.
func TestRootKeyOutageIsNotRemembered(t *testing.T) {
	ctx := t.Context()
	st := durable{memstore.New()}
	local, err := keyring.NewRootKey(make([]byte, 32))
	require.NoError(t, err)
	rk := &unreachableRootKey{AEAD: local}
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)
	blob, err := k.Encrypt(ctx, []byte("v1"))
	require.NoError(t, err)
	_, err = k.Rotate(ctx)
	require.NoError(t, err)

	// Version 1's material is unwrapped on its first use, after Load.
	l, err := keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(rk))
	require.NoError(t, err)
	rk.down.Store(true)
	for range 2 {
		_, err = l.Decrypt(ctx, blob)
		require.ErrorIs(t, err, keyring.ErrRootKey)
		require.ErrorIs(t, err, errUnreachable)
	}

	rk.down.Store(false)
	pt, err := l.Decrypt(ctx, blob)
	require.NoError(t, err, "the outage is over")
	assert.Equal(t, "v1", string(pt))
}
