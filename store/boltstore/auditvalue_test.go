package boltstore

import (
	"encoding/binary"
	"encoding/json"
	"testing"
	"time"

	"github.com/kmsring/kmsring/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var auditValueEntry = store.AuditEntry{
	Seq: 7, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), KeyID: "1f0c2b6e-6f5a-4c55-9d36-0d9f3a2e8b11", Operation: "GenerateDataKey",
	Data: []byte(`{"seq":0,"time":"2026-01-02T03:04:05.000000006Z","operation":"GenerateDataKey","key_id":"1f0c2b6e-6f5a-4c55-9d36-0d9f3a2e8b11","outcome":"success"}`),
}

// TestAuditValueForms: the compact form round-trips and is smaller than
// the JSON one; values an older release wrote (JSON, the record in
// base64) still read; a time Unix nanoseconds cannot hold is kept as JSON.
func TestAuditValueForms(t *testing.T) {
	k := seqKey(7)
	v, err := encodeAudit(auditValueEntry)
	require.NoError(t, err)
	assert.Equal(t, byte(auditCompact), v[0])
	got, err := decodeAudit(k, v)
	require.NoError(t, err)
	assert.Equal(t, auditValueEntry, got)
	old, err := json.Marshal(auditDoc{Time: auditValueEntry.Time, KeyID: auditValueEntry.KeyID, Operation: auditValueEntry.Operation, Data: auditValueEntry.Data})
	require.NoError(t, err)
	assert.Less(t, len(v)*4, len(old)*3, "compact %d B, JSON %d B", len(v), len(old))
	got, err = decodeAudit(k, old)
	require.NoError(t, err)
	assert.Equal(t, auditValueEntry, got)

	far := auditValueEntry
	far.Time = time.Date(2500, 1, 1, 0, 0, 0, 0, time.UTC)
	v, err = encodeAudit(far)
	require.NoError(t, err)
	assert.Equal(t, byte('{'), v[0])
	got, err = decodeAudit(k, v)
	require.NoError(t, err)
	assert.True(t, far.Time.Equal(got.Time))
}

// FuzzDecodeAudit: any stored value reads as an entry or ErrCorrupt,
// never a panic, and a compact value read, written and read again is the
// same entry.
func FuzzDecodeAudit(f *testing.F) {
	v, _ := encodeAudit(auditValueEntry)
	f.Add(v)
	old, _ := json.Marshal(auditDoc{Time: auditValueEntry.Time, KeyID: "k", Operation: "Encrypt", Data: []byte("{}")})
	f.Add(old)
	f.Add([]byte{auditCompact})
	f.Add(append([]byte{auditCompact}, binary.BigEndian.AppendUint64(nil, 1)...))
	f.Add(append(append([]byte{auditCompact}, binary.BigEndian.AppendUint64(nil, 1)...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01))
	f.Fuzz(func(t *testing.T, v []byte) {
		e, err := decodeAudit(seqKey(1), v)
		if err != nil {
			assert.ErrorIs(t, err, ErrCorrupt)
			return
		}
		if len(v) > 0 && v[0] == auditCompact {
			again, err := encodeAudit(e)
			require.NoError(t, err)
			e2, err := decodeAudit(seqKey(1), again)
			require.NoError(t, err)
			assert.Equal(t, e, e2)
		}
	})
}
