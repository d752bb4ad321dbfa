package keyring

import (
	"crypto/hkdf"
	"crypto/sha256"
	"github.com/kmsring/kmsring/internal/fipsmode"
	"testing"

	"github.com/kmsring/kmsring/internal/wycheproof"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWycheproofXChaCha20Poly1305 runs the Wycheproof XChaCha20-Poly1305
// vectors through NewRootKey, whose ciphertext (nonce || sealed) is the
// vectors' iv || ct || tag, and through the AEAD that wraps data keys.
func TestWycheproofXChaCha20Poly1305(t *testing.T) {
	if fipsmode.Enabled() {
		t.Skip("FIPS 140-3 mode: XChaCha20-Poly1305")
	}
	n, valid := 0, 0
	for _, g := range wycheproof.Load[wycheproof.AEADGroup](t, "xchacha20_poly1305_test.json") {
		for _, tc := range g.Tests {
			if len(tc.Key) != RootKeySize || len(tc.IV) != 24 {
				continue // sizes the construction never uses
			}
			n++
			rk, err := NewRootKey(tc.Key)
			require.NoError(t, err)
			ct := append(append(append([]byte{}, tc.IV...), tc.CT...), tc.Tag...)
			pt, err := rk.Decrypt(ct, tc.AAD)
			if tc.Result == "invalid" {
				assert.Error(t, err, "tcId %d (%s) must be rejected", tc.ID, tc.Comment)
				continue
			}
			require.NoError(t, err, "tcId %d (%s)", tc.ID, tc.Comment)
			assert.Equal(t, []byte(tc.Msg), nonNil(pt), "tcId %d", tc.ID)
			valid++
		}
	}
	t.Logf("%d XChaCha20-Poly1305 vectors (%d valid)", n, valid)
	require.NotZero(t, valid)
}

// TestWycheproofHKDFSHA256 runs the Wycheproof HKDF-SHA256 vectors
// through the call newWrapAEAD makes.
func TestWycheproofHKDFSHA256(t *testing.T) {
	type group struct {
		Tests []wycheproof.HKDFTest `json:"tests"`
	}
	n := 0
	for _, g := range wycheproof.Load[group](t, "hkdf_sha256_test.json") {
		for _, tc := range g.Tests {
			n++
			okm, err := hkdf.Key(sha256.New, tc.IKM, tc.Salt, string(tc.Info), tc.Size)
			if tc.Result == "invalid" {
				assert.Error(t, err, "tcId %d", tc.ID)
				continue
			}
			require.NoError(t, err, "tcId %d", tc.ID)
			assert.Equal(t, []byte(tc.OKM), okm, "tcId %d", tc.ID)
		}
	}
	t.Logf("%d HKDF-SHA256 vectors", n)
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
