package keyring_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newKey(t *testing.T, opts ...keyring.Option) (*keyring.Keyring, *clockwork.FakeClock) {
	t.Helper()
	clk := clockwork.NewFakeClockAt(epoch)
	k, err := keyring.New(t.Context(), append([]keyring.Option{keyring.WithClock(clk)}, opts...)...)
	require.NoError(t, err)
	return k, clk
}

func TestNewDescribe(t *testing.T) {
	k, _ := newKey(t, keyring.WithAlias("alias/orders"))
	md, err := k.Describe(t.Context())
	require.NoError(t, err)
	assert.Equal(t, k.ID(), md.KeyID)
	assert.Len(t, k.ID(), 36, "key ID is a UUID string")
	assert.Equal(t, []string{"alias/orders"}, md.Aliases)
	assert.Equal(t, epoch, md.CreatedAt)
	assert.Equal(t, uint32(1), md.CurrentVersion)
	assert.Equal(t, []keyring.Version{{Number: 1, CreatedAt: epoch, Origin: keyring.OriginInitial, State: keyring.VersionEnabled}}, md.Versions)
	assert.False(t, md.RotationEnabled)
	assert.Zero(t, md.RotationPeriod)
	assert.True(t, md.LastRotatedAt.IsZero(), "creation is not a rotation")
	assert.True(t, md.NextRotationAt.IsZero())
}

func TestGenerateDataKeyRoundTrip(t *testing.T) {
	ctx := t.Context()
	k, _ := newKey(t)
	ec := map[string]string{"tenant": "acme", "table": "orders"}
	dk, err := k.GenerateDataKey(ctx, keyring.WithEncryptionContext(ec))
	require.NoError(t, err)
	assert.Equal(t, k.ID(), dk.KeyID)
	assert.Equal(t, uint32(1), dk.Version)
	assert.Len(t, dk.Plaintext, 32)

	id, v, err := keyring.ParseCiphertext(dk.Ciphertext)
	require.NoError(t, err)
	assert.Equal(t, k.ID(), id)
	assert.Equal(t, uint32(1), v)

	pt, err := k.Decrypt(ctx, dk.Ciphertext, keyring.WithEncryptionContext(ec))
	require.NoError(t, err)
	assert.Equal(t, dk.Plaintext, pt)

	dk2, err := k.GenerateDataKey(ctx, keyring.WithKeySpec(keyring.AES128))
	require.NoError(t, err)
	assert.Len(t, dk2.Plaintext, 16)
	assert.NotEqual(t, dk.Plaintext[:16], dk2.Plaintext, "data keys are fresh")

	wp, err := k.GenerateDataKeyWithoutPlaintext(ctx)
	require.NoError(t, err)
	assert.Nil(t, wp.Plaintext)
	pt, err = k.Decrypt(ctx, wp.Ciphertext)
	require.NoError(t, err)
	assert.Len(t, pt, 32)
}

func TestEncryptionContextBinding(t *testing.T) {
	ctx := t.Context()
	k, _ := newKey(t)
	blob, err := k.Encrypt(ctx, []byte("secret"), keyring.WithEncryptionContext(map[string]string{"ab": "c"}))
	require.NoError(t, err)
	for _, ec := range []map[string]string{
		{"a": "bc"}, // same concatenation, different pairs
		{"ab": "c", "x": ""},
		{"ab": "C"},
		nil, // missing
	} {
		_, err := k.Decrypt(ctx, blob, keyring.WithEncryptionContext(ec))
		assert.ErrorIs(t, err, keyring.ErrDecrypt, "context %v must not decrypt", ec)
	}
	pt, err := k.Decrypt(ctx, blob, keyring.WithEncryptionContext(map[string]string{"ab": "c"}))
	require.NoError(t, err)
	assert.Equal(t, "secret", string(pt))

	_, err = k.Encrypt(ctx, []byte("x"), keyring.WithEncryptionContext(map[string]string{"": "v"}))
	assert.ErrorIs(t, err, keyring.ErrInvalidArgument, "empty context key is rejected")
}

func TestEncryptLimits(t *testing.T) {
	ctx := t.Context()
	k, _ := newKey(t)
	_, err := k.Encrypt(ctx, nil)
	assert.ErrorIs(t, err, keyring.ErrInvalidArgument)
	_, err = k.Encrypt(ctx, make([]byte, 4097))
	assert.ErrorIs(t, err, keyring.ErrInvalidArgument)
	blob, err := k.Encrypt(ctx, make([]byte, 4096))
	require.NoError(t, err)
	pt, err := k.Decrypt(ctx, blob)
	require.NoError(t, err)
	assert.Len(t, pt, 4096)
}

