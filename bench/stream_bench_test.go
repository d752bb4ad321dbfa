package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/require"
)

// source yields n bytes of one repeated random 64 KiB block without
// allocating.
type source struct {
	block []byte
	left  int64
}

func newSource(n int64) *source {
	b := make([]byte, 64<<10)
	rand.Read(b)
	return &source{block: b, left: n}
}

func (s *source) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.block[:min(int64(len(s.block)), s.left)])
	s.left -= int64(n)
	return n, nil
}

// pipeBuffer holds one sealed stream in memory for the read benchmark.
func sealStream(b *testing.B, k *keyring.Keyring, n int64) []byte {
	ctx := context.Background()
	out := make([]byte, 0, n+n/(64<<10)*16+4096)
	w := &sliceWriter{b: out}
	sw, err := envelope.NewWriter(ctx, k, w)
	require.NoError(b, err)
	_, err = io.Copy(sw, newSource(n))
	require.NoError(b, err)
	require.NoError(b, sw.Close())
	return w.b
}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// BenchmarkStream256MiB streams 256 MiB through NewWriter and NewReader
// beside standard-library AES-256-GCM sealing and opening the same bytes in
// 64 KiB chunks under one cached key (the floor).
func BenchmarkStream256MiB(b *testing.B) {
	ctx := context.Background()
	const n = 256 << 20
	b.Run("Write/stdlib-aes256gcm", func(b *testing.B) {
		g := newStdlib(b)
		buf := make([]byte, 0, 64<<10+16)
		nonce := make([]byte, 12)
		b.SetBytes(n)
		defer cpuPerOp(b)()
		for b.Loop() {
			src := newSource(n)
			chunk := make([]byte, 64<<10)
			for {
				m, err := io.ReadFull(src, chunk)
				if m > 0 {
					g.Seal(buf[:0], nonce, chunk[:m], nil)
				}
				if err != nil {
					break
				}
			}
		}
	})
	b.Run("Write/kmsring", func(b *testing.B) {
		k := newKeyring(b)
		b.SetBytes(n)
		defer cpuPerOp(b)()
		for b.Loop() {
			w, err := envelope.NewWriter(ctx, k, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(w, newSource(n)); err != nil {
				b.Fatal(err)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Read/stdlib-aes256gcm", func(b *testing.B) {
		// The same work a stream reader must do: read each sealed 64 KiB
		// chunk from the stream into a buffer and open it in place.
		g := newStdlib(b)
		nonce := make([]byte, 12)
		chunk := make([]byte, 64<<10)
		rand.Read(chunk)
		one := g.Seal(nil, nonce, chunk, nil)
		sealed := make([]byte, 0, n/(64<<10)*len(one))
		for range n / (64 << 10) {
			sealed = append(sealed, one...)
		}
		buf := make([]byte, len(one))
		b.SetBytes(n)
		defer cpuPerOp(b)()
		for b.Loop() {
			src := &byteReader{b: sealed}
			for {
				if _, err := io.ReadFull(src, buf); err != nil {
					break
				}
				pt, err := g.Open(buf[:0], nonce, buf, nil)
				if err != nil {
					b.Fatal(err)
				}
				io.Discard.Write(pt)
			}
		}
	})
	b.Run("Read/kmsring", func(b *testing.B) {
		k := newKeyring(b)
		sealed := sealStream(b, k, n)
		b.SetBytes(n)
		defer cpuPerOp(b)()
		for b.Loop() {
			r, err := envelope.NewReader(ctx, k, &byteReader{b: sealed})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

type byteReader struct {
	b   []byte
	off int
}

func (r *byteReader) Read(p []byte) (int, error) {
	if r.off == len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

// BenchmarkStream1GiBMemory seals and opens 1 GiB through the streams
// (through an io.Pipe, nothing kept) and reports the peak heap in use,
// sampled every millisecond.
func BenchmarkStream1GiBMemory(b *testing.B) {
	ctx := context.Background()
	const n = 1 << 30
	k := newKeyring(b)
	defer cpuPerOp(b)()
	for b.Loop() {
		runtime.GC()
		var peak atomic.Uint64
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			var ms runtime.MemStats
			for {
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
			}
		}()
		pr, pw := io.Pipe()
		go func() {
			w, err := envelope.NewWriter(ctx, k, pw)
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := io.Copy(w, newSource(n)); err != nil {
				pw.CloseWithError(err)
				return
			}
			pw.CloseWithError(w.Close())
		}()
		r, err := envelope.NewReader(ctx, k, pr)
		require.NoError(b, err)
		got, err := io.Copy(io.Discard, r)
		require.NoError(b, err)
		require.Equal(b, int64(n), got)
		close(stop)
		<-done
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
	}
}

// BenchmarkSealCached: Seal at 1 KiB with a data key cache, beside one
// standard-library AES-256-GCM seal of 1 KiB.
func BenchmarkSealCached(b *testing.B) {
	ctx := context.Background()
	pt := make([]byte, 1<<10)
	b.Run("stdlib-aes256gcm", func(b *testing.B) {
		g := newStdlib(b)
		b.SetBytes(1 << 10)
		defer cpuPerOp(b)()
		for b.Loop() {
			stdSeal(g, pt)
		}
	})
	b.Run("kmsring-cached", func(b *testing.B) {
		k := newKeyring(b)
		c, err := envelope.NewCache()
		require.NoError(b, err)
		b.SetBytes(1 << 10)
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			if _, err := envelope.Seal(ctx, k, pt, envelope.WithCache(c)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOpenManyVersions: Open at 1 KiB on a keyring with 1 or 10,000
// versions, envelopes spread over the versions.
func BenchmarkOpenManyVersions(b *testing.B) {
	ctx := context.Background()
	for _, versions := range []int{1, 10000} {
		b.Run(fmt.Sprintf("versions=%d", versions), func(b *testing.B) {
			k := newKeyring(b)
			pt := make([]byte, 1<<10)
			var sealed [][]byte
			for v := 1; v <= versions; v++ {
				if v > 1 {
					_, err := k.Rotate(ctx)
					require.NoError(b, err)
				}
				if versions == 1 || v%(versions/distinct) == 0 {
					for range max(1, distinct/versions) {
						s, err := envelope.Seal(ctx, k, pt)
						require.NoError(b, err)
						sealed = append(sealed, s)
					}
				}
			}
			b.SetBytes(1 << 10)
			i := 0
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, err := envelope.Open(ctx, k, sealed[i%len(sealed)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
