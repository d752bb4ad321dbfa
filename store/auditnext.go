package store

import "context"

// AuditSequencer is implemented by stores that number appended audit
// entries themselves, so that writers appending at once (replicas of a
// service on one database) never conflict over the next number: package
// audit then gives each writer its own keyed chain (a chain per writer,
// linked by the records' own bytes), and the store's numbers only order
// the log. All the stores in this module implement it.
type AuditSequencer interface {
	// AppendAuditNext stores entries after the last stored entry,
	// numbering them on from it without gaps (their Seq fields are
	// ignored), and returns the number given to the first (0 when
	// entries is empty: nothing is stored). It is atomic,
	// and concurrent calls (and AppendAudit) never interleave their
	// entries or fail with ErrConflict because of each other.
	AppendAuditNext(ctx context.Context, entries []AuditEntry) (first uint64, err error)
}
