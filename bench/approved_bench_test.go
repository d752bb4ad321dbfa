package bench

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"io"
	"testing"

	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/chacha20poly1305"
)

// BenchmarkApproved measures the FIPS 140-3 approved suites (issue 19)
// beside the default ones, in one run, so that they compare as ratios:
// Seal and Open at 1 KiB and 1 MiB, a 4 MiB stream read, GenerateDataKey
// and Decrypt. Each
// operation runs for the default suite and at once for the approved one,
// so that both see the same load; cpu-ns/op (the process's CPU time) is
// steadier than wall time on a shared machine. The approved keyring is made
// with keyring.WithApprovedAlgorithms, which writes what FIPS mode writes.
// (In a GOFIPS140 build both rows are the approved suite.) For rounds,
// run the binary several times rather than with -count, which repeats
// each sub-benchmark in a row (bench/README.md).
//
//	go test ./bench -run '^$' -bench 'BenchmarkApproved$' -cpu 1 -benchtime 0.3s -benchmem
func BenchmarkApproved(b *testing.B) {
	ctx := context.Background()
	suites := []struct {
		name string
		k    *keyring.Keyring
	}{{name: "default"}, {name: "approved"}}
	for i, opts := range [][]keyring.Option{nil, {keyring.WithApprovedAlgorithms()}} {
		k, err := keyring.New(ctx, opts...)
		require.NoError(b, err)
		suites[i].k = k
	}
	for _, n := range []int{1 << 10, 1 << 20} {
		pt := make([]byte, n)
		for _, s := range suites {
			b.Run(fmt.Sprintf("Seal/%dKiB/%s", n>>10, s.name), func(b *testing.B) {
				b.SetBytes(int64(n))
				defer cpuPerOp(b)()
				for b.Loop() {
					if _, err := envelope.Seal(ctx, s.k, pt); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		for _, s := range suites {
			sealed, err := envelope.Seal(ctx, s.k, pt)
			require.NoError(b, err)
			b.Run(fmt.Sprintf("Open/%dKiB/%s", n>>10, s.name), func(b *testing.B) {
				b.SetBytes(int64(n))
				defer cpuPerOp(b)()
				for b.Loop() {
					if _, err := envelope.Open(ctx, s.k, sealed); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
	// Streams: 4 MiB through NewReader (64 segments), read into a reused
	// buffer.
	const streamSize = 4 << 20
	buf := make([]byte, 64<<10)
	for _, s := range suites {
		var sealed bytes.Buffer
		w, err := envelope.NewWriter(ctx, s.k, &sealed)
		require.NoError(b, err)
		_, err = w.Write(make([]byte, streamSize))
		require.NoError(b, err)
		require.NoError(b, w.Close())
		b.Run("StreamRead/4MiB/"+s.name, func(b *testing.B) {
			b.SetBytes(streamSize)
			defer cpuPerOp(b)()
			for b.Loop() {
				r, err := envelope.NewReader(ctx, s.k, bytes.NewReader(sealed.Bytes()))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, r, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, s := range suites {
		b.Run("GenerateDataKey/"+s.name, func(b *testing.B) {
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, err := s.k.GenerateDataKey(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, s := range suites {
		dk, err := s.k.GenerateDataKey(ctx)
		require.NoError(b, err)
		b.Run("Decrypt/"+s.name, func(b *testing.B) {
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, err := s.k.Decrypt(ctx, dk.Ciphertext); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkApprovedParts measures, one by one, the per-message work that a
// 1 KiB Seal of each suite does beyond the envelope's own bytes, so that
// the approved suite's floor reads as a sum (bench/README.md): the approved
// suite derives the blob's key (HKDF-Expand-SHA-256, 32 bytes), sets up
// AES-256-GCM under it and seals the 32-byte data key with a nonce the
// module draws, then derives the payload key and commitment
// (HKDF-Expand-SHA-512, 64 bytes) and sets up and seals the payload the
// same way; the default suite seals the data key under the version's
// cached XChaCha20-Poly1305, derives with one BLAKE2b-512 and seals the
// payload with ChaCha20-Poly1305, which has no key schedule.
func BenchmarkApprovedParts(b *testing.B) {
	key, dek, ad := make([]byte, 32), make([]byte, 32), make([]byte, 53)
	info := make([]byte, 30+32) // "kmsring approved data key blob" || salt
	envInfo := make([]byte, 6+16+32)
	pt, out := make([]byte, 1<<10), make([]byte, 0, 2<<10)
	run := func(name string, f func()) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			defer cpuPerOp(b)()
			for b.Loop() {
				f()
			}
		})
	}
	gcm := func(key []byte) cipher.AEAD {
		blk, err := aes.NewCipher(key)
		if err != nil {
			b.Fatal(err)
		}
		a, err := cipher.NewGCMWithRandomNonce(blk)
		if err != nil {
			b.Fatal(err)
		}
		return a
	}
	run("approved/HKDF-Expand-SHA256-32B", func() {
		if _, err := hkdf.Expand(sha256.New, key, string(info), 32); err != nil {
			b.Fatal(err)
		}
	})
	run("approved/HKDF-Expand-SHA512-64B", func() {
		if _, err := hkdf.Expand(sha512.New, key, string(envInfo), 64); err != nil {
			b.Fatal(err)
		}
	})
	run("approved/AES256GCM-setup", func() { gcm(key) })
	g := gcm(key)
	run("approved/AES256GCM-random-nonce-seal-32B", func() { g.Seal(out[:0], nil, dek, ad) })
	run("approved/AES256GCM-random-nonce-seal-1KiB", func() { g.Seal(out[:0], nil, pt, nil) })
	x, err := chacha20poly1305.NewX(key)
	require.NoError(b, err)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	run("default/XChaCha20Poly1305-seal-32B", func() { x.Seal(out[:0], nonce, dek, ad) })
	deriveIn := make([]byte, 6+16+32+32)
	run("default/BLAKE2b512-derive", func() { blake2b.Sum512(deriveIn) })
	run("default/ChaCha20Poly1305-setup-seal-1KiB", func() {
		c, err := chacha20poly1305.New(key)
		if err != nil {
			b.Fatal(err)
		}
		c.Seal(out[:0], nonce[:12], pt, nil)
	})
}
