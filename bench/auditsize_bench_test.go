package bench

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/stretchr/testify/require"
)

// BenchmarkAuditBytes reports what the bbolt file grows by per
// GenerateDataKey audit record (keyed chain, an encryption context of one
// pair), as "file-B/record": the figure the audit bucket's fill factor
// decides.
//
//	go test ./bench -run '^$' -bench '^BenchmarkAuditBytes$' -benchtime 20000x
func BenchmarkAuditBytes(b *testing.B) {
	ctx := b.Context()
	path := filepath.Join(b.TempDir(), "kmsring.db")
	st, err := boltstore.Open(path)
	require.NoError(b, err)
	defer st.Close()
	rk := rootKey(b)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(b, err)
	mac, err := keyring.AuditMAC(ctx, st, rk)
	require.NoError(b, err)
	log := audit.New(audit.WithStore(st), audit.WithMAC(mac))
	k, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(rk), keyring.WithAuditor(log))
	require.NoError(b, err)
	require.NoError(b, log.Flush(ctx))
	before := fileSize(b, path)
	ec := keyring.WithEncryptionContext(map[string]string{"tenant": "acme"})
	for b.Loop() {
		dk, err := k.GenerateDataKey(ctx, ec)
		require.NoError(b, err)
		dk.Destroy()
	}
	require.NoError(b, log.Flush(ctx))
	b.ReportMetric(float64(fileSize(b, path)-before)/float64(b.N), "file-B/record")
}

func fileSize(b *testing.B, path string) int64 {
	fi, err := os.Stat(path)
	require.NoError(b, err)
	return fi.Size()
}
