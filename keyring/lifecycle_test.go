package keyring_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDisableEnableVersion(t *testing.T) {
	ctx := t.Context()
	k, _ := newKey(t)
	blob, err := k.Encrypt(ctx, []byte("v1"))
	require.NoError(t, err)
	assert.ErrorIs(t, k.DisableVersion(ctx, 1), keyring.ErrInvalidArgument, "the current version cannot be disabled")
	_, err = k.Rotate(ctx)
	require.NoError(t, err)

	require.NoError(t, k.DisableVersion(ctx, 1))
	require.NoError(t, k.DisableVersion(ctx, 1), "disabling twice does nothing")
	_, err = k.Decrypt(ctx, blob)
	assert.ErrorIs(t, err, keyring.ErrVersionDisabled)
	_, err = k.GenerateDataKey(ctx, keyring.WithVersion(1))
	assert.ErrorIs(t, err, keyring.ErrVersionDisabled)
	md, err := k.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, keyring.VersionDisabled, md.Versions[0].State)

	require.NoError(t, k.EnableVersion(ctx, 1))
	pt, err := k.Decrypt(ctx, blob)
	require.NoError(t, err)
	assert.Equal(t, "v1", string(pt))
	assert.ErrorIs(t, k.DisableVersion(ctx, 9), keyring.ErrUnknownVersion)
}

func TestVersionDestruction(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	k, clk := newKey(t, keyring.WithStore(st))
	blob, err := k.Encrypt(ctx, []byte("v1"))
	require.NoError(t, err)
	_, err = k.ScheduleVersionDestruction(ctx, 1, 0)
	assert.ErrorIs(t, err, keyring.ErrInvalidArgument, "the current version cannot be destroyed")
	_, err = k.Rotate(ctx)
	require.NoError(t, err)

	at, err := k.ScheduleVersionDestruction(ctx, 1, 0)
	require.NoError(t, err)
	assert.Equal(t, clk.Now().Add(keyring.DefaultDestructionWait), at, "30 days by default")
	assert.Equal(t, at, k.NextDestructionAt())
	_, err = k.Decrypt(ctx, blob)
	assert.ErrorIs(t, err, keyring.ErrVersionDisabled, "pending destruction is unusable")
	assert.ErrorIs(t, k.EnableVersion(ctx, 1), keyring.ErrInvalidArgument, "cancel first")

	require.NoError(t, k.CancelVersionDestruction(ctx, 1))
	md, err := k.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, keyring.VersionDisabled, md.Versions[0].State, "cancelled destruction leaves the version disabled")
	require.NoError(t, k.EnableVersion(ctx, 1))

	at, err = k.ScheduleVersionDestruction(ctx, 1, time.Hour)
	require.NoError(t, err)
	destroyed, err := k.DestroyDueVersions(ctx)
	require.NoError(t, err)
	assert.Empty(t, destroyed, "not yet due")
	clk.Advance(time.Hour)
	destroyed, err = k.DestroyDueVersions(ctx)
	require.NoError(t, err)
	require.Len(t, destroyed, 1)
	assert.Equal(t, keyring.VersionDestroyed, destroyed[0].State)
	assert.True(t, k.NextDestructionAt().IsZero())

	_, err = k.Decrypt(ctx, blob)
	assert.ErrorIs(t, err, keyring.ErrVersionDestroyed)
	assert.ErrorIs(t, k.EnableVersion(ctx, 1), keyring.ErrVersionDestroyed)
	assert.ErrorIs(t, k.CancelVersionDestruction(ctx, 1), keyring.ErrVersionDestroyed)

	// The material is gone from the store, the metadata stays.
	vs, err := st.Versions(ctx, k.ID(), 0)
	require.NoError(t, err)
	assert.NotContains(t, string(vs[0].Data), "material")
	assert.Contains(t, string(vs[0].Data), `"state":"destroyed"`)
	l, err := keyring.Load(ctx, st, k.ID())
	require.NoError(t, err)
	_, err = l.Decrypt(ctx, blob)
	assert.ErrorIs(t, err, keyring.ErrVersionDestroyed, "another handle sees the destruction")
	md, err = l.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, at, md.Versions[0].DestroyAt)
	assert.Equal(t, epoch, md.Versions[0].CreatedAt)
}

