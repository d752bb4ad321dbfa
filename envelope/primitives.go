package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha512"
	"encoding/binary"

	"github.com/kmsring/kmsring/internal/format"
)

const (
	// dekSize is the size of an envelope's data key (AES-256).
	dekSize = 32
	// segmentSize is the plaintext size of every segment but the last.
	segmentSize = 64 << 10
	// tagSize is the AES-GCM tag size.
	tagSize = 16
	// sealedSegmentSize is the size of a full segment on the wire.
	sealedSegmentSize = segmentSize + tagSize
)

// deriveDomain opens the derivation input. It has a fixed length, and so
// do the fields after it, which makes the input an injective encoding.
const deriveDomain = "kmsring v1 envelope keys\x00"

// deriveKeys returns the payload key and the key commitment of one message:
//
//	SHA-512(deriveDomain || suite || dek || salt) = payloadKey (32) || commitment (32)
//
// dek is a uniformly random 256-bit key and salt a fresh random 256-bit
// value per message, so every message gets its own payload key even when a
// data key is reused. Modelling SHA-512 as a random oracle, on an input of
// fixed layout whose secret part has full entropy, both halves are
// independent and uniform: the payload key stays secret when the commitment
// is public, and length extension does not apply (nothing is a MAC over
// attacker-chosen data). The commitment is a 256-bit collision-resistant
// function of (dek, salt), so no one, even knowing several data keys, can
// make one envelope open under two of them: AES-GCM alone does not commit to
// its key. One SHA-512 compression (the input is 90 bytes) costs about what
// two SHA-256 compressions do, against at least sixteen for HKDF-SHA256.
func deriveKeys(dek []byte, salt *[format.SaltSize]byte) (payloadKey, commitment [32]byte) {
	var in [len(deriveDomain) + 1 + dekSize + format.SaltSize]byte
	n := copy(in[:], deriveDomain)
	in[n] = format.SuiteAES256GCMSHA512
	n++
	n += copy(in[n:], dek)
	copy(in[n:], salt[:])
	sum := sha512.Sum512(in[:])
	clear(in[:])
	copy(payloadKey[:], sum[:32])
	copy(commitment[:], sum[32:])
	clear(sum[:])
	return payloadKey, commitment
}

// msgKey holds a message's payload key and the segment nonce buffer, in
// one allocation.
type msgKey struct {
	key   [32]byte
	nonce [12]byte
}

// newPayloadAEAD returns AES-256-GCM under the payload key.
func newPayloadAEAD(key *[32]byte) cipher.AEAD {
	b, err := aes.NewCipher(key[:])
	if err != nil {
		panic("envelope: " + err.Error())
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic("envelope: " + err.Error())
	}
	return g
}

// segmentNonce returns the nonce of segment i: an 11-byte big-endian
// counter and a final byte that is 1 for the last segment and 0 otherwise.
// The payload key is unique to the message, so (key, nonce) never repeats,
// and a segment moved, dropped, reordered or falsely marked last fails to
// authenticate. This is the STREAM construction of Hoang, Reyhanitabar,
// Rogaway and Vizár, as age also uses.
func segmentNonce(nonce *[12]byte, i uint64, last bool) {
	clear(nonce[:3])
	binary.BigEndian.PutUint64(nonce[3:11], i)
	nonce[11] = 0
	if last {
		nonce[11] = 1
	}
}
