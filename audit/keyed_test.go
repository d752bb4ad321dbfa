package audit_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash"
	"path/filepath"
	"testing"
	"time"

	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// auditLog writes, into a bolt file, CreateKey (record 1), a Decrypt by
// mallory (2) and five GenerateDataKey by svc (3-7), under the store's
// audit chain key when keyed, and returns the file and the chain's MAC.
func auditLog(t *testing.T, keyed bool) (string, func() hash.Hash) {
	t.Helper()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kmsring.db")
	st, err := boltstore.Open(path)
	require.NoError(t, err)
	defer st.Close()
	rk, err := keyring.NewRootKey(bytes.Repeat([]byte{1}, keyring.RootKeySize))
	require.NoError(t, err)
	mac, err := keyring.AuditMAC(ctx, st, rk)
	require.NoError(t, err)
	opts := []audit.Option{audit.WithStore(st)}
	if keyed {
		opts = append(opts, audit.WithMAC(mac))
	}
	l := audit.New(opts...)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithAuditor(l))
	require.NoError(t, err)
	quiet, err := keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(rk)) // not audited
	require.NoError(t, err)
	dk, err := quiet.GenerateDataKeyWithoutPlaintext(ctx)
	require.NoError(t, err)
	_, err = k.Decrypt(audit.WithPrincipal(ctx, "mallory"), dk.Ciphertext)
	require.NoError(t, err)
	for range 5 {
		_, err = k.GenerateDataKey(audit.WithPrincipal(ctx, "svc"))
		require.NoError(t, err)
	}
	require.NoError(t, l.Close())
	var vopts []audit.VerifyOption
	if keyed {
		vopts = append(vopts, audit.VerifyWithMAC(mac))
	}
	v, err := audit.Verify(ctx, st, vopts...)
	require.NoError(t, err)
	require.Equal(t, uint64(7), v.Records)
	return path, mac
}

// auditDoc is boltstore's stored form of an audit entry: its compact
// value (0x01, 8 bytes of Unix nanoseconds, key ID and operation each
// uvarint-length-prefixed, then the record's bytes), as someone editing
// the file would read and write it.
type auditDoc struct {
	Time      time.Time
	KeyID     string
	Operation string
	Data      []byte
}

func readAuditDoc(t *testing.T, v []byte) auditDoc {
	t.Helper()
	require.Equal(t, byte(1), v[0], "a compact audit value")
	d := auditDoc{Time: time.Unix(0, int64(binary.BigEndian.Uint64(v[1:9]))).UTC()}
	r := v[9:]
	n, w := binary.Uvarint(r)
	d.KeyID, r = string(r[w:w+int(n)]), r[w+int(n):]
	n, w = binary.Uvarint(r)
	d.Operation, r = string(r[w:w+int(n)]), r[w+int(n):]
	d.Data = bytes.Clone(r)
	return d
}

func (d auditDoc) value() []byte {
	b := append([]byte{1}, binary.BigEndian.AppendUint64(nil, uint64(d.Time.UnixNano()))...)
	b = append(binary.AppendUvarint(b, uint64(len(d.KeyID))), d.KeyID...)
	b = append(binary.AppendUvarint(b, uint64(len(d.Operation))), d.Operation...)
	return append(b, d.Data...)
}

// forge edits the audit log in the bolt file at path as someone who can
// write the file but does not hold the root key: edit changes the records
// it wants changed (and reports which), then relink recomputes the link of
// every record from the first edited one on, given the previous record's
// new bytes.
func forge(t *testing.T, path string, edit func(seq uint64, rec map[string]any) bool, relink func(prev []byte, rec map[string]any) []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		var prev []byte
		relinking := false
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			d := readAuditDoc(t, v)
			var rec map[string]any
			require.NoError(t, json.Unmarshal(d.Data, &rec))
			if edit(binary.BigEndian.Uint64(k), rec) {
				relinking = true
			}
			if relinking {
				d.Operation = rec["operation"].(string)
				d.Data = relink(prev, rec)
				require.NoError(t, b.Put(bytes.Clone(k), d.value()))
			}
			prev = d.Data
		}
		return nil
	}))
}

