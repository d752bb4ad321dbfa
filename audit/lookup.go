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
		if r.Chain != "" {
			r.Seq = e.Seq // a partitioned log's records carry the store's number only there
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
	Seq uint64
	// File, for a record or digest in an archive, is the archive file's
	// name (a segment or its digest).
	File   string
	Reason string
}

// Error describes where the log fails verification.
func (e *TamperError) Error() string {
	if e.File != "" {
		return fmt.Sprintf("audit: log tampered with at record %d, archive file %s: %s", e.Seq, e.File, e.Reason)
	}
	return fmt.Sprintf("audit: log tampered with at record %d: %s", e.Seq, e.Reason)
}

// Unwrap returns ErrTampered.
func (e *TamperError) Unwrap() error { return ErrTampered }

// check verifies entry e, which follows the sound log that ends at record
// last with link head, and returns its record.
func (c *verifyConfig) check(e store.AuditEntry, last uint64, head string) (Record, error) {
	want := last + 1
	if e.Seq != want {
		return Record{}, &TamperError{Seq: want, Reason: fmt.Sprintf("record %d is missing (next stored is %d)", want, e.Seq)}
	}
	r, err := c.checkData(e.Seq, e.Data, head)
	if err != nil {
		return r, err
	}
	if r.KeyID != e.KeyID || r.Operation != e.Operation || !r.Time.Truncate(time.Microsecond).Equal(e.Time.Truncate(time.Microsecond)) {
		return r, &TamperError{Seq: e.Seq, Reason: "indexed fields disagree with the record"}
	}
	return r, nil
}

// checkData verifies the stored bytes of record seq, which follows a
// record whose link is head, and returns the record.
func (c *verifyConfig) checkData(seq uint64, data []byte, head string) (Record, error) {
	var r Record
	body, tag, keyed := splitMAC(data)
	switch {
	case keyed && c.mac == nil && seq == 1:
		return r, fmt.Errorf("%w (record %d carries a MAC)", ErrKeyed, seq)
	case keyed && c.mac == nil:
		return r, &TamperError{Seq: seq, Reason: "it carries a MAC in a log whose first record does not"}
	case !keyed && c.mac != nil:
		return r, &TamperError{Seq: seq, Reason: "it has no MAC: it was written or rewritten without the audit chain key"}
	case keyed && !validMAC(c.mac, body, tag):
		return r, &TamperError{Seq: seq, Reason: "its MAC does not verify: it was changed"}
	}
	if err := c.decode(data, &r); err != nil {
		return Record{}, &TamperError{Seq: seq, Reason: "record does not parse"}
	}
	if r.Chain != "" {
		return r, c.checkChained(seq, data, &r, keyed)
	}
	switch {
	case r.Seq != seq:
		return r, &TamperError{Seq: seq, Reason: fmt.Sprintf("record says it is number %d", r.Seq)}
	case r.Prev != head && keyed:
		return r, &TamperError{Seq: seq, Reason: fmt.Sprintf("it does not follow record %d: a record before it was removed or replaced", seq-1)}
	case r.Prev != head:
		return r, &TamperError{Seq: seq - 1, Reason: fmt.Sprintf("its hash does not match the link in record %d: it was changed (or that link was)", seq)}
	}
	return r, nil
}

// chainPos is where a writer's chain stands in a walk: its last record's
// number in the chain and in the store, and its link.
type chainPos struct {
	n, seq uint64
	head   string
}

