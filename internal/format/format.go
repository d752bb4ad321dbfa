// Package format parses and marshals kmsring's byte formats: the data key
// blob, the encryption context encoding and the envelope header. It holds no
// cryptography; see docs/FORMAT.md for the specification of every byte.
//
// Parsing is strict: fixed-size fields, canonical lengths, no trailing bytes
// and no unknown versions. Every failure wraps [ErrMalformed], so that a
// parsed value always marshals back to exactly the bytes it came from.
package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"unicode/utf8"
)

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("kmsring: malformed ciphertext")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// Data key blob.
const (
	// BlobFormat is the first byte of a data key blob of format 1
	// (XChaCha20-Poly1305).
	BlobFormat = 0x01
	// BlobFormatApproved is the first byte of an approved data key blob:
	// AES-256-GCM under a key derived per blob with HKDF-SHA-256, every
	// algorithm approved in FIPS 140-3 (docs/FORMAT.md). Identifiers from
	// 0x10 are the approved ones; 0x02 stays unassigned, since format 1's
	// negative vectors use it as the unknown format.
	BlobFormatApproved = 0x10
	// KeyIDSize is the size of a binary key ID (a UUID).
	KeyIDSize = 16
	// BlobNonceSize is the XChaCha20-Poly1305 nonce size (format 1).
	BlobNonceSize = 24
	// BlobSaltSize is the size of the HKDF salt of an approved blob.
	BlobSaltSize = 32
	// GCMNonceSize is the size of the random AES-GCM nonce the
	// cryptographic module writes at the start of an approved blob's
	// sealed part and of every segment of an approved envelope.
	GCMNonceSize = 12
	// BlobTagSize is the size of the authentication tag (both formats).
	BlobTagSize = 16
	// BlobHeaderSize is the size of the authenticated fixed prefix of a
	// format 1 blob: format, key ID, version, nonce.
	BlobHeaderSize = 1 + KeyIDSize + 4 + BlobNonceSize
	// BlobHeaderSizeApproved is the size of the authenticated fixed prefix
	// of an approved blob: format, key ID, version, salt.
	BlobHeaderSizeApproved = 1 + KeyIDSize + 4 + BlobSaltSize
	// BlobOverheadApproved is what an approved blob's sealed part adds to
	// the plaintext: the module's nonce and the tag.
	BlobOverheadApproved = GCMNonceSize + BlobTagSize
	// MaxBlobPlaintext is the largest plaintext a blob can wrap (AWS KMS's
	// Encrypt limit).
	MaxBlobPlaintext = 4096
	// MinBlobSize and MaxBlobSize bound a well-formed format 1 blob.
	MinBlobSize = BlobHeaderSize + 1 + BlobTagSize
	MaxBlobSize = BlobHeaderSize + MaxBlobPlaintext + BlobTagSize
	// MinBlobSizeApproved and MaxBlobSizeApproved bound a well-formed
	// approved format blob.
	MinBlobSizeApproved = BlobHeaderSizeApproved + 1 + BlobOverheadApproved
	MaxBlobSizeApproved = BlobHeaderSizeApproved + MaxBlobPlaintext + BlobOverheadApproved
)

// BlobHeaderLen returns the size of the fixed prefix of a blob of the
// given format, which must be BlobFormat or BlobFormatApproved.
func BlobHeaderLen(format byte) int {
	if format == BlobFormatApproved {
		return BlobHeaderSizeApproved
	}
	return BlobHeaderSize
}

// BlobLen returns the size of a blob of the given format wrapping n bytes.
func BlobLen(format byte, n int) int {
	if format == BlobFormatApproved {
		return BlobHeaderSizeApproved + n + BlobOverheadApproved
	}
	return BlobHeaderSize + n + BlobTagSize
}

// Blob is a parsed data key blob.
type Blob struct {
	// Format is BlobFormat or BlobFormatApproved.
	Format  byte
	KeyID   [KeyIDSize]byte
	Version uint32
	// Nonce is the XChaCha20-Poly1305 nonce of a format 1 blob; zero in
	// an approved blob.
	Nonce [BlobNonceSize]byte
	// Salt is the HKDF salt of an approved blob; zero in format 1.
	Salt [BlobSaltSize]byte
	// Sealed is the rest of the blob: the XChaCha20-Poly1305 ciphertext
	// including its tag (format 1), or the AES-GCM nonce, ciphertext and
	// tag (approved blob).
	Sealed []byte
}

