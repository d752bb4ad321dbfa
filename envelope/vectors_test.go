package envelope_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/internal/fipsmode"
	"github.com/kmsring/kmsring/internal/testvec"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/require"
)

const testdata = "../testdata"

func TestEnvelopeVectors(t *testing.T) {
	ctx := t.Context()
	vs, err := testvec.ReadDir(testdata + "/envelope")
	require.NoError(t, err)
	if fipsmode.Enabled() {
		// Format 1's default suites are refused, before any key is used,
		// by a keyring of the approved fixture.
		k, err := testvec.LoadFixture(ctx, testdata, testvec.ApprovedFixture)
		require.NoError(t, err)
		for _, v := range vs {
			pt, err := envelope.Open(ctx, k, v.Data)
			pt2, err2 := readAll(t, k, v.Data)
			require.Nil(t, pt, v.Name)
			require.Nil(t, pt2, v.Name)
			// What parses is refused as not approved before anything
			// else (a malformed segment included); what does not parse
			// is malformed.
			want := keyring.ErrNotApproved
			if _, ierr := envelope.Inspect(v.Data); ierr != nil {
				want = keyring.ErrMalformed
			}
			require.ErrorIs(t, err, want, v.Name)
			require.ErrorIs(t, err2, want, v.Name)
		}
		return
	}
	k, err := testvec.LoadKeyring(ctx, testdata)
	require.NoError(t, err)
	checkVectors(t, k, vs)
}

// TestApprovedEnvelopeVectors opens the approved suite's vectors, in every
// mode, with Open and NewReader.
func TestApprovedEnvelopeVectors(t *testing.T) {
	k, err := testvec.LoadFixture(t.Context(), testdata, testvec.ApprovedFixture)
	require.NoError(t, err)
	vs, err := testvec.ReadDir(testdata + "/envelope-approved")
	require.NoError(t, err)
	checkVectors(t, k, vs)
}

func checkVectors(t *testing.T, k *keyring.Keyring, vs []*testvec.Vector) {
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			var opts []envelope.Option
			if v.Context != nil {
				opts = append(opts, envelope.WithEncryptionContext(v.Context))
			}
			pt, err := envelope.Open(t.Context(), k, v.Data, opts...)
			v.Check(t, pt, err)
			pt, err = readAll(t, k, v.Data, opts...)
			v.Check(t, pt, err)
		})
	}
}

// readAll opens sealed with NewReader; it returns nil plaintext on error.
func readAll(t testing.TB, k envelope.Opener, sealed []byte, opts ...envelope.Option) ([]byte, error) {
	r, err := envelope.NewReader(t.Context(), k, bytes.NewReader(sealed), opts...)
	if err != nil {
		return nil, err
	}
	pt, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return pt, nil
}

// FuzzOpen: no input panics, Open and NewReader agree, and only the
// vectors' own successes open.
func FuzzOpen(f *testing.F) {
	vs := testvec.Seed(f, testdata+"/envelope")
	avs := testvec.Seed(f, testdata+"/envelope-approved")
	var k *keyring.Keyring
	var err error
	if fipsmode.Enabled() {
		k, err = testvec.LoadFixture(f.Context(), testdata, testvec.ApprovedFixture)
		vs = avs
	} else {
		k, err = testvec.LoadKeyring(f.Context(), testdata)
	}
	require.NoError(f, err)
	valid := map[string]bool{}
	for _, v := range vs {
		if v.Expect == testvec.Success {
			valid[string(v.Data)] = true
		}
	}
	f.Fuzz(func(t *testing.T, sealed []byte) {
		var h envelope.Header
		pt, err := envelope.Open(t.Context(), k, sealed, envelope.WithHeader(&h))
		pt2, err2 := readAll(t, k, sealed)
		pt3, err3 := envelope.AppendOpen(t.Context(), []byte("dst"), k, sealed)
		if err != nil {
			require.Nil(t, pt)
			require.Zero(t, h, "no header from a failed Open")
			require.Error(t, err2, "NewReader rejects what Open rejects")
			require.Error(t, err3, "AppendOpen rejects what Open rejects")
			return
		}
		require.NoError(t, err2)
		require.NoError(t, err3)
		require.Equal(t, nonNil(pt), nonNil(pt2))
		require.Equal(t, append([]byte("dst"), pt...), pt3)
		require.True(t, valid[string(sealed)], "only a real envelope opens")
		ih, err := envelope.Inspect(sealed)
		require.NoError(t, err)
		require.Equal(t, ih, h, "WithHeader reports what Inspect reads")
	})
}
