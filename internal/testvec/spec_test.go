package testvec_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/kmsring/kmsring/internal/testvec"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/chacha20poly1305"
)

// spec is docs/FORMAT.md implemented apart from packages keyring, envelope
// and format, so that the two implementations check each other on the
// golden vectors. It reads version material as a store holds it: the root
// key in keyring.json unwraps versions[].data.material under the associated
// data "kmsring v1 material" || 0x00 || key ID || version.
type spec struct {
	keyID    [16]byte
	wrapKeys map[uint32][]byte
}

var errSpec = errors.New("spec: does not open")

func loadSpec(t testing.TB) *spec {
	b, err := os.ReadFile(filepath.Join(testdata, "keyring.json"))
	require.NoError(t, err)
	var f testvec.Fixture
	require.NoError(t, json.Unmarshal(b, &f))
	s := &spec{keyID: uuid.MustParse(f.KeyID), wrapKeys: map[uint32][]byte{}}
	root, err := chacha20poly1305.NewX(f.RootKey)
	require.NoError(t, err)
	for _, v := range f.Versions {
		var d struct {
			Material []byte `json:"material"`
		}
		require.NoError(t, json.Unmarshal(v.Data, &d))
		ad := append([]byte("kmsring v1 material\x00"), s.keyID[:]...)
		ad = binary.BigEndian.AppendUint32(ad, v.Number)
		material, err := root.Open(nil, d.Material[:24], d.Material[24:], ad)
		require.NoError(t, err, "the root key unwraps version %d", v.Number)
		wk, err := hkdf.Key(sha256.New, material, nil, "kmsring v1 data key wrapping", 32)
		require.NoError(t, err)
		s.wrapKeys[v.Number] = wk
	}
	return s
}

// encodeContext is the canonical encoding of an encryption context.
func encodeContext(ec map[string]string) []byte {
	out := binary.BigEndian.AppendUint16(nil, uint16(len(ec)))
	keys := make([]string, 0, len(ec))
	for k := range ec {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = binary.BigEndian.AppendUint16(out, uint16(len(k)))
		out = append(out, k...)
		out = binary.BigEndian.AppendUint16(out, uint16(len(ec[k])))
		out = append(out, ec[k]...)
	}
	return out
}

// openBlob opens a data key blob bound to the context encoded as ec:
// XChaCha20-Poly1305 under the version's wrapping key, the associated data
// being ec followed by the blob's first 45 bytes.
func (s *spec) openBlob(blob, ec []byte) ([]byte, error) {
	if len(blob) < 45+1+16 || blob[0] != 0x01 || !bytes.Equal(blob[1:17], s.keyID[:]) {
		return nil, errSpec
	}
	wk, ok := s.wrapKeys[binary.BigEndian.Uint32(blob[17:21])]
	if !ok {
		return nil, errSpec
	}
	aead, err := chacha20poly1305.NewX(wk)
	if err != nil {
		return nil, err
	}
	return aead.Open(nil, blob[21:45], blob[45:], append(bytes.Clone(ec), blob[:45]...))
}

// envelopeParts splits an envelope into its header fields and payload.
type envelopeParts struct {
	prefix, salt, commitment, ec, blob, payload []byte
	suite                                       byte
}

func splitEnvelope(b []byte) (envelopeParts, error) {
	var p envelopeParts
	if len(b) < 74 || string(b[:4]) != "KMSR" || b[4] != 0x01 {
		return p, errSpec
	}
	ecLen, blobLen := int(binary.BigEndian.Uint16(b[70:])), int(binary.BigEndian.Uint16(b[72:]))
	if len(b) < 74+ecLen+blobLen {
		return p, errSpec
	}
	p.prefix, p.suite, p.salt, p.commitment = b[:6], b[5], b[6:38], b[38:70]
	p.ec, p.blob, p.payload = b[74:74+ecLen], b[74+ecLen:74+ecLen+blobLen], b[74+ecLen+blobLen:]
	return p, nil
}

// keys derives the payload AEAD and checks the commitment:
//
//	payloadKey || commitment = BLAKE2b-512(magic || format || suite || key ID || salt || data key || context)
func (p *envelopeParts) keys(dek []byte) (cipher.AEAD, error) {
	in := slices.Concat(p.prefix, p.blob[1:17], p.salt, dek, p.ec)
	sum := blake2b.Sum512(in)
	if subtle.ConstantTimeCompare(sum[32:], p.commitment) != 1 {
		return nil, errSpec
	}
	switch p.suite {
	case 0x01:
		b, err := aes.NewCipher(sum[:32])
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	case 0x02:
		return chacha20poly1305.New(sum[:32])
	}
	return nil, errSpec
}

func specNonce(i uint64, last bool) []byte {
	n := binary.BigEndian.AppendUint64(make([]byte, 3), i)
	if last {
		return append(n, 1)
	}
	return append(n, 0)
}

// openEnvelope opens an envelope; expect, if not nil, is the context the
// caller demands.
func (s *spec) openEnvelope(b []byte, expect map[string]string) ([]byte, error) {
	p, err := splitEnvelope(b)
	if err != nil {
		return nil, err
	}
	if expect != nil && !bytes.Equal(encodeContext(expect), p.ec) {
		return nil, errSpec
	}
	dek, err := s.openBlob(p.blob, p.ec)
	if err != nil {
		return nil, err
	}
	aead, err := p.keys(dek)
	if err != nil {
		return nil, err
	}
	payload, pt := p.payload, []byte{}
	if len(payload) == 0 {
		return nil, errSpec
	}
	for i := uint64(0); len(payload) > 0; i++ {
		seg := payload[:min(len(payload), 64<<10+16)]
		payload = payload[len(seg):]
		if len(payload) == 0 && len(seg) == 16 && i > 0 {
			return nil, errSpec // an empty final segment after others
		}
		if pt, err = aead.Open(pt, specNonce(i, len(payload) == 0), seg, nil); err != nil {
			return nil, err
		}
	}
	return pt, nil
}

// TestSpec opens every vector with the spec's construction alone: the
// successes to their plaintext, and no failure at all.
func TestSpec(t *testing.T) {
	testvec.SkipInFIPSMode(t, "an implementation of format 1's default suites, with golang.org/x/crypto")
	s := loadSpec(t)
	blobs, err := testvec.ReadDir(testdata + "/blob")
	require.NoError(t, err)
	for _, v := range blobs {
		pt, err := s.openBlob(v.Data, encodeContext(v.Context))
		if v.Expect != testvec.Success {
			require.Error(t, err, "blob %s (%s) must not open", v.Name, v.Comment)
			continue
		}
		require.NoError(t, err, "blob %s", v.Name)
		require.Equal(t, v.Plaintext, pt, "blob %s", v.Name)
	}
	envelopes, err := testvec.ReadDir(testdata + "/envelope")
	require.NoError(t, err)
	opened := 0
	for _, v := range envelopes {
		pt, err := s.openEnvelope(v.Data, v.Context)
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
