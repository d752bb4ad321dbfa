package keyring_test

import (
	"testing"

	"github.com/kmsring/kmsring/internal/testvec"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/require"
)

const testdata = "../testdata"

func TestBlobVectors(t *testing.T) {
	ctx := t.Context()
	k, err := testvec.LoadKeyring(ctx, testdata)
	require.NoError(t, err)
	vs, err := testvec.ReadDir(testdata + "/blob")
	require.NoError(t, err)
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			pt, err := k.Decrypt(ctx, v.Data, keyring.WithEncryptionContext(v.Context))
			v.Check(t, pt, err)
		})
	}
}

// FuzzDecrypt feeds arbitrary blobs to Decrypt: no input panics, and none
// but the vectors' own successes decrypts.
func FuzzDecrypt(f *testing.F) {
	vs := testvec.Seed(f, testdata+"/blob")
	k, err := testvec.LoadKeyring(f.Context(), testdata)
	require.NoError(f, err)
	valid := map[string]bool{}
	for _, v := range vs {
		if v.Expect == testvec.Success && v.Context == nil {
			valid[string(v.Data)] = true
		}
	}
	f.Fuzz(func(t *testing.T, blob []byte) {
		pt, err := k.Decrypt(t.Context(), blob)
		if err == nil {
			require.True(t, valid[string(blob)], "only a real blob decrypts")
			require.NotNil(t, pt)
		} else {
			require.Nil(t, pt)
		}
		id, n, err := keyring.ParseCiphertext(blob)
		if err == nil {
			require.Len(t, id, 36)
			require.NotZero(t, n)
		}
	})
}
