package keyring

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"fmt"

	"github.com/google/uuid"
	"github.com/kmsring/kmsring/internal/datakey"
	"github.com/kmsring/kmsring/internal/format"
)

func init() {
	datakey.Wrap = wrapDataKey
	datakey.Unwrap = unwrapDataKey
}

// usable reports why v cannot be used, if it cannot. Every path that
// encrypts or decrypts under a version calls it for that version.
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
	if k.rolledBack.Load() {
		return nil, fmt.Errorf("%w: key %s: the store went back to an older or another state than this process saw; not encrypting until it moves past it (restart the process after restoring a backup)", ErrTampered, k.id)
	}
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

// checkContext measures ec's encoding, or says why it cannot be encoded.
func checkContext(ec map[string]string) (int, error) {
	n, err := format.CheckContext(ec)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	return n, nil
}

// blobRandSize is the randomness a blob takes: the nonce of a format 1
// blob, the salt of an approved one (the larger).
const blobRandSize = max(format.BlobNonceSize, format.BlobSaltSize)

// randLen is the randomness a blob of the format takes. (Format 1 reads
// exactly its nonce, so that the vector generator's fixed randomness
// still gives format 1's vectors byte for byte.)
func randLen(blobFormat byte) int {
	if blobFormat == format.BlobFormatApproved {
		return format.BlobSaltSize
	}
	return format.BlobNonceSize
}

// blobFormat is the format of the blobs k writes.
func (k *Keyring) blobFormat() byte {
	if k.Approved() {
		return format.BlobFormatApproved
	}
	return format.BlobFormat
}

// sealInto writes the data key blob of plaintext under v, in the given
// format, into blob, which has room for exactly that blob. random holds
// the blob's nonce (format 1, 24 bytes) or salt (approved, 32 bytes). ad
// holds the encoded context and has room for the blob header after it.
func (k *Keyring) sealInto(v *version, blobFormat byte, blob, plaintext, random, ad []byte) error {
	vk, err := k.versionKeys(v)
	if err != nil {
		return err
	}
	bl := format.Blob{Format: blobFormat, KeyID: k.bid, Version: v.Number}
	if blobFormat == format.BlobFormatApproved {
		bl.Salt = [format.BlobSaltSize]byte(random)
		aead, err := approvedBlobAEAD(vk.prk, bl.Salt[:])
		if err != nil {
			return err
		}
		hdr := bl.AppendHeader(blob[:0])
		aead.Seal(hdr, nil, plaintext, append(ad, hdr...))
		return nil
	}
	aead, err := vk.legacy()
	if err != nil {
		return err
	}
	bl.Nonce = [format.BlobNonceSize]byte(random[:format.BlobNonceSize])
	hdr := bl.AppendHeader(blob[:0])
	aead.Seal(hdr, hdr[format.BlobHeaderSize-format.BlobNonceSize:], plaintext, append(ad, hdr...))
	return nil
}

// GenerateDataKey returns a fresh random data key (32 bytes, 16 with
// WithKeySpec(AES128), or n with WithNumberOfBytes(n)) and its blob under the current version, or the
// version WithVersion names. Call DataKey.Destroy when done with it.
func (k *Keyring) GenerateDataKey(ctx context.Context, opts ...OpOption) (*DataKey, error) {
	return k.generateDataKey(ctx, OpGenerateDataKey, opts)
}

