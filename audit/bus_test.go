package audit_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/rotation"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBus(t *testing.T) {
	ctx := t.Context()
	bus := audit.NewBus()
	clk := clockwork.NewFakeClockAt(epoch)
	a, err := keyring.New(ctx, keyring.WithClock(clk), keyring.WithAuditor(bus), keyring.WithRotationPeriod(24*time.Hour))
	require.NoError(t, err)
	b, err := keyring.New(ctx, keyring.WithClock(clk), keyring.WithAuditor(bus))
	require.NoError(t, err)
	onlyA := bus.Subscribe(audit.Filter{KeyID: a.ID()}, 16)
	defer onlyA.Close()
	rotations := bus.Subscribe(audit.Filter{Types: []audit.EventType{audit.EventRotated}}, 16)
	defer rotations.Close()
	tiny := bus.Subscribe(audit.Filter{}, 1)
	defer tiny.Close()

	clk.Advance(24 * time.Hour)
	_, _, err = a.RotateIfDue(ctx)
	require.NoError(t, err)
	_, err = b.Rotate(ctx)
	require.NoError(t, err)
	require.NoError(t, a.DisableVersion(ctx, 1))
	at, err := a.ScheduleVersionDestruction(ctx, 1, time.Hour)
	require.NoError(t, err)
	_, err = a.GenerateDataKey(ctx) // not an event
	require.NoError(t, err)

	e := <-onlyA.Events()
	assert.Equal(t, audit.Event{Type: audit.EventRotated, KeyID: a.ID(), Time: epoch.Add(24 * time.Hour), Version: 2, PreviousVersion: 1, Origin: keyring.OriginAutomatic}, e)
	assert.Equal(t, audit.EventVersionDisabled, (<-onlyA.Events()).Type)
	e = <-onlyA.Events()
	assert.Equal(t, audit.EventDestructionScheduled, e.Type)
	assert.Equal(t, at, e.DestroyAt)
	assert.Empty(t, onlyA.Events(), "nothing about key b, nothing for GenerateDataKey")

	assert.Equal(t, a.ID(), (<-rotations.Events()).KeyID)
	e = <-rotations.Events()
	assert.Equal(t, b.ID(), e.KeyID)
	assert.Equal(t, keyring.OriginOnDemand, e.Origin)

	assert.Equal(t, uint64(3), tiny.Dropped(), "a full subscriber loses events, counted, and never blocks")

	clk.Advance(time.Hour)
	s := rotation.New(rotation.WithClock(clk))
	s.Add(a)
	_, err = s.RunOnce(ctx)
	require.NoError(t, err)
	assert.Equal(t, audit.EventVersionDestroyed, (<-onlyA.Events()).Type, "destruction by the scheduler is an event")
}

func TestOverdueEvent(t *testing.T) {
	bus := audit.NewBus()
	sub := bus.Subscribe(audit.Filter{Types: []audit.EventType{audit.EventRotationOverdue}}, 4)
	defer sub.Close()
	md := keyring.Metadata{KeyID: "k", RotationEnabled: true, NextRotationAt: epoch}
	bus.Overdue(md)
	e := <-sub.Events()
	assert.Equal(t, "k", e.KeyID)
	assert.Equal(t, epoch, e.NextRotationAt)
}

