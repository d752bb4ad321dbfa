package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/rotation"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/kmsring/kmsring/store/pgstore"
	"github.com/stretchr/testify/require"
)

// BenchmarkScale measures what a store of many keys costs, at 1,000 and
// 10,000 keys (and 100,000 when KMSRING_BENCH_SCALE names it, a
// comma-separated list of sizes), on bbolt and, with
// KMSRING_TEST_POSTGRES_DSN set, PostgreSQL. The stores are built once and
// kept between runs outside the repository, under os.UserCacheDir()/
// kmsring-bench (bbolt files) and in schemas kmsring_scale_N of the
// PostgreSQL database; delete them to rebuild. Building costs about one
// store write per key (3 ms on bbolt with its fsync).
//
// Every figure is one sub-benchmark, so a regression shows as one line
// growing with the number of keys:
//
//	OpenStore           boltstore.Open of the file (serve's first step)
//	OpenSet             keyring.OpenSet over the store
//	IdlePass            one rotation pass with nothing due (cpu-ns/op)
//	ListKeysFirstPage   keyring.ListPage, Limit 1000
//	Decrypt10kRandom    Set.Decrypt of blobs of 10,000 random keys with
//	                    WithMaxLoaded(1000); heap-MiB is the live heap after
//	                    it, above the heap before OpenSet
//
// Run it as, for instance:
//
//	go test ./bench -run '^$' -bench '^BenchmarkScale$' -benchtime 20x
func BenchmarkScale(b *testing.B) {
	sizes := []int{1000, 10000}
	if s := os.Getenv("KMSRING_BENCH_SCALE"); s != "" {
		sizes = nil
		for f := range strings.SplitSeq(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			require.NoError(b, err, "KMSRING_BENCH_SCALE")
			sizes = append(sizes, n)
		}
	}
	backends := []string{"bolt"}
	if os.Getenv("KMSRING_TEST_POSTGRES_DSN") != "" {
		backends = append(backends, "pg")
	}
	for _, backend := range backends {
		for _, n := range sizes {
			b.Run(fmt.Sprintf("%s/keys=%d", backend, n), func(b *testing.B) {
				st, blobs, path := scaleStore(b, backend, n)
				if path != "" {
					// A second handle on the file, for the time Open
					// takes: the benchmark's own is closed meanwhile.
					require.NoError(b, st.(*boltstore.Store).Close())
					b.Run("OpenStore", func(b *testing.B) {
						defer cpuPerOp(b)()
						for b.Loop() {
							s, err := boltstore.Open(path)
							require.NoError(b, err)
							require.NoError(b, s.Close())
						}
					})
					bs, err := boltstore.Open(path)
					require.NoError(b, err)
					b.Cleanup(func() { bs.Close() })
					st = bs
				}
				rk := rootKey(b)
				b.Run("OpenSet", func(b *testing.B) {
					for b.Loop() {
						_, err := keyring.OpenSet(b.Context(), st, keyring.WithRootKey(rk))
						require.NoError(b, err)
					}
				})
				b.Run("IdlePass", func(b *testing.B) {
					set, err := keyring.OpenSet(b.Context(), st, keyring.WithRootKey(rk))
					require.NoError(b, err)
					s := rotation.New(rotation.WithSet(set))
					defer cpuPerOp(b)()
					for b.Loop() {
						events, err := s.RunOnce(b.Context())
						require.NoError(b, err)
						require.Empty(b, events)
					}
				})
				b.Run("ListKeysFirstPage", func(b *testing.B) {
					defer cpuPerOp(b)()
					for b.Loop() {
						ids, _, err := keyring.ListPage(b.Context(), st, "", 1000)
						require.NoError(b, err)
						require.Len(b, ids, min(n, 1000))
					}
				})
				if len(blobs) >= 10000 {
					b.Run("Decrypt10kRandom", func(b *testing.B) {
						for b.Loop() {
							decryptRandom(b, st, blobs)
						}
					})
				}
			})
		}
	}
}

// decryptRandom decrypts one blob of each of 10,000 random keys through a
// set bounded to 1,000 loaded keys and reports the live heap it holds.
func decryptRandom(b *testing.B, st store.Store, blobs [][]byte) {
	ctx := b.Context()
	before := liveHeap()
	set, err := keyring.OpenSet(ctx, st, keyring.WithRootKey(rootKey(b)), keyring.WithMaxLoaded(1000))
	require.NoError(b, err)
	perm := rand.Perm(len(blobs))[:10000]
	for _, i := range perm {
		_, err := set.Decrypt(ctx, blobs[i])
		require.NoError(b, err)
	}
	after := liveHeap()
	b.ReportMetric(float64(after-before)/(1<<20), "heap-MiB")
	runtime.KeepAlive(set)
}

