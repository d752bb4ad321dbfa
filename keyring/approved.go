package keyring

import (
	"fmt"

	"github.com/kmsring/kmsring/internal/fipsmode"
)

// FIPS 140-3 mode.
//
// When crypto/fips140.Enabled() is true (a GOFIPS140 build, or
// GODEBUG=fips140=on or only), a keyring writes data key blobs only in the
// approved format (AES-256-GCM under a key derived per blob with
// HKDF-SHA-256; docs/FORMAT.md), the built-in root keys seal with
// AES-256-GCM, passphrase root keys derive with PBKDF2-HMAC-SHA-256, and no
// golang.org/x/crypto primitive runs. What was written outside the mode in
// a format that is not approved fails to open with ErrNotApproved, unless
// the caller opts in for a migration (AllowNonApproved here,
// envelope.AllowNonApproved for envelopes, RootKeyAllowNonApproved for root
// keys). Approved blobs open in every mode.

// WithApprovedAlgorithms makes the keyring write data key blobs in the
// approved format even outside FIPS 140-3 mode (in the mode it always
// does), and envelope.Seal and NewWriter with it write the approved suite:
// to prepare data for a move to FIPS mode, or to compare costs. It does
// not restrict what the keyring reads. New and Load.
func WithApprovedAlgorithms() Option {
	return func(c *config) { c.approved = true }
}

// Approved reports whether k writes only formats whose algorithms are
// approved in FIPS 140-3: in FIPS mode, or with WithApprovedAlgorithms. It
// is safe for concurrent use.
func (k *Keyring) Approved() bool { return k.approved || fipsmode.Enabled() }

// AllowNonApproved lets Decrypt and ReEncrypt read a data key blob of
// format 1 (XChaCha20-Poly1305) in FIPS 140-3 mode, for a migration:
// ReEncrypt then writes the blob again in the approved format. Outside the
// mode it changes nothing. golang.org/x/crypto's XChaCha20-Poly1305 runs
// for such a blob: keep it to the migration.
func AllowNonApproved() OpOption { return OpOption{kind: opAllowNonApproved} }

// checkApproved returns ErrNotApproved, naming what, in FIPS mode when
// approved is false and the caller did not opt in.
func checkApproved(approved, allowed bool, what string) error {
	if approved || allowed || !fipsmode.Enabled() {
		return nil
	}
	return fmt.Errorf("%w: %s was written outside FIPS 140-3 mode and is refused in it; opt in to read it for a migration (docs/FIPS.md)", ErrNotApproved, what)
}
