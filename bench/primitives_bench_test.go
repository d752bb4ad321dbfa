package bench

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha512"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// BenchmarkPrimitives measures the per-message building blocks of Seal and
// Open at 1 KiB, to explain where their time goes (bench/README.md).
func BenchmarkPrimitives(b *testing.B) {
	key := make([]byte, 32)
	b.Run("XChaCha20Poly1305-seal-32B", func(b *testing.B) {
		a, err := chacha20poly1305.NewX(key)
		if err != nil {
			b.Fatal(err)
		}
		nonce, pt, ad := make([]byte, 24), make([]byte, 32), make([]byte, 47)
		out := make([]byte, 0, 64)
		for b.Loop() {
			a.Seal(out[:0], nonce, pt, ad)
		}
	})
	b.Run("SHA512-90B", func(b *testing.B) {
		in := make([]byte, 90)
		for b.Loop() {
			sha512.Sum512(in)
		}
	})
	b.Run("AES256GCM-setup", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, err := aes.NewCipher(key)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := cipher.NewGCM(c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AES256GCM-seal-1KiB", func(b *testing.B) {
		g := newStdlib(b)
		nonce, pt := make([]byte, 12), make([]byte, 1024)
		out := make([]byte, 0, 1100)
		for b.Loop() {
			g.Seal(out[:0], nonce, pt, nil)
		}
	})
}
