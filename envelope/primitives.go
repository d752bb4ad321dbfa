package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"unsafe"

	"github.com/kmsring/kmsring/internal/fipsmode"
	"github.com/kmsring/kmsring/internal/format"
	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/chacha20poly1305"
)

const (
	// dekSize is the size of an envelope's data key.
	dekSize = 32
	// segmentSize is the plaintext size of every segment but the last.
	segmentSize = 64 << 10
	// tagSize is the tag size of every payload AEAD.
	tagSize = 16
	// blobRandSize is the randomness of a blob: the nonce of format 1, the
	// salt of an approved blob (the larger).
	blobRandSize = max(format.BlobNonceSize, format.BlobSaltSize)
	// randSize is the most randomness a message takes, in one read: its
	// data key, the blob's nonce or salt and the header's salt.
	randSize = dekSize + blobRandSize + format.SaltSize
	// maxApprovedSegments bounds the segments of an approved envelope:
	// each draws a random 96-bit nonce under the envelope's payload key,
	// and SP 800-38D §8.3 allows 2³² such invocations per key. That is
	// 256 TiB of plaintext.
	maxApprovedSegments = 1 << 32
	// chachaMax is the largest plaintext Seal seals with
	// ChaCha20-Poly1305, in one segment: up to it, no key schedule beats
	// AES-256-GCM's faster bulk encryption (measured in bench/, see
	// bench/README.md). Larger messages and every stream use AES-256-GCM.
	chachaMax = 4 << 10
)

// randSizeFor is the randomness a message of the suite takes: its data
// key, the blob's nonce (format 1) or salt (approved) and the header's
// salt. (The default suites read exactly that, so that the vector
// generator's fixed randomness still gives format 1's vectors byte for
// byte.)
func randSizeFor(suite byte) int {
	if suite == format.SuiteApproved {
		return dekSize + format.BlobSaltSize + format.SaltSize
	}
	return dekSize + format.BlobNonceSize + format.SaltSize
}

// blobSize returns the size of the data key blob of an envelope of the
// given suite.
func blobSize(suite byte) int { return format.BlobLen(format.BlobFormatFor(suite), dekSize) }

// overhead returns what the suite adds to a segment: the tag, and in the
// approved suite the nonce the module draws.
func overhead(suite byte) int {
	if suite == format.SuiteApproved {
		return format.GCMNonceSize + tagSize
	}
	return tagSize
}

// sealedSegmentSize returns the size of a full segment of the suite on the
// wire.
func sealedSegmentSize(suite byte) int { return segmentSize + overhead(suite) }

