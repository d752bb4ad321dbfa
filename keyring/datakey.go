package keyring

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/google/uuid"
	"github.com/kmsring/kmsring/internal/format"
)

// usable reports why v cannot be used, if it cannot.
func (k *Keyring) usable(v *version) error {
	if err := k.keyUsable(); err != nil {
		return err
	}
	switch v.State {
	case VersionEnabled:
		return nil
	case VersionDestroyed:
		return fmt.Errorf("%w: key %s version %d", ErrVersionDestroyed, k.id, v.Number)
	case VersionPendingDestruction:
		return fmt.Errorf("%w: key %s version %d is pending destruction", ErrVersionDisabled, k.id, v.Number)
	default:
		return fmt.Errorf("%w: key %s version %d", ErrVersionDisabled, k.id, v.Number)
	}
}

// encryptingVersion returns version n, or the current version if n is 0,
// if it may encrypt.
func (k *Keyring) encryptingVersion(ctx context.Context, n uint32) (*version, error) {
	var v *version
	if n == 0 {
		k.mu.RLock()
		v = k.versions[len(k.versions)-1]
		k.mu.RUnlock()
	} else {
		var err error
		if v, err = k.lookup(ctx, n); err != nil {
			return nil, err
		}
	}
	return v, k.usable(v)
}

// seal wraps plaintext under v into a data key blob bound to ec.
func (k *Keyring) seal(v *version, plaintext []byte, ec map[string]string) ([]byte, error) {
	aead, err := k.wrapAEAD(v)
	if err != nil {
		return nil, err
	}
	// One allocation holds the blob and, past its capacity, the associated
	// data (the blob header and the encoded context).
	n := format.BlobHeaderSize + len(plaintext) + format.BlobTagSize
	buf := make([]byte, n, n+format.BlobHeaderSize+format.ContextSize(ec))
	bl := format.Blob{KeyID: k.bid, Version: v.Number}
	hdr := bl.AppendHeader(buf[:0])
	nonce := hdr[format.BlobHeaderSize-format.BlobNonceSize:]
	rand.Read(nonce)
	aad, err := format.AppendContext(append(buf[n:], hdr...), ec)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	out := aead.Seal(hdr, nonce, plaintext, aad)
	return out[:n:n], nil
}

// GenerateDataKey returns a fresh random data key (32 bytes, or 16 with
// WithKeySpec(AES128)) and its blob under the current version, or the
// version WithVersion names. Call DataKey.Destroy when done with it.
func (k *Keyring) GenerateDataKey(ctx context.Context, opts ...OpOption) (*DataKey, error) {
	return k.generateDataKey(ctx, OpGenerateDataKey, opts)
}

func (k *Keyring) generateDataKey(ctx context.Context, op Operation, opts []OpOption) (*DataKey, error) {
	c := newOpConfig(opts)
	v, err := k.encryptingVersion(ctx, c.version)
	if err != nil {
		return nil, k.audit(ctx, AuditEvent{Operation: op, Version: c.version, EncryptionContext: c.ec, Err: err})
	}
	dk := &DataKey{KeyID: k.id, Version: v.Number, Plaintext: randomBytes(c.spec.size())}
	dk.Ciphertext, err = k.seal(v, dk.Plaintext, c.ec)
	if err = k.audit(ctx, AuditEvent{Operation: op, Version: v.Number, EncryptionContext: c.ec, Err: err}); err != nil {
		dk.Destroy()
		return nil, err
	}
	if op == OpGenerateDataKeyWithoutPlaintext {
		dk.Destroy()
	}
	return dk, nil
}

// GenerateDataKeyWithoutPlaintext is GenerateDataKey for a caller that will
// only store the blob and decrypt it later; Plaintext is nil.
func (k *Keyring) GenerateDataKeyWithoutPlaintext(ctx context.Context, opts ...OpOption) (*DataKey, error) {
	return k.generateDataKey(ctx, OpGenerateDataKeyWithoutPlaintext, opts)
}

// Encrypt wraps a small plaintext (1 to 4096 bytes, like AWS KMS Encrypt)
// directly under the current version, or the version WithVersion names. Its
// result has the data key blob format and opens with Decrypt. Larger data
// belongs in an envelope (package envelope).
func (k *Keyring) Encrypt(ctx context.Context, plaintext []byte, opts ...OpOption) ([]byte, error) {
	if len(plaintext) == 0 || len(plaintext) > format.MaxBlobPlaintext {
		err := fmt.Errorf("%w: plaintext of %d bytes (want 1 to %d)", ErrInvalidArgument, len(plaintext), format.MaxBlobPlaintext)
		return nil, k.audit(ctx, AuditEvent{Operation: OpEncrypt, Err: err})
	}
	c := newOpConfig(opts)
	v, err := k.encryptingVersion(ctx, c.version)
	if err != nil {
		return nil, k.audit(ctx, AuditEvent{Operation: OpEncrypt, Version: c.version, EncryptionContext: c.ec, Err: err})
	}
	blob, err := k.seal(v, plaintext, c.ec)
	if err = k.audit(ctx, AuditEvent{Operation: OpEncrypt, Version: v.Number, EncryptionContext: c.ec, Err: err}); err != nil {
		return nil, err
	}
	return blob, nil
}

