package keyring

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"

	"golang.org/x/crypto/chacha20poly1305"
)

// materialSize is the size of a version's key material.
const materialSize = 32

// wrapKeyInfo separates the data key wrapping key from any other key that a
// later format derives from the same material.
const wrapKeyInfo = "kmsring v1 data key wrapping"

// newWrapAEAD returns the AEAD that seals data key blobs under a version.
//
// The material is a uniformly random 32-byte key, so HKDF-SHA256 (RFC 5869)
// with it as input keying material is a PRF; the info string gives the
// wrapping key its own domain. XChaCha20-Poly1305 with a random 192-bit nonce
// per blob makes nonce reuse negligible (collision probability about
// q²/2¹⁹³ after q blobs, 2⁻⁶⁵ at q = 2⁶⁴), so there is no usage cap per
// version that a service could reach, unlike AES-GCM's 2³² random-nonce limit.
func newWrapAEAD(material []byte) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, material, nil, wrapKeyInfo, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	return chacha20poly1305.NewX(key)
}

// materialAD is the associated data under which the root key wraps a
// version's material: it binds the material to its key ID and version
// number, so a record copied to another key or version fails to unwrap.
func materialAD(keyID [16]byte, n uint32) []byte {
	ad := append([]byte("kmsring v1 material\x00"), keyID[:]...)
	return binary.BigEndian.AppendUint32(ad, n)
}
