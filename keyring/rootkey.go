package keyring

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kmsring/kmsring/internal/fipsmode"
	"github.com/kmsring/kmsring/store"
	"github.com/tink-crypto/tink-go/v2/tink"
	"golang.org/x/crypto/chacha20poly1305"
)

// A root key protects version material at rest: a keyring wraps each
// version's material under it before the material reaches a store, with the
// key ID and version number as associated data. Any tink.AEAD is a root key,
// so Tink's AWS KMS, GCP KMS and Vault clients plug in unchanged. This file
// holds the built-in ones: a local key (NewRootKey, RootKeyFile), a
// passphrase (NewPassphraseRootKey), and a list for migrations (RootKeys).

// RootKeySize is the size of a local root key.
const RootKeySize = chacha20poly1305.KeySize

// RootKeyOption configures a built-in root key.
type RootKeyOption func(*rootKeyConfig)

type rootKeyConfig struct{ allowNonApproved bool }

// RootKeyAllowNonApproved lets a built-in root key unwrap, in FIPS 140-3
// mode, what it wrapped outside the mode (XChaCha20-Poly1305, argon2id),
// for a migration: RotateRootKey from a root key made with it to one made
// without moves every version's material to the approved format. Outside
// the mode it changes nothing.
func RootKeyAllowNonApproved() RootKeyOption {
	return func(c *rootKeyConfig) { c.allowNonApproved = true }
}

// approvedRootInfo derives the AES-256-GCM key of a local root key from
// its key, so that the one key never serves two algorithms.
const approvedRootInfo = "kmsring approved local root key"

// approvedRootPrefix opens every ciphertext a local root key writes in the
// approved format (format 1 ciphertexts open with a random nonce, so they
// begin with it only with probability 2⁻⁶⁴, and are then tried as such).
const approvedRootPrefix = "\x10kmsring"

// NewRootKey returns a root key that wraps under a local 32-byte key. In
// FIPS 140-3 mode it seals with AES-256-GCM (the approved format: the
// prefix 0x10 "kmsring", then the 12-byte nonce the cryptographic module
// draws, the ciphertext and the tag) under
// HKDF-SHA-256(key, info = "kmsring approved local root key"); random
// 96-bit nonces bound it to 2³² calls (SP 800-38D §8.3), far beyond what a
// root key wraps: one call per key version, store key and access key.
// Outside the mode it seals with XChaCha20-Poly1305 and a random 24-byte
// nonce (nonce || sealed), with no practical limit on calls. It opens both;
// in FIPS mode the second only with RootKeyAllowNonApproved, and fails
// with ErrNotApproved otherwise. The key is copied. The AEAD is safe for
// concurrent use, and prints (fmt, slog, JSON) as
// "keyring.RootKey(local)", never its key.
func NewRootKey(key []byte, opts ...RootKeyOption) (tink.AEAD, error) {
	if len(key) != RootKeySize {
		return nil, fmt.Errorf("%w: root key must be %d bytes, not %d", ErrInvalidArgument, RootKeySize, len(key))
	}
	var c rootKeyConfig
	for _, o := range opts {
		o(&c)
	}
	ak, err := hkdf.Key(sha256.New, key, nil, approvedRootInfo, 32)
	if err != nil {
		return nil, err
	}
	defer clear(ak)
	b, err := aes.NewCipher(ak)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCMWithRandomNonce(b)
	if err != nil {
		return nil, err
	}
	legacyKey := bytes.Clone(key)
	legacy := sync.OnceValues(func() (a cipher.AEAD, err error) {
		// Only for what was wrapped outside FIPS mode, which in the mode
		// the caller opted in to read.
		fipsmode.Legacy(func() { a, err = chacha20poly1305.NewX(legacyKey) })
		return a, err
	})
	return localRootKey{redacted{"keyring.RootKey(local)"}, gcm, legacy, c.allowNonApproved}, nil
}

type localRootKey struct {
	redacted
	gcm              cipher.AEAD                 // approved
	legacy           func() (cipher.AEAD, error) // XChaCha20-Poly1305, made on first use
	allowNonApproved bool
}

func (r localRootKey) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	if fipsmode.Enabled() {
		out := make([]byte, len(approvedRootPrefix), len(approvedRootPrefix)+len(plaintext)+r.gcm.Overhead())
		copy(out, approvedRootPrefix)
		return r.gcm.Seal(out, nil, plaintext, associatedData), nil
	}
	aead, err := r.legacy()
	if err != nil {
		return nil, err
	}
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	rand.Read(out)
	return aead.Seal(out, out, plaintext, associatedData), nil
}