// Approved reports whether the blob is of the format whose every
// algorithm is approved in FIPS 140-3.
func (bl *Blob) Approved() bool { return bl.Format == BlobFormatApproved }

// HeaderSize returns the size of the blob's fixed prefix.
func (bl *Blob) HeaderSize() int { return BlobHeaderLen(bl.Format) }

// ParseBlob parses a data key blob. The returned Sealed aliases b.
func ParseBlob(b []byte) (Blob, error) {
	var bl Blob
	if len(b) < 1 {
		return bl, malformed("empty blob")
	}
	minSize, maxSize := MinBlobSize, MaxBlobSize
	switch b[0] {
	case BlobFormat:
	case BlobFormatApproved:
		minSize, maxSize = MinBlobSizeApproved, MaxBlobSizeApproved
	default:
		return bl, malformed("unknown blob format %#02x", b[0])
	}
	if len(b) < minSize {
		return bl, malformed("blob of %d bytes is too short", len(b))
	}
	if len(b) > maxSize {
		return bl, malformed("blob of %d bytes is too long", len(b))
	}
	bl.Format = b[0]
	copy(bl.KeyID[:], b[1:])
	bl.Version = binary.BigEndian.Uint32(b[1+KeyIDSize:])
	if bl.Version == 0 {
		return bl, malformed("version 0")
	}
	if bl.Format == BlobFormatApproved {
		copy(bl.Salt[:], b[1+KeyIDSize+4:])
	} else {
		copy(bl.Nonce[:], b[1+KeyIDSize+4:])
	}
	bl.Sealed = b[bl.HeaderSize():]
	return bl, nil
}

// AppendHeader appends the blob's fixed prefix to dst: format, key ID,
// version and nonce (format 1) or salt (approved blob). A zero Format is
// format 1. The blob's associated data is the canonical encoding of its
// encryption context followed by this prefix (docs/FORMAT.md), so that
// inside an envelope, where the context comes right before the blob, it is
// one contiguous run of header bytes.
func (bl *Blob) AppendHeader(dst []byte) []byte {
	if bl.Format == BlobFormatApproved {
		dst = append(dst, BlobFormatApproved)
		dst = append(dst, bl.KeyID[:]...)
		dst = binary.BigEndian.AppendUint32(dst, bl.Version)
		return append(dst, bl.Salt[:]...)
	}
	dst = append(dst, BlobFormat)
	dst = append(dst, bl.KeyID[:]...)
	dst = binary.BigEndian.AppendUint32(dst, bl.Version)
	return append(dst, bl.Nonce[:]...)
}

// Marshal returns the blob's encoding.
func (bl *Blob) Marshal() []byte {
	out := make([]byte, 0, bl.HeaderSize()+len(bl.Sealed))
	return append(bl.AppendHeader(out), bl.Sealed...)
}

// Encryption context.
const (
	// MaxContextSize bounds the encoded size of an encryption context.
	MaxContextSize = 8192
	// minPairSize is the encoded size of the smallest pair: two lengths
	// and a one-byte key. It bounds the number of pairs a given number of
	// bytes can hold.
	minPairSize = 2 + 1 + 2
)

// CheckContext returns the length of ec's canonical encoding, or an error
// if ec cannot be encoded: an empty key, a string that is not valid UTF-8,
// or an encoding over MaxContextSize bytes. The size is checked first, from
// the lengths alone and stopping at the limit, so an oversized context is
// rejected without being read, copied or encoded; the cost of the rest is
// bounded by MaxContextSize.
func CheckContext(ec map[string]string) (int, error) {
	if len(ec) > (MaxContextSize-2)/minPairSize {
		return 0, errContextSize
	}
	size := 2
	for k, v := range ec {
		if len(k) > MaxContextSize || len(v) > MaxContextSize {
			return 0, errContextSize
		}
		if size += 4 + len(k) + len(v); size > MaxContextSize {
			return 0, errContextSize
		}
	}
	for k, v := range ec {
		if k == "" {
			return 0, errors.New("empty encryption context key")
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return 0, errors.New("encryption context is not valid UTF-8")
		}
	}
	return size, nil
}

