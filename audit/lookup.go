package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kmsring/kmsring/store"
)

// Query selects records for LookupEvents. Zero fields match everything.
type Query struct {
	KeyID     string
	Operation string // a keyring.Operation, such as "GenerateDataKey"
	// Since (inclusive) and Until (exclusive) bound the record time.
	Since, Until time.Time
	// After continues a lookup: pass the Next of the previous page.
	After uint64
	// Limit is the page size; <= 0 means 100.
	Limit int
}

// LookupEvents returns a page of stored records that q selects, oldest
// first, and the After of the next page (0 when this was the last).
func LookupEvents(ctx context.Context, al store.AuditLog, q Query) (records []Record, next uint64, err error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	entries, err := al.ReadAudit(ctx, store.AuditQuery{
		After: q.After, Limit: limit, KeyID: q.KeyID, Operation: q.Operation, Since: q.Since, Until: q.Until,
	})
	if err != nil {
		return nil, 0, fmt.Errorf("audit: lookup: %w", err)
	}
	for _, e := range entries {
		var r Record
		if err := json.Unmarshal(e.Data, &r); err != nil {
			return nil, 0, fmt.Errorf("audit: lookup: record %d: %w", e.Seq, err)
		}
		records = append(records, r)
	}
	if len(entries) == limit {
		next = entries[len(entries)-1].Seq
	}
	return records, next, nil
}

// ErrTampered reports an audit log that fails verification.
var ErrTampered = errors.New("audit: log tampered with")

// TamperError says where verification failed. It wraps ErrTampered.
type TamperError struct {
	// Seq is the first record (or expected sequence number) that fails.
	Seq    uint64
	Reason string
}

// Error describes where the log fails verification.
func (e *TamperError) Error() string {
	return fmt.Sprintf("audit: log tampered with at record %d: %s", e.Seq, e.Reason)
}

// Unwrap returns ErrTampered.
func (e *TamperError) Unwrap() error { return ErrTampered }

// Verification is what Verify found in a sound log.
type Verification struct {
	// Records is the number of records checked.
	Records uint64
	// Head is the hex SHA-256 of the last record: keep it elsewhere to
	// detect later truncation of the log.
	Head string
}

// Verify reads the whole stored log and checks its hash chain: sequence
// numbers run 1, 2, 3, ... without gaps, each record holds the hash of the
// one before, and each record's bytes agree with the fields the store
// indexes. It returns a *TamperError (errors.Is ErrTampered) naming the
// first record that fails.
func Verify(ctx context.Context, al store.AuditLog) (Verification, error) {
	var v Verification
	const page = 1000
	for {
		entries, err := al.ReadAudit(ctx, store.AuditQuery{After: v.Records, Limit: page})
		if err != nil {
			return v, fmt.Errorf("audit: verify: %w", err)
		}
		for _, e := range entries {
			want := v.Records + 1
			if e.Seq != want {
				return v, &TamperError{Seq: want, Reason: fmt.Sprintf("record %d is missing (next stored is %d)", want, e.Seq)}
			}
			var r Record
			if err := json.Unmarshal(e.Data, &r); err != nil {
				return v, &TamperError{Seq: e.Seq, Reason: "record does not parse"}
			}
			switch {
			case r.Seq != e.Seq:
				return v, &TamperError{Seq: e.Seq, Reason: fmt.Sprintf("record says it is number %d", r.Seq)}
			case r.Prev != v.Head:
				return v, &TamperError{Seq: e.Seq - 1, Reason: fmt.Sprintf("its hash does not match the link in record %d: it was changed (or that link was)", e.Seq)}
			case r.KeyID != e.KeyID || r.Operation != e.Operation || !r.Time.Truncate(time.Microsecond).Equal(e.Time.Truncate(time.Microsecond)):
				return v, &TamperError{Seq: e.Seq, Reason: "indexed fields disagree with the record"}
			}
			v.Records, v.Head = e.Seq, chainHash(e.Data)
		}
		if len(entries) < page {
			return v, nil
		}
	}
}