func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// scaleStore returns the store of n keys for backend, building it on the
// first run, and the blob of one data key of each of its first 10,000
// keys. For bbolt it also returns the file's path, for OpenStore.
func scaleStore(b *testing.B, backend string, n int) (store.Store, [][]byte, string) {
	dir, err := os.UserCacheDir()
	require.NoError(b, err)
	dir = filepath.Join(dir, "kmsring-bench")
	require.NoError(b, os.MkdirAll(dir, 0o700))
	name := fmt.Sprintf("scale-%s-%d", backend, n)
	blobsPath := filepath.Join(dir, name+".blobs")
	var st store.Store
	var path string
	switch backend {
	case "bolt":
		path = filepath.Join(dir, name+".db")
		bs, err := boltstore.Open(path)
		require.NoError(b, err)
		b.Cleanup(func() { bs.Close() })
		st = bs
	case "pg":
		ps, err := pgstore.Open(b.Context(), scaleDSN(b, n))
		require.NoError(b, err)
		b.Cleanup(func() { ps.Close() })
		st = ps
	}
	blobs, err := readBlobs(blobsPath)
	if err != nil {
		b.Logf("building %s (%d keys) once; later runs reuse it", name, n)
		start := time.Now()
		blobs = buildScale(b, st, n)
		require.NoError(b, writeBlobs(blobsPath, blobs))
		b.Logf("built %s in %v", name, time.Since(start).Round(time.Second))
	}
	return st, blobs, path
}

// scaleDSN returns a DSN whose search_path is the schema kept for n keys.
func scaleDSN(b *testing.B, n int) string {
	base := os.Getenv("KMSRING_TEST_POSTGRES_DSN")
	schema := fmt.Sprintf("kmsring_scale_%d", n)
	conn, err := pgx.Connect(b.Context(), base)
	require.NoError(b, err)
	_, err = conn.Exec(b.Context(), "CREATE SCHEMA IF NOT EXISTS "+schema)
	require.NoError(b, err)
	conn.Close(b.Context())
	u, err := url.Parse(base)
	require.NoError(b, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// buildScale creates n keys in st (a quarter with yearly rotation, none
// due for a year) by making them in memory and copying their records, and
// returns a data key blob of each of the first 10,000.
func buildScale(b *testing.B, st store.Store, n int) [][]byte {
	ctx := context.Background()
	rk := rootKey(b)
	ids, err := keyring.List(ctx, st)
	require.NoError(b, err)
	have := len(ids)
	var blobs [][]byte
	const storeKey = keyring.ReservedPrefix + "store"
	skRec, err := st.Get(ctx, storeKey)
	haveKey := err == nil
	for i := 0; i < n; i++ {
		mem := memstore.New()
		if haveKey {
			// Keys made here are sealed under the destination's store key.
			_, err := mem.Create(ctx, skRec, nil)
			require.NoError(b, err)
		}
		opts := []keyring.Option{keyring.WithStore(mem), keyring.WithRootKey(rk)}
		if i%4 == 0 {
			opts = append(opts, keyring.WithRotationPeriod(365*24*time.Hour))
		}
		if i < have {
			// An interrupted build: rebuild the blobs from the keys there.
			k, err := keyring.Load(ctx, st, ids[i], keyring.WithRootKey(rk))
			require.NoError(b, err)
			if i < 10000 {
				blobs = append(blobs, mustBlob(b, k))
			}
			continue
		}
		k, err := keyring.New(ctx, opts...)
		require.NoError(b, err)
		if !haveKey {
			skRec, err = mem.Get(ctx, storeKey)
			require.NoError(b, err)
			_, err = st.Create(ctx, skRec, nil)
			require.NoError(b, err)
			haveKey = true
		}
		rec, err := mem.Get(ctx, k.ID())
		require.NoError(b, err)
		vs, err := mem.Versions(ctx, k.ID(), 0)
		require.NoError(b, err)
		_, err = st.Create(ctx, rec, vs)
		require.NoError(b, err)
		if i < 10000 {
			blobs = append(blobs, mustBlob(b, k))
		}
	}
	return blobs
}

func mustBlob(b *testing.B, k *keyring.Keyring) []byte {
	dk, err := k.GenerateDataKeyWithoutPlaintext(context.Background())
	require.NoError(b, err)
	return dk.Ciphertext
}

func readBlobs(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, errors.New("truncated blob file")
		}
		l := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+l {
			return nil, errors.New("truncated blob file")
		}
		out = append(out, data[2:2+l])
		data = data[2+l:]
	}
	return out, nil
}

func writeBlobs(path string, blobs [][]byte) error {
	var buf []byte
	for _, bl := range blobs {
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(bl)))
		buf = append(buf, bl...)
	}
	return os.WriteFile(path, buf, 0o600)
}