var errContextSize = fmt.Errorf("encryption context exceeds %d bytes", MaxContextSize)

// AppendContext appends the canonical encoding of ec to dst: a 16-bit count,
// then each pair in ascending byte order of its key as a 16-bit key length,
// the key, a 16-bit value length and the value. It fails as CheckContext
// does, before appending anything.
func AppendContext(dst []byte, ec map[string]string) ([]byte, error) {
	size, err := CheckContext(ec)
	if err != nil {
		return dst, err
	}
	return AppendCheckedContext(dst, ec, size), nil
}

// AppendCheckedContext appends the encoding of ec, which CheckContext
// accepted and measured as size bytes, to dst. Up to 8 keys are sorted
// without allocating.
func AppendCheckedContext(dst []byte, ec map[string]string, size int) []byte {
	dst = slices.Grow(dst, size)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(ec)))
	if len(ec) == 0 {
		return dst
	}
	var small [8]string
	keys := small[:0]
	if len(ec) > len(small) {
		keys = make([]string, 0, len(ec))
	}
	for k := range ec {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(k)))
		dst = append(dst, k...)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(ec[k])))
		dst = append(dst, ec[k]...)
	}
	return dst
}

// ParseContext parses exactly one canonical encryption context encoding.
// An empty context parses as a nil map. Memory use is proportional to
// len(b), whatever count the encoding claims: the map grows with the pairs
// actually present, never sized from the count.
func ParseContext(b []byte) (map[string]string, error) {
	if err := checkContextEncoding(b); err != nil {
		return nil, err
	}
	c := cursor(b[2:])
	var ec map[string]string
	if n := binary.BigEndian.Uint16(b); n > 0 {
		ec = make(map[string]string)
	}
	for len(c) > 0 {
		k, _ := c.string16()
		v, _ := c.string16()
		ec[k] = v
	}
	return ec, nil
}

// checkContextEncoding checks that b is exactly one canonical encryption
// context encoding, without allocating.
func checkContextEncoding(b []byte) error {
	if len(b) > MaxContextSize {
		return malformed("encryption context exceeds %d bytes", MaxContextSize)
	}
	c := cursor(b)
	n, ok := c.uint16()
	if !ok {
		return malformed("truncated encryption context")
	}
	if int(n) > len(c)/minPairSize {
		return malformed("encryption context count %d larger than its pairs", n)
	}
	var prev []byte
	for i := range int(n) {
		k, ok1 := c.bytes16()
		v, ok2 := c.bytes16()
		if !ok1 || !ok2 {
			return malformed("truncated encryption context")
		}
		if len(k) == 0 {
			return malformed("empty encryption context key")
		}
		if i > 0 && bytes.Compare(k, prev) <= 0 {
			return malformed("encryption context keys not in strictly ascending order")
		}
		if !utf8.Valid(k) || !utf8.Valid(v) {
			return malformed("encryption context is not valid UTF-8")
		}
		prev = k
	}
	if len(c) != 0 {
		return malformed("trailing bytes after encryption context")
	}
	return nil
}

