package keyring

import (
	"context"
	"strings"
	"testing"

	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOversizedOldRecordLoadsAndIsRepaired: a key record an older release
// wrote past MaxKeyRecordSize (its policy stored HTML-escaped, six bytes
// per '<') loads, and a change that shortens it is allowed; a change that
// would grow a record past the bound is refused with ErrRecordTooLarge
// and changes nothing.
func TestOversizedOldRecordLoadsAndIsRepaired(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	rk, err := NewRootKey(make([]byte, 32))
	require.NoError(t, err)
	k, err := New(ctx, WithStore(st), WithRootKey(rk))
	require.NoError(t, err)

	// What an older release wrote: a record of about 300 KB.
	k.mu.RLock()
	rec, doc := k.rec, k.doc
	k.mu.RUnlock()
	doc.Seq++
	doc.Description = strings.Repeat("\u2028", 50000) // 6 bytes each, escaped
	rec.Data = doc.seal(k.sk, k.bid)
	require.Greater(t, len(rec.Data), MaxKeyRecordSize)
	_, err = st.Update(ctx, rec, nil)
	require.NoError(t, err)

	old, err := Load(ctx, st, k.ID(), WithRootKey(rk))
	require.NoError(t, err, "an oversized record from an older release loads")
	require.NoError(t, old.DisableKey(ctx), "a change that does not grow it is allowed")
	require.NoError(t, old.SetDescription(ctx, "repaired"))
	md, err := old.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, "repaired", md.Description)

	assert.NoError(t, checkRecordSize(k.bid, MaxKeyRecordSize, 0))
	assert.ErrorIs(t, checkRecordSize(k.bid, MaxKeyRecordSize+1, 0), ErrRecordTooLarge)
	assert.ErrorIs(t, checkRecordSize(k.bid, MaxKeyRecordSize+1+2*recordSlack, MaxKeyRecordSize+1), ErrRecordTooLarge, "growing an oversized record")
	assert.NoError(t, checkRecordSize(k.bid, MaxKeyRecordSize+1, MaxKeyRecordSize+2), "shrinking one")
	assert.NoError(t, checkRecordSize(k.bid, MaxKeyRecordSize+3, MaxKeyRecordSize+2), "a state change on one")
	assert.ErrorIs(t, checkRecordSize(k.bid, maxKeyRecord+1, maxKeyRecord), ErrRecordTooLarge, "never past what loads")
}
