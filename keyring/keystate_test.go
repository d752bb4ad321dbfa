package keyring_test

import (
	"sync"
	"testing"
	"time"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const day = 24 * time.Hour

func TestDisableEnableKey(t *testing.T) {
	ctx := t.Context()
	k, clk := newKey(t, keyring.WithRotationPeriod(90*day))
	blob, err := k.Encrypt(ctx, []byte("before"))
	require.NoError(t, err)

	require.NoError(t, k.DisableKey(ctx))
	require.NoError(t, k.DisableKey(ctx), "disabling a disabled key does nothing")
	md, err := k.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, keyring.KeyDisabled, md.KeyState)
	assert.Equal(t, "Disabled", md.KeyState.String())

	_, err = k.GenerateDataKey(ctx)
	require.ErrorIs(t, err, keyring.ErrKeyDisabled)
	_, err = k.Encrypt(ctx, []byte("x"))
	require.ErrorIs(t, err, keyring.ErrKeyDisabled)
	_, err = k.Decrypt(ctx, blob)
	require.ErrorIs(t, err, keyring.ErrKeyDisabled)
	_, err = k.ReEncrypt(ctx, blob)
	require.ErrorIs(t, err, keyring.ErrKeyDisabled)
	_, err = k.Rotate(ctx)
	require.ErrorIs(t, err, keyring.ErrKeyDisabled, "no on-demand rotation of a disabled key")
	require.ErrorIs(t, k.EnableRotation(ctx, day), keyring.ErrKeyDisabled)

	// Automatic rotation pauses, and catches up once when re-enabled.
	clk.Advance(200 * day)
	_, rotated, err := k.RotateIfDue(ctx)
	require.NoError(t, err)
	assert.False(t, rotated, "a disabled key does not rotate")
	require.NoError(t, k.EnableKey(ctx))
	v, rotated, err := k.RotateIfDue(ctx)
	require.NoError(t, err)
	assert.True(t, rotated, "a re-enabled key past due rotates at once")
	assert.Equal(t, uint32(2), v.Number)

	pt, err := k.Decrypt(ctx, blob)
	require.NoError(t, err)
	assert.Equal(t, []byte("before"), pt)
}

func TestKeyDeletion(t *testing.T) {
	ctx := t.Context()
	st := durable{memstore.New()}
	rk := newRootKey(t, 1)
	k, clk := newKey(t, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithAlias("alias/doomed"),
		keyring.WithRotationPeriod(10*day), keyring.WithDescription("to be deleted"))
	blob, err := k.Encrypt(ctx, []byte("secret"))
	require.NoError(t, err)

	for _, w := range []time.Duration{6 * day, 31 * day, -day} {
		_, err := k.ScheduleKeyDeletion(ctx, w)
		require.ErrorIs(t, err, keyring.ErrInvalidArgument, "window %v", w)
	}
	md, err := k.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, keyring.KeyEnabled, md.KeyState, "a refused window changes nothing")

	at, err := k.ScheduleKeyDeletion(ctx, 0)
	require.NoError(t, err)
	assert.Equal(t, epoch.Add(30*day), at, "the default window is 30 days")
	_, err = k.ScheduleKeyDeletion(ctx, 7*day)
	require.ErrorIs(t, err, keyring.ErrKeyPendingDeletion)
	_, err = k.Decrypt(ctx, blob)
	require.ErrorIs(t, err, keyring.ErrKeyPendingDeletion)
	_, err = k.GenerateDataKey(ctx)
	require.ErrorIs(t, err, keyring.ErrKeyPendingDeletion)
	require.ErrorIs(t, k.EnableKey(ctx), keyring.ErrKeyPendingDeletion)
	require.ErrorIs(t, k.AddAlias(ctx, "alias/other"), keyring.ErrKeyPendingDeletion)
	require.ErrorIs(t, k.SetDescription(ctx, "x"), keyring.ErrKeyPendingDeletion)

	// Cancelling leaves the key disabled, as AWS KMS does.
	require.NoError(t, k.CancelKeyDeletion(ctx))
	md, err = k.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, keyring.KeyDisabled, md.KeyState)
	assert.True(t, md.DeletionDate.IsZero())
	require.ErrorIs(t, k.CancelKeyDeletion(ctx), keyring.ErrInvalidArgument, "nothing to cancel")

	at, err = k.ScheduleKeyDeletion(ctx, 7*day)
	require.NoError(t, err)
	clk.Advance(7*day - time.Second)
	deleted, err := k.DeleteIfDue(ctx)
	require.NoError(t, err)
	assert.False(t, deleted, "not yet due")
	clk.Advance(time.Second)
	deleted, err = k.DeleteIfDue(ctx)
	require.NoError(t, err)
	assert.True(t, deleted)

	// A tombstone: it loads and describes, but nothing opens and the alias
	// is free.
	l, err := keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(rk))
	require.NoError(t, err)
	md, err = l.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, keyring.KeyDeleted, md.KeyState)
	assert.Equal(t, at, md.DeletionDate)
	assert.Empty(t, md.Aliases)
	assert.Equal(t, "to be deleted", md.Description)
	assert.False(t, md.RotationEnabled)
	for _, v := range md.Versions {
		assert.Equal(t, keyring.VersionDestroyed, v.State)
	}
	_, err = l.Decrypt(ctx, blob)
	require.ErrorIs(t, err, keyring.ErrKeyNotFound)
	vs, err := st.Versions(ctx, k.ID(), 0)
	require.NoError(t, err)
	for _, v := range vs {
		assert.NotContains(t, string(v.Data), "material", "material erased from the store")
	}
	_, err = keyring.Load(ctx, st, "alias/doomed", keyring.WithRootKey(rk))
	require.ErrorIs(t, err, keyring.ErrKeyNotFound)
	_, err = keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithAlias("alias/doomed"))
	require.NoError(t, err, "the alias is free for another key")
}

