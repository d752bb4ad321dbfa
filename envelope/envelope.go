// Package envelope seals data under a fresh data key from a keyring and
// writes a header that names the key and version, so that Open finds them
// without being told.
//
// # Format
//
// An envelope is a header followed by the payload in segments of 64 KiB,
// the last one marked. The header holds the encryption context, a random
// salt, a key commitment and the data key blob (the same format
// keyring.Keyring.Encrypt produces). The payload is sealed under a key
// derived with BLAKE2b-512 from the data key, the salt, the key ID and the
// encryption context: with ChaCha20-Poly1305 for messages up to 4 KiB, which
// have one segment, and with AES-256-GCM for larger messages and for every
// stream. docs/FORMAT.md specifies every byte. Envelopes written by this
// format open in every later release.
//
// Whole buffers ([Seal], [Open]; [AppendSeal] and [AppendOpen] into a
// caller's buffer) and streams ([NewWriter], [NewReader]) use the same
// format: either side may be a stream.
//
// # FIPS 140-3
//
// In FIPS 140-3 mode (crypto/fips140.Enabled()), or under a keyring made
// with keyring.WithApprovedAlgorithms, Seal and NewWriter write the
// approved suite instead: AES-256-GCM segments under nonces the Go
// Cryptographic Module draws, a payload key and commitment from
// HKDF-SHA-512, and a data key blob under AES-256-GCM with a per-blob
// HKDF-SHA-256 key. It opens in every mode ([Header].FIPSApproved says
// which suite an envelope is). In the mode, the default suites fail with
// keyring.ErrNotApproved unless [AllowNonApproved] is given; [RewrapAll]
// moves them to the approved suite. docs/FIPS.md tells the migration.
//
// # Security
//
// Every header byte is authenticated before any plaintext is released: the
// blob by its own AEAD under the key version (which also binds the key ID,
// the version and the encryption context), and everything Rewrap keeps (the
// format bytes, the salt, the key ID and the encryption context) by the key
// commitment and the payload key, which depend on them and on the data key.
// An envelope sealed under one encryption context therefore never opens
// under another, even after its blob was re-encrypted to the other context
// and spliced into the header. Truncation, also at a segment boundary,
// reordering and bit flips fail with an error, never with partial plaintext
// from Open; [Open] lists the errors. [Rewrap] replaces the blob without
// touching the payload, to move old envelopes to the current key version.
//
// To learn what was authenticated, pass [WithHeader] to Open or NewReader
// rather than calling [Inspect], which checks nothing.
//
// # Concurrency
//
// The functions are safe for concurrent use. A Writer or Reader is not; use
// one per goroutine.
package envelope

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"maps"

	"github.com/google/uuid"
	"github.com/kmsring/kmsring/internal/datakey"
	"github.com/kmsring/kmsring/internal/fipsmode"
	"github.com/kmsring/kmsring/internal/format"
	"github.com/kmsring/kmsring/keyring"
)

// subError is an error that is a case of a broader one: errors.Is matches
// both.
type subError struct {
	msg    string
	parent error
}

func (e *subError) Error() string { return e.msg }
func (e *subError) Unwrap() error { return e.parent }

var (
	// ErrContextMismatch reports that Open or NewReader was given an
	// encryption context (WithEncryptionContext) that is not exactly the
	// one in the header. It matches keyring.ErrDecrypt too, as
	// keyring.Decrypt fails with a wrong context: the envelope does not
	// open under the context given. The header is not authenticated when
	// this is reported, so it may equally be a tampered header or the
	// wrong envelope.
	ErrContextMismatch error = &subError{"envelope: encryption context does not match the expected one", keyring.ErrDecrypt}
	// ErrTruncated reports an envelope whose payload ends early: cut
	// after the header, at a segment boundary or inside a segment's tag,
	// or written by a Writer that was never closed. It matches
	// keyring.ErrDecrypt too. Every segment before the cut authenticated;
	// Open returns none of them, a Reader has returned them already.
	ErrTruncated error = &subError{"envelope: truncated (its writer may not have been closed)", keyring.ErrDecrypt}
)

