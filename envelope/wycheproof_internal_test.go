package envelope

import (
	"testing"

	"github.com/kmsring/kmsring/internal/fipsmode"
	"github.com/kmsring/kmsring/internal/format"
	"github.com/kmsring/kmsring/internal/wycheproof"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWycheproofPayload runs the Wycheproof vectors of both payload suites,
// of the sizes the payload uses (256-bit keys, 96-bit nonces, 128-bit tags),
// through newPayloadAEAD, both ways.
func TestWycheproofPayload(t *testing.T) {
	for _, tc := range []struct {
		name  string
		file  string
		suite byte
	}{
		{"AES-256-GCM", "aes_gcm_test.json", format.SuiteAES256GCM},
		{"ChaCha20-Poly1305", "chacha20_poly1305_test.json", format.SuiteChaCha20Poly1305},
		{"approved AES-256-GCM", "aes_gcm_test.json", format.SuiteApproved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.suite != format.SuiteApproved && fipsmode.Enabled() {
				t.Skip("FIPS 140-3 mode: a default suite")
			}
			n, valid := 0, 0
			for _, g := range wycheproof.Load[wycheproof.AEADGroup](t, tc.file) {
				if g.KeySize != 256 || g.IVSize != 96 || g.TagSize != 128 {
					continue
				}
				for _, v := range g.Tests {
					n++
					sa, err := newPayloadAEAD(tc.suite, (*[32]byte)(v.Key))
					require.NoError(t, err)
					aead := sa.aead
					sealed := append(append([]byte{}, v.CT...), v.Tag...)
					var pt []byte
					if sa.approved {
						// The module's nonce travels before the ciphertext.
						pt, err = aead.Open(nil, nil, append(append([]byte{}, v.IV...), sealed...), v.AAD)
					} else {
						pt, err = aead.Open(nil, v.IV, sealed, v.AAD)
					}
					if v.Result == "invalid" {
						assert.Error(t, err, "tcId %d (%s) must be rejected", v.ID, v.Comment)
						continue
					}
					require.NoError(t, err, "tcId %d (%s)", v.ID, v.Comment)
					assert.Equal(t, []byte(v.Msg), append([]byte{}, pt...), "tcId %d", v.ID)
					if !sa.approved { // the approved suite draws its own nonce
						assert.Equal(t, sealed, aead.Seal(nil, v.IV, v.Msg, v.AAD), "tcId %d seals to the vector", v.ID)
					}
					valid++
				}
			}
			t.Logf("%d %s vectors (%d valid)", n, tc.name, valid)
			require.NotZero(t, valid)
		})
	}
}
