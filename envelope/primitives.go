package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"unsafe"

	"github.com/kmsring/kmsring/internal/format"
	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/chacha20poly1305"
)

const (
	// dekSize is the size of an envelope's data key.
	dekSize = 32
	// blobSize is the size of the data key blob that wraps it.
	blobSize = format.BlobHeaderSize + dekSize + format.BlobTagSize
	// segmentSize is the plaintext size of every segment but the last.
	segmentSize = 64 << 10
	// tagSize is the tag size of both payload AEADs.
	tagSize = 16
	// sealedSegmentSize is the size of a full segment on the wire.
	sealedSegmentSize = segmentSize + tagSize
	// randSize is the randomness a message takes, in one read: its data
	// key, the blob's nonce and the salt.
	randSize = dekSize + format.BlobNonceSize + format.SaltSize
	// chachaMax is the largest plaintext Seal seals with
	// ChaCha20-Poly1305, in one segment: up to it, no key schedule beats
	// AES-256-GCM's faster bulk encryption (measured in bench/, see
	// bench/README.md). Larger messages and every stream use AES-256-GCM.
	chachaMax = 4 << 10
)

// suiteFor returns the suite Seal uses for a plaintext of n bytes.
func suiteFor(n int) byte {
	if n <= chachaMax {
		return format.SuiteChaCha20Poly1305
	}
	return format.SuiteAES256GCM
}

// deriveKeys returns the payload key and the key commitment of one
// message (docs/FORMAT.md, "Derivation and commitment"):
//
//	BLAKE2b-512(prefix || keyID || salt || dek || context) = payloadKey (32) || commitment (32)
//
// prefix is the header's first six bytes (magic, format version, suite),
// keyID the 16-byte key ID of the data key blob, salt the header's fresh
// random 256-bit salt, dek the 256-bit data key and context the canonical
// encoding of the encryption context. Every field before the context has a
// fixed size and the context is last, so the input is an injective encoding
// of the fields; they are every header field Rewrap keeps (the version and
// the blob are what it replaces).
//
// Modelling BLAKE2b-512 as a random oracle, on an input whose secret part
// (dek) has full entropy, the two halves are independent and uniform: the
// payload key stays secret when the commitment is public. The commitment is
// a 256-bit collision-resistant function of every input, so an envelope
// opens under one data key and one context only: relabelling the context
// (even with the blob re-encrypted to match it) or substituting another data
// key changes the commitment, which Open checks in constant time before
// releasing plaintext, and the payload key. A fresh salt gives every message
// its own payload key even when a data key is reused (the Cache), so a
// leaked payload key opens one message. Up to a 42-byte context, this is one
// BLAKE2b compression, measured at half the cost of SHA-512 on the same
// input (bench/README.md).
func deriveKeys(prefix, keyID, salt, dek, context []byte) (payloadKey, commitment [32]byte) {
	var small [256]byte
	n := len(prefix) + len(keyID) + len(salt) + len(dek) + len(context)
	in := small[:0]
	if n > len(small) {
		in = make([]byte, 0, n)
	}
	in = append(in, prefix...)
	in = append(in, keyID...)
	in = append(in, salt...)
	in = append(in, dek...)
	in = append(in, context...)
	sum := blake2b.Sum512(in)
	clear(in)
	copy(payloadKey[:], sum[:32])
	copy(commitment[:], sum[32:])
	clear(sum[:])
	return payloadKey, commitment
}

// newPayloadAEAD returns the suite's payload AEAD under the payload key.
// ChaCha20-Poly1305 has no key schedule, which makes it the cheaper choice
// for one short segment; AES-256-GCM is faster in bulk on CPUs with AES
// instructions.
func newPayloadAEAD(suite byte, key *[32]byte) cipher.AEAD {
	if suite == format.SuiteChaCha20Poly1305 {
		a, err := chacha20poly1305.New(key[:])
		if err != nil {
			panic("envelope: " + err.Error())
		}
		return a
	}
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

// The nonces of the first segment, as the only (last) one and as the first
// of several, never change: read-only, they cost no allocation.
var (
	onlyNonce  = [12]byte{11: 1}
	firstNonce = [12]byte{}
)

// segmentNonce returns the nonce of segment i: an 11-byte big-endian
// counter and a final byte that is 1 for the last segment and 0 otherwise.
// The first segment's is static; the others are written into *buf, which
// is allocated on first use (only messages of more than one segment need
// it). The payload key is unique to the
// message, so (key, nonce) never repeats, and a segment moved, dropped,
// reordered or falsely marked last fails to authenticate. This is the
// STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár.
func segmentNonce(buf **[12]byte, i uint64, last bool) []byte {
	if i == 0 {
		if last {
			return onlyNonce[:]
		}
		return firstNonce[:]
	}
	if *buf == nil {
		*buf = new([12]byte)
	}
	return putNonce(*buf, i, last)
}

// putNonce writes the nonce of segment i into buf and returns it.
func putNonce(buf *[12]byte, i uint64, last bool) []byte {
	clear(buf[:3])
	binary.BigEndian.PutUint64(buf[3:11], i)
	buf[11] = 0
	if last {
		buf[11] = 1
	}
	return buf[:]
}

// segments returns the number of segments of a plaintext of n bytes.
func segments(n int) int {
	if n == 0 {
		return 1
	}
	return (n + segmentSize - 1) / segmentSize
}

// overlaps reports whether x and y share memory.
func overlaps(x, y []byte) bool {
	if len(x) == 0 || len(y) == 0 {
		return false
	}
	x0, x1 := uintptr(unsafe.Pointer(&x[0])), uintptr(unsafe.Pointer(&x[len(x)-1]))
	y0, y1 := uintptr(unsafe.Pointer(&y[0])), uintptr(unsafe.Pointer(&y[len(y)-1]))
	return x0 <= y1 && y0 <= x1
}