// The Prometheus view of a key before and after its rotation is overdue.
func TestCollector(t *testing.T) {
	ctx := t.Context()
	clk := clockwork.NewFakeClockAt(epoch)
	const day = 24 * time.Hour
	c := audit.NewCollector(audit.WithCollectorClock(clk), audit.WithOverdueGrace(35*day))
	k, err := keyring.New(ctx, keyring.WithClock(clk), keyring.WithAuditor(c), keyring.WithRotationPeriod(365*day))
	require.NoError(t, err)
	c.Add(k)
	_, err = k.GenerateDataKey(ctx)
	require.NoError(t, err)
	_, err = k.Decrypt(ctx, []byte("junk"))
	require.Error(t, err)

	expect := func(since, until float64, overdue int) string {
		return fmt.Sprintf(`
# HELP kmsring_key_current_version The version that encrypts.
# TYPE kmsring_key_current_version gauge
kmsring_key_current_version{key_id="%[1]s"} 1
# HELP kmsring_key_rotation_enabled 1 if automatic rotation is on.
# TYPE kmsring_key_rotation_enabled gauge
kmsring_key_rotation_enabled{key_id="%[1]s"} 1
# HELP kmsring_key_rotation_overdue 1 if automatic rotation is overdue past the grace period.
# TYPE kmsring_key_rotation_overdue gauge
kmsring_key_rotation_overdue{key_id="%[1]s"} %[4]d
# HELP kmsring_key_seconds_since_last_rotation Seconds since the last rotation (since creation before the first).
# TYPE kmsring_key_seconds_since_last_rotation gauge
kmsring_key_seconds_since_last_rotation{key_id="%[1]s"} %[2]g
# HELP kmsring_key_seconds_until_next_rotation Seconds until automatic rotation is due; negative when past due.
# TYPE kmsring_key_seconds_until_next_rotation gauge
kmsring_key_seconds_until_next_rotation{key_id="%[1]s"} %[3]g
# HELP kmsring_key_versions Number of versions, destroyed ones included.
# TYPE kmsring_key_versions gauge
kmsring_key_versions{key_id="%[1]s"} 1
# HELP kmsring_operations_total Keyring operations, by operation, key, version used and outcome.
# TYPE kmsring_operations_total counter
kmsring_operations_total{key_id="%[1]s",operation="CreateKey",outcome="success",version="1"} 1
kmsring_operations_total{key_id="%[1]s",operation="Decrypt",outcome="failure",version="0"} 1
kmsring_operations_total{key_id="%[1]s",operation="GenerateDataKey",outcome="success",version="1"} 1
`, k.ID(), since, until, overdue)
	}
	rotationMetrics := []string{"kmsring_key_current_version", "kmsring_key_rotation_enabled", "kmsring_key_rotation_overdue",
		"kmsring_key_seconds_since_last_rotation", "kmsring_key_seconds_until_next_rotation", "kmsring_key_versions", "kmsring_operations_total"}
	clk.Advance(100 * day)
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(expect(100*86400, 265*86400, 0)), rotationMetrics...))
	clk.Advance(301 * day) // 401 days, no rotation (no scheduler)
	out := expect(401*86400, -36*86400, 1)
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(out), rotationMetrics...))
	t.Log(out)
}

// TestKeyStateMetricsAndEvents: key state changes reach the bus and the
// collector, and so does every refused use of a key pending deletion.
func TestKeyStateMetricsAndEvents(t *testing.T) {
	ctx := t.Context()
	clk := clockwork.NewFakeClockAt(epoch)
	const day = 24 * time.Hour
	c := audit.NewCollector(audit.WithCollectorClock(clk))
	bus := audit.NewBus()
	sub := bus.Subscribe(audit.Filter{}, 16)
	k, err := keyring.New(ctx, keyring.WithClock(clk), keyring.WithAuditor(c), keyring.WithAuditor(bus))
	require.NoError(t, err)
	c.Add(k)
	blob, err := k.Encrypt(ctx, []byte("x"))
	require.NoError(t, err)
	require.NoError(t, k.DisableKey(ctx))
	require.NoError(t, k.EnableKey(ctx))
	at, err := k.ScheduleKeyDeletion(ctx, 7*day)
	require.NoError(t, err)
	for range 2 {
		_, err = k.Decrypt(ctx, blob)
		require.ErrorIs(t, err, keyring.ErrKeyPendingDeletion)
	}
	clk.Advance(2 * day)
	state := func(s keyring.KeyState) string {
		var b strings.Builder
		b.WriteString("# HELP kmsring_key_state 1 for the key's state, 0 for the others.\n# TYPE kmsring_key_state gauge\n")
		for _, x := range []keyring.KeyState{keyring.KeyDeleted, keyring.KeyDisabled, keyring.KeyEnabled, keyring.KeyPendingDeletion} {
			v := 0
			if x == s {
				v = 1
			}
			fmt.Fprintf(&b, "kmsring_key_state{key_id=%q,state=%q} %d\n", k.ID(), x, v)
		}
		return b.String()
	}
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(state(keyring.KeyPendingDeletion)+fmt.Sprintf(`
# HELP kmsring_key_seconds_until_deletion Seconds until a key pending deletion is deleted.
# TYPE kmsring_key_seconds_until_deletion gauge
kmsring_key_seconds_until_deletion{key_id=%[1]q} %[2]g
# HELP kmsring_pending_deletion_uses_total Refused uses of a key pending deletion.
# TYPE kmsring_pending_deletion_uses_total counter
kmsring_pending_deletion_uses_total{key_id=%[1]q} 2
`, k.ID(), (5*day).Seconds())), "kmsring_key_state", "kmsring_key_seconds_until_deletion", "kmsring_pending_deletion_uses_total"))

	require.NoError(t, k.CancelKeyDeletion(ctx))
	_, err = k.ScheduleKeyDeletion(ctx, 7*day)
	require.NoError(t, err)
	clk.Advance(7 * day)
	_, err = k.DeleteIfDue(ctx)
	require.NoError(t, err)
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(state(keyring.KeyDeleted)), "kmsring_key_state", "kmsring_key_seconds_until_deletion"))

	var types []audit.EventType
	for len(sub.Events()) > 0 {
		e := <-sub.Events()
		types = append(types, e.Type)
		if e.Type == audit.EventDeletionScheduled && len(types) == 3 {
			assert.Equal(t, at, e.DestroyAt, "the deletion date")
		}
	}
	assert.Equal(t, []audit.EventType{audit.EventKeyDisabled, audit.EventKeyEnabled, audit.EventDeletionScheduled,
		audit.EventPendingDeletionUse, audit.EventPendingDeletionUse, audit.EventDeletionCancelled,
		audit.EventDeletionScheduled, audit.EventKeyDeleted}, types)
}