func TestDecryptErrors(t *testing.T) {
	ctx := t.Context()
	k, _ := newKey(t)
	other, _ := newKey(t)
	blob, err := k.Encrypt(ctx, []byte("hello"))
	require.NoError(t, err)

	_, err = other.Decrypt(ctx, blob)
	assert.ErrorIs(t, err, keyring.ErrWrongKey)

	forged := append([]byte(nil), blob...)
	forged[20] = 9 // version 9 (big-endian uint32 at bytes 17..20)
	_, err = k.Decrypt(ctx, forged)
	assert.ErrorIs(t, err, keyring.ErrUnknownVersion)

	for i := range len(blob) * 8 {
		b := append([]byte(nil), blob...)
		b[i/8] ^= 1 << (i % 8)
		pt, err := k.Decrypt(ctx, b)
		require.Error(t, err, "bit %d flipped must fail", i)
		assert.Nil(t, pt)
	}
	for n := range len(blob) {
		_, err := k.Decrypt(ctx, blob[:n])
		require.Error(t, err, "truncation to %d bytes must fail", n)
	}
	_, err = k.Decrypt(ctx, append(blob, 0))
	assert.ErrorIs(t, err, keyring.ErrDecrypt, "trailing byte")
	_, err = k.Decrypt(ctx, nil)
	assert.ErrorIs(t, err, keyring.ErrMalformed)
}

func TestRotateOnDemand(t *testing.T) {
	ctx := t.Context()
	k, clk := newKey(t, keyring.WithRotationPeriod(365*24*time.Hour))
	old, err := k.GenerateDataKey(ctx)
	require.NoError(t, err)

	clk.Advance(time.Hour)
	v, err := k.Rotate(ctx)
	require.NoError(t, err)
	assert.Equal(t, keyring.Version{Number: 2, CreatedAt: epoch.Add(time.Hour), Origin: keyring.OriginOnDemand, State: keyring.VersionEnabled}, v)

	md, err := k.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint32(2), md.CurrentVersion)
	assert.Equal(t, epoch.Add(time.Hour), md.LastRotatedAt)
	assert.Equal(t, epoch.Add(365*24*time.Hour), md.NextRotationAt, "on-demand rotation does not move the schedule")

	dk, err := k.GenerateDataKey(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint32(2), dk.Version)
	assert.Equal(t, old.KeyID, dk.KeyID)

	pt, err := k.Decrypt(ctx, old.Ciphertext)
	require.NoError(t, err, "old versions still decrypt")
	assert.Equal(t, old.Plaintext, pt)

	// On-demand rotation does not enable automatic rotation.
	plain, _ := newKey(t)
	_, err = plain.Rotate(ctx)
	require.NoError(t, err)
	md, err = plain.Describe(ctx)
	require.NoError(t, err)
	assert.False(t, md.RotationEnabled)
	assert.True(t, md.NextRotationAt.IsZero())
}

func TestRotateIfDue(t *testing.T) {
	ctx := t.Context()
	const day = 24 * time.Hour
	k, clk := newKey(t)
	_, rotated, err := k.RotateIfDue(ctx)
	require.NoError(t, err)
	assert.False(t, rotated, "rotation disabled")

	require.NoError(t, k.EnableRotation(ctx, 90*day))
	clk.Advance(90*day - time.Nanosecond)
	v, rotated, err := k.RotateIfDue(ctx)
	require.NoError(t, err)
	assert.False(t, rotated, "not yet due")
	assert.Equal(t, uint32(1), v.Number)

	clk.Advance(time.Nanosecond)
	v, rotated, err = k.RotateIfDue(ctx)
	require.NoError(t, err)
	assert.True(t, rotated, "due exactly at NextRotationAt")
	assert.Equal(t, keyring.OriginAutomatic, v.Origin)
	assert.Equal(t, uint32(2), v.Number)
	assert.Equal(t, epoch.Add(180*day), k.NextRotationAt(), "next due one period after the previous due time")

	// Downtime of ten periods: one catch-up rotation, then now + period.
	clk.Advance(1000 * day)
	_, rotated, err = k.RotateIfDue(ctx)
	require.NoError(t, err)
	assert.True(t, rotated)
	_, rotated, err = k.RotateIfDue(ctx)
	require.NoError(t, err)
	assert.False(t, rotated, "no burst after downtime")
	md, err := k.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint32(3), md.CurrentVersion)
	assert.Equal(t, clk.Now().Add(90*day), md.NextRotationAt)
	assert.Equal(t, clk.Now(), md.LastRotatedAt)

	require.NoError(t, k.DisableRotation(ctx))
	md, err = k.Describe(ctx)
	require.NoError(t, err)
	assert.False(t, md.RotationEnabled)
	assert.Zero(t, md.RotationPeriod)
	assert.True(t, md.NextRotationAt.IsZero())
	clk.Advance(1000 * day)
	_, rotated, err = k.RotateIfDue(ctx)
	require.NoError(t, err)
	assert.False(t, rotated)
}