// Decrypt returns the plaintext of a blob from GenerateDataKey or Encrypt,
// given the same encryption context. The version is taken from the blob. It
// fails with ErrMalformed for bytes that are not a blob, ErrWrongKey for a
// blob of another key, ErrUnknownVersion, ErrVersionDisabled or
// ErrVersionDestroyed for a version that cannot decrypt, and ErrDecrypt for
// every authentication failure, a wrong context included.
func (k *Keyring) Decrypt(ctx context.Context, blob []byte, opts ...OpOption) ([]byte, error) {
	c := newOpConfig(opts)
	pt, n, err := k.open(ctx, blob, c.ec)
	if err = k.audit(ctx, AuditEvent{Operation: OpDecrypt, Version: n, EncryptionContext: c.ec, Err: err}); err != nil {
		clear(pt)
		return nil, err
	}
	return pt, nil
}

// open decrypts blob and returns its plaintext and the version it named
// (0 if it does not parse).
func (k *Keyring) open(ctx context.Context, blob []byte, ec map[string]string) ([]byte, uint32, error) {
	bl, err := format.ParseBlob(blob)
	if err != nil {
		return nil, 0, err
	}
	pt, err := k.openBlob(ctx, blob, bl, ec)
	return pt, bl.Version, err
}

// openBlob decrypts blob, which parsed as bl.
func (k *Keyring) openBlob(ctx context.Context, blob []byte, bl format.Blob, ec map[string]string) ([]byte, error) {
	if bl.KeyID != k.bid {
		return nil, fmt.Errorf("%w: blob names key %s, this is %s", ErrWrongKey, uuid.UUID(bl.KeyID), k.id)
	}
	v, err := k.lookup(ctx, bl.Version)
	if err != nil {
		return nil, err
	}
	if err := k.usable(v); err != nil {
		return nil, err
	}
	aead, err := k.wrapAEAD(v)
	if err != nil {
		return nil, err
	}
	// One allocation holds the plaintext and, past its capacity, the
	// associated data. The nonce is read in place from the blob.
	n := len(bl.Sealed) - format.BlobTagSize
	buf := make([]byte, n, n+format.BlobHeaderSize+format.ContextSize(ec))
	aad, err := format.AppendContext(append(buf[n:], blob[:format.BlobHeaderSize]...), ec)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	nonce := blob[format.BlobHeaderSize-format.BlobNonceSize : format.BlobHeaderSize]
	pt, err := aead.Open(buf[:0:n], nonce, bl.Sealed, aad)
	if err != nil {
		clear(buf)
		return nil, ErrDecrypt
	}
	return pt, nil
}

// ReEncrypt decrypts blob (with the source context WithEncryptionContext
// gives) and wraps its plaintext under the current version, or the version
// WithVersion names, without returning the plaintext. The new blob keeps the
// source context unless WithDestinationEncryptionContext names another.
func (k *Keyring) ReEncrypt(ctx context.Context, blob []byte, opts ...OpOption) ([]byte, error) {
	c := newOpConfig(opts)
	ec := c.ec
	if c.hasDestEC {
		ec = c.destEC
	}
	pt, from, err := k.open(ctx, blob, c.ec)
	if err != nil {
		return nil, k.audit(ctx, AuditEvent{Operation: OpReEncrypt, PreviousVersion: from, EncryptionContext: ec, Err: err})
	}
	defer clear(pt)
	v, err := k.encryptingVersion(ctx, c.version)
	if err != nil {
		return nil, k.audit(ctx, AuditEvent{Operation: OpReEncrypt, PreviousVersion: from, Version: c.version, EncryptionContext: ec, Err: err})
	}
	out, err := k.seal(v, pt, ec)
	if err = k.audit(ctx, AuditEvent{Operation: OpReEncrypt, PreviousVersion: from, Version: v.Number, EncryptionContext: ec, Err: err}); err != nil {
		return nil, err
	}
	return out, nil
}

// ParseCiphertext returns the key ID and version named by a data key blob
// without decrypting it. It fails with ErrMalformed.
func ParseCiphertext(blob []byte) (keyID string, version uint32, err error) {
	bl, err := format.ParseBlob(blob)
	if err != nil {
		return "", 0, err
	}
	return uuid.UUID(bl.KeyID).String(), bl.Version, nil
}