func TestKeyDescriptionAndPolicy(t *testing.T) {
	ctx := t.Context()
	k, _ := newKey(t, keyring.WithDescription("orders"))
	md, err := k.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, "orders", md.Description)
	require.NoError(t, k.SetDescription(ctx, "orders v2"))
	md, err = k.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, "orders v2", md.Description)
	require.ErrorIs(t, k.SetDescription(ctx, string([]byte{0xff})), keyring.ErrInvalidArgument)

	assert.Empty(t, k.KeyPolicy())
	policy := `{"Version":"2012-10-17","Statement":[]}`
	require.NoError(t, k.PutKeyPolicy(ctx, policy))
	assert.Equal(t, policy, k.KeyPolicy())
	require.ErrorIs(t, k.PutKeyPolicy(ctx, "{not json"), keyring.ErrInvalidArgument)
	assert.Equal(t, policy, k.KeyPolicy(), "a refused policy changes nothing")

	p, _ := newKey(t, keyring.WithKeyPolicy(policy))
	assert.Equal(t, policy, p.KeyPolicy(), "WithKeyPolicy sets the policy in the creating write")
	_, err = keyring.New(ctx, keyring.WithKeyPolicy("[1,"))
	require.ErrorIs(t, err, keyring.ErrInvalidArgument)
}

func TestLoadOrNew(t *testing.T) {
	ctx := t.Context()
	st := durable{memstore.New()}
	rk := newRootKey(t, 1)
	const replicas = 8
	ids := make([]string, replicas)
	created := make([]bool, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() {
			k, c, err := keyring.LoadOrNew(ctx, "alias/orders", keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithRotationPeriod(90*day))
			require.NoError(t, err)
			ids[i], created[i] = k.ID(), c
		})
	}
	wg.Wait()
	all, err := keyring.List(ctx, st)
	require.NoError(t, err)
	require.Len(t, all, 1, "replicas starting at once end with one key")
	n := 0
	for i := range replicas {
		assert.Equal(t, all[0], ids[i])
		if created[i] {
			n++
		}
	}
	assert.Equal(t, 1, n, "exactly one replica created it")

	_, _, err = keyring.LoadOrNew(ctx, "orders", keyring.WithStore(st), keyring.WithRootKey(rk))
	require.ErrorIs(t, err, keyring.ErrInvalidArgument)
}

func TestListAliases(t *testing.T) {
	ctx := t.Context()
	st := durable{memstore.New()}
	rk := newRootKey(t, 1)
	got, err := keyring.ListAliases(ctx, st, keyring.WithRootKey(rk))
	require.NoError(t, err)
	assert.Empty(t, got)
	a, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithAlias("alias/b"), keyring.WithAlias("alias/a"))
	require.NoError(t, err)
	b, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithAlias("alias/c"))
	require.NoError(t, err)
	got, err = keyring.ListAliases(ctx, st, keyring.WithRootKey(rk))
	require.NoError(t, err)
	assert.Equal(t, []keyring.AliasEntry{{"alias/a", a.ID()}, {"alias/b", a.ID()}, {"alias/c", b.ID()}}, got)
}

func TestAliasSyntax(t *testing.T) {
	ctx := t.Context()
	k, _ := newKey(t)
	for _, bad := range []string{"orders", "alias/", "alias/no spaces", "alias/aws/s3"} {
		err := k.AddAlias(ctx, bad)
		require.ErrorIs(t, err, keyring.ErrInvalidArgument, bad)
		assert.Contains(t, err.Error(), "alias/", "the message says what an alias looks like")
		_, err = keyring.New(ctx, keyring.WithAlias(bad))
		require.ErrorIs(t, err, keyring.ErrInvalidArgument, bad)
	}
	require.NoError(t, k.AddAlias(ctx, "alias/team/orders_v2-x"))
}

func TestNumberOfBytes(t *testing.T) {
	ctx := t.Context()
	k, _ := newKey(t)
	for _, n := range []int{1, 16, 64, keyring.MaxDataKeySize} {
		dk, err := k.GenerateDataKey(ctx, keyring.WithNumberOfBytes(n))
		require.NoError(t, err)
		assert.Len(t, dk.Plaintext, n)
		pt, err := k.Decrypt(ctx, dk.Ciphertext)
		require.NoError(t, err)
		assert.Equal(t, dk.Plaintext, pt)
	}
	for _, n := range []int{-1, keyring.MaxDataKeySize + 1} {
		_, err := k.GenerateDataKey(ctx, keyring.WithNumberOfBytes(n))
		require.ErrorIs(t, err, keyring.ErrInvalidArgument, "%d bytes", n)
	}
	dk, err := k.GenerateDataKey(ctx, keyring.WithNumberOfBytes(64), keyring.WithKeySpec(keyring.AES128))
	require.NoError(t, err)
	assert.Len(t, dk.Plaintext, 16, "the last option given wins")
}