func (k *Keyring) generateDataKey(ctx context.Context, op Operation, opts []OpOption) (*DataKey, error) {
	c := newOpConfig(opts)
	e := AuditEvent{Operation: op, Version: c.version, EncryptionContext: c.ec}
	size := c.spec.size()
	if c.size != 0 {
		size = c.size
	}
	if size < 1 || size > MaxDataKeySize {
		e.Err = fmt.Errorf("%w: a data key of %d bytes (want 1 to %d)", ErrInvalidArgument, size, MaxDataKeySize)
		return nil, k.audit(ctx, e)
	}
	ecLen, err := checkContext(c.ec)
	if err != nil {
		e.Err = err
		return nil, k.audit(ctx, e)
	}
	v, err := k.encryptingVersion(ctx, c.version)
	if err != nil {
		e.Err = err
		return nil, k.audit(ctx, e)
	}
	e.Version = v.Number
	// One allocation holds the data key, its blob and, past them, the
	// associated data; one random read gives the key and the nonce or
	// salt.
	bf := k.blobFormat()
	n := format.BlobLen(bf, size)
	buf := make([]byte, size+n, size+n+max(ecLen+format.BlobHeaderSizeApproved, size+blobRandSize))
	scratch := buf[size+n : size+n+size+randLen(bf)]
	rand.Read(scratch)
	dk := &DataKey{KeyID: k.id, Version: v.Number, Plaintext: buf[:size:size], Ciphertext: buf[size : size+n : size+n]}
	copy(dk.Plaintext, scratch)
	var random [blobRandSize]byte
	copy(random[:], scratch[size:])
	clear(scratch)
	ad := format.AppendCheckedContext(buf[size+n:size+n], c.ec, ecLen)
	e.Err = k.sealInto(v, bf, dk.Ciphertext, dk.Plaintext, random[:], ad)
	if err := k.audit(ctx, e); err != nil {
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
	c := newOpConfig(opts)
	e := AuditEvent{Operation: OpEncrypt, Version: c.version, EncryptionContext: c.ec}
	if len(plaintext) == 0 || len(plaintext) > format.MaxBlobPlaintext {
		e.Err = fmt.Errorf("%w: plaintext of %d bytes (want 1 to %d)", ErrInvalidArgument, len(plaintext), format.MaxBlobPlaintext)
		return nil, k.audit(ctx, e)
	}
	blob, v, err := k.encrypt(ctx, c.version, plaintext, c.ec)
	e.Version, e.Err = v, err
	if err = k.audit(ctx, e); err != nil {
		return nil, err
	}
	return blob, nil
}

// encrypt wraps plaintext under version n (0 for the current one) and
// returns the blob and the version used.
func (k *Keyring) encrypt(ctx context.Context, n uint32, plaintext []byte, ec map[string]string) ([]byte, uint32, error) {
	ecLen, err := checkContext(ec)
	if err != nil {
		return nil, n, err
	}
	v, err := k.encryptingVersion(ctx, n)
	if err != nil {
		return nil, n, err
	}
	// One allocation holds the blob and, past its capacity, the
	// associated data.
	bf := k.blobFormat()
	size := format.BlobLen(bf, len(plaintext))
	buf := make([]byte, size, size+ecLen+format.BlobHeaderSizeApproved)
	var random [blobRandSize]byte
	rand.Read(random[:randLen(bf)])
	ad := format.AppendCheckedContext(buf[size:size], ec, ecLen)
	if err := k.sealInto(v, bf, buf, plaintext, random[:], ad); err != nil {
		return nil, v.Number, err
	}
	return buf[:size:size], v.Number, nil
}

// Decrypt returns the plaintext of a blob from GenerateDataKey or Encrypt,
// given the same encryption context. The version is taken from the blob.
//
// The key ID and version a blob names are read before it is authenticated,
// so tampered bytes can produce every one of these errors: ErrMalformed for
// bytes that are not a blob; ErrWrongKey for a blob that names another key;
// ErrUnknownVersion (after one rate-limited reload from the store),
// ErrVersionDisabled or ErrVersionDestroyed for a version that cannot
// decrypt; ErrDecrypt for every authentication failure, a wrong encryption
// context included. It also fails with ErrKeyDisabled or
// ErrKeyPendingDeletion while the key may not be used, ErrRootKey if the
// version's material cannot be unwrapped, ErrInvalidArgument for an
// encryption context that cannot be encoded, and ErrAudit if an Auditor
// refuses the operation. In FIPS 140-3 mode, a blob of format 1 fails with
// ErrNotApproved unless AllowNonApproved is given (before any key is
// used); so can a tampered blob, whose format byte is read before it is
// authenticated.
func (k *Keyring) Decrypt(ctx context.Context, blob []byte, opts ...OpOption) ([]byte, error) {
	c := newOpConfig(opts)
	pt, n, err := k.decrypt(ctx, blob, c.ec, c.allowNonApproved)
	if err = k.audit(ctx, AuditEvent{Operation: OpDecrypt, Version: n, EncryptionContext: c.ec, Err: err}); err != nil {
		clear(pt)
		return nil, err
	}
	return pt, nil
}

// decrypt decrypts blob and returns its plaintext and the version it named
// (0 if it does not parse).
func (k *Keyring) decrypt(ctx context.Context, blob []byte, ec map[string]string, allowNonApproved bool) ([]byte, uint32, error) {
	bl, err := format.ParseBlob(blob)
	if err != nil {
		return nil, 0, err
	}
	ecLen, err := checkContext(ec)
	if err != nil {
		return nil, bl.Version, err
	}
	// One allocation holds the plaintext and, past its capacity, the
	// associated data.
	hs := bl.HeaderSize()
	n := len(blob) - format.BlobLen(bl.Format, 0)
	buf := make([]byte, 0, n+ecLen+hs)
	ad := format.AppendCheckedContext(buf[n:n], ec, ecLen)
	ad = append(ad, blob[:hs]...)
	pt, err := k.openBlob(ctx, buf[:0:n], blob, &bl, ad, allowNonApproved)
	return pt, bl.Version, err
}

// openBlob decrypts blob, which parsed as bl, under its associated data
// ad, and appends the plaintext to dst. In FIPS mode a blob of format 1 is
// refused unless allowNonApproved.
func (k *Keyring) openBlob(ctx context.Context, dst, blob []byte, bl *format.Blob, ad []byte, allowNonApproved bool) ([]byte, error) {
	if err := checkApproved(bl.Approved(), allowNonApproved, "data key blob of format 0x01 (XChaCha20-Poly1305)"); err != nil {
		return nil, err
	}
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
	vk, err := k.versionKeys(v)
	if err != nil {
		return nil, err
	}
	var aead cipher.AEAD
	var nonce []byte
	if bl.Approved() {
		aead, err = approvedBlobAEAD(vk.prk, bl.Salt[:])
	} else {
		aead, err = vk.legacy()
		nonce = blob[format.BlobHeaderSize-format.BlobNonceSize : format.BlobHeaderSize]
	}
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(dst, nonce, bl.Sealed, ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// ReEncrypt decrypts blob (with the source context WithEncryptionContext
// gives) and wraps its plaintext under the current version, or the version
// WithVersion names, without returning the plaintext. The new blob keeps the
// source context unless WithDestinationEncryptionContext names another. It
// fails as Decrypt and Encrypt do. The audit event carries both contexts.
func (k *Keyring) ReEncrypt(ctx context.Context, blob []byte, opts ...OpOption) ([]byte, error) {
	c := newOpConfig(opts)
	dest := c.ec
	if c.hasDestEC {
		dest = c.destEC
	}
	e := AuditEvent{Operation: OpReEncrypt, Version: c.version, EncryptionContext: dest, SourceEncryptionContext: c.ec}
	pt, from, err := k.decrypt(ctx, blob, c.ec, c.allowNonApproved)
	e.PreviousVersion = from
	if err != nil {
		e.Err = err
		return nil, k.audit(ctx, e)
	}
	defer clear(pt)
	out, v, err := k.encrypt(ctx, c.version, pt, dest)
	e.Version, e.Err = v, err
	if err = k.audit(ctx, e); err != nil {
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

// wrapDataKey is datakey.Wrap: GenerateDataKey (or Encrypt) of a data key
// the caller made, written into the caller's buffer.
func wrapDataKey(ctx context.Context, kk datakey.Keyring, op datakey.Op, blobFormat byte, dst []byte, ecLen int, ec map[string]string, dek, random []byte) ([]byte, uint32, error) {
	k := kk.(*Keyring)
	e := AuditEvent{Operation: OpGenerateDataKey, EncryptionContext: ec}
	if op == datakey.Encrypt {
		e.Operation = OpEncrypt
	}
	v, err := k.encryptingVersion(ctx, 0)
	if err != nil {
		e.Err = err
		return dst, 0, k.audit(ctx, e)
	}
	e.Version = v.Number
	start := len(dst)
	size := format.BlobLen(blobFormat, len(dek))
	out := append(dst, make([]byte, size)...)
	e.Err = k.sealInto(v, blobFormat, out[start:], dek, random, out[start-ecLen:start])
	if err := k.audit(ctx, e); err != nil {
		clear(out[start:])
		return dst, 0, err
	}
	return out, v.Number, nil
}

// unwrapDataKey is datakey.Unwrap: Decrypt into the caller's buffer, with
// the associated data taken from the caller's bytes.
func unwrapDataKey(ctx context.Context, kk any, dst, blob []byte, bl format.Blob, ad []byte, ec map[string]string, allowNonApproved bool) ([]byte, error) {
	var k *Keyring
	var err error
	switch kk := kk.(type) {
	case *Keyring:
		k = kk
	case *Set:
		if k, err = kk.byBinaryID(ctx, bl.KeyID); err != nil {
			return nil, err
		}
	default:
		panic("keyring: datakey.Unwrap with a " + fmt.Sprintf("%T", kk))
	}
	pt, err := k.openBlob(ctx, dst, blob, &bl, ad, allowNonApproved)
	if err = k.audit(ctx, AuditEvent{Operation: OpDecrypt, Version: bl.Version, EncryptionContext: ec, Err: err}); err != nil {
		return nil, err
	}
	return pt, nil
}
