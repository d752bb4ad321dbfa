package envelope

import (
	"testing"

	"github.com/kmsring/kmsring/internal/wycheproof"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWycheproofAESGCM runs the Wycheproof AES-GCM vectors of the sizes
// the payload uses (256-bit keys, 96-bit nonces, 128-bit tags) through
// newPayloadAEAD, both ways.
func TestWycheproofAESGCM(t *testing.T) {
	n, valid := 0, 0
	for _, g := range wycheproof.Load[wycheproof.AEADGroup](t, "aes_gcm_test.json") {
		if g.KeySize != 256 || g.IVSize != 96 || g.TagSize != 128 {
			continue
		}
		for _, tc := range g.Tests {
			n++
			var key [32]byte
			copy(key[:], tc.Key)
			aead := newPayloadAEAD(&key)
			sealed := append(append([]byte{}, tc.CT...), tc.Tag...)
			pt, err := aead.Open(nil, tc.IV, sealed, tc.AAD)
			if tc.Result == "invalid" {
				assert.Error(t, err, "tcId %d (%s) must be rejected", tc.ID, tc.Comment)
				continue
			}
			require.NoError(t, err, "tcId %d (%s)", tc.ID, tc.Comment)
			assert.Equal(t, []byte(tc.Msg), append([]byte{}, pt...), "tcId %d", tc.ID)
			assert.Equal(t, sealed, aead.Seal(nil, tc.IV, tc.Msg, tc.AAD), "tcId %d seals to the vector", tc.ID)
			valid++
		}
	}
	t.Logf("%d AES-256-GCM vectors (%d valid)", n, valid)
	require.NotZero(t, valid)
}
