package audit_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"strings"
	"testing"

	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Stored records damaged by whoever can write the store (cut short,
// emptied, replaced by a megabyte of garbage, given a MAC field of the
// right shape) are refused by Verify, keyed or not, and by LookupEvents,
// with an error that does not repeat what the record held.
func TestVerifyAndLookupRefuseDamagedRecords(t *testing.T) {
	const planted = "planted-context-value"
	mac := func() hash.Hash { return hmac.New(sha256.New, bytes.Repeat([]byte{7}, 32)) }
	fakeMAC := `,"mac":"` + strings.Repeat("0", 2*sha256.Size) + `"}`
	edits := map[string]func(d []byte) []byte{
		"cut in half": func(d []byte) []byte { return d[:len(d)/2] },
		"emptied":     func([]byte) []byte { return nil },
		"one byte":    func([]byte) []byte { return []byte("{") },
		"megabyte of garbage": func([]byte) []byte {
			return bytes.Repeat([]byte(planted+"\x00\xff"), 1<<20/(len(planted)+2))
		},
		"forged MAC field": func([]byte) []byte { return []byte(`{"seq":2,"key_id":"` + planted + `"` + fakeMAC) },
		"MAC field only":   func([]byte) []byte { return []byte(`{` + fakeMAC[1:]) },
	}
	for _, keyed := range []bool{false, true} {
		var opts []audit.Option
		var vopts []audit.VerifyOption
		if keyed {
			opts, vopts = []audit.Option{audit.WithMAC(mac)}, []audit.VerifyOption{audit.VerifyWithMAC(mac)}
		}
		k, st, l, _ := newLogged(t, opts...)
		ctx := t.Context()
		for range 3 {
			_, err := k.Encrypt(ctx, []byte("x"), keyring.WithEncryptionContext(map[string]string{"c": "v"}))
			require.NoError(t, err)
		}
		require.NoError(t, l.Flush(ctx))
		base := &tamperable{Store: st}
		require.NoError(t, base.snapshot(ctx))
		_, err := audit.Verify(ctx, base, vopts...)
		require.NoError(t, err, "keyed %v: the intact log verifies", keyed)

		for name, edit := range edits {
			es := append([]store.AuditEntry(nil), base.entries...)
			es[1].Data = edit(bytes.Clone(es[1].Data))
			tl := &tamperable{Store: st, entries: es}
			_, err := audit.Verify(ctx, tl, vopts...)
			var te *audit.TamperError
			require.ErrorAs(t, err, &te, "keyed %v, %s: Verify refuses the record", keyed, name)
			assert.Equal(t, uint64(2), te.Seq, "keyed %v, %s: the damaged record is named (%v)", keyed, name, err)
			assert.NotContains(t, err.Error(), planted, "keyed %v, %s: the message holds none of the record", keyed, name)

			_, _, err = audit.LookupEvents(ctx, tl, audit.Query{})
			if err != nil {
				assert.NotContains(t, err.Error(), planted, "keyed %v, %s: the lookup error holds none of the record", keyed, name)
			}
		}
	}
}
