// Package bench compares kmsring with the baselines a Go user would reach
// for instead, in the same benchmark binary: standard-library AES-256-GCM on
// the same data (the floor: no key management at all) and Tink's KMS
// envelope AEAD with a local AES-256-GCM key-encryption key.
//
//	go test ./bench -run '^$' -bench . -benchmem
package bench

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

var sizes = []struct {
	name string
	n    int
}{{"1KiB", 1 << 10}, {"1MiB", 1 << 20}}

// distinct is how many different messages Open benchmarks cycle through,
// so that no cache of earlier results can stand in for the work.
const distinct = 256

func newStdlib(b *testing.B) cipher.AEAD {
	key := make([]byte, 32)
	rand.Read(key)
	blk, err := aes.NewCipher(key)
	require.NoError(b, err)
	g, err := cipher.NewGCM(blk)
	require.NoError(b, err)
	return g
}

func stdSeal(g cipher.AEAD, pt []byte) []byte {
	out := make([]byte, 12, 12+len(pt)+16)
	rand.Read(out)
	return g.Seal(out, out, pt, nil)
}

func newTink(b *testing.B) tink.AEAD {
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	require.NoError(b, err)
	kek, err := aead.New(h)
	require.NoError(b, err)
	return aead.NewKMSEnvelopeAEAD2(aead.AES256GCMKeyTemplate(), kek)
}

func newKeyring(b *testing.B) *keyring.Keyring {
	k, err := keyring.New(context.Background())
	require.NoError(b, err)
	return k
}

func BenchmarkSeal(b *testing.B) {
	ctx := context.Background()
	for _, sz := range sizes {
		pt := make([]byte, sz.n)
		b.Run(fmt.Sprintf("%s/stdlib-aes256gcm", sz.name), func(b *testing.B) {
			g := newStdlib(b)
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				stdSeal(g, pt)
			}
		})
		b.Run(fmt.Sprintf("%s/tink-envelope", sz.name), func(b *testing.B) {
			t := newTink(b)
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				if _, err := t.Encrypt(pt, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("%s/kmsring", sz.name), func(b *testing.B) {
			k := newKeyring(b)
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				if _, err := envelope.Seal(ctx, k, pt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	ctx := context.Background()
	for _, sz := range sizes {
		msgs := distinct
		if sz.n > 1<<16 {
			msgs = 16
		}
		pt := make([]byte, sz.n)
		b.Run(fmt.Sprintf("%s/stdlib-aes256gcm", sz.name), func(b *testing.B) {
			g := newStdlib(b)
			sealed := make([][]byte, msgs)
			for i := range sealed {
				sealed[i] = stdSeal(g, pt)
			}
			b.SetBytes(int64(sz.n))
			i := 0
			for b.Loop() {
				s := sealed[i%msgs]
				if _, err := g.Open(nil, s[:12], s[12:], nil); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(fmt.Sprintf("%s/tink-envelope", sz.name), func(b *testing.B) {
			t := newTink(b)
			sealed := make([][]byte, msgs)
			for i := range sealed {
				var err error
				sealed[i], err = t.Encrypt(pt, nil)
				require.NoError(b, err)
			}
			b.SetBytes(int64(sz.n))
			i := 0
			for b.Loop() {
				if _, err := t.Decrypt(sealed[i%msgs], nil); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(fmt.Sprintf("%s/kmsring", sz.name), func(b *testing.B) {
			k := newKeyring(b)
			sealed := make([][]byte, msgs)
			for i := range sealed {
				var err error
				sealed[i], err = envelope.Seal(ctx, k, pt)
				require.NoError(b, err)
			}
			b.SetBytes(int64(sz.n))
			i := 0
			for b.Loop() {
				if _, err := envelope.Open(ctx, k, sealed[i%msgs]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkGenerateDataKey(b *testing.B) {
	ctx := context.Background()
	k := newKeyring(b)
	for b.Loop() {
		if _, err := k.GenerateDataKey(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecryptDataKey(b *testing.B) {
	ctx := context.Background()
	k := newKeyring(b)
	blobs := make([][]byte, distinct)
	for i := range blobs {
		dk, err := k.GenerateDataKey(ctx)
		require.NoError(b, err)
		blobs[i] = dk.Ciphertext
	}
	i := 0
	for b.Loop() {
		if _, err := k.Decrypt(ctx, blobs[i%distinct]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
