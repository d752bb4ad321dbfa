// Package store defines the narrow persistence interface that keyrings are
// kept in.
//
// A store is deliberately dumb: it keeps opaque records and never interprets
// them. Policy (rotation rules, version states, wrapping of key material
// under the root key) lives once, in package keyring. A backend only has to
// create, read, list and compare-and-swap records, which is what makes many
// backends cheap to write and easy to verify with the shared conformance
// suite in store/storetest.
//
// # Records
//
// A keyring is one [Record] (small, rewritten on every change) plus one
// [Version] per key version (appended, and replaced only when that version's
// state changes). Rotation therefore writes the record and one new version,
// and its cost does not grow with the number of versions a key already has.
//
// # Concurrency
//
// Every method of a Store must be safe for concurrent use, including by
// several processes sharing one database. [Store.Update] is a
// compare-and-swap on the record's revision: of any number of concurrent
// updates from the same revision exactly one succeeds and the others fail
// with [ErrConflict].
package store

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Errors returned by every Store. Backends wrap them with context; callers
// test for them with errors.Is.
var (
	// ErrNotFound reports that no record has the requested key ID or alias.
	ErrNotFound = errors.New("store: not found")
	// ErrExists reports that a key ID or alias is already taken.
	ErrExists = errors.New("store: already exists")
	// ErrConflict reports a compare-and-swap update from a stale revision.
	ErrConflict = errors.New("store: revision conflict")
	// ErrClosed reports use of a store after Close.
	ErrClosed = errors.New("store: closed")
)

// Record is the small, frequently rewritten part of a keyring.
type Record struct {
	// KeyID is the stable identifier of the key; it never changes.
	KeyID string
	// Aliases are alternative names by which Get finds the record. An alias
	// belongs to at most one record in a store.
	Aliases []string
	// Revision is assigned by the store: 1 on Create, incremented by every
	// successful Update.
	Revision uint64
	// Data is opaque to the store.
	Data []byte
	// Due is when something is next due for the record (zero: nothing),
	// kept by the store beside Data and indexed by stores that implement
	// DueIndex. It is derived from Data by its writer, who rounds it with
	// DueTime; the store neither checks nor interprets it.
	Due time.Time
}

// Clone returns r with its own copies of Aliases and Data, so that a
// backend neither keeps nor hands out a caller's slices.
func (r Record) Clone() Record {
	r.Aliases = slices.Clone(r.Aliases)
	r.Data = slices.Clone(r.Data)
	return r
}

// Version is the stored form of one key version. Its Data is opaque to the
// store (keyring keeps the version's state and its wrapped material there).
type Version struct {
	// Number is the version number, at least 1.
	Number uint32
	// Data is opaque to the store.
	Data []byte
}

// Store is the persistence interface a keyring is kept in.
//
// Implementations must copy the slices they are given and must not retain or
// modify slices they return after returning them.
type Store interface {
	// Create stores a new record with its first versions. It fails with
	// ErrExists if the key ID or any alias is already taken. The returned
	// record carries Revision 1.
	Create(ctx context.Context, rec Record, versions []Version) (Record, error)

	// Get returns the record whose key ID or alias is idOrAlias, or
	// ErrNotFound.
	Get(ctx context.Context, idOrAlias string) (Record, error)

	// Versions returns the versions of keyID whose number is greater than
	// after, in ascending order of number.
	Versions(ctx context.Context, keyID string, after uint32) ([]Version, error)

	// Update replaces the record rec.KeyID if its stored revision equals
	// rec.Revision, and in the same atomic step inserts or replaces the
	// given versions. It fails with ErrConflict if the revision differs,
	// ErrNotFound if there is no such record and ErrExists if a new alias
	// belongs to another record; on failure nothing is written. The
	// returned record carries the new revision.
	Update(ctx context.Context, rec Record, versions []Version) (Record, error)

	// List returns the key IDs of every record, sorted.
	List(ctx context.Context) ([]string, error)
}

// VersionRanger is implemented by stores that can read a bounded range of
// a key's versions. A keyring reads versions only up to the current version
// its authenticated record names: entries beyond it (a concurrent
// rotation's, or junk someone who can write the store added) are then never
// read, however large. All the stores in this module implement it.
type VersionRanger interface {
	// VersionRange returns the versions of keyID numbered after+1 through
	// through, in ascending order of number, or ErrNotFound if there is
	// no such key.
	VersionRange(ctx context.Context, keyID string, after, through uint32) ([]Version, error)
}

// Volatile is implemented by stores whose contents end with the process,
// such as memstore. A keyring created or loaded without an explicit root key
// uses a random root key held in process memory, and accepts only a
// Volatile store for that: material wrapped under it could never be
// unwrapped by another process.
type Volatile interface {
	Store
	Volatile() bool
}

// ChangeFeed is implemented by stores that can report every changed record
// by its key ID, possibly changed by another process (pgstore, with
// LISTEN/NOTIFY). A process that caches many records (such as the
// KMS-compatible endpoint) uses it to drop what changed within
// milliseconds rather than polling each record. fn is called for each
// committed Create and Update with the record's key ID, and with "" once it is
// listening and whenever changes may have been missed (after the store
// reconnects): then anything may have changed. fn runs on the store's listener and must not block; stop ends
// the calls.
type ChangeFeed interface {
	Changes(fn func(keyID string)) (stop func())
}

// Notifier is implemented by stores that can tell a process that a key was
// changed, possibly by another process. keyring.Keyring.Watch uses it to
// refresh at once instead of waiting for its next poll.
type Notifier interface {
	// Notify arranges for a value to be sent on c, without blocking,
	// whenever keyID may have changed, including when notifications may
	// have been missed. Call stop to end the notifications.
	Notify(keyID string, c chan<- struct{}) (stop func())
}

// AuditEntry is one stored audit record. The store keeps Data opaque; the
// other fields are copies of what Data says, kept for queries.
type AuditEntry struct {
	// Seq numbers entries 1, 2, 3, ... without gaps.
	Seq       uint64
	Time      time.Time
	KeyID     string
	Operation string
	Data      []byte
}

// AuditQuery selects audit entries. Zero fields match everything.
type AuditQuery struct {
	// After selects entries with Seq > After: pass the last Seq of a page
	// to get the next.
	After uint64
	// Limit caps the number of entries returned; <= 0 means no cap.
	Limit     int
	KeyID     string
	Operation string
	// Since (inclusive) and Until (exclusive) bound Time. Stores may keep
	// Time to the microsecond only.
	Since, Until time.Time
}

// AuditLog is implemented by stores that keep an audit log (package audit
// writes it; its hash chain makes tampering detectable). Appends from many
// processes are serialized by the sequence numbers.
type AuditLog interface {
	// AppendAudit stores entries, whose Seq numbers must run on from the
	// last stored entry (from 1 in an empty log) without gaps; otherwise
	// it fails with ErrConflict and writes nothing.
	AppendAudit(ctx context.Context, entries []AuditEntry) error
	// LastAudit returns the entry with the highest Seq, or ErrNotFound.
	LastAudit(ctx context.Context) (AuditEntry, error)
	// ReadAudit returns the entries q selects in ascending Seq order.
	ReadAudit(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
}

// Match reports whether e satisfies q's filters (not After or Limit); for
// backends that filter in Go.
func (q AuditQuery) Match(e AuditEntry) bool {
	return (q.KeyID == "" || e.KeyID == q.KeyID) &&
		(q.Operation == "" || e.Operation == q.Operation) &&
		(q.Since.IsZero() || !e.Time.Before(q.Since)) &&
		(q.Until.IsZero() || e.Time.Before(q.Until))
}
