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
// On a store that numbers appends itself (store.AuditSequencer: boltstore,
// pgstore and memstore), the log is partitioned: each Logger appends to a
// chain of its own (Record.Chain, a random name; Record.ChainSeq, its
// place), so replicas appending at once never conflict over one head.
// Verify follows every chain through the log and names a record deleted
// from its chain, moved within it or into another, copied or changed;
// the store's numbers only order the log (a record's time is its own).
// A log of one chain, as older releases wrote it, verifies as before and
// may go on partitioned. Each chain's end is as exposed as the one
// chain's was: keep Verification.Chains' heads elsewhere to detect a cut.
//
// # Failure and slowness
//
// By default the Logger never slows or fails an operation: records are
// queued (bounded) and written by one goroutine in batches (it waits up
// to 20 ms for more records before a store commit, so that one fsync
// serves many operations; [Logger.Flush] and Close cut the wait short, and
// a crash loses what is queued); a failing store
// is retried with backoff while the queue holds, each failure reported to
// slog and [WithOnError]; records that find the queue full, or that
// [Logger.CloseContext] gives up on, are dropped and counted
// ([Logger.Dropped]). With [WithFailClosed], for compliance users, an
// operation waits (up to a bound) until its record is stored and fails with
// keyring.ErrAudit if it is not; the record then says so (outcome
// "failure", error class "AuditFailed"), so the log never says an
// operation succeeded that its caller was told failed.
//
// # Events and monitoring
//
// A [Bus] delivers rotation, version-state and overdue events to
// subscribers filtered by key, without ever blocking an encryption. A
// [Collector] exports per-key rotation gauges and operation counters to
// Prometheus.
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/kmsring/kmsring/internal/jsonesc"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
)

// WithPrincipal returns a context that names the caller (a user, a service,
// a request's authenticated subject) in the audit records of the operations
// it is passed to. It is keyring.ContextWithPrincipal. Automatic rotations
// and scheduled destructions carry the scheduler's own principal
// (rotation.DefaultPrincipal).
func WithPrincipal(ctx context.Context, principal string) context.Context {
	return keyring.ContextWithPrincipal(ctx, principal)
}

// Principal returns the principal WithPrincipal attached to ctx, or "".
func Principal(ctx context.Context) string { return keyring.PrincipalFrom(ctx) }

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
	// Amends is set on a correction: the Seq of an earlier record of the
	// same operation that says it succeeded, stored while its fail-closed
	// caller was told it failed (WithFailClosed). The correction says
	// what the caller saw: failure, AuditFailed.
	Amends uint64 `json:"amends,omitempty"`
	// Chain and ChainSeq place the record in a log partitioned into a
	// chain per writer (a store that numbers appends itself,
	// store.AuditSequencer): Chain names the writer's chain (16 hex
	// digits, new for each Logger and after each failed append) and
	// ChainSeq numbers the chain's records 1, 2, 3, ... Prev then links
	// to the chain's record before it, and the stored bytes say seq 0:
	// Seq is the store's number, which only orders the log. Both are
	// empty in a log of one chain (as older releases wrote every record),
	// where Seq and Prev follow the whole log.
	Chain    string `json:"chain,omitempty"`
	ChainSeq uint64 `json:"chain_seq,omitempty"`
	// Prev links the record to the one stored before it (in its chain,
	// when Chain is set): that record's MAC in a keyed log (WithMAC),
	// else the hex SHA-256 of its bytes; empty for the first.
	Prev string `json:"prev,omitempty"`
	// MAC, in a keyed log, is the hex HMAC-SHA256 under the audit chain
	// key of the record's stored bytes without it (Prev included). It is
	// the record's last field.
	MAC string `json:"mac,omitempty"`
	// Link is what the record after it links to (its MAC in a keyed log,
	// else the hex SHA-256 of its bytes); set by Walk, not stored.
	Link string `json:"-"`
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
	{keyring.ErrKeyDisabled, "KeyDisabled"},
	{keyring.ErrKeyPendingDeletion, "KeyPendingDeletion"},
	{keyring.ErrTampered, "Tampered"},
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
// "KeyDisabled", "KeyPendingDeletion" (a refused use of a key pending
// deletion, what AWS users alarm on), "Tampered", "UnknownVersion", "VersionDisabled", "VersionDestroyed", "WrongKey",
// "Malformed", "DecryptFailed", "InvalidArgument", "RootKey", ..., the
// class an error in err's chain names with an AuditClass() string method
// (package kmsapi's access denials say "AccessDenied"), or "Internal" for
// anything else (a store failure, for one). It is "" for nil.
func ErrorClass(err error) string {
	if err == nil {
		return ""
	}
	var c interface{ AuditClass() string }
	if errors.As(err, &c) {
		return c.AuditClass()
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

// amendment returns the correction of r, a stored record whose
// fail-closed caller was told the operation failed.
func (r Record) amendment() Record {
	a := r
	a.Seq, a.Prev, a.Chain, a.ChainSeq, a.Link = 0, "", "", 0, ""
	a.Outcome, a.ErrorClass = Failure, ErrorClass(keyring.ErrAudit)
	a.Amends = r.Seq
	return a
}

// marshal returns the stored bytes of r: JSON, map keys sorted, so the
// same record always has the same bytes.
func (r *Record) marshal() []byte { return r.appendJSON(nil) }

// appendJSON appends r's stored bytes to b: exactly what json.Marshal(r)
// returns, which older releases stored and which the chain's hashes and
// MACs cover, but written field by field instead of by reflection (the
// audit writer marshals every record an operation makes). A time
// json.Marshal refuses (a year outside [0,9999], a zone offset of 24
// hours or more) is handed to json.Marshal, which fails as it always has:
// appendJSON panics. recordjson_test.go and FuzzRecordJSON hold the two
// to the same bytes; a field added to Record must be added here, and to
// the "every field" record and FuzzRecordJSON there.
func (r *Record) appendJSON(b []byte) []byte {
	start := len(b)
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"time":"`...)
	t, err := r.Time.AppendText(b)
	if err != nil {
		return append(b[:start], r.reflectJSON()...)
	}
	b = append(t, `","operation":`...)
	b = appendString(b, r.Operation)
	b = append(b, `,"key_id":`...)
	b = appendString(b, r.KeyID)
	if r.Version != 0 {
		b = append(b, `,"version":`...)
		b = strconv.AppendUint(b, uint64(r.Version), 10)
	}
	if r.PreviousVersion != 0 {
		b = append(b, `,"previous_version":`...)
		b = strconv.AppendUint(b, uint64(r.PreviousVersion), 10)
	}
	b = appendStringField(b, `,"origin":`, r.Origin)
	b = appendStringField(b, `,"alias":`, r.Alias)
	b = appendStringField(b, `,"principal":`, r.Principal)
	b = appendMapField(b, `,"encryption_context":`, r.EncryptionContext)
	b = appendListField(b, `,"encryption_context_keys":`, r.EncryptionContextKeys)
	b = appendMapField(b, `,"source_encryption_context":`, r.SourceEncryptionContext)
	b = appendListField(b, `,"source_encryption_context_keys":`, r.SourceEncryptionContextKeys)
	b = append(b, `,"outcome":`...)
	b = appendString(b, r.Outcome)
	b = appendStringField(b, `,"error_class":`, r.ErrorClass)
	if r.Amends != 0 {
		b = append(b, `,"amends":`...)
		b = strconv.AppendUint(b, r.Amends, 10)
	}
	b = appendStringField(b, `,"chain":`, r.Chain)
	if r.ChainSeq != 0 {
		b = append(b, `,"chain_seq":`...)
		b = strconv.AppendUint(b, r.ChainSeq, 10)
	}
	b = appendStringField(b, `,"prev":`, r.Prev)
	b = appendStringField(b, `,"mac":`, r.MAC)
	return append(b, '}')
}

// reflectJSON is json.Marshal(r), for the records appendJSON does not
// write itself.
func (r *Record) reflectJSON() []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic("audit: marshal record: " + err.Error())
	}
	return b
}

