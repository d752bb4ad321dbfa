// Package bench compares kmsring with the baselines a Go user would reach
// for instead, in the same benchmark binary: standard-library AES-256-GCM on
// the same data (the floor: no key management at all) and Tink's KMS
// envelope AEAD with a local AES-256-GCM key-encryption key.
//
//	go test ./bench -run '^$' -bench . -benchmem -cpu 1
package bench

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"syscall"
	"testing"
	"time"

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

// cpuPerOp starts counting the CPU time of the process (every goroutine,
// the garbage collector's included); the function it returns reports it
// per operation as "cpu-ns/op". Defer it right before the timed loop. On a
// shared machine wall time (ns/op) counts the turns of other processes,
// CPU time does not: compare cpu-ns/op there.
func cpuPerOp(b *testing.B) func() {
	start := cpuTime()
	return func() { b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op") }
}

// cpuTime returns the user and system CPU time of the process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func newStdlib(b *testing.B) cipher.AEAD {
	key := make([]byte, 32)
	rand.Read(key)
	return newAESGCM(b, key)
}

// newAESGCM returns AES-256-GCM under key: the key schedule and GCM setup
// that every fresh key pays.
func newAESGCM(b *testing.B, key []byte) cipher.AEAD {
	blk, err := aes.NewCipher(key)
	if err != nil {
		b.Fatal(err)
	}
	g, err := cipher.NewGCM(blk)
	if err != nil {
		b.Fatal(err)
	}
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
			defer cpuPerOp(b)()
			for b.Loop() {
				stdSeal(g, pt)
			}
		})
		b.Run(fmt.Sprintf("%s/tink-envelope", sz.name), func(b *testing.B) {
			t := newTink(b)
			b.SetBytes(int64(sz.n))
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, err := t.Encrypt(pt, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("%s/kmsring", sz.name), func(b *testing.B) {
			k := newKeyring(b)
			b.SetBytes(int64(sz.n))
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, err := envelope.Seal(ctx, k, pt); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("%s/kmsring-append", sz.name), func(b *testing.B) {
			k := newKeyring(b)
			buf := make([]byte, 0, sz.n+4096)
			b.SetBytes(int64(sz.n))
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, err := envelope.AppendSeal(ctx, buf[:0], k, pt); err != nil {
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
			defer cpuPerOp(b)()
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
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, err := t.Decrypt(sealed[i%msgs], nil); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(fmt.Sprintf("%s/kmsring", sz.name), func(b *testing.B) {
			k := newKeyring(b)
			sealed := sealMany(b, k, pt, msgs)
			b.SetBytes(int64(sz.n))
			i := 0
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, err := envelope.Open(ctx, k, sealed[i%msgs]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(fmt.Sprintf("%s/kmsring-append", sz.name), func(b *testing.B) {
			k := newKeyring(b)
			sealed := sealMany(b, k, pt, msgs)
			buf := make([]byte, 0, sz.n)
			b.SetBytes(int64(sz.n))
			i := 0
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, err := envelope.AppendOpen(ctx, buf[:0], k, sealed[i%msgs]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// sealMany returns n envelopes of pt under k.
func sealMany(b *testing.B, k *keyring.Keyring, pt []byte, n int) [][]byte {
	sealed := make([][]byte, n)
	for i := range sealed {
		var err error
		sealed[i], err = envelope.Seal(context.Background(), k, pt)
		require.NoError(b, err)
	}
	return sealed
}

func BenchmarkGenerateDataKey(b *testing.B) {
	ctx := context.Background()
	k := newKeyring(b)
	defer cpuPerOp(b)()
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
	defer cpuPerOp(b)()
	for b.Loop() {
		if _, err := k.Decrypt(ctx, blobs[i%distinct]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
