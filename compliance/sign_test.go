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

// FuzzReadJSON: no bytes make ReadJSON panic, and a report it accepts
// reads back after WriteJSON.
func FuzzReadJSON(f *testing.F) {
	f.Add([]byte(`{"GeneratedAt":"2026-01-01T00:00:00Z","PeriodStart":"2025-01-01T00:00:00Z","PeriodEnd":"2026-01-01T00:00:00Z","MaxCryptoperiodDays":365,` +
		`"AuditLog":{"Verified":true,"Keyed":true,"Records":3,"FirstSeq":1,"LastSeq":3,"Head":"ab","ContinuesPreviousReport":null,"Error":""},` +
		`"Keys":[{"KeyId":"k","Arn":"arn:aws:kms:us-east-1:000000000000:key/k","Aliases":[],"KeyState":"Enabled","CreationDate":"2025-01-01T00:00:00Z",` +
		`"RotationEnabled":true,"RotationPeriodInDays":365,"Rotations":[{"Date":"2025-06-01T00:00:00Z","Type":"ON_DEMAND","Principal":"p","KeyVersion":2}],` +
		`"LongestIntervalDays":151,"CurrentVersionAgeDays":214,"OverduePeriods":[],"Versions":[{"KeyVersion":1,"State":"Enabled","CreationDate":"2025-01-01T00:00:00Z","EncryptCount":1,"DecryptCount":0,"LastUsed":null}],` +
		`"StateChanges":[],"Compliant":true,"Findings":[{"Control":"PCI DSS 3.7.4","Status":"PASS","Detail":"d"}]}],"Summary":{"Keys":1,"Compliant":1,"NonCompliant":0}}`))
	f.Add([]byte(`{"Unknown":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := compliance.ReadJSON(bytes.NewReader(b))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := r.WriteJSON(&out); err != nil {
			return // a time out of JSON's range, say
		}
		if _, err := compliance.ReadJSON(&out); err != nil {
			t.Fatalf("a report read back fails: %v", err)
		}
	})
}
