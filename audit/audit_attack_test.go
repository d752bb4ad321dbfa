package audit_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/kmsring/kmsring/audit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// editRaw rewrites the stored bytes of audit record seq in the bolt file
// at path, as someone who can write the file but holds no key.
func editRaw(t *testing.T, path string, seq uint64, edit func(data []byte) []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		k := binary.BigEndian.AppendUint64(nil, seq)
		d := readAuditDoc(t, b.Get(k))
		d.Data = edit(bytes.Clone(d.Data))
		return b.Put(k, d.value())
	}))
}

// upperMAC writes a record's MAC in upper-case hex: other bytes, the same
// MAC value.
func upperMAC(data []byte) []byte {
	i := bytes.LastIndex(data, []byte(`,"mac":"`)) + len(`,"mac":"`)
	return append(append(bytes.Clone(data[:i]), bytes.ToUpper(data[i:len(data)-2])...), `"}`...)
}

// TestAttackAuditMACCaseIsMalleable: a store writer without the audit key
// changes the stored bytes of a keyed record (its MAC's hex case) and
// Verify still accepts the record; only the head it reports changes. In the
// middle of the log the next record is blamed for the change.
func TestAttackAuditMACCaseIsMalleable(t *testing.T) {
	t.Run("last record", func(t *testing.T) {
		path, mac := auditLog(t, true)
		before, err := verifyFile(t, path, audit.VerifyWithMAC(mac))
		require.NoError(t, err)
		editRaw(t, path, 7, upperMAC)
		after, err := verifyFile(t, path, audit.VerifyWithMAC(mac))
		assert.Error(t, err, "record 7's stored bytes were changed without the key (Head %s -> %s)", before.Head, after.Head)
	})
	t.Run("middle record", func(t *testing.T) {
		path, mac := auditLog(t, true)
		editRaw(t, path, 3, upperMAC)
		_, err := verifyFile(t, path, audit.VerifyWithMAC(mac))
		var te *audit.TamperError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, uint64(3), te.Seq, "the changed record is named: %v", err)
	})
}

// TestAttackAuditRecordMovedOrDuplicated: a keyed record copied over
// another, or a record's bytes made to duplicate a field with another
// value, are refused.
func TestAttackAuditRecordMovedOrDuplicated(t *testing.T) {
	t.Run("record 4 copied over 5", func(t *testing.T) {
		path, mac := auditLog(t, true)
		var four []byte
		editRaw(t, path, 4, func(d []byte) []byte { four = bytes.Clone(d); return d })
		editRaw(t, path, 5, func([]byte) []byte { return four })
		_, err := verifyFile(t, path, audit.VerifyWithMAC(mac))
		assert.ErrorIs(t, err, audit.ErrTampered)
	})
	t.Run("duplicate principal field after the MAC", func(t *testing.T) {
		path, mac := auditLog(t, true)
		editRaw(t, path, 2, func(d []byte) []byte {
			return append(d[:len(d)-1], []byte(`,"principal":"svc"}`)...)
		})
		_, err := verifyFile(t, path, audit.VerifyWithMAC(mac))
		assert.ErrorIs(t, err, audit.ErrTampered)
	})
	t.Run("duplicate principal field before the MAC", func(t *testing.T) {
		path, mac := auditLog(t, true)
		editRaw(t, path, 2, func(d []byte) []byte {
			i := bytes.LastIndex(d, []byte(`,"mac":"`))
			return append(append(bytes.Clone(d[:i]), []byte(`,"principal":"svc"`)...), d[i:]...)
		})
		_, err := verifyFile(t, path, audit.VerifyWithMAC(mac))
		assert.ErrorIs(t, err, audit.ErrTampered)
	})
}