func TestListRotations(t *testing.T) {
	ctx := t.Context()
	k, clk := newKey(t, keyring.WithRotationPeriod(24*time.Hour))
	for i := range 5 {
		clk.Advance(24 * time.Hour)
		if i%2 == 0 {
			_, _, err := k.RotateIfDue(ctx)
			require.NoError(t, err)
		} else {
			_, err := k.Rotate(ctx)
			require.NoError(t, err)
		}
	}
	page, err := k.ListRotations(ctx, 0, 2)
	require.NoError(t, err)
	require.Len(t, page, 2)
	assert.Equal(t, uint32(2), page[0].Number, "version 1 is not a rotation")
	assert.Equal(t, keyring.OriginAutomatic, page[0].Origin)
	assert.Equal(t, keyring.OriginOnDemand, page[1].Origin)
	page, err = k.ListRotations(ctx, page[1].Number, 2)
	require.NoError(t, err)
	require.Len(t, page, 2)
	assert.Equal(t, uint32(4), page[0].Number)
	page, err = k.ListRotations(ctx, page[1].Number, 2)
	require.NoError(t, err)
	require.Len(t, page, 1)
	assert.Equal(t, epoch.Add(5*24*time.Hour), page[0].CreatedAt)
}

func TestAliases(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	k, _ := newKey(t, keyring.WithStore(st), keyring.WithAlias("alias/a"))
	require.NoError(t, k.AddAlias(ctx, "alias/b"))
	require.NoError(t, k.AddAlias(ctx, "alias/b"))
	l, err := keyring.Load(ctx, st, "alias/b")
	require.NoError(t, err)
	assert.Equal(t, k.ID(), l.ID())
	require.NoError(t, k.RemoveAlias(ctx, "alias/a"))
	_, err = keyring.Load(ctx, st, "alias/a")
	assert.ErrorIs(t, err, keyring.ErrKeyNotFound)
	md, err := k.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"alias/b"}, md.Aliases)
	other, err := keyring.New(ctx, keyring.WithStore(st))
	require.NoError(t, err)
	assert.Error(t, other.AddAlias(ctx, "alias/b"), "an alias belongs to one key")
	assert.ErrorIs(t, k.AddAlias(ctx, "b"), keyring.ErrInvalidArgument)
}

// recorder is an Auditor that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []keyring.AuditEvent
	fail   error
}

func (r *recorder) Audit(_ context.Context, e keyring.AuditEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return r.fail
}

func (r *recorder) ops() []keyring.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ops []keyring.Operation
	for _, e := range r.events {
		ops = append(ops, e.Operation)
	}
	return ops
}

func TestAuditEvents(t *testing.T) {
	ctx := t.Context()
	rec := &recorder{}
	k, _ := newKey(t, keyring.WithAuditor(rec))
	ec := map[string]string{"tenant": "acme"}
	dk, err := k.GenerateDataKey(ctx, keyring.WithEncryptionContext(ec))
	require.NoError(t, err)
	_, err = k.Decrypt(ctx, dk.Ciphertext) // wrong context
	require.ErrorIs(t, err, keyring.ErrDecrypt)
	_, err = k.Rotate(ctx)
	require.NoError(t, err)
	_, err = k.ReEncrypt(ctx, dk.Ciphertext, keyring.WithEncryptionContext(ec))
	require.NoError(t, err)
	require.NoError(t, k.EnableRotation(ctx, time.Hour))
	require.NoError(t, k.DisableVersion(ctx, 1))

	assert.Equal(t, []keyring.Operation{
		keyring.OpCreateKey, keyring.OpGenerateDataKey, keyring.OpDecrypt, keyring.OpRotateKey,
		keyring.OpReEncrypt, keyring.OpEnableKeyRotation, keyring.OpDisableVersion,
	}, rec.ops())
	e := rec.events[1]
	assert.Equal(t, k.ID(), e.KeyID)
	assert.Equal(t, uint32(1), e.Version, "the version GenerateDataKey used")
	assert.Equal(t, ec, e.EncryptionContext)
	assert.NoError(t, e.Err)
	assert.ErrorIs(t, rec.events[2].Err, keyring.ErrDecrypt, "failures are audited")
	assert.Equal(t, keyring.OriginOnDemand, rec.events[3].Origin)
	assert.Equal(t, uint32(1), rec.events[3].PreviousVersion)
	assert.Equal(t, uint32(2), rec.events[3].Version)
	assert.Equal(t, uint32(1), rec.events[4].PreviousVersion, "ReEncrypt names the source version")
	assert.Equal(t, uint32(2), rec.events[4].Version)
}

func TestAuditFailClosed(t *testing.T) {
	ctx := t.Context()
	rec := &recorder{}
	k, _ := newKey(t, keyring.WithAuditor(rec))
	rec.fail = assert.AnError
	dk, err := k.GenerateDataKey(ctx)
	assert.ErrorIs(t, err, keyring.ErrAudit, "an auditor that refuses fails the operation")
	assert.Nil(t, dk, "and no data key is handed out")
	_, err = k.Rotate(ctx)
	assert.ErrorIs(t, err, keyring.ErrAudit)
}