func TestInvalidPeriods(t *testing.T) {
	k, _ := newKey(t)
	for _, d := range []time.Duration{0, -time.Second} {
		assert.ErrorIs(t, k.EnableRotation(t.Context(), d), keyring.ErrInvalidArgument)
		_, err := keyring.New(t.Context(), keyring.WithRotationPeriod(d))
		assert.ErrorIs(t, err, keyring.ErrInvalidArgument)
	}
}

func TestWithVersionAndReEncrypt(t *testing.T) {
	ctx := t.Context()
	k, _ := newKey(t)
	ec := map[string]string{"purpose": "test"}
	blob1, err := k.Encrypt(ctx, []byte("payload"), keyring.WithEncryptionContext(ec))
	require.NoError(t, err)
	_, err = k.Rotate(ctx)
	require.NoError(t, err)

	dk, err := k.GenerateDataKey(ctx, keyring.WithVersion(1))
	require.NoError(t, err)
	assert.Equal(t, uint32(1), dk.Version)
	_, err = k.GenerateDataKey(ctx, keyring.WithVersion(7))
	assert.ErrorIs(t, err, keyring.ErrUnknownVersion)

	blob2, err := k.ReEncrypt(ctx, blob1, keyring.WithEncryptionContext(ec))
	require.NoError(t, err)
	_, v, err := keyring.ParseCiphertext(blob2)
	require.NoError(t, err)
	assert.Equal(t, uint32(2), v, "re-encrypted to the current version")
	pt, err := k.Decrypt(ctx, blob2, keyring.WithEncryptionContext(ec))
	require.NoError(t, err, "the source context is kept")
	assert.Equal(t, "payload", string(pt))

	dest := map[string]string{"purpose": "archive"}
	blob3, err := k.ReEncrypt(ctx, blob1, keyring.WithEncryptionContext(ec), keyring.WithDestinationEncryptionContext(dest))
	require.NoError(t, err)
	_, err = k.Decrypt(ctx, blob3, keyring.WithEncryptionContext(ec))
	assert.ErrorIs(t, err, keyring.ErrDecrypt)
	pt, err = k.Decrypt(ctx, blob3, keyring.WithEncryptionContext(dest))
	require.NoError(t, err)
	assert.Equal(t, "payload", string(pt))

	_, err = k.ReEncrypt(ctx, blob1)
	assert.ErrorIs(t, err, keyring.ErrDecrypt, "ReEncrypt needs the source context")
}

func TestLoad(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	k, _ := newKey(t, keyring.WithStore(st), keyring.WithAlias("alias/a"))
	blob, err := k.Encrypt(ctx, []byte("x"))
	require.NoError(t, err)

	for _, name := range []string{k.ID(), "alias/a"} {
		l, err := keyring.Load(ctx, st, name)
		require.NoError(t, err)
		assert.Equal(t, k.ID(), l.ID())
		pt, err := l.Decrypt(ctx, blob)
		require.NoError(t, err)
		assert.Equal(t, "x", string(pt))
	}
	_, err = keyring.Load(ctx, st, "alias/missing")
	assert.ErrorIs(t, err, keyring.ErrKeyNotFound)
	for _, o := range []keyring.Option{keyring.WithAlias("alias/b"), keyring.WithRotationPeriod(time.Hour), keyring.WithStore(st)} {
		_, err = keyring.Load(ctx, st, k.ID(), o)
		assert.ErrorIs(t, err, keyring.ErrInvalidArgument, "creation-only options are rejected by Load")
	}
	_, err = keyring.New(ctx, keyring.WithStore(st), keyring.WithAlias("alias/a"))
	assert.ErrorIs(t, err, store.ErrExists, "aliases are unique")
	_, err = keyring.New(ctx, keyring.WithAlias("orders"))
	assert.ErrorIs(t, err, keyring.ErrInvalidArgument)
}

func TestReloadOnUnknownVersion(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	clk := clockwork.NewFakeClockAt(epoch)
	a, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithClock(clk))
	require.NoError(t, err)
	b, err := keyring.Load(ctx, st, a.ID(), keyring.WithClock(clk))
	require.NoError(t, err)

	_, err = a.Rotate(ctx)
	require.NoError(t, err)
	blob, err := a.Encrypt(ctx, []byte("v2"))
	require.NoError(t, err)
	pt, err := b.Decrypt(ctx, blob)
	require.NoError(t, err, "b reloads to find version 2")
	assert.Equal(t, "v2", string(pt))

	// Repeated unknown versions are rate-limited: version 3 made right
	// after the reload is not seen until the interval passes.
	_, err = a.Rotate(ctx)
	require.NoError(t, err)
	blob3, err := a.Encrypt(ctx, []byte("v3"))
	require.NoError(t, err)
	_, err = b.Decrypt(ctx, blob3)
	assert.ErrorIs(t, err, keyring.ErrUnknownVersion, "second reload within the interval is skipped")
	clk.Advance(keyring.DefaultReloadInterval)
	pt, err = b.Decrypt(ctx, blob3)
	require.NoError(t, err)
	assert.Equal(t, "v3", string(pt))

	dk, err := b.GenerateDataKey(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint32(3), dk.Version, "a reload moves encryption to the new current version")
}

