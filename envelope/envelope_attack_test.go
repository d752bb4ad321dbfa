package envelope_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/internal/format"
	"github.com/kmsring/kmsring/internal/testvec"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAttackCacheIgnoresKeyState: DESIGN.md, "Key state": a disabled key,
// or one pending deletion, performs no cryptographic operation. Seal with
// a Cache takes a cached data key without asking the keyring, so it keeps
// sealing (and auditing nothing) under a key the operator disabled or
// scheduled for deletion, until MaxAge; what it seals under a key pending
// deletion can never be opened once the key is deleted.
func TestAttackCacheIgnoresKeyState(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state func(t *testing.T, k *keyring.Keyring)
		want  error
	}{
		{"disabled", func(t *testing.T, k *keyring.Keyring) { require.NoError(t, k.DisableKey(t.Context())) }, keyring.ErrKeyDisabled},
		{"pending deletion", func(t *testing.T, k *keyring.Keyring) {
			_, err := k.ScheduleKeyDeletion(t.Context(), 0)
			require.NoError(t, err)
		}, keyring.ErrKeyPendingDeletion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			k := newKey(t)
			c, err := envelope.NewCache()
			require.NoError(t, err)
			_, err = envelope.Seal(ctx, k, []byte("first"), envelope.WithCache(c))
			require.NoError(t, err)
			tc.state(t, k)
			_, err = envelope.Seal(ctx, k, []byte("second"))
			require.ErrorIs(t, err, tc.want, "without the cache, Seal refuses")
			_, err = envelope.Seal(ctx, k, []byte("second"), envelope.WithCache(c))
			assert.ErrorIs(t, err, tc.want, "with a cached data key, Seal must refuse too")
		})
	}
}

// TestAttackCacheSealsUnderDeletedKey: after the key is deleted (every
// version's material erased), a cached data key still seals: the caller
// gets an envelope that can never be opened.
func TestAttackCacheSealsUnderDeletedKey(t *testing.T) {
	ctx := t.Context()
	clk := clockwork.NewFakeClock()
	k, err := keyring.New(ctx, keyring.WithClock(clk))
	require.NoError(t, err)
	c, err := envelope.NewCache()
	require.NoError(t, err)
	_, err = envelope.Seal(ctx, k, []byte("first"), envelope.WithCache(c))
	require.NoError(t, err)
	_, err = k.ScheduleKeyDeletion(ctx, keyring.MinDeletionWindow)
	require.NoError(t, err)
	clk.Advance(keyring.MinDeletionWindow + time.Hour)
	deleted, err := k.DeleteIfDue(ctx)
	require.NoError(t, err)
	require.True(t, deleted)
	sealed, err := envelope.Seal(ctx, k, []byte("lost forever"), envelope.WithCache(c))
	assert.Error(t, err, "Seal under a deleted key must fail, not return an envelope nothing can open")
	if err == nil {
		_, err = envelope.Open(ctx, k, sealed)
		t.Logf("the envelope Seal returned opens with: %v", err)
	}
}

// TestAttackCachedHeadersDoNotSwap: envelopes sealed with one cached data
// key share the blob; their headers (salt, commitment) and payloads must
// not be interchangeable.
func TestAttackCachedHeadersDoNotSwap(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	c, err := envelope.NewCache()
	require.NoError(t, err)
	a, err := envelope.Seal(ctx, k, []byte("pay alice 10"), envelope.WithCache(c))
	require.NoError(t, err)
	b, err := envelope.Seal(ctx, k, []byte("pay mallory 9"), envelope.WithCache(c))
	require.NoError(t, err)
	ha, err := envelope.Inspect(a)
	require.NoError(t, err)
	hb, err := envelope.Inspect(b)
	require.NoError(t, err)
	require.Equal(t, ha.DataKeyBlob, hb.DataKeyBlob, "one cached data key")
	forged := append(bytes.Clone(a[:ha.Size]), b[hb.Size:]...)
	e1, e2 := openBoth(t, k, forged)
	assert.ErrorIs(t, e1, keyring.ErrDecrypt)
	assert.ErrorIs(t, e2, keyring.ErrDecrypt)
}

