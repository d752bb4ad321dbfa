package keyring_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kmsring/kmsring/internal/testvec"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReEncryptAuditsBothContexts: the ReEncrypt event names the context
// the source blob was opened with and the one the new blob is bound to
// (issue 9: only the destination was recorded, so a relabelling left no
// trace of its source).
func TestReEncryptAuditsBothContexts(t *testing.T) {
	ctx := t.Context()
	rec := &recorder{}
	k, _ := newKey(t, keyring.WithAuditor(rec))
	a, b := map[string]string{"tenant": "a"}, map[string]string{"tenant": "b"}
	dk, err := k.GenerateDataKey(ctx, keyring.WithEncryptionContext(a))
	require.NoError(t, err)
	_, err = k.ReEncrypt(ctx, dk.Ciphertext, keyring.WithEncryptionContext(a), keyring.WithDestinationEncryptionContext(b))
	require.NoError(t, err)
	_, err = k.ReEncrypt(ctx, dk.Ciphertext, keyring.WithEncryptionContext(a))
	require.NoError(t, err)
	_, err = k.ReEncrypt(ctx, dk.Ciphertext, keyring.WithEncryptionContext(b))
	require.ErrorIs(t, err, keyring.ErrDecrypt)

	events := rec.events[2:]
	require.Len(t, events, 3)
	for _, e := range events {
		require.Equal(t, keyring.OpReEncrypt, e.Operation)
	}
	assert.Equal(t, a, events[0].SourceEncryptionContext)
	assert.Equal(t, b, events[0].EncryptionContext, "the destination context")
	assert.Equal(t, a, events[1].SourceEncryptionContext)
	assert.Equal(t, a, events[1].EncryptionContext, "the source context kept")
	assert.Equal(t, b, events[2].SourceEncryptionContext, "a failure names the context tried")
	assert.Error(t, events[2].Err)
	for _, e := range rec.events[:2] {
		assert.Nil(t, e.SourceEncryptionContext, "only ReEncrypt has a source context")
	}
}

// TestContextTooLarge: a 256 MiB context is rejected with
// ErrInvalidArgument before anything is sized from it (issue 10: the blob
// buffer was allocated with room for it first).
func TestContextTooLarge(t *testing.T) {
	ctx := t.Context()
	k, _ := newKey(t)
	dk, err := k.GenerateDataKey(ctx)
	require.NoError(t, err)
	huge := keyring.WithEncryptionContext(map[string]string{"k": strings.Repeat("v", 256<<20)})
	long := keyring.WithDestinationEncryptionContext(map[string]string{"k": strings.Repeat("v", 10000)})
	for name, f := range map[string]func() error{
		"GenerateDataKey": func() error { _, err := k.GenerateDataKey(ctx, huge); return err },
		"Encrypt":         func() error { _, err := k.Encrypt(ctx, []byte("x"), huge); return err },
		"Decrypt":         func() error { _, err := k.Decrypt(ctx, dk.Ciphertext, huge); return err },
		"ReEncrypt to it": func() error { _, err := k.ReEncrypt(ctx, dk.Ciphertext, long); return err },
	} {
		var err error
		n := testvec.Allocated(func() { err = f() })
		require.ErrorIs(t, err, keyring.ErrInvalidArgument, name)
		assert.Less(t, n, uint64(4<<10), "%s allocated %d bytes before rejecting the context", name, n)
	}
}

// TestDataKeyBuffers: a data key and its blob share one buffer, and
// neither can grow into the other.
func TestDataKeyBuffers(t *testing.T) {
	k, _ := newKey(t)
	for _, spec := range []keyring.KeySpec{keyring.AES256, keyring.AES128} {
		dk, err := k.GenerateDataKey(t.Context(), keyring.WithKeySpec(spec), keyring.WithEncryptionContext(map[string]string{"a": "b"}))
		require.NoError(t, err)
		assert.Equal(t, len(dk.Plaintext), cap(dk.Plaintext))
		assert.Equal(t, len(dk.Ciphertext), cap(dk.Ciphertext))
		pt := bytes.Clone(dk.Plaintext)
		blob := bytes.Clone(dk.Ciphertext)
		_ = append(dk.Plaintext, 0xff)
		assert.Equal(t, blob, dk.Ciphertext, "appending to Plaintext leaves Ciphertext alone")
		got, err := k.Decrypt(t.Context(), dk.Ciphertext, keyring.WithEncryptionContext(map[string]string{"a": "b"}))
		require.NoError(t, err)
		assert.Equal(t, pt, got)
		dk.Destroy()
		assert.Equal(t, blob, dk.Ciphertext, "Destroy clears only the plaintext")
	}
}
