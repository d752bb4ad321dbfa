package envelope_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/internal/testvec"
	"github.com/stretchr/testify/require"
)

const testdata = "../testdata"

func TestEnvelopeVectors(t *testing.T) {
	ctx := t.Context()
	k, err := testvec.LoadKeyring(ctx, testdata)
	require.NoError(t, err)
	vs, err := testvec.ReadDir(testdata + "/envelope")
	require.NoError(t, err)
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			pt, err := envelope.Open(ctx, k, v.Data)
			v.Check(t, pt, err)
			pt, err = readAll(t, k, v.Data)
			v.Check(t, pt, err)
		})
	}
}

// readAll opens sealed with NewReader; it returns nil plaintext on error.
func readAll(t testing.TB, k envelope.Opener, sealed []byte) ([]byte, error) {
	r, err := envelope.NewReader(t.Context(), k, bytes.NewReader(sealed))
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
	k, err := testvec.LoadKeyring(f.Context(), testdata)
	require.NoError(f, err)
	valid := map[string]bool{}
	for _, v := range vs {
		if v.Expect == testvec.Success {
			valid[string(v.Data)] = true
		}
	}
	f.Fuzz(func(t *testing.T, sealed []byte) {
		pt, err := envelope.Open(t.Context(), k, sealed)
		pt2, err2 := readAll(t, k, sealed)
		if err != nil {
			require.Nil(t, pt)
			require.Error(t, err2, "NewReader rejects what Open rejects")
			return
		}
		require.NoError(t, err2)
		require.Equal(t, pt, pt2)
		require.True(t, valid[string(sealed)], "only a real envelope opens")
		_, err = envelope.Inspect(sealed)
		require.NoError(t, err)
	})
}