// appendStringField appends the field name and s, unless s is empty
// (omitempty).
func appendStringField(b []byte, name, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, name...), s)
}

// appendListField appends the field name and list as a JSON array,
// unless list is empty (omitempty).
func appendListField(b []byte, name string, list []string) []byte {
	if len(list) == 0 {
		return b
	}
	b = append(b, name...)
	for i, s := range list {
		b = append(b, separator(i, '['))
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendMapField appends the field name and m as a JSON object, its keys
// in sorted order as encoding/json writes them, unless m is empty
// (omitempty).
func appendMapField(b []byte, name string, m map[string]string) []byte {
	if len(m) == 0 {
		return b
	}
	var small [16]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, name...)
	for i, k := range keys {
		b = append(b, separator(i, '{'))
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, m[k])
	}
	return append(b, '}')
}

// separator is what precedes element i of an array or object that open
// starts.
func separator(i int, open byte) byte {
	if i == 0 {
		return open
	}
	return ','
}

// appendString appends s as a JSON string, escaped as encoding/json
// escapes it (with its default HTML escaping).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = jsonesc.EncodingJSON.Append(b, s)
	return append(b, '"')
}

// chainHash is what the next record's Prev holds in an unkeyed log.
func chainHash(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// macField opens the last field of a keyed record's stored bytes:
// {...,"mac":"<64 hex digits>"}.
const (
	macField  = `,"mac":"`
	macSuffix = len(macField) + 2*sha256.Size + len(`"}`)
)

// seal appends the stored bytes of r in a keyed log to b: its JSON
// without MAC, then the MAC of those bytes as a last field. h is the MAC
// (it is reset first); sum holds its output between records. r.MAC is
// set.
func (r *Record) seal(b []byte, h hash.Hash, sum *[]byte) []byte {
	r.MAC = ""
	start := len(b)
	b = r.appendJSON(b)
	h.Reset()
	h.Write(b[start:])
	*sum = h.Sum((*sum)[:0])
	b = append(b[:len(b)-1], macField...)
	b = hex.AppendEncode(b, *sum)
	r.MAC = string(b[len(b)-hex.EncodedLen(len(*sum)):])
	return append(b, `"}`...)
}

// splitMAC splits the stored bytes of a keyed record into the bytes its MAC
// covers and the MAC; ok is false for a record without one.
func splitMAC(data []byte) (body []byte, tag string, ok bool) {
	n, ok := macAt(data)
	if !ok {
		return nil, "", false
	}
	return append(bytes.Clone(data[:n]), '}'), string(data[n+len(macField) : len(data)-2]), true
}

// macAt returns where the last field of a keyed record's stored bytes
// starts; ok is false for a record without one.
func macAt(data []byte) (n int, ok bool) {
	n = len(data) - macSuffix
	if n < 1 || string(data[n:n+len(macField)]) != macField || string(data[len(data)-2:]) != `"}` {
		return 0, false
	}
	return n, true
}

// link is what the next record's Prev holds: a keyed record's MAC, or the
// hash of an unkeyed record's bytes.
func link(data []byte) string {
	if n, ok := macAt(data); ok {
		return string(data[n+len(macField) : len(data)-2])
	}
	return chainHash(data)
}

func sum(mac func() hash.Hash, b []byte) []byte {
	h := mac()
	h.Write(b)
	return h.Sum(nil)
}
