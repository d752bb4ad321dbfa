package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/tink"
)

func rootKey(b *testing.B) tink.AEAD {
	rk, err := keyring.NewRootKey(make([]byte, keyring.RootKeySize))
	require.NoError(b, err)
	return rk
}

// keyWithVersions makes a key with n versions on a memstore.
func keyWithVersions(b *testing.B, rk tink.AEAD, n int) (*memstore.Store, string) {
	ctx := context.Background()
	mem := memstore.New()
	k, err := keyring.New(ctx, keyring.WithStore(mem), keyring.WithRootKey(rk))
	require.NoError(b, err)
	for range n - 1 {
		_, err := k.Rotate(ctx)
		require.NoError(b, err)
	}
	return mem, k.ID()
}

// copyKey copies key id, and the store key that authenticates it if dst
// has none yet, from src to dst.
func copyKey(b *testing.B, src, dst store.Store, id string) {
	ctx := context.Background()
	const storeKey = keyring.ReservedPrefix + "store"
	if _, err := dst.Get(ctx, storeKey); errors.Is(err, store.ErrNotFound) {
		sk, err := src.Get(ctx, storeKey)
		require.NoError(b, err)
		_, err = dst.Create(ctx, sk, nil)
		require.NoError(b, err)
	}
	rec, err := src.Get(ctx, id)
	require.NoError(b, err)
	vs, err := src.Versions(ctx, id, 0)
	require.NoError(b, err)
	_, err = dst.Create(ctx, rec, vs)
	require.NoError(b, err)
}

func openBolt(b *testing.B) *boltstore.Store {
	st, err := boltstore.Open(filepath.Join(b.TempDir(), "kmsring.db"))
	require.NoError(b, err)
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkHotPath: GenerateDataKey and Decrypt on a keyring loaded from
// each store; neither touches the store, so they should cost the same.
func BenchmarkHotPath(b *testing.B) {
	ctx := context.Background()
	rk := rootKey(b)
	for _, backend := range []string{"memstore", "boltstore"} {
		var st store.Store = memstore.New()
		if backend == "boltstore" {
			st = openBolt(b)
		}
		k0, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
		require.NoError(b, err)
		k, err := keyring.Load(ctx, st, k0.ID(), keyring.WithRootKey(rk))
		require.NoError(b, err)
		b.Run(backend+"/GenerateDataKey", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.GenerateDataKey(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		blobs := make([][]byte, distinct)
		for i := range blobs {
			dk, err := k.GenerateDataKey(ctx)
			require.NoError(b, err)
			blobs[i] = dk.Ciphertext
		}
		b.Run(backend+"/Decrypt", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := k.Decrypt(ctx, blobs[i%distinct]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkRotate: one on-demand rotation of a key that already has 10 or
// 10,000 versions. Rotation appends one version record, so the two should
// cost the same. boltstore includes an fsync per rotation.
func BenchmarkRotate(b *testing.B) {
	ctx := context.Background()
	rk := rootKey(b)
	for _, n := range []int{10, 10000} {
		mem, id := keyWithVersions(b, rk, n)
		for _, backend := range []string{"memstore", "boltstore"} {
			var st store.Store = mem
			if backend == "boltstore" {
				bs := openBolt(b)
				copyKey(b, mem, bs, id)
				st = bs
			}
			k, err := keyring.Load(ctx, st, id, keyring.WithRootKey(rk))
			require.NoError(b, err)
			b.Run(fmt.Sprintf("%s/versions=%d", backend, n), func(b *testing.B) {
				for b.Loop() {
					if _, err := k.Rotate(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkOpenStore: open an embedded store holding 1,000 keys of 100
// versions each and load every key.
func BenchmarkOpenStore(b *testing.B) {
	ctx := context.Background()
	rk := rootKey(b)
	const keys, versions = 1000, 100
	mem := memstore.New()
	path := filepath.Join(b.TempDir(), "kmsring.db")
	bs, err := boltstore.Open(path)
	require.NoError(b, err)
	// Real keys, made in memory and copied in one transaction each.
	for range keys {
		k, err := keyring.New(ctx, keyring.WithStore(mem), keyring.WithRootKey(rk))
		require.NoError(b, err)
		for range versions - 1 {
			_, err := k.Rotate(ctx)
			require.NoError(b, err)
		}
		copyKey(b, mem, bs, k.ID())
	}
	require.NoError(b, bs.Close())
	b.ResetTimer()
	for b.Loop() {
		st, err := boltstore.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		ids, err := keyring.List(ctx, st)
		if err != nil {
			b.Fatal(err)
		}
		for _, id := range ids {
			if _, err := keyring.Load(ctx, st, id, keyring.WithRootKey(rk)); err != nil {
				b.Fatal(err)
			}
		}
		st.Close()
	}
	b.ReportMetric(float64(keys*versions), "versions")
}
