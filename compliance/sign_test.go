package compliance_test

import (
	"bytes"
	"testing"

	"github.com/kmsring/kmsring/compliance"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A signed report verifies with the public key alone; an edited report, a
// wrong key, or a damaged signature do not.
func TestSignAndVerify(t *testing.T) {
	report := []byte(`{"Summary":{"Keys":1,"Compliant":1,"NonCompliant":0}}` + "\n")
	for _, alg := range []string{compliance.Ed25519, compliance.ECDSAP256} {
		priv, pub, err := compliance.GenerateSigningKey(alg)
		require.NoError(t, err)
		sig, err := compliance.Sign(priv, report)
		require.NoError(t, err)
		require.NoError(t, compliance.VerifySignature(pub, report, sig), "%s: the signed report verifies", alg)

		edited := bytes.Replace(report, []byte(`"Compliant":1`), []byte(`"Compliant":2`), 1)
		assert.ErrorIs(t, compliance.VerifySignature(pub, edited, sig), compliance.ErrBadSignature, "%s: edited after signing", alg)
		_, other, err := compliance.GenerateSigningKey(alg)
		require.NoError(t, err)
		assert.ErrorIs(t, compliance.VerifySignature(other, report, sig), compliance.ErrBadSignature, "%s: another key", alg)
		assert.ErrorIs(t, compliance.VerifySignature(pub, report, []byte("AAAA\n")), compliance.ErrBadSignature, "%s: a damaged signature", alg)
		assert.ErrorIs(t, compliance.VerifySignature(pub, report, []byte("not base64!")), compliance.ErrBadSignature)
		assert.ErrorIs(t, compliance.VerifySignature(priv, report, sig), compliance.ErrKeyFormat, "%s: a private key is not a public key", alg)
		_, err = compliance.Sign(pub, report)
		assert.ErrorIs(t, err, compliance.ErrKeyFormat)
	}
	_, _, err := compliance.GenerateSigningKey("rsa")
	assert.ErrorIs(t, err, compliance.ErrInvalidArgument)
}

// FuzzVerifySignature: no key or signature bytes make verification panic
// or accept a signature it did not make.
func FuzzVerifySignature(f *testing.F) {
	priv, pub, err := compliance.GenerateSigningKey(compliance.Ed25519)
	require.NoError(f, err)
	sig, err := compliance.Sign(priv, []byte("report"))
	require.NoError(f, err)
	f.Add(pub, []byte("report"), sig)
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"), []byte{}, []byte("\n"))
	f.Fuzz(func(t *testing.T, pubKey, data, s []byte) {
		err := compliance.VerifySignature(pubKey, data, s)
		if err == nil && bytes.Equal(pubKey, pub) && !bytes.Equal(data, []byte("report")) {
			t.Fatalf("a signature over another report verified")
		}
	})
}
