// Package format parses and marshals kmsring's byte formats: the data key
// blob, the encryption context encoding and the envelope header. It holds no
// cryptography; see docs/FORMAT.md for the specification of every byte.
//
// Parsing is strict: fixed-size fields, canonical lengths, no trailing bytes
// and no unknown versions. Every failure wraps [ErrMalformed], so that a
// parsed value always marshals back to exactly the bytes it came from.
package format

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("kmsring: malformed ciphertext")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// Data key blob.
const (
	// BlobFormat is the first byte of every data key blob.
	BlobFormat = 0x01
	// KeyIDSize is the size of a binary key ID (a UUID).
	KeyIDSize = 16
	// BlobNonceSize is the XChaCha20-Poly1305 nonce size.
	BlobNonceSize = 24
	// BlobTagSize is the Poly1305 tag size.
	BlobTagSize = 16
	// BlobHeaderSize is the size of the authenticated fixed prefix of a blob:
	// format, key ID, version, nonce.
	BlobHeaderSize = 1 + KeyIDSize + 4 + BlobNonceSize
	// MaxBlobPlaintext is the largest plaintext a blob can wrap (AWS KMS's
	// Encrypt limit).
	MaxBlobPlaintext = 4096
	// MinBlobSize and MaxBlobSize bound a well-formed blob.
	MinBlobSize = BlobHeaderSize + 1 + BlobTagSize
	MaxBlobSize = BlobHeaderSize + MaxBlobPlaintext + BlobTagSize
)

// Blob is a parsed data key blob.
type Blob struct {
	KeyID   [KeyIDSize]byte
	Version uint32
	Nonce   [BlobNonceSize]byte
	// Sealed is the XChaCha20-Poly1305 ciphertext including its tag.
	Sealed []byte
}

// ParseBlob parses a data key blob. The returned Sealed aliases b.
func ParseBlob(b []byte) (Blob, error) {
	var bl Blob
	if len(b) < 1 {
		return bl, malformed("empty blob")
	}
	if b[0] != BlobFormat {
		return bl, malformed("unknown blob format %#02x", b[0])
	}
	if len(b) < MinBlobSize {
		return bl, malformed("blob of %d bytes is too short", len(b))
	}
	if len(b) > MaxBlobSize {
		return bl, malformed("blob of %d bytes is too long", len(b))
	}
	copy(bl.KeyID[:], b[1:])
	bl.Version = binary.BigEndian.Uint32(b[1+KeyIDSize:])
	if bl.Version == 0 {
		return bl, malformed("version 0")
	}
	copy(bl.Nonce[:], b[1+KeyIDSize+4:])
	bl.Sealed = b[BlobHeaderSize:]
	return bl, nil
}

// AppendHeader appends the blob's fixed prefix (the part bound as
// associated data) to dst.
func (bl *Blob) AppendHeader(dst []byte) []byte {
	dst = append(dst, BlobFormat)
	dst = append(dst, bl.KeyID[:]...)
	dst = binary.BigEndian.AppendUint32(dst, bl.Version)
	return append(dst, bl.Nonce[:]...)
}

// Marshal returns the blob's encoding.
func (bl *Blob) Marshal() []byte {
	out := make([]byte, 0, BlobHeaderSize+len(bl.Sealed))
	return append(bl.AppendHeader(out), bl.Sealed...)
}

// Encryption context.
const (
	// MaxContextSize bounds the encoded size of an encryption context.
	MaxContextSize = 8192
)

// AppendContext appends the canonical encoding of ec to dst: a 16-bit count,
// then each pair in ascending byte order of its key as a 16-bit key length,
// the key, a 16-bit value length and the value. Keys must be non-empty, keys
// and values valid UTF-8, and the encoding at most MaxContextSize bytes.
func AppendContext(dst []byte, ec map[string]string) ([]byte, error) {
	keys := make([]string, 0, len(ec))
	size := 2
	for k, v := range ec {
		if k == "" {
			return nil, errors.New("empty encryption context key")
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, errors.New("encryption context is not valid UTF-8")
		}
		size += 4 + len(k) + len(v)
		if size > MaxContextSize {
			return nil, fmt.Errorf("encryption context exceeds %d bytes", MaxContextSize)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = slices.Grow(dst, size)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(keys)))
	for _, k := range keys {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(k)))
		dst = append(dst, k...)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(ec[k])))
		dst = append(dst, ec[k]...)
	}
	return dst, nil
}

// ContextSize returns the length of ec's canonical encoding, for sizing
// buffers; AppendContext checks the limits.
func ContextSize(ec map[string]string) int {
	n := 2
	for k, v := range ec {
		n += 4 + len(k) + len(v)
	}
	return n
}

// ParseContext parses exactly one canonical encryption context encoding.
// An empty context parses as a nil map.
func ParseContext(b []byte) (map[string]string, error) {
	if len(b) > MaxContextSize {
		return nil, malformed("encryption context exceeds %d bytes", MaxContextSize)
	}
	c := cursor(b)
	n, ok := c.uint16()
	if !ok {
		return nil, malformed("truncated encryption context")
	}
	var ec map[string]string
	if n > 0 {
		ec = make(map[string]string, n)
	}
	prev := ""
	for i := range int(n) {
		k, ok1 := c.string16()
		v, ok2 := c.string16()
		if !ok1 || !ok2 {
			return nil, malformed("truncated encryption context")
		}
		if k == "" {
			return nil, malformed("empty encryption context key")
		}
		if i > 0 && strings.Compare(k, prev) <= 0 {
			return nil, malformed("encryption context keys not in strictly ascending order")
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, malformed("encryption context is not valid UTF-8")
		}
		ec[k] = v
		prev = k
	}
	if len(c) != 0 {
		return nil, malformed("trailing bytes after encryption context")
	}
	return ec, nil
}

