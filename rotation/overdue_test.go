package rotation_test

import (
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/rotation"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A scheduler that was down past the grace period raises the alarm on the
// pass that finds the overdue key, before its catch-up rotation, once per
// missed due time: the alarm must not be silent exactly when the
// scheduler was the problem.
func TestOverdueAlarmAfterSchedulerDowntime(t *testing.T) {
	ctx := t.Context()
	clk := clockwork.NewFakeClockAt(epoch)
	k, err := keyring.New(ctx, keyring.WithClock(clk), keyring.WithRotationPeriod(365*day))
	require.NoError(t, err)
	var overdue []keyring.Metadata
	s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(quiet),
		rotation.WithOverdue(35*day, func(md keyring.Metadata) { overdue = append(overdue, md) }))
	s.Add(k)

	clk.Advance(401 * day) // the scheduler was down
	events, err := s.RunOnce(ctx)
	require.NoError(t, err)
	require.Len(t, events, 1, "the catch-up rotation")
	require.Len(t, overdue, 1, "the alarm fired on the same pass")
	assert.Equal(t, epoch.Add(365*day), overdue[0].NextRotationAt, "the missed due time")
	assert.Equal(t, uint32(1), overdue[0].CurrentVersion, "as the key was before its rotation")
	assert.Equal(t, epoch.Add(401*day), overdue[0].ReadAt, "dated on the keyring's clock")

	_, err = s.RunOnce(ctx)
	require.NoError(t, err)
	assert.Len(t, overdue, 1, "once per missed due time")

	// Down again past the next due time (day 730) and its grace.
	clk.Advance(730*day + 36*day - 401*day)
	_, err = s.RunOnce(ctx)
	require.NoError(t, err)
	require.Len(t, overdue, 2, "a second missed due time, a second alarm")
	assert.Equal(t, epoch.Add(730*day), overdue[1].NextRotationAt)
	assert.False(t, rotation.Overdue(k.Cached(), clk.Now(), 35*day), "rotated since")
}

// Keys rotated on time never raise the alarm.
func TestNoOverdueAlarmOnTime(t *testing.T) {
	ctx := t.Context()
	clk := clockwork.NewFakeClockAt(epoch)
	k, err := keyring.New(ctx, keyring.WithClock(clk), keyring.WithRotationPeriod(time.Hour))
	require.NoError(t, err)
	called := 0
	s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(quiet), rotation.WithOverdue(0, func(keyring.Metadata) { called++ }))
	s.Add(k)
	for range 5 {
		clk.Advance(time.Hour)
		_, err := s.RunOnce(ctx)
		require.NoError(t, err)
	}
	assert.Zero(t, called)
}
