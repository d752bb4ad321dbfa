package audit

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
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
	// Head is the link of the last record (its MAC in a keyed log, else
	// the hex SHA-256 of its bytes): keep it elsewhere to detect later
	// truncation of the log.
	Head string
}

// VerifyOption configures Verify.
type VerifyOption func(*verifyConfig)

type verifyConfig struct{ mac func() hash.Hash }

// VerifyWithMAC makes Verify authenticate every record under the audit
// chain key, as a Logger given WithMAC(mac) wrote them.
func VerifyWithMAC(mac func() hash.Hash) VerifyOption {
	return func(c *verifyConfig) { c.mac = mac }
}

// ErrKeyed reports a keyed log given to Verify without VerifyWithMAC: it
// cannot be authenticated without the audit chain key.
var ErrKeyed = errors.New("audit: the log is keyed: verify it with the audit chain key (VerifyWithMAC)")

// Verify reads the whole stored log and checks its chain: sequence numbers
// run 1, 2, 3, ... without gaps, each record holds the link of the one
// before, and each record's bytes agree with the fields the store indexes.
// With VerifyWithMAC, every record must carry a MAC under the audit chain
// key over its bytes (its link included), so a record changed by someone
// without the root key is named even if every later link was recomputed.
// It returns a *TamperError (errors.Is ErrTampered) naming the first record
// that fails, or ErrKeyed for a keyed log verified without its key.
func Verify(ctx context.Context, al store.AuditLog, opts ...VerifyOption) (Verification, error) {
	var c verifyConfig
	for _, o := range opts {
		o(&c)
	}
	var v Verification
	const page = 1000
	for {
		entries, err := al.ReadAudit(ctx, store.AuditQuery{After: v.Records, Limit: page})
		if err != nil {
			return v, fmt.Errorf("audit: verify: %w", err)
		}
		for _, e := range entries {
			if err := c.check(e, v); err != nil {
				return v, err
			}
			v.Records, v.Head = e.Seq, link(e.Data)
		}
		if len(entries) < page {
			return v, nil
		}
	}
}

// check verifies entry e, which follows the sound log v.
func (c *verifyConfig) check(e store.AuditEntry, v Verification) error {
	want := v.Records + 1
	if e.Seq != want {
		return &TamperError{Seq: want, Reason: fmt.Sprintf("record %d is missing (next stored is %d)", want, e.Seq)}
	}
	body, tag, keyed := splitMAC(e.Data)
	switch {
	case keyed && c.mac == nil && e.Seq == 1:
		return fmt.Errorf("%w (record %d carries a MAC)", ErrKeyed, e.Seq)
	case keyed && c.mac == nil:
		return &TamperError{Seq: e.Seq, Reason: "it carries a MAC in a log whose first record does not"}
	case !keyed && c.mac != nil:
		return &TamperError{Seq: e.Seq, Reason: "it has no MAC: it was written or rewritten without the audit chain key"}
	case keyed && !validMAC(c.mac, body, tag):
		return &TamperError{Seq: e.Seq, Reason: "its MAC does not verify: it was changed"}
	}
	var r Record
	if err := json.Unmarshal(e.Data, &r); err != nil {
		return &TamperError{Seq: e.Seq, Reason: "record does not parse"}
	}
	switch {
	case r.Seq != e.Seq:
		return &TamperError{Seq: e.Seq, Reason: fmt.Sprintf("record says it is number %d", r.Seq)}
	case r.Prev != v.Head && keyed:
		return &TamperError{Seq: e.Seq, Reason: fmt.Sprintf("it does not follow record %d: a record before it was removed or replaced", e.Seq-1)}
	case r.Prev != v.Head:
		return &TamperError{Seq: e.Seq - 1, Reason: fmt.Sprintf("its hash does not match the link in record %d: it was changed (or that link was)", e.Seq)}
	case r.KeyID != e.KeyID || r.Operation != e.Operation || !r.Time.Truncate(time.Microsecond).Equal(e.Time.Truncate(time.Microsecond)):
		return &TamperError{Seq: e.Seq, Reason: "indexed fields disagree with the record"}
	}
	return nil
}

// validMAC reports whether tag is the hex MAC of body, in the canonical
// lowercase encoding the logger writes: an upper-case copy of a valid tag
// would change the record's bytes (and so the next record's link) without
// failing the check.
func validMAC(mac func() hash.Hash, body []byte, tag string) bool {
	want := hex.EncodeToString(sum(mac, body))
	return hmac.Equal([]byte(tag), []byte(want))
}
