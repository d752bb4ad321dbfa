// Package envelope seals data under a fresh data key from a keyring and
// writes a header that names the key and version, so that Open finds them
// without being told.
//
// # Format
//
// An envelope is a header followed by the payload in segments of 64 KiB,
// the last one marked. The header holds the encryption context, a random
// salt, a key commitment and the data key blob (the same format
// keyring.Keyring.Encrypt produces). The payload is AES-256-GCM under a key
// derived from the data key and the salt. docs/FORMAT.md specifies every
// byte. Envelopes written by this format open in every later release.
//
// Whole buffers ([Seal], [Open]) and streams ([NewWriter], [NewReader]) use
// the same format: either side may be a stream.
//
// # Security
//
// Every header byte is authenticated before any plaintext is released: the
// blob by its own AEAD under the key version (which also binds the
// encryption context), the salt and the data key by the commitment, and
// the format bytes are fixed. Truncation, also at a segment boundary,
// reordering and bit flips fail with keyring.ErrDecrypt or
// keyring.ErrMalformed, never with partial plaintext. [Rewrap] replaces the
// blob without touching the payload, to move old envelopes to the current
// key version.
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
	"errors"
	"fmt"
	"maps"

	"github.com/google/uuid"
	"github.com/kmsring/kmsring/internal/format"
	"github.com/kmsring/kmsring/keyring"
)

// ErrContextMismatch reports that Open or NewReader was given an encryption
// context that differs from the one in the header.
var ErrContextMismatch = errors.New("envelope: encryption context does not match")

// Opener decrypts data key blobs. *keyring.Keyring and *keyring.Set satisfy
// it.
type Opener interface {
	Decrypt(ctx context.Context, blob []byte, opts ...keyring.OpOption) ([]byte, error)
}

// Option configures Seal, Open, NewWriter and NewReader.
type Option func(*config)

type config struct {
	ec    map[string]string
	hasEC bool
	cache *Cache
}

func newConfig(opts []Option) config {
	if len(opts) == 0 {
		return config{} // no escaping config on the hot path
	}
	var c config
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithEncryptionContext sets the encryption context. When sealing, it is
// written to the header and bound to the data key blob. When opening, the
// header's context must equal it exactly or the call fails with
// ErrContextMismatch; without it, Open accepts the header's context, which
// Inspect returns.
func WithEncryptionContext(ec map[string]string) Option {
	return func(c *config) { c.ec, c.hasEC = ec, true }
}

// Header is what Inspect reads from an envelope without a key. None of it is
// authenticated until the envelope is opened.
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
}

// Inspect parses the header of an envelope. It needs no key and checks
// nothing beyond the header's syntax; it fails with keyring.ErrMalformed.
func Inspect(sealed []byte) (Header, error) {
	h, n, err := format.ParseHeader(sealed)
	if err != nil {
		return Header{}, fmt.Errorf("envelope: %w", err)
	}
	return Header{
		KeyID:             uuid.UUID(h.Blob.KeyID).String(),
		Version:           h.Blob.Version,
		EncryptionContext: h.Context,
		DataKeyBlob:       bytes.Clone(h.BlobBytes),
		Size:              n,
		SegmentSize:       segmentSize,
	}, nil
}

// newHeader takes a data key from the cache or generates one under k's
// current version and returns the header for it, in a buffer with room for
// extra more bytes, and the payload key. payload is the plaintext length,
// for the cache's byte limit.
func newHeader(ctx context.Context, k *keyring.Keyring, c config, payload int, extra int) ([]byte, *msgKey, error) {
	var dek, blob []byte
	if c.cache != nil {
		var err error
		if dek, blob, err = c.cache.dataKey(ctx, k, c.ec, payload); err != nil {
			return nil, nil, err
		}
		defer clear(dek)
	}
	if dek == nil {
		dk, err := k.GenerateDataKey(ctx, keyring.WithEncryptionContext(c.ec))
		if err != nil {
			return nil, nil, fmt.Errorf("envelope: %w", err)
		}
		defer dk.Destroy()
		dek, blob = dk.Plaintext, dk.Ciphertext
	}
	bl, err := format.ParseBlob(blob)
	if err != nil {
		return nil, nil, fmt.Errorf("envelope: %w", err)
	}
	h := format.Header{Suite: format.SuiteAES256GCMSHA512, Context: c.ec, Blob: bl}
	rand.Read(h.Salt[:])
	pk, commitment := deriveKeys(dek, &h.Salt)
	h.Commitment = commitment
	size := format.FixedHeaderSize + format.ContextSize(c.ec) + len(blob) + extra
	out, err := h.Append(make([]byte, 0, size))
	if err != nil {
		return nil, nil, fmt.Errorf("envelope: %w: %v", keyring.ErrInvalidArgument, err)
	}
	return out, &msgKey{key: pk}, nil
}

