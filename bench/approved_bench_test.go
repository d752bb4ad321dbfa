package bench

import (
	"context"
	"fmt"
	"testing"

	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/require"
)

// BenchmarkApproved measures the FIPS 140-3 approved suites (issue 19)
// beside the default ones, in one run, so that they compare as ratios:
// Seal and Open at 1 KiB and 1 MiB, GenerateDataKey and Decrypt. The
// approved keyring is made with keyring.WithApprovedAlgorithms, which
// writes what FIPS mode writes. (In a GOFIPS140 build both rows are the
// approved suite.)
//
//	go test ./bench -run '^$' -bench BenchmarkApproved -benchtime 2000x
func BenchmarkApproved(b *testing.B) {
	ctx := context.Background()
	suites := []struct {
		name string
		opts []keyring.Option
	}{{"default", nil}, {"approved", []keyring.Option{keyring.WithApprovedAlgorithms()}}}
	for _, n := range []int{1 << 10, 1 << 20} {
		pt := make([]byte, n)
		for _, s := range suites {
			k, err := keyring.New(ctx, s.opts...)
			require.NoError(b, err)
			b.Run(fmt.Sprintf("Seal/%dKiB/%s", n>>10, s.name), func(b *testing.B) {
				b.SetBytes(int64(n))
				for b.Loop() {
					if _, err := envelope.Seal(ctx, k, pt); err != nil {
						b.Fatal(err)
					}
				}
			})
			sealed, err := envelope.Seal(ctx, k, pt)
			require.NoError(b, err)
			b.Run(fmt.Sprintf("Open/%dKiB/%s", n>>10, s.name), func(b *testing.B) {
				b.SetBytes(int64(n))
				for b.Loop() {
					if _, err := envelope.Open(ctx, k, sealed); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
	for _, s := range suites {
		k, err := keyring.New(ctx, s.opts...)
		require.NoError(b, err)
		b.Run("GenerateDataKey/"+s.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := k.GenerateDataKey(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		dk, err := k.GenerateDataKey(ctx)
		require.NoError(b, err)
		b.Run("Decrypt/"+s.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := k.Decrypt(ctx, dk.Ciphertext); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
