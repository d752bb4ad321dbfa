package envelope_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Open and NewReader with a set made by keyring.OpenSet: envelopes of any
// key in the store open, each key loaded on first use, at most
// WithMaxLoaded kept.
func TestOpenWithOpenSet(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	var sealed [][]byte
	for i := range 4 {
		k, err := keyring.New(ctx, keyring.WithStore(st))
		require.NoError(t, err)
		s, err := envelope.Seal(ctx, k, []byte{byte(i)})
		require.NoError(t, err)
		sealed = append(sealed, s)
	}
	set, err := keyring.OpenSet(ctx, st, keyring.WithMaxLoaded(2))
	require.NoError(t, err)
	for i, s := range sealed {
		got, err := envelope.Open(ctx, set, s)
		require.NoError(t, err)
		assert.Equal(t, []byte{byte(i)}, got)
		r, err := envelope.NewReader(ctx, set, bytes.NewReader(s))
		require.NoError(t, err)
		got, err = io.ReadAll(r)
		require.NoError(t, err)
		assert.Equal(t, []byte{byte(i)}, got)
		assert.LessOrEqual(t, set.Loaded(), 2)
	}
	other, err := keyring.New(ctx)
	require.NoError(t, err)
	s, err := envelope.Seal(ctx, other, []byte("x"))
	require.NoError(t, err)
	_, err = envelope.Open(ctx, set, s)
	assert.ErrorIs(t, err, keyring.ErrKeyNotFound)
}
