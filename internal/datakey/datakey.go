// Package datakey connects package envelope to the data key hot path of
// package keyring, which sets these functions when it is initialized.
//
// Through them an envelope wraps and unwraps its data key without the
// public API's allocations: the blob is written straight into the
// envelope, its nonce comes from the envelope's one random read, and the
// encryption context is passed already encoded, in the header bytes that
// are the blob's associated data. The keyring's checks are those of
// GenerateDataKey, Encrypt and Decrypt: the same version gate
// (Keyring.usable) and the same audit events.
package datakey

import (
	"context"

	"github.com/kmsring/kmsring/internal/format"
)

// Keyring is a *keyring.Keyring, which this package cannot name without
// an import cycle.
type Keyring interface{ ID() string }

// Op is the operation a Wrap is audited as.
type Op uint8

// Operations of Wrap.
const (
	// GenerateDataKey wraps a fresh data key (envelope.Seal).
	GenerateDataKey Op = iota
	// Encrypt wraps a data key again (envelope.Rewrap).
	Encrypt
)

// Wrap appends to dst the data key blob of dek under the current version
// of k, in the blob format given (format.BlobFormat or
// format.BlobFormatApproved), with the random bytes given (the 24-byte
// nonce of format 1, the 32-byte salt of an approved blob), and returns
// the extended dst and the version. The last contextLen bytes of dst must
// be the canonical encoding of ec: followed by the blob's first bytes they
// are its associated data (docs/FORMAT.md).
var Wrap func(ctx context.Context, k Keyring, op Op, blobFormat byte, dst []byte, contextLen int, ec map[string]string, dek, random []byte) ([]byte, uint32, error)

// Unwrap decrypts blob, which parsed as bl, with k, a *keyring.Keyring or a
// *keyring.Set (the keyring the blob names), appends the plaintext to dst
// and returns it. ad is the blob's associated data: the canonical encoding
// of ec followed by the blob's first bytes. In FIPS 140-3 mode a blob of
// format 1 is refused unless allowNonApproved.
var Unwrap func(ctx context.Context, k any, dst, blob []byte, bl format.Blob, ad []byte, ec map[string]string, allowNonApproved bool) ([]byte, error)
