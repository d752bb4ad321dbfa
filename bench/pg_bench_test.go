package bench

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kmsring/kmsring/internal/pgtest"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/pgstore"
	"github.com/stretchr/testify/require"
)

func openPG(b *testing.B, dsn string) *pgstore.Store {
	st, err := pgstore.Open(context.Background(), dsn)
	require.NoError(b, err)
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkPG measures on PostgreSQL: the hot path (which must not touch
// the database), rotation latency, concurrent rotations of distinct keys,
// and the time for a rotation to reach another replica through NOTIFY.
func BenchmarkPG(b *testing.B) {
	ctx := context.Background()
	rk := rootKey(b)
	dsn := pgtest.DSN(b)
	st := openPG(b, dsn)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(b, err)

	b.Run("GenerateDataKey", func(b *testing.B) {
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
	b.Run("Decrypt", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := k.Decrypt(ctx, blobs[i%distinct]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("Rotate", func(b *testing.B) {
		for b.Loop() {
			if _, err := k.Rotate(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, workers := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("RotateDistinctKeys/workers=%d", workers), func(b *testing.B) {
			keys := make([]*keyring.Keyring, workers)
			for i := range keys {
				keys[i], err = keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
				require.NoError(b, err)
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N / workers
			start := time.Now()
			for _, kk := range keys {
				wg.Go(func() {
					for range per {
						if _, err := kk.Rotate(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(per*workers)/time.Since(start).Seconds(), "rotations/s")
		})
	}
	b.Run("Propagation", func(b *testing.B) {
		other := openPG(b, dsn)
		replica, err := keyring.Load(ctx, other, k.ID(), keyring.WithRootKey(rk))
		require.NoError(b, err)
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go replica.Watch(wctx, time.Minute) // polling alone would take a minute
		time.Sleep(100 * time.Millisecond)  // let the listener connect
		b.ResetTimer()
		var total time.Duration
		for b.Loop() {
			v, err := k.Rotate(ctx)
			if err != nil {
				b.Fatal(err)
			}
			committed := time.Now()
			for {
				dk, err := replica.GenerateDataKeyWithoutPlaintext(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if dk.Version == v.Number {
					break
				}
				time.Sleep(20 * time.Microsecond)
			}
			total += time.Since(committed)
		}
		b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns-after-commit")
	})
}
