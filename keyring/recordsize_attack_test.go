package keyring_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hostilePolicy is a valid JSON policy of exactly n bytes whose Sid is
// made of c, a character JSON escapes when it is stored.
func hostilePolicy(n int, c string) string {
	head, tail := `{"Version":"2012-10-17","Statement":[{"Sid":"`, `","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}`
	body := strings.Repeat(c, (n-len(head)-len(tail))/len(c))
	p := head + body + tail
	return p
}

// TestAttackFinding1PermittedCallBricksKey: a principal allowed to put a
// key policy stores a 32 KiB policy of characters JSON escapes ('<', and
// '"' written as \" in the policy), with AWS's other maxima (an
// 8192-character description, 100 aliases of 256 characters). The key
// must still load after a restart, with every alias listed and every
// ciphertext opening: before, the stored record exceeded the 64 KiB the
// loader reads back.
func TestAttackFinding1PermittedCallBricksKey(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kms.db")
	st, err := boltstore.Open(path)
	require.NoError(t, err)
	rk := newRootKey(t, 7)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)
	blob, err := k.Encrypt(ctx, []byte("payload"))
	require.NoError(t, err)
	for _, c := range []string{"<", `\"`, `\u2028`} {
		p := hostilePolicy(keyring.MaxPolicySize, c)
		require.LessOrEqual(t, len(p), keyring.MaxPolicySize)
		require.NoError(t, k.PutKeyPolicy(ctx, p), "policy of %q", c)
	}
	require.NoError(t, k.SetDescription(ctx, strings.Repeat("\u2028", keyring.MaxDescriptionSize/3)))
	for i := range 100 {
		name := fmt.Sprintf("alias/%03d-%s", i, strings.Repeat("a", 256-len("alias/000-")))
		require.Len(t, name, 256)
		require.NoError(t, k.AddAlias(ctx, name))
	}
	require.NoError(t, st.Close())

	// A restart.
	st, err = boltstore.Open(path)
	require.NoError(t, err)
	defer st.Close()
	again, err := keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(rk))
	require.NoError(t, err, "the key loads after a restart")
	pt, err := again.Decrypt(ctx, blob)
	require.NoError(t, err)
	assert.Equal(t, []byte("payload"), pt)
	aliases, err := keyring.ListAliases(ctx, st, keyring.WithRootKey(rk))
	require.NoError(t, err, "ListAliases works for every caller of the store")
	assert.Len(t, aliases, 100)
	require.NoError(t, again.PutKeyPolicy(ctx, `{"Version":"2012-10-17","Statement":[]}`), "and the key can be changed")
}