// checkChained checks record seq of a partitioned log (r.Chain set)
// against its chain's last record, and moves the chain on. A record
// deleted from its chain, moved within it or into another, copied or
// changed fails here: its chain's numbers and links are under the MAC.
func (c *verifyConfig) checkChained(seq uint64, data []byte, r *Record, keyed bool) error {
	if !validChainID(r.Chain) {
		return &TamperError{Seq: seq, Reason: "it names a malformed chain"}
	}
	if r.Seq != 0 {
		return &TamperError{Seq: seq, Reason: fmt.Sprintf("a record of chain %s says it is number %d", r.Chain, r.Seq)}
	}
	r.Seq = seq
	if c.chains == nil {
		c.chains = map[string]chainPos{}
	}
	pos, seen := c.chains[r.Chain]
	if !seen && c.openChains && r.ChainSeq > 1 {
		// Archive starts after records it does not read again: the
		// chain's earlier ones are in the archive (Verify reads them).
		pos = chainPos{n: r.ChainSeq - 1, head: r.Prev}
	}
	switch {
	case r.ChainSeq == 0:
		return &TamperError{Seq: seq, Reason: fmt.Sprintf("it names chain %s but no place in it", r.Chain)}
	case r.ChainSeq <= pos.n:
		return &TamperError{Seq: seq, Reason: fmt.Sprintf("it says it is record %d of chain %s, which is at record %d (store record %d): it was moved or copied", r.ChainSeq, r.Chain, pos.n, pos.seq)}
	case r.ChainSeq > pos.n+1:
		return &TamperError{Seq: seq, Reason: fmt.Sprintf("records %d to %d of chain %s are missing before it: they were deleted, or moved after it", pos.n+1, r.ChainSeq-1, r.Chain)}
	case r.Prev != pos.head && keyed:
		return &TamperError{Seq: seq, Reason: fmt.Sprintf("it does not follow record %d of chain %s (store record %d): a record before it was removed or replaced", pos.n, r.Chain, pos.seq)}
	case r.Prev != pos.head:
		return &TamperError{Seq: pos.seq, Reason: fmt.Sprintf("its hash does not match the link in record %d (record %d of chain %s): it was changed (or that link was)", seq, r.ChainSeq, r.Chain)}
	}
	c.chains[r.Chain] = chainPos{n: r.ChainSeq, seq: seq, head: link(data)}
	return nil
}

// validChainID reports whether id is a chain name as a Logger makes them:
// 16 lowercase hex digits.
func validChainID(id string) bool {
	if len(id) != 16 {
		return false
	}
	for _, ch := range []byte(id) {
		if !('0' <= ch && ch <= '9' || 'a' <= ch && ch <= 'f') {
			return false
		}
	}
	return true
}

// validMAC reports whether tag is the hex MAC of body, in the canonical
// lowercase encoding the logger writes: an upper-case copy of a valid tag
// would change the record's bytes (and so the next record's link) without
// failing the check.
func validMAC(mac func() hash.Hash, body []byte, tag string) bool {
	want := hex.EncodeToString(sum(mac, body))
	return hmac.Equal([]byte(tag), []byte(want))
}

// leanRecord is Record without its encryption contexts, for
// WalkWithoutContexts.
type leanRecord struct {
	Seq             uint64    `json:"seq"`
	Time            time.Time `json:"time"`
	Operation       string    `json:"operation"`
	KeyID           string    `json:"key_id"`
	Version         uint32    `json:"version,omitempty"`
	PreviousVersion uint32    `json:"previous_version,omitempty"`
	Origin          string    `json:"origin,omitempty"`
	Alias           string    `json:"alias,omitempty"`
	Principal       string    `json:"principal,omitempty"`
	Outcome         string    `json:"outcome"`
	ErrorClass      string    `json:"error_class,omitempty"`
	Amends          uint64    `json:"amends,omitempty"`
	Chain           string    `json:"chain,omitempty"`
	ChainSeq        uint64    `json:"chain_seq,omitempty"`
	Prev            string    `json:"prev,omitempty"`
	MAC             string    `json:"mac,omitempty"`
}

// decode parses a record's stored bytes into r, without its contexts
// when c.lean.
func (c *verifyConfig) decode(data []byte, r *Record) error {
	if !c.lean {
		return json.Unmarshal(data, r)
	}
	var l leanRecord
	if err := json.Unmarshal(data, &l); err != nil {
		return err
	}
	*r = Record{Seq: l.Seq, Time: l.Time, Operation: l.Operation, KeyID: l.KeyID, Version: l.Version,
		PreviousVersion: l.PreviousVersion, Origin: l.Origin, Alias: l.Alias, Principal: l.Principal,
		Outcome: l.Outcome, ErrorClass: l.ErrorClass, Amends: l.Amends, Chain: l.Chain, ChainSeq: l.ChainSeq, Prev: l.Prev, MAC: l.MAC}
	return nil
}
