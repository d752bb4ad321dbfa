package keyring_test

import (
	"testing"

	"github.com/kmsring/kmsring/internal/fipsmode"
	"github.com/kmsring/kmsring/internal/testvec"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/require"
)

const testdata = "../testdata"

// TestBlobVectors opens format 1's vectors. In FIPS 140-3 mode its fixture
// does not even load (its root key ciphertexts are not approved), and
// every vector that parses is refused with ErrNotApproved before any key
// is used, by a keyring of the approved fixture.
func TestBlobVectors(t *testing.T) {
	ctx := t.Context()
	vs, err := testvec.ReadDir(testdata + "/blob")
	require.NoError(t, err)
	if fipsmode.Enabled() {
		_, err := testvec.LoadKeyring(ctx, testdata)
		require.ErrorIs(t, err, keyring.ErrNotApproved, "format 1's fixture is refused in FIPS mode")
		require.ErrorIs(t, err, keyring.ErrRootKey)
		k, err := testvec.LoadFixture(ctx, testdata, testvec.ApprovedFixture)
		require.NoError(t, err)
		for _, v := range vs {
			pt, err := k.Decrypt(ctx, v.Data, keyring.WithEncryptionContext(v.Context))
			require.Nil(t, pt, v.Name)
			if v.Expect == testvec.Malformed {
				require.ErrorIs(t, err, keyring.ErrMalformed, v.Name)
			} else {
				require.ErrorIs(t, err, keyring.ErrNotApproved, v.Name)
			}
		}
		return
	}
	k, err := testvec.LoadKeyring(ctx, testdata)
	require.NoError(t, err)
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			pt, err := k.Decrypt(ctx, v.Data, keyring.WithEncryptionContext(v.Context))
			v.Check(t, pt, err)
		})
	}
}

// TestApprovedBlobVectors opens the approved blob format's vectors, in
// every mode.
func TestApprovedBlobVectors(t *testing.T) {
	ctx := t.Context()
	k, err := testvec.LoadFixture(ctx, testdata, testvec.ApprovedFixture)
	require.NoError(t, err)
	vs, err := testvec.ReadDir(testdata + "/blob-approved")
	require.NoError(t, err)
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			pt, err := k.Decrypt(ctx, v.Data, keyring.WithEncryptionContext(v.Context))
			v.Check(t, pt, err)
		})
	}
}

// FuzzDecrypt feeds arbitrary blobs to Decrypt: no input panics, and none
// but the vectors' own successes decrypts. Seeds: both formats' vectors;
// the keyring is the approved fixture's in FIPS mode.
func FuzzDecrypt(f *testing.F) {
	vs := testvec.Seed(f, testdata+"/blob")
	avs := testvec.Seed(f, testdata+"/blob-approved")
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