// Envelope header.
const (
	// Magic opens every envelope.
	Magic = "KMSR"
	// EnvelopeFormat is the envelope format version.
	EnvelopeFormat = 0x01
	// SuiteAES256GCMSHA512 is the only algorithm suite of format 1:
	// AES-256-GCM payload in 64 KiB segments, SHA-512 key derivation and
	// key commitment. See docs/FORMAT.md.
	SuiteAES256GCMSHA512 = 0x01
	// SaltSize and CommitmentSize are the sizes of the header's salt and
	// key commitment.
	SaltSize       = 32
	CommitmentSize = 32
	// FixedHeaderSize is the size of the header before its variable part:
	// magic, format, suite, salt, commitment, context length, blob length.
	FixedHeaderSize = len(Magic) + 1 + 1 + SaltSize + CommitmentSize + 2 + 2
)

// Header is a parsed envelope header.
type Header struct {
	Suite      byte
	Salt       [SaltSize]byte
	Commitment [CommitmentSize]byte
	// Context is the encryption context; nil when empty.
	Context map[string]string
	// Blob is the data key blob that wraps the envelope's data key;
	// BlobBytes is its encoding (aliasing the parsed input). Append
	// writes Blob.
	Blob      Blob
	BlobBytes []byte
}

// Append appends the header's encoding to dst.
func (h *Header) Append(dst []byte) ([]byte, error) {
	start := len(dst)
	dst = append(dst, Magic...)
	dst = append(dst, EnvelopeFormat, h.Suite)
	dst = append(dst, h.Salt[:]...)
	dst = append(dst, h.Commitment[:]...)
	lens := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst, err := AppendContext(dst, h.Context)
	if err != nil {
		return dst[:start], err
	}
	ecLen := len(dst) - lens - 4
	dst = h.Blob.AppendHeader(dst)
	dst = append(dst, h.Blob.Sealed...)
	binary.BigEndian.PutUint16(dst[lens:], uint16(ecLen))
	binary.BigEndian.PutUint16(dst[lens+2:], uint16(BlobHeaderSize+len(h.Blob.Sealed)))
	return dst, nil
}

// ParseHeader parses the header at the start of b and returns it with its
// length in bytes. The bytes after the header (the payload) are not read.
func ParseHeader(b []byte) (*Header, int, error) {
	ecLen, blobLen, err := parseFixed(b)
	if err != nil {
		return nil, 0, err
	}
	n := FixedHeaderSize + ecLen + blobLen
	if len(b) < n {
		return nil, 0, malformed("truncated header")
	}
	h, err := parseHeader(b[:n])
	return h, n, err
}

// ReadHeader reads exactly one header from r and returns it with its bytes.
func ReadHeader(r io.Reader) (*Header, []byte, error) {
	buf := make([]byte, FixedHeaderSize)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, nil, readErr(err)
	}
	ecLen, blobLen, err := parseFixed(buf)
	if err != nil {
		return nil, nil, err
	}
	buf = append(buf, make([]byte, ecLen+blobLen)...)
	if _, err := io.ReadFull(r, buf[FixedHeaderSize:]); err != nil {
		return nil, nil, readErr(err)
	}
	h, err := parseHeader(buf)
	return h, buf, err
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
	if s := b[len(Magic)+1]; s != SuiteAES256GCMSHA512 {
		return 0, 0, malformed("unknown algorithm suite %#02x", s)
	}
	if len(b) < FixedHeaderSize {
		return 0, 0, malformed("truncated header")
	}
	ecLen = int(binary.BigEndian.Uint16(b[FixedHeaderSize-4:]))
	blobLen = int(binary.BigEndian.Uint16(b[FixedHeaderSize-2:]))
	if ecLen < 2 || ecLen > MaxContextSize {
		return 0, 0, malformed("encryption context length %d out of range", ecLen)
	}
	if blobLen < MinBlobSize || blobLen > MaxBlobSize {
		return 0, 0, malformed("blob length %d out of range", blobLen)
	}
	return ecLen, blobLen, nil
}

// parseHeader parses b, which holds exactly one header whose fixed part
// parseFixed accepted.
func parseHeader(b []byte) (*Header, error) {
	ecLen := int(binary.BigEndian.Uint16(b[FixedHeaderSize-4:]))
	h := &Header{Suite: b[len(Magic)+1]}
	copy(h.Salt[:], b[len(Magic)+2:])
	copy(h.Commitment[:], b[len(Magic)+2+SaltSize:])
	ec, err := ParseContext(b[FixedHeaderSize : FixedHeaderSize+ecLen])
	if err != nil {
		return nil, err
	}
	h.Context = ec
	h.BlobBytes = b[FixedHeaderSize+ecLen:]
	if h.Blob, err = ParseBlob(h.BlobBytes); err != nil {
		return nil, err
	}
	return h, nil
}

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

func (c *cursor) string16() (string, bool) {
	n, ok := c.uint16()
	if !ok || len(*c) < int(n) {
		return "", false
	}
	s := string((*c)[:n])
	*c = (*c)[n:]
	return s, true
}