// suiteFor returns the suite Seal uses for a plaintext of n bytes, under a
// keyring that writes approved formats or not.
func suiteFor(approved bool, n int) byte {
	if approved {
		return format.SuiteApproved
	}
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
//
// The approved suite derives with HKDF-SHA-512 instead (deriveApproved).
func deriveKeys(prefix, keyID, salt, dek, context []byte) (payloadKey, commitment [32]byte, err error) {
	if prefix[format.PrefixSize-1] == format.SuiteApproved {
		return deriveApproved(prefix, keyID, salt, dek, context)
	}
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
	return payloadKey, commitment, nil
}

// deriveApproved returns the payload key and the key commitment of a
// message of the approved suite (docs/FORMAT.md, "The approved suite"):
//
//	payloadKey (32) || commitment (32) = HKDF-Expand(SHA-512, PRK = dek, info = prefix || keyID || salt || context, 64)
//
// HKDF (RFC 5869, SP 800-56C r2) with the extraction step skipped, as RFC
// 5869 §3.3 allows for a key that is already uniformly random (the 256-bit
// data key), so the data key is the HMAC-SHA-512 key of one expansion
// block; the header's salt is in the info. Every field before the context
// has a fixed size and the context is last, so the info is an injective
// encoding of the fields Rewrap keeps, as in deriveKeys. HMAC-SHA-512 is a
// PRF, so the two halves are independent and uniform (the commitment
// reveals nothing of the payload key); and it is collision resistant over
// its key and input together, so the 256-bit commitment binds the data key
// and every header field with 128-bit security, as the AWS Encryption
// SDK's committing suites bind theirs with HKDF-SHA-512.
func deriveApproved(prefix, keyID, salt, dek, context []byte) (payloadKey, commitment [32]byte, err error) {
	var small [256]byte
	n := len(prefix) + len(keyID) + len(salt) + len(context)
	info := small[:0]
	if n > len(small) {
		info = make([]byte, 0, n)
	}
	info = append(info, prefix...)
	info = append(info, keyID...)
	info = append(info, salt...)
	info = append(info, context...)
	// The info is passed without a copy (Expand reads it during the call
	// and keeps no reference; info is not changed meanwhile): converting
	// it to a string would allocate, as it is longer than the compiler's
	// stack buffer for conversions.
	okm, err := hkdf.Expand(sha512.New, dek, unsafe.String(unsafe.SliceData(info), len(info)), 64)
	if err != nil {
		return payloadKey, commitment, err
	}
	copy(payloadKey[:], okm[:32])
	copy(commitment[:], okm[32:])
	clear(okm)
	return payloadKey, commitment, nil
}

// segmentAEAD seals and opens the segments of one message.
type segmentAEAD struct {
	aead     cipher.AEAD
	approved bool
	nonce    *[12]byte // default suites: the nonce of segments past the first
	ad       *[9]byte  // approved suite: the associated data of segments past the first
}

// newPayloadAEAD returns the suite's payload AEAD under the payload key.
// ChaCha20-Poly1305 has no key schedule, which makes it the cheaper choice
// for one short segment; AES-256-GCM is faster in bulk on CPUs with AES
// instructions. The approved suite's AES-256-GCM draws each segment's
// nonce in the cryptographic module (cipher.NewGCMWithRandomNonce).
//
// Under GODEBUG=fips140=only, cipher.NewGCM (suite 0x01) is refused: the
// caller reads a default-suite envelope only after opting in, and this
// lifts the enforcement for the call.
func newPayloadAEAD(suite byte, key *[32]byte) (segmentAEAD, error) {
	var a cipher.AEAD
	var err error
	switch suite {
	case format.SuiteChaCha20Poly1305:
		fipsmode.Legacy(func() { a, err = chacha20poly1305.New(key[:]) })
	case format.SuiteApproved:
		var b cipher.Block
		if b, err = aes.NewCipher(key[:]); err == nil {
			a, err = cipher.NewGCMWithRandomNonce(b)
		}
	default:
		fipsmode.Legacy(func() {
			var b cipher.Block
			if b, err = aes.NewCipher(key[:]); err == nil {
				a, err = cipher.NewGCM(b)
			}
		})
	}
	if err != nil {
		return segmentAEAD{}, errors.New("envelope: payload cipher: " + err.Error())
	}
	return segmentAEAD{aead: a, approved: suite == format.SuiteApproved}, nil
}

// seal appends segment i of the message, sealed, to dst. In the default
// suites the nonce is the segment's (segmentNonce); in the approved suite
// the module draws a random nonce, written before the ciphertext, and the
// segment's index and final flag are its associated data.
func (s *segmentAEAD) seal(dst []byte, i uint64, last bool, pt []byte) []byte {
	if s.approved {
		return s.aead.Seal(dst, nil, pt, approvedSegmentAD(&s.ad, i, last))
	}
	return s.aead.Seal(dst, segmentNonce(&s.nonce, i, last), pt, nil)
}

// open opens segment i, sealed, and appends its plaintext to dst.
func (s *segmentAEAD) open(dst []byte, i uint64, last bool, sealed []byte) ([]byte, error) {
	if s.approved {
		if i >= maxApprovedSegments {
			return nil, errTooManySegments
		}
		return s.aead.Open(dst, nil, sealed, approvedSegmentAD(&s.ad, i, last))
	}
	return s.aead.Open(dst, segmentNonce(&s.nonce, i, last), sealed, nil)
}

var errTooManySegments = errors.New("envelope: more than 2^32 segments in an approved envelope")

// approvedSegmentAD returns the associated data of segment i of an
// approved envelope: i as a 64-bit big-endian integer and 1 for the last
// segment, 0 otherwise. The payload key is the message's own, so a segment
// moved, dropped, reordered or falsely marked last fails to authenticate,
// as in the default suites' nonces. As with segmentNonce, the first
// segment's is static and read-only (an AEAD does not write its associated
// data), and the others are written into *buf, allocated on first use: a
// one-segment message allocates none (the slice handed to the AEAD
// interface would escape).
func approvedSegmentAD(buf **[9]byte, i uint64, last bool) []byte {
	if i == 0 {
		if last {
			return onlyAD[:]
		}
		return firstAD[:]
	}
	if *buf == nil {
		*buf = new([9]byte)
	}
	binary.BigEndian.PutUint64((*buf)[:8], i)
	(*buf)[8] = 0
	if last {
		(*buf)[8] = 1
	}
	return (*buf)[:]
}

// The associated data of an approved envelope's first segment, as the only
// (last) one and as the first of several.
var (
	onlyAD  = [9]byte{8: 1}
	firstAD = [9]byte{}
)

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
