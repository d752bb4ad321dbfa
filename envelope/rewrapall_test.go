package envelope_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"

	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRewrapAll(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	files := map[string][]byte{}
	plain := map[string]string{}
	for v := 1; v <= 3; v++ {
		for i := range 4 {
			name := fmt.Sprintf("v%d-%d", v, i)
			plain[name] = name
			sealed, err := envelope.Seal(ctx, k, []byte(name), envelope.WithEncryptionContext(map[string]string{"file": name}))
			require.NoError(t, err)
			files[name] = sealed
		}
		_, err := k.Rotate(ctx)
		require.NoError(t, err)
	}
	foreign, err := envelope.Seal(ctx, newKey(t), []byte("x"))
	require.NoError(t, err)
	files["foreign"] = foreign
	files["junk"] = []byte("not an envelope")

	// Interrupted after 5 envelopes.
	ictx, cancel := context.WithCancel(ctx)
	seen := 0
	save := func(name string, b []byte) error { files[name] = b; return nil }
	r, err := envelope.RewrapAll(ictx, k, maps.All(maps.Clone(files)), save, func(envelope.RewrapReport) {
		if seen++; seen == 5 {
			cancel()
		}
	})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 5, r.Rewrapped+r.Current+r.Foreign+len(r.Failed))

	// The second run finishes the job.
	r, err = envelope.RewrapAll(ctx, k, maps.All(maps.Clone(files)), save, nil)
	require.NoError(t, err)
	assert.Equal(t, 1, r.Foreign)
	assert.Len(t, r.Failed, 1, "the junk file")
	assert.ErrorIs(t, r.Failed["junk"], keyring.ErrMalformed)
	assert.Equal(t, 12, r.Rewrapped+r.Current)
	assert.Equal(t, []uint32{4}, r.ReferencedVersions(), "only the current version is referenced")
	for v := uint32(1); v <= 3; v++ {
		assert.False(t, r.Referenced(v), "version %d can be destroyed", v)
	}
	for name, want := range plain {
		pt, err := envelope.Open(ctx, k, files[name])
		require.NoError(t, err)
		assert.Equal(t, want, string(pt))
	}

	// A failing save leaves the old version referenced.
	_, err = k.Rotate(ctx)
	require.NoError(t, err)
	r, err = envelope.RewrapAll(ctx, k, maps.All(map[string][]byte{"a": files["v1-0"]}), func(string, []byte) error { return errors.New("disk full") }, nil)
	require.NoError(t, err)
	assert.True(t, r.Referenced(4))
	assert.Len(t, r.Failed, 1)
}