// Envelope header.
const (
	// Magic opens every envelope.
	Magic = "KMSR"
	// EnvelopeFormat is the envelope format version.
	EnvelopeFormat = 0x01
	// SuiteAES256GCM and SuiteChaCha20Poly1305 are the default algorithm
	// suites of format 1: the payload AEAD, in 64 KiB segments, under a
	// key derived with BLAKE2b-512, which also gives the key commitment.
	// Their data key blob is of format 1. See docs/FORMAT.md.
	SuiteAES256GCM        = 0x01
	SuiteChaCha20Poly1305 = 0x02
	// SuiteApproved is the suite whose every algorithm is approved in FIPS
	// 140-3: AES-256-GCM segments, each under a nonce the cryptographic
	// module draws, under a key derived with HKDF-SHA-512, which also
	// gives the key commitment; its data key blob is an approved one
	// (BlobFormatApproved). 0x03 stays unassigned, since format 1's
	// negative vectors use it as the unknown suite.
	SuiteApproved = 0x10
	// SaltSize and CommitmentSize are the sizes of the header's salt and
	// key commitment.
	SaltSize       = 32
	CommitmentSize = 32
	// PrefixSize is the size of the header's first fields, magic, format
	// and suite, which the key derivation takes as its prefix.
	PrefixSize = len(Magic) + 1 + 1
	// SaltOffset and CommitmentOffset locate the salt and the commitment.
	SaltOffset       = PrefixSize
	CommitmentOffset = SaltOffset + SaltSize
	// FixedHeaderSize is the size of the header before its variable part:
	// magic, format, suite, salt, commitment, context length, blob length.
	FixedHeaderSize = CommitmentOffset + CommitmentSize + 2 + 2
)

// Header is a parsed envelope header.
type Header struct {
	Suite      byte
	Salt       [SaltSize]byte
	Commitment [CommitmentSize]byte
	// Context is the encryption context, nil when empty; ContextBytes is
	// its canonical encoding, aliasing the parsed input.
	Context      map[string]string
	ContextBytes []byte
	// Blob is the data key blob that wraps the envelope's data key;
	// BlobBytes is its encoding (aliasing the parsed input). Append
	// writes Blob.
	Blob      Blob
	BlobBytes []byte
}

// AppendFixed appends the fixed part of a header to dst: magic, format,
// suite, a zero salt and commitment for the caller to fill in at
// SaltOffset and CommitmentOffset, and the lengths of the context
// encoding and of the blob, which the caller appends next. The lengths
// must be in range (see ParseHeader).
func AppendFixed(dst []byte, suite byte, contextLen, blobLen int) []byte {
	dst = append(dst, Magic...)
	dst = append(dst, EnvelopeFormat, suite)
	dst = append(dst, make([]byte, SaltSize+CommitmentSize)...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(contextLen))
	return binary.BigEndian.AppendUint16(dst, uint16(blobLen))
}

// Append appends the header's encoding to dst. It fails if the context
// cannot be encoded.
func (h *Header) Append(dst []byte) ([]byte, error) {
	ecLen, err := CheckContext(h.Context)
	if err != nil {
		return dst, err
	}
	start := len(dst)
	dst = AppendFixed(dst, h.Suite, ecLen, h.Blob.HeaderSize()+len(h.Blob.Sealed))
	copy(dst[start+SaltOffset:], h.Salt[:])
	copy(dst[start+CommitmentOffset:], h.Commitment[:])
	dst = AppendCheckedContext(dst, h.Context, ecLen)
	dst = h.Blob.AppendHeader(dst)
	return append(dst, h.Blob.Sealed...), nil
}

// ParseHeader parses the header at the start of b and returns it with its
// length in bytes. The bytes after the header (the payload) are not read.
// Nothing is allocated unless the encryption context is not empty.
func ParseHeader(b []byte) (Header, int, error) {
	ecLen, blobLen, err := parseFixed(b)
	if err != nil {
		return Header{}, 0, err
	}
	n := FixedHeaderSize + ecLen + blobLen
	if len(b) < n {
		return Header{}, 0, malformed("truncated header")
	}
	var h Header
	if err := parseHeader(&h, b[:n]); err != nil {
		return Header{}, 0, err
	}
	return h, n, nil
}

// ReadHeader reads exactly one header from r and returns it with its bytes,
// which it aliases.
func ReadHeader(r io.Reader) (Header, []byte, error) {
	buf := make([]byte, FixedHeaderSize)
	if _, err := io.ReadFull(r, buf); err != nil {
		return Header{}, nil, readErr(err)
	}
	ecLen, blobLen, err := parseFixed(buf)
	if err != nil {
		return Header{}, nil, err
	}
	buf = append(buf, make([]byte, ecLen+blobLen)...)
	if _, err := io.ReadFull(r, buf[FixedHeaderSize:]); err != nil {
		return Header{}, nil, readErr(err)
	}
	var h Header
	if err := parseHeader(&h, buf); err != nil {
		return Header{}, nil, err
	}
	return h, buf, nil
}