// Opener decrypts data key blobs. *keyring.Keyring and *keyring.Set satisfy
// it, and open envelopes without allocating beyond the plaintext; any other
// Opener is called through Decrypt.
type Opener interface {
	Decrypt(ctx context.Context, blob []byte, opts ...keyring.OpOption) ([]byte, error)
}

// Option configures Seal, Open, NewWriter and NewReader. It is a plain value
// (no closure), so passing options allocates nothing.
type Option struct {
	ec               map[string]string
	hasEC            bool
	cache            *Cache
	header           *Header
	allowNonApproved bool
}

// newConfig merges opts; the last of each kind wins.
func newConfig(opts []Option) Option {
	var c Option
	for _, o := range opts {
		if o.hasEC {
			c.ec, c.hasEC = o.ec, true
		}
		if o.cache != nil {
			c.cache = o.cache
		}
		if o.header != nil {
			c.header = o.header
		}
		if o.allowNonApproved {
			c.allowNonApproved = true
		}
	}
	return c
}

// WithEncryptionContext sets the encryption context. When sealing, it is
// written to the header and bound to the data key blob and to the payload.
// When opening, the header's context must equal it exactly or the call
// fails with ErrContextMismatch; without it, Open accepts the header's
// context, which WithHeader returns.
func WithEncryptionContext(ec map[string]string) Option {
	return Option{ec: ec, hasEC: true}
}

// AllowNonApproved lets Open, AppendOpen and NewReader read an envelope of
// a default suite (BLAKE2b, ChaCha20-Poly1305 or AES-GCM with
// caller-built nonces, and a data key blob under XChaCha20-Poly1305) in
// FIPS 140-3 mode, for a migration: read it, then seal it again, as
// RewrapAll does. Under GODEBUG=fips140=only the standard library calls
// this needs run with crypto/fips140.WithoutEnforcement, and
// golang.org/x/crypto's primitives run: keep it to the migration. Outside
// the mode it changes nothing.
func AllowNonApproved() Option { return Option{allowNonApproved: true} }

// checkApproved refuses, in FIPS 140-3 mode, an envelope of a default
// suite unless the caller opted in.
func checkApproved(h *format.Header, allowNonApproved bool) error {
	if h.Approved() || allowNonApproved || !fipsmode.Enabled() {
		return nil
	}
	return fmt.Errorf("envelope: %w: an envelope of suite %#02x (BLAKE2b, %s) was written outside FIPS 140-3 mode and is refused in it; open it with envelope.AllowNonApproved for a migration (docs/FIPS.md)",
		keyring.ErrNotApproved, h.Suite, suiteName(h.Suite))
}

// suiteName names a suite's payload AEAD for errors.
func suiteName(suite byte) string {
	switch suite {
	case format.SuiteChaCha20Poly1305:
		return "ChaCha20-Poly1305"
	case format.SuiteApproved:
		return "AES-256-GCM, HKDF-SHA-512"
	default:
		return "AES-256-GCM"
	}
}

// WithHeader makes Open, AppendOpen and NewReader fill in *h with the
// envelope's header once it is authenticated: the key ID and version whose
// blob wrapped the data key and the encryption context, all checked against
// the data key's commitment. NewReader fills it in before it returns, when
// the header is authenticated and the payload not yet read. Seal,
// AppendSeal and NewWriter fill in the header they wrote. On failure *h is
// left as it was.
func WithHeader(h *Header) Option {
	return Option{header: h}
}

// Header is an envelope's header. Inspect reads it without a key and
// authenticates none of it; WithHeader returns it authenticated.
type Header struct {
	// KeyID and Version name the key version whose blob wraps the data key.
	KeyID   string
	Version uint32
	// EncryptionContext is nil when empty.
	EncryptionContext map[string]string
	// DataKeyBlob is the wrapped data key; keyring.ParseCiphertext reads it.
	DataKeyBlob []byte
	// Size is the header's length in bytes; the payload follows it.
	Size int
	// SegmentSize is the plaintext size of a full payload segment.
	SegmentSize int
	// FIPSApproved reports whether the envelope is of the suite whose every
	// algorithm is approved in FIPS 140-3 (AES-256-GCM, HKDF-SHA-512, and a
	// data key blob under AES-256-GCM and HKDF-SHA-256). Only such
	// envelopes open in FIPS mode without AllowNonApproved.
	FIPSApproved bool
}