func TestConcurrentHandles(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	a, err := keyring.New(ctx, keyring.WithStore(st))
	require.NoError(t, err)
	handles := []*keyring.Keyring{a}
	for range 3 {
		h, err := keyring.Load(ctx, st, a.ID(), keyring.WithReloadInterval(0))
		require.NoError(t, err)
		handles = append(handles, h)
	}
	const perHandle = 20
	var wg sync.WaitGroup
	blobs := make(chan []byte, len(handles)*perHandle)
	for _, h := range handles {
		wg.Go(func() {
			for range perHandle {
				_, err := h.Rotate(ctx)
				assert.NoError(t, err)
				dk, err := h.GenerateDataKey(ctx)
				assert.NoError(t, err)
				blobs <- dk.Ciphertext
			}
		})
	}
	wg.Wait()
	close(blobs)
	md, err := a.Describe(ctx)
	require.NoError(t, err)
	require.Equal(t, uint32(1+len(handles)*perHandle), md.CurrentVersion, "every rotation got its own version")
	for i, v := range md.Versions {
		assert.Equal(t, uint32(i+1), v.Number, "versions are dense")
	}
	for blob := range blobs {
		for _, h := range handles {
			_, err := h.Decrypt(ctx, blob)
			require.NoError(t, err, "every handle opens every blob")
		}
	}
}

func TestDataKeyFormattingRedacts(t *testing.T) {
	k, _ := newKey(t)
	dk, err := k.GenerateDataKey(t.Context())
	require.NoError(t, err)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		for _, arg := range []any{dk, *dk} {
			out := fmt.Sprintf(verb, arg)
			assert.NotContains(t, out, fmt.Sprintf("%x", dk.Plaintext), verb)
			assert.NotContains(t, out, fmt.Sprint(dk.Plaintext[:8]), verb)
			assert.NotContains(t, out, string(dk.Plaintext), verb)
		}
	}
	dk.Destroy()
	assert.Nil(t, dk.Plaintext)
}

func TestSet(t *testing.T) {
	ctx := t.Context()
	a, _ := newKey(t)
	b, _ := newKey(t)
	c, _ := newKey(t)
	set := keyring.NewSet(a, b)
	for _, k := range []*keyring.Keyring{a, b} {
		blob, err := k.Encrypt(ctx, []byte(k.ID()))
		require.NoError(t, err)
		pt, err := set.Decrypt(ctx, blob)
		require.NoError(t, err)
		assert.Equal(t, k.ID(), string(pt))
	}
	blob, err := c.Encrypt(ctx, []byte("x"))
	require.NoError(t, err)
	_, err = set.Decrypt(ctx, blob)
	assert.ErrorIs(t, err, keyring.ErrKeyNotFound)
}

func TestRootKey(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	rk, err := keyring.NewRootKey(make([]byte, 32))
	require.NoError(t, err)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)
	_, err = keyring.Load(ctx, st, k.ID())
	assert.ErrorIs(t, err, keyring.ErrRootKey, "another root key cannot load the key")
	wrong, err := keyring.NewRootKey(append(make([]byte, 31), 1))
	require.NoError(t, err)
	_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(wrong))
	assert.ErrorIs(t, err, keyring.ErrRootKey)
	_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(rk))
	require.NoError(t, err)
	_, err = keyring.NewRootKey(make([]byte, 16))
	assert.ErrorIs(t, err, keyring.ErrInvalidArgument)
}

func TestWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	st := memstore.New()
	clk := clockwork.NewFakeClockAt(epoch)
	a, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithClock(clk))
	require.NoError(t, err)
	b, err := keyring.Load(ctx, st, a.ID(), keyring.WithClock(clk))
	require.NoError(t, err)
	done := make(chan error)
	go func() { done <- b.Watch(ctx, time.Minute) }()

	_, err = a.Rotate(ctx)
	require.NoError(t, err)
	require.NoError(t, clk.BlockUntilContext(ctx, 1))
	dk, err := b.GenerateDataKey(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint32(1), dk.Version, "not yet refreshed")
	clk.Advance(time.Minute)
	require.NoError(t, clk.BlockUntilContext(ctx, 1), "Watch reloaded and sleeps again")
	dk, err = b.GenerateDataKey(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint32(2), dk.Version, "encryption moved to the new version within one interval")
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	assert.ErrorIs(t, b.Watch(t.Context(), 0), keyring.ErrInvalidArgument)
}