// openHeader checks the caller's encryption context against h, unwraps the
// data key and returns the payload key.
func openHeader(ctx context.Context, k Opener, h *format.Header, c config) (*msgKey, error) {
	if c.hasEC && !maps.Equal(c.ec, h.Context) {
		return nil, ErrContextMismatch
	}
	dek, pk, err := unwrap(ctx, k, h)
	if err != nil {
		return nil, err
	}
	clear(dek)
	return pk, nil
}

// unwrap decrypts the data key blob of h with k, under the header's
// encryption context, and checks the data key against the commitment. It
// returns the data key, which the caller clears, and the payload key.
func unwrap(ctx context.Context, k Opener, h *format.Header) ([]byte, *msgKey, error) {
	dek, err := k.Decrypt(ctx, h.BlobBytes, keyring.WithEncryptionContext(h.Context))
	if err != nil {
		return nil, nil, fmt.Errorf("envelope: %w", err)
	}
	if len(dek) != dekSize {
		clear(dek)
		return nil, nil, keyring.ErrDecrypt
	}
	pk, commitment := deriveKeys(dek, &h.Salt)
	if subtle.ConstantTimeCompare(commitment[:], h.Commitment[:]) != 1 {
		clear(dek)
		return nil, nil, keyring.ErrDecrypt
	}
	return dek, &msgKey{key: pk}, nil
}

// segments returns the number of segments for a payload of n bytes.
func segments(n int) int {
	if n == 0 {
		return 1
	}
	return (n + segmentSize - 1) / segmentSize
}

// Seal encrypts plaintext under a fresh data key from k's current version
// (or a cached one, with WithCache) and returns the envelope.
func Seal(ctx context.Context, k *keyring.Keyring, plaintext []byte, opts ...Option) ([]byte, error) {
	c := newConfig(opts)
	out, pk, err := newHeader(ctx, k, c, len(plaintext), len(plaintext)+segments(len(plaintext))*tagSize)
	if err != nil {
		return nil, err
	}
	aead := newPayloadAEAD(&pk.key)
	clear(pk.key[:])
	nonce := &pk.nonce
	for i := 0; ; i++ {
		seg := plaintext[min(i*segmentSize, len(plaintext)):min((i+1)*segmentSize, len(plaintext))]
		last := (i+1)*segmentSize >= len(plaintext)
		segmentNonce(nonce, uint64(i), last)
		out = aead.Seal(out, nonce[:], seg, nil)
		if last {
			return out, nil
		}
	}
}

// Open authenticates and decrypts an envelope, unwrapping its data key with
// k (a *keyring.Keyring, or a *keyring.Set to resolve the key ID from the
// header). It returns no plaintext unless the whole envelope is authentic:
// it fails with keyring.ErrMalformed for bytes that are not an envelope,
// keyring.ErrDecrypt for every authentication failure, ErrContextMismatch,
// and the keyring's errors for a key or version it cannot use.
func Open(ctx context.Context, k Opener, sealed []byte, opts ...Option) ([]byte, error) {
	c := newConfig(opts)
	h, n, err := format.ParseHeader(sealed)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	payload := sealed[n:]
	full, rem := len(payload)/sealedSegmentSize, len(payload)%sealedSegmentSize
	if rem == 0 && full == 0 || rem > 0 && rem < tagSize {
		return nil, fmt.Errorf("envelope: %w: truncated payload", keyring.ErrMalformed)
	}
	pk, err := openHeader(ctx, k, h, c)
	if err != nil {
		return nil, err
	}
	aead := newPayloadAEAD(&pk.key)
	clear(pk.key[:])
	out := make([]byte, 0, len(payload)-(full+min(rem, 1))*tagSize)
	nonce := &pk.nonce
	for i := 0; len(payload) > 0; i++ {
		seg := payload[:min(sealedSegmentSize, len(payload))]
		payload = payload[len(seg):]
		if len(payload) == 0 && len(seg) == tagSize && i > 0 {
			// Checked after the segments before it authenticated, as a
			// stream reader must.
			clear(out[:cap(out)])
			return nil, fmt.Errorf("envelope: %w: empty final segment", keyring.ErrMalformed)
		}
		segmentNonce(nonce, uint64(i), len(payload) == 0)
		if out, err = aead.Open(out, nonce[:], seg, nil); err != nil {
			clear(out[:cap(out)])
			return nil, keyring.ErrDecrypt
		}
	}
	return out, nil
}

// Rewrap returns the envelope with its data key blob replaced by one under
// k's current version, and every payload byte as it was: the way to retire
// old versions without re-encrypting data. The data key is unwrapped and
// checked against the commitment first; the payload is not decrypted. The
// envelope must belong to k (else keyring.ErrWrongKey).
func Rewrap(ctx context.Context, k *keyring.Keyring, sealed []byte) ([]byte, error) {
	h, n, err := format.ParseHeader(sealed)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	dek, pk, err := unwrap(ctx, k, h)
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	clear(pk.key[:])
	blob, err := k.Encrypt(ctx, dek, keyring.WithEncryptionContext(h.Context))
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	if h.Blob, err = format.ParseBlob(blob); err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	out, err := h.Append(make([]byte, 0, n+len(sealed)))
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	return append(out, sealed[n:]...), nil
}