var errRootOpen = errors.New("keyring: root key: message authentication failed")

// notApprovedError is a root key's refusal, in FIPS 140-3 mode, of what it
// wrapped outside the mode: ErrRootKey (the material cannot be unwrapped)
// and ErrNotApproved, with the latter's message only.
type notApprovedError struct{ err error }

func (e *notApprovedError) Error() string   { return e.err.Error() }
func (e *notApprovedError) Unwrap() []error { return []error{ErrRootKey, e.err} }

// rootKeyError is ErrRootKey saying what did not unwrap, with the root
// key's own error when it says more than that authentication failed (a
// remote KMS's answer, ErrArgon2Params).
func rootKeyError(err error, format string, args ...any) error {
	if errors.Is(err, ErrNotApproved) {
		// Not a wrong root key: say only what the root key refused.
		return &notApprovedError{err}
	}
	if errors.Is(err, errRootOpen) {
		return fmt.Errorf("%w: "+format, append([]any{ErrRootKey}, args...)...)
	}
	return fmt.Errorf("%w: "+format+": %w", append(append([]any{ErrRootKey}, args...), err)...)
}

func (r localRootKey) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	if rest, ok := bytes.CutPrefix(ciphertext, []byte(approvedRootPrefix)); ok {
		if pt, err := r.gcm.Open(nil, nil, rest, associatedData); err == nil {
			return pt, nil
		}
		if fipsmode.Enabled() && !r.allowNonApproved {
			// The wrong root key or tampering, not old data: an old
			// ciphertext begins with the prefix with probability 2⁻⁶⁴.
			return nil, errRootOpen
		}
	}
	if err := checkApproved(false, r.allowNonApproved, "a root key ciphertext under XChaCha20-Poly1305"); err != nil {
		return nil, err
	}
	aead, err := r.legacy()
	if err != nil {
		return nil, err
	}
	n := aead.NonceSize()
	if len(ciphertext) < n+aead.Overhead() {
		return nil, errRootOpen
	}
	pt, err := aead.Open(nil, ciphertext[:n], ciphertext[n:], associatedData)
	if err != nil {
		return nil, errRootOpen
	}
	return pt, nil
}

// RootKeyFile returns the local root key kept in the file at path: exactly
// 32 random bytes. If the file does not exist, it is created with a fresh
// key and mode 0600 (and synced): convenient for a quickstart or a first
// run, dangerous in production, where a typo in the path would silently
// become a new root key. Production code should use ReadRootKeyFile, which
// never creates. Otherwise it is ReadRootKeyFile. Keep the file apart from
// the store: whoever holds both holds every key.
func RootKeyFile(path string, opts ...RootKeyOption) (tink.AEAD, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return ReadRootKeyFile(path, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: create root key file: %w", err)
	}
	key := randomBytes(RootKeySize)
	defer clear(key)
	_, err = f.Write(key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("keyring: create root key file: %w", err)
	}
	return NewRootKey(key, opts...)
}

// ReadRootKeyFile returns the local root key kept in the file at path,
// which must exist and hold exactly 32 bytes readable by its owner only
// (mode 0600 or stricter); anything else is refused with ErrInvalidArgument
// (or the os error, for a missing file). It never creates a file: use it in
// production, so that a wrong path fails instead of starting a new root key.
func ReadRootKeyFile(path string, opts ...RootKeyOption) (tink.AEAD, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: root key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keyring: root key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: root key file %s is not a regular file", ErrInvalidArgument, path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: root key file %s has mode %v; it must be readable by its owner only (chmod 600)", ErrInvalidArgument, path, fi.Mode().Perm())
	}
	key, err := io.ReadAll(io.LimitReader(f, RootKeySize+1))
	if err != nil {
		return nil, fmt.Errorf("keyring: root key file: %w", err)
	}
	defer clear(key)
	if len(key) != RootKeySize {
		return nil, fmt.Errorf("%w: root key file %s must hold exactly %d bytes", ErrInvalidArgument, path, RootKeySize)
	}
	return NewRootKey(key, opts...)
}

