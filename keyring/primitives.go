package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"unsafe"

	"github.com/kmsring/kmsring/internal/fipsmode"
	"github.com/kmsring/kmsring/internal/format"
	"golang.org/x/crypto/chacha20poly1305"
)

// materialSize is the size of a version's key material.
const materialSize = 32

// wrapKeyInfo separates the format 1 data key wrapping key from any other
// key derived from the same material.
const wrapKeyInfo = "kmsring v1 data key wrapping"

// approvedBlobSalt and approvedBlobInfo separate the derivation of the
// keys of approved blobs (docs/FORMAT.md, "Approved data key blob").
const (
	approvedBlobSalt = "kmsring approved data key blob extract"
	approvedBlobInfo = "kmsring approved data key blob"
)

// versionKeys are what a version's material is turned into when the root
// key unwraps it; the material itself is not kept.
type versionKeys struct {
	// prk is HKDF-Extract(SHA-256, salt = approvedBlobSalt, material): the
	// key from which every approved blob's own key is expanded.
	prk []byte
	// legacy is the format 1 (XChaCha20-Poly1305) wrapping AEAD, made on
	// first use from legacyKey, so that a process that only ever touches
	// approved blobs never runs a golang.org/x/crypto primitive.
	legacy    func() (cipher.AEAD, error)
	legacyKey []byte
}

// newVersionKeys derives a version's keys from its material. Only
// crypto/hkdf runs here, with SHA-256: both derivations are approved.
func newVersionKeys(material []byte) (*versionKeys, error) {
	prk, err := hkdf.Extract(sha256.New, material, []byte(approvedBlobSalt))
	if err != nil {
		return nil, err
	}
	wk, err := hkdf.Key(sha256.New, material, nil, wrapKeyInfo, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	vk := &versionKeys{prk: prk, legacyKey: wk}
	vk.legacy = sync.OnceValues(func() (cipher.AEAD, error) { return newWrapAEAD(vk.legacyKey) })
	return vk, nil
}

// newWrapAEAD returns the AEAD that seals format 1 data key blobs under a
// version, from its wrapping key
// HKDF-SHA256(material, info = "kmsring v1 data key wrapping").
//
// The material is a uniformly random 32-byte key, so HKDF-SHA256 (RFC 5869)
// with it as input keying material is a PRF; the info string gives the
// wrapping key its own domain. XChaCha20-Poly1305 with a random 192-bit nonce
// per blob makes nonce reuse negligible (collision probability about
// q²/2¹⁹³ after q blobs, 2⁻⁶⁵ at q = 2⁶⁴), so there is no usage cap per
// version that a service could reach, unlike AES-GCM's 2³² random-nonce limit.
//
// It is only made for a format 1 blob, which in FIPS 140-3 mode the caller
// opted in to read (AllowNonApproved): golang.org/x/crypto refuses it under
// GODEBUG=fips140=only, so the enforcement is lifted for the call.
func newWrapAEAD(wrapKey []byte) (a cipher.AEAD, err error) {
	fipsmode.Legacy(func() { a, err = chacha20poly1305.NewX(wrapKey) })
	return a, err
}

// approvedBlobAEAD returns the AES-256-GCM of one approved blob, whose key
// is
//
//	HKDF-Expand(SHA-256, prk, info = "kmsring approved data key blob" || salt, 32)
//
// with the blob's random 256-bit salt: HKDF (SP 800-56C r2, RFC 5869) of
// the version's material with the extraction done once per version and the
// salt in the expansion's fixed info, as AWS KMS derives a key per call
// (SP 800-108 r1). Every blob has its own key, so the 2³² bound on random
// 96-bit GCM nonces (SP 800-38D §8.3) applies to one message per key and no
// per-version cap appears: two blobs share a key only if their salts
// collide, probability below q²/2²⁵⁷ after q blobs. The nonce is the one the
// cryptographic module draws (cipher.NewGCMWithRandomNonce), the only GCM
// nonce handling that GODEBUG=fips140=only allows.
func approvedBlobAEAD(prk, salt []byte) (cipher.AEAD, error) {
	var info [len(approvedBlobInfo) + format.BlobSaltSize]byte
	copy(info[:], approvedBlobInfo)
	copy(info[len(approvedBlobInfo):], salt)
	key, err := hkdf.Expand(sha256.New, prk, bytesAsString(info[:]), 32)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(b)
}

// bytesAsString returns b as a string without copying it, for the info of
// crypto/hkdf.Expand, which takes a string: converting would allocate a
// copy of every info (the info of a blob is 62 bytes, beyond the
// compiler's stack buffer for conversions). Expand only reads the info
// during the call (it writes it into the HMAC) and keeps no reference, and
// b is not changed while the call runs, so the string stays immutable for
// as long as it exists.
func bytesAsString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// materialAD is the associated data under which the root key wraps a
// version's material: it binds the material to its key ID and version
// number, so a record copied to another key or version fails to unwrap.
func materialAD(keyID [16]byte, n uint32) []byte {
	ad := append([]byte("kmsring v1 material\x00"), keyID[:]...)
	return binary.BigEndian.AppendUint32(ad, n)
}