// newHeader returns the Header of h, n bytes long.
func newHeader(h *format.Header, n int) Header {
	return Header{
		KeyID:             uuid.UUID(h.Blob.KeyID).String(),
		Version:           h.Blob.Version,
		EncryptionContext: h.Context,
		DataKeyBlob:       bytes.Clone(h.BlobBytes),
		Size:              n,
		SegmentSize:       segmentSize,
		FIPSApproved:      h.Approved(),
	}
}

// Inspect parses the header of an envelope. It needs no key and checks
// nothing beyond the header's syntax; it fails with keyring.ErrMalformed.
func Inspect(sealed []byte) (Header, error) {
	h, n, err := format.ParseHeader(sealed)
	if err != nil {
		return Header{}, fmt.Errorf("envelope: %w", err)
	}
	return newHeader(&h, n), nil
}

// headerSize returns the size of a header of the suite with a context
// encoding of ecLen bytes.
func headerSize(suite byte, ecLen int) int { return format.FixedHeaderSize + ecLen + blobSize(suite) }

// appendHeader appends the header of a new envelope under k to out, which
// has room for it and for randSize bytes after it (scratch for the data
// key), and returns it with the payload AEAD. ecLen is the length of the
// encoding of c.ec, which format.CheckContext accepted. The data key comes
// from c.cache if it has one for a message of n bytes, else from one random
// read with the salt and the blob's nonce, wrapped by k.
func appendHeader(ctx context.Context, out []byte, k *keyring.Keyring, c *Option, suite byte, ecLen, n int) ([]byte, segmentAEAD, error) {
	start := len(out)
	hlen := headerSize(suite, ecLen)
	bs := blobSize(suite)
	out = format.AppendFixed(out, suite, ecLen, bs)
	out = format.AppendCheckedContext(out, c.ec, ecLen)
	h := out[start : start+hlen] // the header, as it is filled in
	blob := h[hlen-bs:]
	rs := randSizeFor(suite)
	scratch := out[start+hlen : start+hlen+rs]
	defer clear(scratch)
	dek, random, salt := scratch[:dekSize], scratch[dekSize:rs-format.SaltSize], scratch[rs-format.SaltSize:]
	ecEnc := h[format.FixedHeaderSize : format.FixedHeaderSize+ecLen]
	hit := false
	if c.cache != nil {
		out, hit = c.cache.appendDataKey(out, k, ecEnc, n, dek, bs)
	}
	if hit {
		rand.Read(h[format.SaltOffset : format.SaltOffset+format.SaltSize])
	} else {
		rand.Read(scratch)
		copy(h[format.SaltOffset:], salt)
		var version uint32
		var err error
		if out, version, err = datakey.Wrap(ctx, k, datakey.GenerateDataKey, format.BlobFormatFor(suite), out, ecLen, c.ec, dek, random); err != nil {
			clear(out[start:])
			return out[:start], segmentAEAD{}, fmt.Errorf("envelope: %w", err)
		}
		if c.cache != nil {
			c.cache.put(k, ecEnc, n, dek, blob, version)
		}
	}
	pk, commitment, err := deriveKeys(h[:format.PrefixSize], blob[1:1+format.KeyIDSize], h[format.SaltOffset:format.SaltOffset+format.SaltSize], dek, ecEnc)
	if err != nil {
		clear(out[start:])
		return out[:start], segmentAEAD{}, fmt.Errorf("envelope: %w", err)
	}
	copy(h[format.CommitmentOffset:], commitment[:])
	aead, err := newPayloadAEAD(suite, &pk)
	clear(pk[:])
	if err != nil {
		clear(out[start:])
		return out[:start], segmentAEAD{}, err
	}
	return out, aead, nil
}

// fillHeader sets *c.header, if WithHeader asked for it, to the header at
// the start of b.
func fillHeader(c *Option, b []byte) {
	if c.header == nil {
		return
	}
	h, n, err := format.ParseHeader(b)
	if err != nil {
		panic("envelope: header written does not parse: " + err.Error())
	}
	*c.header = newHeader(&h, n)
}