// RootKeys returns a root key that encrypts with primary and decrypts with
// the first of primary and others that succeeds: what every process needs
// while RotateRootKey moves a store from an old root key to a new one. It
// prints (fmt, slog, JSON) as the list of its keys' printed forms, and the
// type names of root keys from other packages, never their contents.
func RootKeys(primary tink.AEAD, others ...tink.AEAD) tink.AEAD {
	keys := append([]tink.AEAD{primary}, others...)
	names := make([]string, len(keys))
	for i, rk := range keys {
		names[i] = describe(rk)
	}
	return rootKeyList{redacted{"keyring.RootKeys(" + strings.Join(names, ", ") + ")"}, keys}
}

type rootKeyList struct {
	redacted
	keys []tink.AEAD
}

func (l rootKeyList) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	return l.keys[0].Encrypt(plaintext, associatedData)
}

func (l rootKeyList) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	for _, rk := range l.keys {
		if pt, err := rk.Decrypt(ciphertext, associatedData); err == nil {
			return pt, nil
		}
	}
	return nil, errRootOpen
}

// RotateRootKey rewraps the material of every version of every key in st,
// and the store key, from the root key from to the root key to. Every key
// record is authenticated before it is rewritten (ErrTampered). It is
// resumable: material that to already unwraps is left alone, so a call
// interrupted by a crash or an error can simply be repeated. Each key is
// rewritten in one compare-and-swap update, retried on conflict. Processes
// that hold keyrings on st should run with RootKeys(to, from) until it
// completes. It returns how many versions it rewrapped, and sends each
// auditor one OpRotateRootKey event per key it rewrapped (Version is the
// newest version rewrapped).
//
// Once it has completed and the old root key is destroyed, copies of the
// store made before (backups) can no longer be unwrapped: this is how
// material erased by version destruction or key deletion is also erased
// from backups (crypto-shredding).
func RotateRootKey(ctx context.Context, st store.Store, from, to tink.AEAD, auditors ...Auditor) (int, error) {
	ids, err := List(ctx, st)
	if err != nil {
		return 0, fmt.Errorf("keyring: rotate root key: %w", err)
	}
	both := RootKeys(to, from)
	total := 0
	for _, id := range ids {
		n, last, err := rewrapKey(ctx, st, id, from, to, both)
		total += n
		if n > 0 || err != nil {
			e := AuditEvent{Time: time.Now().UTC(), Operation: OpRotateRootKey, KeyID: id, Version: last, Err: err}
			for _, a := range auditors {
				if aerr := a.Audit(ctx, e); aerr != nil && err == nil {
					err = fmt.Errorf("%w: %s: %w", ErrAudit, OpRotateRootKey, aerr)
				}
			}
		}
		if err != nil {
			return total, err
		}
	}
	if _, err := rewrapStoreKey(ctx, st, from, to); err != nil && len(ids) > 0 {
		return total, err
	}
	return total, nil
}

// rewrapKey rewraps the versions of key id and returns how many it
// rewrapped and the newest of them.
func rewrapKey(ctx context.Context, st store.Store, id string, from, to, both tink.AEAD) (n int, last uint32, err error) {
	k, err := Load(ctx, st, id, WithRootKey(both))
	if err != nil {
		return 0, 0, err
	}
	var put []*version
	err = k.mutate(ctx, string(OpRotateRootKey), func(doc *keyDoc, vs []*version, _ time.Time) ([]*version, error) {
		put = put[:0]
		for _, v := range vs {
			if v.wrapped == nil {
				continue
			}
			ad := materialAD(k.bid, v.Number)
			if m, err := to.Decrypt(v.wrapped, ad); err == nil {
				clear(m)
				continue // done by an earlier, interrupted call
			}
			m, err := from.Decrypt(v.wrapped, ad)
			if err != nil {
				return nil, fmt.Errorf("%w: key %s version %d", ErrRootKey, id, v.Number)
			}
			wrapped, err := to.Encrypt(m, ad)
			clear(m)
			if err != nil {
				return nil, fmt.Errorf("keyring: rotate root key of %s: %w", id, err)
			}
			put = append(put, v.withMaterial(wrapped))
		}
		if len(put) == 0 {
			return nil, errNoChange
		}
		doc.StateChanges++
		return put, nil
	})
	if err == errNoChange {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	return len(put), put[len(put)-1].Number, nil
}

// ephemeralRootKey is the root key of keyrings created without WithRootKey:
// random, held only in this process's memory, shared by every such keyring
// so that several handles on one in-memory store can read each other's
// versions.
var ephemeralRootKey = sync.OnceValue(func() tink.AEAD {
	rk, err := NewRootKey(randomBytes(RootKeySize))
	if err != nil {
		panic("keyring: " + err.Error())
	}
	return rk
})

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