func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return malformed("truncated header")
	}
	return err
}

// parseFixed checks the fixed part of a header and returns the lengths of
// the variable parts.
func parseFixed(b []byte) (ecLen, blobLen int, err error) {
	if len(b) < len(Magic) || string(b[:len(Magic)]) != Magic {
		if len(b) < len(Magic) && Magic[:len(b)] == string(b) {
			return 0, 0, malformed("truncated header")
		}
		return 0, 0, malformed("not a kmsring envelope")
	}
	if len(b) < len(Magic)+1 {
		return 0, 0, malformed("truncated header")
	}
	if f := b[len(Magic)]; f != EnvelopeFormat {
		return 0, 0, malformed("unknown envelope format %#02x", f)
	}
	if len(b) < len(Magic)+2 {
		return 0, 0, malformed("truncated header")
	}
	suite := b[len(Magic)+1]
	if suite != SuiteAES256GCM && suite != SuiteChaCha20Poly1305 && suite != SuiteApproved {
		return 0, 0, malformed("unknown algorithm suite %#02x", suite)
	}
	if len(b) < FixedHeaderSize {
		return 0, 0, malformed("truncated header")
	}
	ecLen = int(binary.BigEndian.Uint16(b[FixedHeaderSize-4:]))
	blobLen = int(binary.BigEndian.Uint16(b[FixedHeaderSize-2:]))
	if ecLen < 2 || ecLen > MaxContextSize {
		return 0, 0, malformed("encryption context length %d out of range", ecLen)
	}
	minBlob, maxBlob := MinBlobSize, MaxBlobSize
	if suite == SuiteApproved {
		minBlob, maxBlob = MinBlobSizeApproved, MaxBlobSizeApproved
	}
	if blobLen < minBlob || blobLen > maxBlob {
		return 0, 0, malformed("blob length %d out of range", blobLen)
	}
	return ecLen, blobLen, nil
}

// parseHeader parses b, which holds exactly one header whose fixed part
// parseFixed accepted, into h.
func parseHeader(h *Header, b []byte) error {
	ecLen := int(binary.BigEndian.Uint16(b[FixedHeaderSize-4:]))
	h.Suite = b[len(Magic)+1]
	copy(h.Salt[:], b[SaltOffset:])
	copy(h.Commitment[:], b[CommitmentOffset:])
	h.ContextBytes = b[FixedHeaderSize : FixedHeaderSize+ecLen]
	ec, err := ParseContext(h.ContextBytes)
	if err != nil {
		return err
	}
	h.Context = ec
	h.BlobBytes = b[FixedHeaderSize+ecLen:]
	if h.Blob, err = ParseBlob(h.BlobBytes); err != nil {
		return err
	}
	if want := BlobFormatFor(h.Suite); h.Blob.Format != want {
		return malformed("suite %#02x holds a blob of format %#02x, not %#02x", h.Suite, h.Blob.Format, want)
	}
	return nil
}

// BlobFormatFor returns the format of the data key blob an envelope of the
// given suite holds: an approved blob in the approved suite, format 1 in the
// others.
func BlobFormatFor(suite byte) byte {
	if suite == SuiteApproved {
		return BlobFormatApproved
	}
	return BlobFormat
}

// Approved reports whether the header is of the suite whose every
// algorithm is approved in FIPS 140-3 (its blob is then an approved blob).
func (h *Header) Approved() bool { return h.Suite == SuiteApproved }

// cursor reads big-endian fields from a byte slice.
type cursor []byte

func (c *cursor) uint16() (uint16, bool) {
	if len(*c) < 2 {
		return 0, false
	}
	v := binary.BigEndian.Uint16(*c)
	*c = (*c)[2:]
	return v, true
}

func (c *cursor) bytes16() ([]byte, bool) {
	n, ok := c.uint16()
	if !ok || len(*c) < int(n) {
		return nil, false
	}
	b := (*c)[:n]
	*c = (*c)[n:]
	return b, true
}

func (c *cursor) string16() (string, bool) {
	b, ok := c.bytes16()
	return string(b), ok
}
