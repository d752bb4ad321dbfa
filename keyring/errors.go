package keyring

import (
	"errors"

	"github.com/kmsring/kmsring/internal/format"
)

// Errors a caller can branch on with errors.Is. They are wrapped with
// context; the context never holds key material or plaintext.
var (
	// ErrKeyNotFound reports that no key has the requested ID or alias.
	ErrKeyNotFound = errors.New("keyring: key not found")
	// ErrUnknownVersion reports a version number the key does not have,
	// even after reloading from the store.
	ErrUnknownVersion = errors.New("keyring: unknown key version")
	// ErrVersionDisabled reports use of a disabled version, or of one
	// pending destruction.
	ErrVersionDisabled = errors.New("keyring: key version disabled")
	// ErrVersionDestroyed reports use of a version whose material has been
	// destroyed.
	ErrVersionDestroyed = errors.New("keyring: key version destroyed")
	// ErrWrongKey reports a blob that names another key.
	ErrWrongKey = errors.New("keyring: ciphertext belongs to another key")
	// ErrMalformed reports a blob or envelope that does not parse. It is
	// the same value as the envelope package reports.
	ErrMalformed = format.ErrMalformed
	// ErrDecrypt is the one opaque error for every authentication failure:
	// tampered bytes, a wrong encryption context, a wrong root key.
	ErrDecrypt = errors.New("keyring: decryption failed")
	// ErrRootKey reports that the root key cannot unwrap stored key
	// material: the wrong root key or passphrase, or a tampered store.
	ErrRootKey = errors.New("keyring: root key cannot unwrap key material (wrong root key?)")
	// ErrInvalidArgument reports a bad argument or option: a non-positive
	// rotation period, an oversized plaintext, an invalid alias or
	// encryption context, a creation-only option passed to Load.
	ErrInvalidArgument = errors.New("keyring: invalid argument")

	// ErrRecordTooLarge reports a change refused because the key's stored
	// record would exceed MaxKeyRecordSize (a long policy, description
	// and many long aliases together). Nothing was changed.
	ErrRecordTooLarge = errors.New("keyring: key record too large")

	// ErrNotApproved reports, in FIPS 140-3 mode, data written in a format
	// whose algorithms are not approved (a format 1 blob, a default-suite
	// envelope, a root key ciphertext under XChaCha20-Poly1305 or argon2id)
	// that the caller did not opt in to read for a migration
	// (AllowNonApproved, envelope.AllowNonApproved, RootKeyAllowNonApproved,
	// PassphraseAllowNonApproved).
	ErrNotApproved = errors.New("keyring: not FIPS 140-3 approved")
)
