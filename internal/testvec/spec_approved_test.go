package testvec_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/kmsring/kmsring/internal/testvec"
	"github.com/stretchr/testify/require"
)

// approvedSpec is docs/FORMAT.md's approved formats ("FIPS 140-3: the
// approved formats") implemented apart from packages keyring, envelope and
// format, with the standard library's approved primitives only, so that it
// runs in FIPS mode too.
type approvedSpec struct {
	keyID [16]byte
	prks  map[uint32][]byte
}

// gcm returns AES-256-GCM whose ciphertexts carry their 12-byte nonce
// first.
func gcm(t testing.TB, key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	require.NoError(t, err)
	g, err := cipher.NewGCMWithRandomNonce(b)
	require.NoError(t, err)
	return g
}

func loadApprovedSpec(t testing.TB) *approvedSpec {
	b, err := os.ReadFile(filepath.Join(testdata, testvec.ApprovedFixture))
	require.NoError(t, err)
	var f testvec.Fixture
	require.NoError(t, json.Unmarshal(b, &f))
	s := &approvedSpec{keyID: uuid.MustParse(f.KeyID), prks: map[uint32][]byte{}}
	rk, err := hkdf.Key(sha256.New, f.RootKey, nil, "kmsring approved local root key", 32)
	require.NoError(t, err)
	root := gcm(t, rk)
	for _, v := range f.Versions {
		var d struct {
			Material []byte `json:"material"`
		}
		require.NoError(t, json.Unmarshal(v.Data, &d))
		ct, ok := bytes.CutPrefix(d.Material, []byte("\x10kmsring"))
		require.True(t, ok, "version %d: an approved root key ciphertext", v.Number)
		ad := append([]byte("kmsring v1 material\x00"), s.keyID[:]...)
		ad = binary.BigEndian.AppendUint32(ad, v.Number)
		material, err := root.Open(nil, nil, ct, ad)
		require.NoError(t, err, "the root key unwraps version %d", v.Number)
		prk, err := hkdf.Extract(sha256.New, material, []byte("kmsring approved data key blob extract"))
		require.NoError(t, err)
		s.prks[v.Number] = prk
	}
	return s
}

// openBlob opens an approved blob bound to the context encoded as ec.
func (s *approvedSpec) openBlob(t testing.TB, blob, ec []byte) ([]byte, error) {
	if len(blob) < 53+12+1+16 || len(blob) > 53+12+4096+16 || blob[0] != 0x10 || !bytes.Equal(blob[1:17], s.keyID[:]) {
		return nil, errSpec
	}
	prk, ok := s.prks[binary.BigEndian.Uint32(blob[17:21])]
	if !ok {
		return nil, errSpec
	}
	key, err := hkdf.Expand(sha256.New, prk, "kmsring approved data key blob"+string(blob[21:53]), 32)
	require.NoError(t, err)
	return gcm(t, key).Open(nil, nil, blob[53:], slices.Concat(ec, blob[:53]))
}

// openEnvelope opens an envelope of the approved suite.
func (s *approvedSpec) openEnvelope(t testing.TB, b []byte, expect map[string]string) ([]byte, error) {
	p, err := splitEnvelope(b)
	if err != nil || p.suite != 0x10 {
		return nil, errSpec
	}
	if expect != nil && !bytes.Equal(encodeContext(expect), p.ec) {
		return nil, errSpec
	}
	dek, err := s.openBlob(t, p.blob, p.ec)
	if err != nil {
		return nil, err
	}
	okm, err := hkdf.Expand(sha512.New, dek, string(slices.Concat(p.prefix, p.blob[1:17], p.salt, p.ec)), 64)
	require.NoError(t, err)
	if subtle.ConstantTimeCompare(okm[32:], p.commitment) != 1 {
		return nil, errSpec
	}
	aead := gcm(t, okm[:32])
	payload, pt := p.payload, []byte{}
	if len(payload) == 0 {
		return nil, errSpec
	}
	for i := uint64(0); len(payload) > 0; i++ {
		seg := payload[:min(len(payload), 64<<10+28)]
		payload = payload[len(seg):]
		last := len(payload) == 0
		if last && len(seg) == 28 && i > 0 {
			return nil, errSpec
		}
		ad := binary.BigEndian.AppendUint64(nil, i)
		if last {
			ad = append(ad, 1)
		} else {
			ad = append(ad, 0)
		}
		if pt, err = aead.Open(pt, nil, seg, ad); err != nil {
			return nil, err
		}
	}
	return pt, nil
}

// TestApprovedSpec opens every approved vector with the spec's
// construction alone: the successes to their plaintext, no failure at all.
func TestApprovedSpec(t *testing.T) {
	s := loadApprovedSpec(t)
	blobs, err := testvec.ReadDir(testdata + "/blob-approved")
	require.NoError(t, err)
	for _, v := range blobs {
		pt, err := s.openBlob(t, v.Data, encodeContext(v.Context))
		if v.Expect != testvec.Success {
			require.Error(t, err, "blob %s (%s) must not open", v.Name, v.Comment)
			continue
		}
		require.NoError(t, err, "blob %s", v.Name)
		require.Equal(t, v.Plaintext, pt, "blob %s", v.Name)
	}
	envelopes, err := testvec.ReadDir(testdata + "/envelope-approved")
	require.NoError(t, err)
	opened := 0
	for _, v := range envelopes {
		pt, err := s.openEnvelope(t, v.Data, v.Context)
		if v.Expect != testvec.Success {
			require.Error(t, err, "envelope %s (%s) must not open", v.Name, v.Comment)
			continue
		}
		require.NoError(t, err, "envelope %s", v.Name)
		require.Equal(t, v.Plaintext, pt, "envelope %s", v.Name)
		opened++
	}
	require.NotZero(t, opened)
}
