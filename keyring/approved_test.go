package keyring_test

import (
	"fmt"
	"testing"

	"github.com/kmsring/kmsring/internal/fipsmode"
	"github.com/kmsring/kmsring/internal/format"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/require"
)

// TestPBKDF2RootKey: the approved passphrase root key loads what it wrote,
// refuses a wrong passphrase, its floor, and ciphertexts past its ceiling
// before deriving. It runs in FIPS mode too.
func TestPBKDF2RootKey(t *testing.T) {
	ctx := t.Context()
	_, err := keyring.NewPBKDF2RootKey([]byte("pw"), keyring.MinPBKDF2Iterations-1)
	require.ErrorIs(t, err, keyring.ErrInvalidArgument, "below the floor")
	_, err = keyring.NewPBKDF2RootKey(nil, keyring.MinPBKDF2Iterations)
	require.ErrorIs(t, err, keyring.ErrInvalidArgument, "empty passphrase")
	_, err = keyring.NewPBKDF2RootKey([]byte("pw"), keyring.MinPBKDF2Iterations, keyring.WithPBKDF2Ceiling(keyring.MinPBKDF2Iterations-1))
	require.ErrorIs(t, err, keyring.ErrInvalidArgument, "a ceiling below the key's own")

	rk, err := keyring.NewPBKDF2RootKey([]byte("correct horse"), keyring.MinPBKDF2Iterations+1)
	require.NoError(t, err)
	st := durable{memstore.New()}
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)
	again, err := keyring.NewPBKDF2RootKey([]byte("correct horse"), keyring.MinPBKDF2Iterations+1)
	require.NoError(t, err)
	_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(again))
	require.NoError(t, err, "another instance (another salt) opens it")
	wrong, err := keyring.NewPBKDF2RootKey([]byte("wrong horse"), keyring.MinPBKDF2Iterations+1)
	require.NoError(t, err)
	_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(wrong))
	require.ErrorIs(t, err, keyring.ErrRootKey)
	low, err := keyring.NewPBKDF2RootKey([]byte("correct horse"), keyring.MinPBKDF2Iterations)
	require.NoError(t, err)
	_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(low))
	require.ErrorIs(t, err, keyring.ErrPBKDF2Params, "more iterations than the ceiling: refused before deriving")
}

// TestApprovedBlobs: a keyring made WithApprovedAlgorithms writes approved
// blobs, which open in every mode and refuse tampering.
func TestApprovedBlobs(t *testing.T) {
	ctx := t.Context()
	k, err := keyring.New(ctx, keyring.WithApprovedAlgorithms())
	require.NoError(t, err)
	require.True(t, k.Approved())
	ec := map[string]string{"a": "b"}
	blob, err := k.Encrypt(ctx, []byte("secret"), keyring.WithEncryptionContext(ec))
	require.NoError(t, err)
	require.Equal(t, byte(format.BlobFormatApproved), blob[0])
	require.Len(t, blob, format.BlobHeaderSizeApproved+format.GCMNonceSize+6+16)
	dk, err := k.GenerateDataKey(ctx)
	require.NoError(t, err)
	require.Equal(t, byte(format.BlobFormatApproved), dk.Ciphertext[0])
	for i := range len(blob) * 8 {
		b := append([]byte(nil), blob...)
		b[i/8] ^= 1 << (i % 8)
		pt, err := k.Decrypt(ctx, b, keyring.WithEncryptionContext(ec))
		require.Error(t, err, "bit %d", i)
		require.Nil(t, pt)
	}
	for n := range len(blob) {
		_, err := k.Decrypt(ctx, blob[:n], keyring.WithEncryptionContext(ec))
		require.Error(t, err, "cut to %d", n)
	}
	restore := fipsmode.Force(true)
	defer restore()
	pt, err := k.Decrypt(ctx, blob, keyring.WithEncryptionContext(ec))
	require.NoError(t, err, "approved blobs open in FIPS mode")
	require.Equal(t, []byte("secret"), pt)
	pt, err = k.Decrypt(ctx, dk.Ciphertext)
	require.NoError(t, err)
	require.Equal(t, dk.Plaintext, pt)
}

// TestFIPSModeRootKeys: in FIPS mode a local root key refuses what it
// wrapped outside the mode, unless made with RootKeyAllowNonApproved, and
// RotateRootKey moves the store to the approved format; argon2id root keys
// are refused.
func TestFIPSModeRootKeys(t *testing.T) {
	if fipsmode.Enabled() {
		t.Skip("writes XChaCha20-Poly1305 root key ciphertexts: outside FIPS mode only")
	}
	ctx := t.Context()
	key := make([]byte, keyring.RootKeySize)
	key[0] = 1
	rk, err := keyring.NewRootKey(key)
	require.NoError(t, err)
	st := durable{memstore.New()}
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)

	restore := fipsmode.Force(true)
	defer restore()
	_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(rk))
	require.ErrorIs(t, err, keyring.ErrNotApproved)
	require.ErrorIs(t, err, keyring.ErrRootKey)
	legacy, err := keyring.NewRootKey(key, keyring.RootKeyAllowNonApproved())
	require.NoError(t, err)
	_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(legacy))
	require.NoError(t, err, "the migration opt-in reads it")
	n, err := keyring.RotateRootKey(ctx, st, legacy, rk)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(rk))
	require.NoError(t, err, "after RotateRootKey the store is in the approved format")

	pk, err := keyring.NewPassphraseRootKey([]byte("pw"), keyring.DefaultArgon2Params)
	require.NoError(t, err)
	require.Equal(t, "keyring.PassphraseRootKey(PBKDF2-HMAC-SHA-256 i=600000)", fmt.Sprint(pk), "in FIPS mode a passphrase root key derives with PBKDF2")
}

// TestFIPSModeWrongRootKey: in FIPS mode a wrong root key on an approved
// store is ErrRootKey, not ErrNotApproved.
func TestFIPSModeWrongRootKey(t *testing.T) {
	restore := fipsmode.Force(true)
	defer restore()
	ctx := t.Context()
	key := make([]byte, keyring.RootKeySize)
	rk, err := keyring.NewRootKey(key)
	require.NoError(t, err)
	st := durable{memstore.New()}
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)
	key[0] = 1
	wrong, err := keyring.NewRootKey(key)
	require.NoError(t, err)
	_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(wrong))
	require.ErrorIs(t, err, keyring.ErrRootKey)
	require.NotErrorIs(t, err, keyring.ErrNotApproved, "a wrong key, not old data")
}