// TestAttackSuiteSwitch: the suite byte is bound to the payload key and
// the commitment; switching it (with or without recomputing nothing else)
// fails before any plaintext.
func TestAttackSuiteSwitch(t *testing.T) {
	testvec.SkipInFIPSMode(t, "switches between the default suites; the approved suite's downgrade is a vector (envelope-approved/suite_downgraded)")
	ctx := t.Context()
	k := newKey(t)
	for _, n := range []int{10, 5000} {
		sealed, err := envelope.Seal(ctx, k, random(n))
		require.NoError(t, err)
		b := bytes.Clone(sealed)
		b[5] ^= format.SuiteAES256GCM ^ format.SuiteChaCha20Poly1305
		e1, e2 := openBoth(t, k, b)
		assert.ErrorIs(t, e1, keyring.ErrDecrypt, "%d bytes", n)
		assert.ErrorIs(t, e2, keyring.ErrDecrypt, "%d bytes", n)
		_, err = envelope.Rewrap(ctx, k, b)
		assert.ErrorIs(t, err, keyring.ErrDecrypt, "Rewrap checks the commitment first")
	}
}

// TestAttackRewrapDoesNotLaunderRelabel: an envelope relabelled to
// context B with a ReEncrypted blob must not become valid under B by
// passing through Rewrap (which holds the key).
func TestAttackRewrapDoesNotLaunderRelabel(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	a := map[string]string{"tenant": "a"}
	b := map[string]string{"tenant": "b"}
	sealed, err := envelope.Seal(ctx, k, []byte("tenant a's record"), envelope.WithEncryptionContext(a))
	require.NoError(t, err)
	h, err := envelope.Inspect(sealed)
	require.NoError(t, err)
	blobB, err := k.ReEncrypt(ctx, h.DataKeyBlob, keyring.WithEncryptionContext(a), keyring.WithDestinationEncryptionContext(b))
	require.NoError(t, err)
	ecB, err := format.AppendContext(nil, b)
	require.NoError(t, err)
	forged := relabel(t, sealed, h, ecB, blobB)
	out, err := envelope.Rewrap(ctx, k, forged)
	assert.ErrorIs(t, err, keyring.ErrDecrypt)
	assert.Nil(t, out)

	// The same with the whole header (salt and commitment too) of an
	// envelope the attacker sealed under B.
	mine, err := envelope.Seal(ctx, k, []byte("x"), envelope.WithEncryptionContext(b))
	require.NoError(t, err)
	hm, err := envelope.Inspect(mine)
	require.NoError(t, err)
	spliced := append(bytes.Clone(mine[:hm.Size]), sealed[h.Size:]...)
	e1, e2 := openBoth(t, k, spliced, envelope.WithEncryptionContext(b))
	assert.ErrorIs(t, e1, keyring.ErrDecrypt)
	assert.ErrorIs(t, e2, keyring.ErrDecrypt)
}

// TestAttackWrongSizeDataKey: a holder of Encrypt rights wraps a data key
// of another size under the header's context and splices it in; Open
// refuses it as ErrDecrypt (a documented error), not a panic.
func TestAttackWrongSizeDataKey(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	ec := map[string]string{"k": "v"}
	sealed, err := envelope.Seal(ctx, k, []byte("hello"), envelope.WithEncryptionContext(ec))
	require.NoError(t, err)
	h, err := envelope.Inspect(sealed)
	require.NoError(t, err)
	ecEnc, err := format.AppendContext(nil, ec)
	require.NoError(t, err)
	for _, n := range []int{1, 31, 33, 64, 4096} {
		blob, err := k.Encrypt(ctx, random(n), keyring.WithEncryptionContext(ec))
		require.NoError(t, err)
		forged := relabel(t, sealed, h, ecEnc, blob)
		e1, e2 := openBoth(t, k, forged)
		assert.ErrorIs(t, e1, keyring.ErrDecrypt, "%d-byte data key", n)
		assert.ErrorIs(t, e2, keyring.ErrDecrypt, "%d-byte data key", n)
		_, err = envelope.Rewrap(ctx, k, forged)
		assert.ErrorIs(t, err, keyring.ErrDecrypt, "%d-byte data key", n)
	}
}
