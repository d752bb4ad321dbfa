package audit_test

import (
	"testing"

	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReEncryptRecordsBothContexts: a stored ReEncrypt record carries the
// source and the destination context, or only their keys with
// WithContextKeysOnly.
func TestReEncryptRecordsBothContexts(t *testing.T) {
	src := map[string]string{"tenant": "a", "secret": "s3"}
	dst := map[string]string{"tenant": "b"}
	for _, keysOnly := range []bool{false, true} {
		var opts []audit.Option
		if keysOnly {
			opts = append(opts, audit.WithContextKeysOnly())
		}
		k, st, l, _ := newLogged(t, opts...)
		ctx := t.Context()
		dk, err := k.GenerateDataKey(ctx, keyring.WithEncryptionContext(src))
		require.NoError(t, err)
		_, err = k.ReEncrypt(ctx, dk.Ciphertext, keyring.WithEncryptionContext(src), keyring.WithDestinationEncryptionContext(dst))
		require.NoError(t, err)
		require.NoError(t, l.Flush(ctx))

		recs, _, err := audit.LookupEvents(ctx, st, audit.Query{Operation: string(keyring.OpReEncrypt)})
		require.NoError(t, err)
		require.Len(t, recs, 1)
		r := recs[0]
		if keysOnly {
			assert.Nil(t, r.EncryptionContext)
			assert.Nil(t, r.SourceEncryptionContext, "no values with WithContextKeysOnly")
			assert.Equal(t, []string{"tenant"}, r.EncryptionContextKeys)
			assert.Equal(t, []string{"secret", "tenant"}, r.SourceEncryptionContextKeys)
		} else {
			assert.Equal(t, dst, r.EncryptionContext, "the destination context")
			assert.Equal(t, src, r.SourceEncryptionContext, "the source context")
		}

		gdk, _, err := audit.LookupEvents(ctx, st, audit.Query{Operation: string(keyring.OpGenerateDataKey)})
		require.NoError(t, err)
		require.Len(t, gdk, 1)
		assert.Nil(t, gdk[0].SourceEncryptionContext, "other operations have no source context")
		assert.Nil(t, gdk[0].SourceEncryptionContextKeys)
		_, err = audit.Verify(ctx, st)
		require.NoError(t, err)
	}
}
