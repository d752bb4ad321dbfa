// Package audit is kmsring's audit trail (AWS CloudTrail's role), event
// bus (EventBridge's role) and Prometheus collector.
//
// # Audit trail
//
// A [Logger] is a keyring.Auditor: give it to keyrings with
// keyring.WithAuditor and it records every operation (key creation, data
// key generation, encryption, decryption, re-encryption, rotations,
// rotation settings, version state changes, alias changes, root key
// rotation) with its time, key ID, the version it used, rotation origin and
// previous version, the caller principal ([WithPrincipal]), the encryption
// context (or only its keys), the outcome and an error class. Never key
// material or plaintext. Records go to log/slog and, with [WithStore], to a
// persistent log in the store (boltstore, pgstore or memstore), searchable
// with [LookupEvents].
//
// Stored records are hash-chained: each holds the SHA-256 of the one before
// it, so [Verify] detects a record deleted, reordered or modified anywhere
// in the log, and names the first bad one. Deleting records from the end
// leaves a shorter valid chain: keep the head hash Verify returns somewhere
// else (a ticket, another system's log) to detect that too.
//
// # Failure and slowness
//
// By default the Logger never slows or fails an operation: records are
// queued (bounded) and written by one goroutine in batches; a failing store
// is retried with backoff while the queue holds, and records that find the
// queue full are dropped and counted ([Logger.Dropped]). With
// [WithFailClosed], for compliance users, an operation waits (up to a bound)
// until its record is stored and fails with keyring.ErrAudit if it is not.
//
// # Events and monitoring
//
// A [Bus] delivers rotation, version-state and overdue events to
// subscribers filtered by key, without ever blocking an encryption. A
// [Collector] exports per-key rotation gauges and operation counters to
// Prometheus.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
)

type principalKey struct{}

// WithPrincipal returns a context that names the caller (a user, a service,
// a request's authenticated subject) in the audit records of the operations
// it is passed to.
func WithPrincipal(ctx context.Context, principal string) context.Context {
	return context.WithValue(ctx, principalKey{}, principal)
}

// Principal returns the principal WithPrincipal attached to ctx, or "".
func Principal(ctx context.Context) string {
	p, _ := ctx.Value(principalKey{}).(string)
	return p
}

// Record is one audit record.
type Record struct {
	// Seq numbers stored records 1, 2, 3, ...; 0 in records not stored.
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Operation string    `json:"operation"`
	KeyID     string    `json:"key_id"`
	// Version is the version used or acted on; for a rotation the new
	// version, and PreviousVersion the one it replaced (also the source
	// version of a ReEncrypt).
	Version         uint32 `json:"version,omitempty"`
	PreviousVersion uint32 `json:"previous_version,omitempty"`
	// Origin is "automatic" or "on-demand" for rotations.
	Origin    string `json:"origin,omitempty"`
	Alias     string `json:"alias,omitempty"`
	Principal string `json:"principal,omitempty"`
	// EncryptionContext, or only its keys with WithContextKeysOnly; for
	// a ReEncrypt, the destination context.
	EncryptionContext     map[string]string `json:"encryption_context,omitempty"`
	EncryptionContextKeys []string          `json:"encryption_context_keys,omitempty"`
	// SourceEncryptionContext, or only its keys, is the context a
	// ReEncrypt opened its source blob with.
	SourceEncryptionContext     map[string]string `json:"source_encryption_context,omitempty"`
	SourceEncryptionContextKeys []string          `json:"source_encryption_context_keys,omitempty"`
	// Outcome is "success" or "failure"; ErrorClass names the failure.
	Outcome    string `json:"outcome"`
	ErrorClass string `json:"error_class,omitempty"`
	// Prev is the hex SHA-256 of the previous stored record's bytes, or
	// of nothing for the first.
	Prev string `json:"prev,omitempty"`
}

// Outcomes.
const (
	Success = "success"
	Failure = "failure"
)

// errorClasses maps the errors a caller can act on to stable names.
var errorClasses = []struct {
	err   error
	class string
}{
	{keyring.ErrAudit, "AuditFailed"},
	{keyring.ErrKeyNotFound, "KeyNotFound"},
	{keyring.ErrUnknownVersion, "UnknownVersion"},
	{keyring.ErrVersionDisabled, "VersionDisabled"},
	{keyring.ErrVersionDestroyed, "VersionDestroyed"},
	{keyring.ErrWrongKey, "WrongKey"},
	{keyring.ErrMalformed, "Malformed"},
	{keyring.ErrDecrypt, "DecryptFailed"},
	{keyring.ErrInvalidArgument, "InvalidArgument"},
	{keyring.ErrRootKey, "RootKey"},
	{store.ErrConflict, "Conflict"},
	{store.ErrExists, "AlreadyExists"},
	{store.ErrClosed, "StoreClosed"},
	{context.Canceled, "Canceled"},
	{context.DeadlineExceeded, "DeadlineExceeded"},
}

// ErrorClass returns the stable name of err's class: "KeyNotFound",
// "UnknownVersion", "VersionDisabled", "VersionDestroyed", "WrongKey",
// "Malformed", "DecryptFailed", "InvalidArgument", "RootKey", ..., or
// "Internal" for anything else (a store failure, for one). It is "" for nil.
func ErrorClass(err error) string {
	if err == nil {
		return ""
	}
	for _, c := range errorClasses {
		if errors.Is(err, c.err) {
			return c.class
		}
	}
	return "Internal"
}

// newRecord turns a keyring event into a record.
func newRecord(ctx context.Context, e keyring.AuditEvent, keysOnly bool) Record {
	r := Record{
		Time:            e.Time,
		Operation:       string(e.Operation),
		KeyID:           e.KeyID,
		Version:         e.Version,
		PreviousVersion: e.PreviousVersion,
		Alias:           e.Alias,
		Principal:       Principal(ctx),
		Outcome:         Success,
		ErrorClass:      ErrorClass(e.Err),
	}
	if e.Origin != 0 {
		r.Origin = e.Origin.String()
	}
	if e.Err != nil {
		r.Outcome = Failure
	}
	r.EncryptionContext, r.EncryptionContextKeys = recordContext(e.EncryptionContext, keysOnly)
	r.SourceEncryptionContext, r.SourceEncryptionContextKeys = recordContext(e.SourceEncryptionContext, keysOnly)
	return r
}

// recordContext returns what a record holds of ec: ec itself, or only its
// sorted keys with keysOnly; nothing when it is empty.
func recordContext(ec map[string]string, keysOnly bool) (map[string]string, []string) {
	if len(ec) == 0 {
		return nil, nil
	}
	if !keysOnly {
		return ec, nil
	}
	return nil, slices.Sorted(maps.Keys(ec))
}

// marshal returns the stored bytes of r: JSON, map keys sorted, so the
// same record always has the same bytes.
func (r *Record) marshal() []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic("audit: marshal record: " + err.Error())
	}
	return b
}

// chainHash is the hash stored in the next record's Prev.
func chainHash(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}