// TestCollectorMaxKeySeries: with a key per tenant, the per-key counters
// keep the keys counted most recently, and no more.
func TestCollectorMaxKeySeries(t *testing.T) {
	ctx := t.Context()
	c := audit.NewCollector(audit.WithMaxKeySeries(2))
	count := func(id string, err error) {
		require.NoError(t, c.Audit(ctx, keyring.AuditEvent{Operation: keyring.OpGenerateDataKey, KeyID: id, Version: 1, Err: err}))
	}
	count("a", nil)
	count("b", keyring.ErrKeyPendingDeletion)
	count("a", nil) // a is now the most recent
	count("c", nil) // b, the least recent, goes with both its counters
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(`
# HELP kmsring_operations_total Keyring operations, by operation, key, version used and outcome.
# TYPE kmsring_operations_total counter
kmsring_operations_total{key_id="a",operation="GenerateDataKey",outcome="success",version="1"} 2
kmsring_operations_total{key_id="c",operation="GenerateDataKey",outcome="success",version="1"} 1
`), "kmsring_operations_total", "kmsring_pending_deletion_uses_total"))

	count("b", nil) // back: it counts from zero; a goes
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(`
# HELP kmsring_operations_total Keyring operations, by operation, key, version used and outcome.
# TYPE kmsring_operations_total counter
kmsring_operations_total{key_id="b",operation="GenerateDataKey",outcome="success",version="1"} 1
kmsring_operations_total{key_id="c",operation="GenerateDataKey",outcome="success",version="1"} 1
`), "kmsring_operations_total"))
}

// TestCollectorMaxKeySeriesConcurrent: counting from many goroutines
// never leaves more keys' series than the bound.
func TestCollectorMaxKeySeriesConcurrent(t *testing.T) {
	ctx := t.Context()
	c := audit.NewCollector(audit.WithMaxKeySeries(10))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				c.Audit(ctx, keyring.AuditEvent{Operation: keyring.OpDecrypt, KeyID: fmt.Sprintf("k%d", (g*7+i)%50), Version: 1})
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 10, testutil.CollectAndCount(c, "kmsring_operations_total"))
}

// TestCollectorMaxKeySeriesVersions: the version label is the caller's
// on a failure (Decrypt reports the version a tampered blob names, read
// before the blob is authenticated), so a caller allowed to decrypt with
// one key, which stays the most recent, must not grow its series with
// every version number it makes up: the versions of a key are bounded
// too, those counted most recently staying.
func TestCollectorMaxKeySeriesVersions(t *testing.T) {
	ctx := t.Context()
	c := audit.NewCollector(audit.WithMaxKeySeries(1))
	count := func(v uint32) {
		require.NoError(t, c.Audit(ctx, keyring.AuditEvent{Operation: keyring.OpDecrypt, KeyID: "k", Version: v, Err: keyring.ErrUnknownVersion}))
	}
	count(1)
	for v := range uint32(1000) {
		count(v + 2)
	}
	count(1) // counted again: it stays, from zero
	assert.Equal(t, 16, testutil.CollectAndCount(c, "kmsring_operations_total"))
	out, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, "kmsring_operations_total")
	require.NoError(t, err)
	assert.Contains(t, string(out), `kmsring_operations_total{key_id="k",operation="Decrypt",outcome="failure",version="1"} 1`+"\n")
	assert.Contains(t, string(out), `version="1001"} 1`+"\n")
	assert.NotContains(t, string(out), `version="2"}`)
}