// The attack: record 2, mallory's Decrypt, rewritten as svc's
// GenerateDataKey.
func rewriteRecord2(seq uint64, rec map[string]any) bool {
	if seq != 2 {
		return false
	}
	rec["operation"], rec["principal"] = string(keyring.OpGenerateDataKey), "svc"
	return true
}

// sha256Links relinks as the unkeyed chain does.
func sha256Links(prev []byte, rec map[string]any) []byte {
	delete(rec, "mac")
	h := sha256.Sum256(prev)
	rec["prev"] = hex.EncodeToString(h[:])
	b, _ := json.Marshal(rec)
	return b
}

// guessedKeyLinks relinks in the keyed form under a key of the forger's
// own.
func guessedKeyLinks(prev []byte, rec map[string]any) []byte {
	var p map[string]any
	_ = json.Unmarshal(prev, &p)
	delete(rec, "mac")
	rec["prev"] = p["mac"]
	body, _ := json.Marshal(rec)
	m := hmac.New(sha256.New, []byte("a key the forger made up"))
	m.Write(body)
	return append(body[:len(body)-1], []byte(`,"mac":"`+hex.EncodeToString(m.Sum(nil))+`"}`)...)
}

func verifyFile(t *testing.T, path string, opts ...audit.VerifyOption) (audit.Verification, error) {
	t.Helper()
	st, err := boltstore.Open(path)
	require.NoError(t, err)
	defer st.Close()
	return audit.Verify(t.Context(), st, opts...)
}

// Rewriting a record and recomputing every later link, without the root
// key, fails Verify naming the record.
func TestKeyedChainNamesRewrittenRecord(t *testing.T) {
	for name, relink := range map[string]func([]byte, map[string]any) []byte{
		"relinked with SHA-256":        sha256Links,
		"relinked under a guessed key": guessedKeyLinks,
	} {
		t.Run(name, func(t *testing.T) {
			path, mac := auditLog(t, true)
			forge(t, path, rewriteRecord2, relink)
			_, err := verifyFile(t, path, audit.VerifyWithMAC(mac))
			var te *audit.TamperError
			require.ErrorAs(t, err, &te)
			assert.ErrorIs(t, err, audit.ErrTampered)
			assert.Equal(t, uint64(2), te.Seq, "the rewritten record is named: %v", err)
			t.Log(err)
		})
	}
}

// The unkeyed chain (a Logger without WithMAC) cannot tell: whoever can
// write the store can recompute SHA-256 links.
func TestUnkeyedChainCannotTell(t *testing.T) {
	path, _ := auditLog(t, false)
	forge(t, path, rewriteRecord2, sha256Links)
	_, err := verifyFile(t, path)
	assert.NoError(t, err, "what the keyed chain is for")
}

// What the keyed chain does and does not detect besides a rewrite.
func TestKeyedChainLimits(t *testing.T) {
	path, mac := auditLog(t, true)
	whole, err := verifyFile(t, path, audit.VerifyWithMAC(mac))
	require.NoError(t, err)

	t.Run("the last record changed", func(t *testing.T) {
		p, mac := auditLog(t, true)
		forge(t, p, func(seq uint64, rec map[string]any) bool {
			if seq == 7 {
				rec["principal"] = "nobody"
			}
			return seq == 7
		}, guessedKeyLinks)
		_, err := verifyFile(t, p, audit.VerifyWithMAC(mac))
		var te *audit.TamperError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, uint64(7), te.Seq, "every record carries its own MAC, the last one too")
	})
	t.Run("tail cut", func(t *testing.T) {
		db, err := bolt.Open(path, 0o600, nil)
		require.NoError(t, err)
		require.NoError(t, db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("audit")).Delete(binary.BigEndian.AppendUint64(nil, 7))
		}))
		require.NoError(t, db.Close())
		cut, err := verifyFile(t, path, audit.VerifyWithMAC(mac))
		require.NoError(t, err, "a shorter log is a valid log")
		assert.Equal(t, uint64(6), cut.Records)
		assert.NotEqual(t, whole.Head, cut.Head, "the head kept elsewhere shows the cut")
	})
	t.Run("verified without the key", func(t *testing.T) {
		_, err := verifyFile(t, path)
		assert.ErrorIs(t, err, audit.ErrKeyed, "a keyed log is not passed as sound by a check that cannot authenticate it")
	})
}
