package envelope_test

import (
	"bytes"
	"iter"
	"maps"
	"testing"

	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/internal/fipsmode"
	"github.com/kmsring/kmsring/internal/format"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestApprovedSuite runs the suite-independent tests (round trips at every
// size, every bit flip and truncation, segment-boundary truncation,
// streams, commitment, Rewrap) again on the approved suite, which a
// keyring made with WithApprovedAlgorithms writes outside FIPS mode too.
func TestApprovedSuite(t *testing.T) {
	newKeyOptions = []keyring.Option{keyring.WithApprovedAlgorithms()}
	t.Cleanup(func() { newKeyOptions = nil })
	k := newKey(t)
	sealed, err := envelope.Seal(t.Context(), k, []byte("x"))
	require.NoError(t, err)
	h, err := envelope.Inspect(sealed)
	require.NoError(t, err)
	require.True(t, h.FIPSApproved, "WithApprovedAlgorithms writes the approved suite")
	for name, test := range map[string]func(*testing.T){
		"SealOpen": TestSealOpen, "Tamper": TestTamper, "TruncationAtSegmentBoundary": TestTruncationAtSegmentBoundary,
		"Streams": TestStreams, "Commitment": TestCommitment, "Rewrap": TestRewrap, "RewrapTamper": TestRewrapTamper,
		"Overhead": TestOverhead, "Set": TestSet,
	} {
		t.Run(name, test)
	}
}

// TestFIPSModeRefusesDefaultSuites: in FIPS mode (forced here, real in the
// CI's FIPS job) a default-suite envelope fails with ErrNotApproved before
// any key is used; AllowNonApproved reads it; RewrapAll moves it to the
// approved suite, which opens without the opt-in.
func TestFIPSModeRefusesDefaultSuites(t *testing.T) {
	if fipsmode.Enabled() {
		t.Skip("writes default-suite envelopes: outside FIPS mode only")
	}
	ctx := t.Context()
	k := newKey(t)
	ec := map[string]string{"tenant": "acme"}
	small, err := envelope.Seal(ctx, k, []byte("attack at dawn"), envelope.WithEncryptionContext(ec))
	require.NoError(t, err)
	large, err := envelope.Seal(ctx, k, bytes.Repeat([]byte{7}, 5000), envelope.WithEncryptionContext(ec))
	require.NoError(t, err)
	blob, err := k.Encrypt(ctx, []byte("secret"))
	require.NoError(t, err)

	restore := fipsmode.Force(true)
	defer restore()
	require.True(t, k.Approved(), "in FIPS mode a keyring writes approved formats")
	for _, sealed := range [][]byte{small, large} {
		_, err := envelope.Open(ctx, k, sealed)
		require.ErrorIs(t, err, keyring.ErrNotApproved)
		assert.Contains(t, err.Error(), "FIPS 140-3", "the error says why")
		_, err = envelope.NewReader(ctx, k, bytes.NewReader(sealed))
		require.ErrorIs(t, err, keyring.ErrNotApproved)
		_, err = envelope.Rewrap(ctx, k, sealed)
		require.ErrorIs(t, err, keyring.ErrNotApproved, "Rewrap keeps the payload, which stays non-approved")
		pt, err := envelope.Open(ctx, k, sealed, envelope.AllowNonApproved())
		require.NoError(t, err, "the migration opt-in reads it")
		require.NotEmpty(t, pt)
	}
	_, err = k.Decrypt(ctx, blob)
	require.ErrorIs(t, err, keyring.ErrNotApproved)
	pt, err := k.Decrypt(ctx, blob, keyring.AllowNonApproved())
	require.NoError(t, err)
	require.Equal(t, []byte("secret"), pt)
	moved, err := k.ReEncrypt(ctx, blob, keyring.AllowNonApproved())
	require.NoError(t, err)
	require.Equal(t, byte(format.BlobFormatApproved), moved[0], "ReEncrypt writes the approved format")

	files := map[string][]byte{"small": small, "large": large}
	r, err := envelope.RewrapAll(ctx, k, iter.Seq2[string, []byte](maps.All(files)), func(name string, b []byte) error {
		files[name] = b
		return nil
	}, nil)
	require.NoError(t, err)
	require.Empty(t, r.Failed)
	require.Equal(t, 2, r.Rewrapped)
	for name, sealed := range files {
		h, err := envelope.Inspect(sealed)
		require.NoError(t, err)
		require.True(t, h.FIPSApproved, "%s moved to the approved suite", name)
		pt, err := envelope.Open(ctx, k, sealed, envelope.WithEncryptionContext(ec))
		require.NoError(t, err, "%s opens in FIPS mode without the opt-in", name)
		require.NotEmpty(t, pt)
	}
	r, err = envelope.RewrapAll(ctx, k, iter.Seq2[string, []byte](maps.All(files)), func(string, []byte) error { return nil }, nil)
	require.NoError(t, err)
	require.Equal(t, 2, r.Current, "a second run finds them done")
}