// Seal encrypts plaintext under a fresh data key from k's current version
// (or a cached one, with WithCache) and returns the envelope. It fails with
// keyring.ErrInvalidArgument for an encryption context that cannot be
// encoded (checked from its lengths first, so an oversized one costs
// nothing), with the keyring's errors when its current version cannot
// encrypt, and with keyring.ErrAudit when an auditor refuses.
func Seal(ctx context.Context, k *keyring.Keyring, plaintext []byte, opts ...Option) ([]byte, error) {
	return AppendSeal(ctx, nil, k, plaintext, opts...)
}

// AppendSeal is Seal that appends the envelope to dst and returns the
// extended slice, as cipher.AEAD.Seal does, for callers that reuse
// buffers. With room in dst for the envelope (and for at least 88 bytes
// after its header, which it uses as scratch), it allocates only the
// payload cipher. dst must not overlap plaintext. On failure it returns dst
// unchanged. A keyring that writes approved formats (keyring.Keyring.Approved:
// in FIPS 140-3 mode, or keyring.WithApprovedAlgorithms) gets an envelope
// of the approved suite.
func AppendSeal(ctx context.Context, dst []byte, k *keyring.Keyring, plaintext []byte, opts ...Option) ([]byte, error) {
	c := newConfig(opts)
	ecLen, err := format.CheckContext(c.ec)
	if err != nil {
		return dst, fmt.Errorf("envelope: %w: %v", keyring.ErrInvalidArgument, err)
	}
	nseg := segments(len(plaintext))
	suite := suiteFor(k.Approved(), len(plaintext))
	hlen := headerSize(suite, ecLen)
	payload := len(plaintext) + nseg*overhead(suite)
	need := hlen + max(payload, randSize)
	out := grow(dst, need)
	if overlaps(out[len(dst):len(dst)+need], plaintext) {
		panic("envelope: AppendSeal: dst overlaps plaintext")
	}
	out, aead, err := appendHeader(ctx, out, k, &c, suite, ecLen, len(plaintext))
	if err != nil {
		return dst, err
	}
	for i := range nseg {
		seg := plaintext[min(i*segmentSize, len(plaintext)):min((i+1)*segmentSize, len(plaintext))]
		out = aead.seal(out, uint64(i), i == nseg-1, seg)
	}
	fillHeader(&c, out[len(dst):])
	return out, nil
}

// grow returns dst with room for n more bytes. Unlike slices.Grow, a new
// buffer is not zeroed beyond what the allocator must (large allocations
// come zeroed from the OS), which matters at 1 MiB: every byte is written
// once by the cipher anyway.
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	out := make([]byte, len(dst), len(dst)+n)
	copy(out, dst)
	return out
}

// unwrap decrypts the data key blob of h with k, under the header's
// encryption context, into scratch (32 bytes of capacity), and checks the
// data key against the commitment. raw is the header's encoding. It
// returns the data key, which the caller clears, and the payload key.
func unwrap(ctx context.Context, k Opener, h *format.Header, raw, scratch []byte, allowNonApproved bool) ([]byte, [32]byte, error) {
	if err := checkApproved(h, allowNonApproved); err != nil {
		return nil, [32]byte{}, err
	}
	var dek []byte
	var err error
	switch k.(type) {
	case *keyring.Keyring, *keyring.Set:
		// The blob's associated data is the context encoding and the
		// blob's header, one run of header bytes.
		ad := raw[format.FixedHeaderSize : format.FixedHeaderSize+len(h.ContextBytes)+h.Blob.HeaderSize()]
		dek, err = datakey.Unwrap(ctx, k, scratch[:0], h.BlobBytes, h.Blob, ad, h.Context, allowNonApproved)
	default:
		opts := []keyring.OpOption{keyring.WithEncryptionContext(h.Context)}
		if allowNonApproved {
			opts = append(opts, keyring.AllowNonApproved())
		}
		var pt []byte
		pt, err = k.Decrypt(ctx, h.BlobBytes, opts...)
		dek = append(scratch[:0], pt...)
		clear(pt)
	}
	if err != nil {
		return nil, [32]byte{}, fmt.Errorf("envelope: %w", err)
	}
	if len(dek) != dekSize {
		clear(dek)
		return nil, [32]byte{}, keyring.ErrDecrypt
	}
	pk, commitment, err := deriveKeys(raw[:format.PrefixSize], h.Blob.KeyID[:], h.Salt[:], dek, h.ContextBytes)
	if err != nil {
		clear(dek)
		return nil, [32]byte{}, fmt.Errorf("envelope: %w", err)
	}
	if subtle.ConstantTimeCompare(commitment[:], h.Commitment[:]) != 1 {
		clear(dek)
		clear(pk[:])
		return nil, [32]byte{}, keyring.ErrDecrypt
	}
	return dek, pk, nil
}

