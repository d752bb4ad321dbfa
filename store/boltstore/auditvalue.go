package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kmsring/kmsring/store"
)

// auditCompact starts an audit value in the compact form: the byte 0x01,
// the time as 8 bytes (big-endian Unix nanoseconds), the key ID and the
// operation each as a uvarint length and its bytes, then the record's
// bytes to the end of the value, as they are. Older releases stored an
// auditDoc as JSON (with the record in base64), which starts with '{':
// both are read; appends write the compact form, which is about a third
// smaller for a typical record.
const auditCompact = 0x01

type auditDoc struct {
	Time      time.Time `json:"time"`
	KeyID     string    `json:"key_id"`
	Operation string    `json:"operation"`
	Data      []byte    `json:"data"`
}

// encodeAudit returns the stored value of e: the compact form, or the
// JSON one for a time Unix nanoseconds cannot hold (before 1678, after
// 2262).
func encodeAudit(e store.AuditEntry) ([]byte, error) {
	return appendAudit(make([]byte, 0, auditSize(e)), e)
}

// auditSize bounds the size of e's stored value in the compact form.
func auditSize(e store.AuditEntry) int {
	return 1 + 8 + 2*binary.MaxVarintLen64 + len(e.KeyID) + len(e.Operation) + len(e.Data)
}

// appendAudit appends the stored value of e to b, as encodeAudit returns
// it.
func appendAudit(b []byte, e store.AuditEntry) ([]byte, error) {
	ns := e.Time.UnixNano()
	if !time.Unix(0, ns).Equal(e.Time) {
		v, err := json.Marshal(auditDoc{Time: e.Time, KeyID: e.KeyID, Operation: e.Operation, Data: e.Data})
		return append(b, v...), err
	}
	b = append(b, auditCompact)
	b = binary.BigEndian.AppendUint64(b, uint64(ns))
	b = binary.AppendUvarint(b, uint64(len(e.KeyID)))
	b = append(b, e.KeyID...)
	b = binary.AppendUvarint(b, uint64(len(e.Operation)))
	b = append(b, e.Operation...)
	return append(b, e.Data...), nil
}

// decodeAudit reads the audit entry stored under k as v, in either form.
func decodeAudit(k, v []byte) (store.AuditEntry, error) {
	bad := fmt.Errorf("%w: audit entry %x", ErrCorrupt, k)
	if len(k) != 8 {
		return store.AuditEntry{}, bad
	}
	seq := binary.BigEndian.Uint64(k)
	if len(v) > 0 && v[0] == auditCompact {
		r := v[1:]
		if len(r) < 8 {
			return store.AuditEntry{}, bad
		}
		ns := int64(binary.BigEndian.Uint64(r))
		id, r, ok := cutField(r[8:])
		if !ok {
			return store.AuditEntry{}, bad
		}
		op, r, ok := cutField(r)
		if !ok {
			return store.AuditEntry{}, bad
		}
		return store.AuditEntry{Seq: seq, Time: time.Unix(0, ns).UTC(), KeyID: string(id), Operation: string(op), Data: bytes.Clone(r)}, nil
	}
	var d auditDoc
	if json.Unmarshal(v, &d) != nil {
		return store.AuditEntry{}, bad
	}
	return store.AuditEntry{Seq: seq, Time: d.Time, KeyID: d.KeyID, Operation: d.Operation, Data: d.Data}, nil
}

// cutField splits a uvarint-length-prefixed field off b.
func cutField(b []byte) (field, rest []byte, ok bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return nil, nil, false
	}
	return b[w : w+int(n)], b[w+int(n):], true
}