// openHeader checks the caller's encryption context against h, whose
// encoding is raw, and returns the payload AEAD. scratch has room for the
// data key.
func openHeader(ctx context.Context, k Opener, h *format.Header, raw []byte, c *Option, scratch []byte) (segmentAEAD, error) {
	if err := checkApproved(h, c.allowNonApproved); err != nil {
		return segmentAEAD{}, err
	}
	if c.hasEC && !maps.Equal(c.ec, h.Context) {
		return segmentAEAD{}, ErrContextMismatch
	}
	dek, pk, err := unwrap(ctx, k, h, raw, scratch, c.allowNonApproved)
	if err != nil {
		return segmentAEAD{}, err
	}
	clear(dek)
	aead, err := newPayloadAEAD(h.Suite, &pk)
	clear(pk[:])
	return aead, err
}

// Open authenticates and decrypts an envelope, unwrapping its data key with
// k (a *keyring.Keyring, or a *keyring.Set to resolve the key ID from the
// header). It returns no plaintext unless the whole envelope is authentic.
//
// Tampered input can produce each of these errors, and nothing else:
// keyring.ErrMalformed for bytes that are not an envelope; keyring.ErrDecrypt
// for every authentication failure, which ErrTruncated (the payload ends
// early) and ErrContextMismatch (WithEncryptionContext differs from the
// header's context) also match; and, because the header's key ID and
// version are read before they can be authenticated, keyring.ErrWrongKey
// (a *keyring.Keyring given another key's envelope), keyring.ErrKeyNotFound
// (a *keyring.Set without that key), keyring.ErrUnknownVersion,
// keyring.ErrVersionDisabled and keyring.ErrVersionDestroyed. Beyond the
// input, it fails with keyring.ErrKeyDisabled or keyring.ErrKeyPendingDeletion
// while the key may not be used, keyring.ErrRootKey when the version's
// material cannot be unwrapped and keyring.ErrAudit when an auditor refuses
// the Decrypt. In FIPS 140-3 mode an envelope of a default suite fails
// with keyring.ErrNotApproved, before any key is used, unless
// AllowNonApproved is given; so can a tampered envelope, whose suite byte
// is read before it is authenticated.
func Open(ctx context.Context, k Opener, sealed []byte, opts ...Option) ([]byte, error) {
	return AppendOpen(ctx, nil, k, sealed, opts...)
}

// AppendOpen is Open that appends the plaintext to dst and returns the
// extended slice, as cipher.AEAD.Open does, for callers that reuse
// buffers. With room in dst for the plaintext (and at least 32 bytes), it
// allocates only the payload cipher and, for a non-empty encryption
// context, its map. dst must not overlap sealed. On failure it returns nil
// and clears what it wrote past len(dst).
func AppendOpen(ctx context.Context, dst []byte, k Opener, sealed []byte, opts ...Option) ([]byte, error) {
	c := newConfig(opts)
	h, n, err := format.ParseHeader(sealed)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	payload := sealed[n:]
	sss := sealedSegmentSize(h.Suite)
	nseg := (len(payload) + sss - 1) / sss
	need := max(len(payload)-nseg*overhead(h.Suite), dekSize)
	out := grow(dst, need)
	if overlaps(out[len(dst):len(dst)+need], sealed) {
		panic("envelope: AppendOpen: dst overlaps sealed")
	}
	aead, err := openHeader(ctx, k, &h, sealed[:n], &c, out[len(dst):len(dst)+dekSize])
	if err != nil {
		return nil, err
	}
	out, err = openSegments(&aead, h.Suite, out, payload)
	if err != nil {
		return nil, err
	}
	if c.header != nil {
		*c.header = newHeader(&h, n)
	}
	return out, nil
}

// openSegments opens payload, a whole payload, and appends its plaintext to
// out, which has room for it. On failure it clears what it wrote (a failed
// AEAD open clears its own output).
func openSegments(aead *segmentAEAD, suite byte, out, payload []byte) ([]byte, error) {
	start := len(out)
	fail := func(err error) ([]byte, error) {
		clear(out[start:])
		return nil, err
	}
	if len(payload) == 0 {
		return fail(ErrTruncated)
	}
	sss := sealedSegmentSize(suite)
	for i := uint64(0); ; i++ {
		seg := payload[:min(sss, len(payload))]
		payload = payload[len(seg):]
		last := len(payload) == 0
		pt, err := openSegment(aead, suite, out, i, seg, last)
		if err != nil {
			return fail(err)
		}
		out = pt
		if last {
			return out, nil
		}
	}
}

// openSegment opens seg, segment i, and appends its plaintext to out, which
// has room for it; Open and a stream Reader share it. The checks on the
// final segment come after the segments before it authenticated (as
// non-final ones), as a stream reader's must. A full final segment that
// authenticates only as a non-final one means the envelope was cut after
// it: ErrTruncated.
func openSegment(aead *segmentAEAD, suite byte, out []byte, i uint64, seg []byte, last bool) ([]byte, error) {
	switch {
	case last && len(seg) < overhead(suite):
		return nil, ErrTruncated
	case last && len(seg) == overhead(suite) && i > 0:
		return nil, fmt.Errorf("envelope: %w: empty final segment", keyring.ErrMalformed)
	}
	pt, err := aead.open(out, i, last, seg)
	if err == errTooManySegments {
		return nil, fmt.Errorf("%w: %v", keyring.ErrMalformed, err)
	}
	if err != nil {
		if last && len(seg) == sealedSegmentSize(suite) && opensAsNonFinal(aead, out, i, seg) {
			return nil, ErrTruncated
		}
		return nil, keyring.ErrDecrypt
	}
	return pt, nil
}

// opensAsNonFinal reports whether seg, segment i, authenticates as a
// segment that is not the last: then the envelope was cut after it. buf has
// room for its plaintext past its length; what is written there is
// cleared.
func opensAsNonFinal(aead *segmentAEAD, buf []byte, i uint64, seg []byte) bool {
	pt, err := aead.open(buf[len(buf):len(buf)], i, false, seg)
	clear(pt)
	return err == nil
}

// Rewrap returns the envelope with its data key blob replaced by one under
// k's current version, and every payload byte as it was: the way to retire
// old versions without re-encrypting data. The data key is unwrapped and
// checked against the commitment first; the payload is not decrypted. It
// fails as Open does (keyring.ErrWrongKey for another key's envelope), and
// as Seal does when the current version cannot encrypt. The keyring audits
// a Decrypt and an Encrypt.
//
// The new blob is of the envelope's own blob format, since the payload
// keeps its suite. In FIPS 140-3 mode an envelope of a default suite fails
// with keyring.ErrNotApproved: its payload would stay non-approved;
// RewrapAll moves such envelopes to the approved suite.
func Rewrap(ctx context.Context, k *keyring.Keyring, sealed []byte) ([]byte, error) {
	h, n, err := format.ParseHeader(sealed)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	ecLen := len(h.ContextBytes)
	hlen := headerSize(h.Suite, ecLen)
	payload := sealed[n:]
	out := make([]byte, 0, hlen+max(len(payload), dekSize+blobRandSize))
	scratch := out[hlen : hlen+dekSize+blobRandSize]
	dek, pk, err := unwrap(ctx, k, &h, sealed[:n], scratch[:dekSize], false)
	if err != nil {
		return nil, err
	}
	clear(pk[:])
	random := scratch[dekSize : randSizeFor(h.Suite)-format.SaltSize]
	rand.Read(random)
	out = append(out, sealed[:format.FixedHeaderSize+ecLen]...)
	binary.BigEndian.PutUint16(out[format.FixedHeaderSize-2:], uint16(blobSize(h.Suite)))
	out, _, err = datakey.Wrap(ctx, k, datakey.Encrypt, h.Blob.Format, out, ecLen, h.Context, dek, random)
	clear(scratch)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	return append(out, payload...), nil
}
