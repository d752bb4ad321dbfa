package compat

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kmsring/kmsring/k8skms"
	"github.com/stretchr/testify/require"
	kmsv2api "k8s.io/kms/apis/v2"
	kmsservice "k8s.io/kms/pkg/service"
)

// BenchmarkKMSv2 measures what the API server waits for, through its own
// gRPC client (kmsv2.NewGRPCService) on the plugin's unix socket, and the
// API server's transformer on a Secret-sized value; StatusReadingStore is
// Status in process with a read of the key from the embedded store. It reports the median
// and the 99th percentile of single calls besides the mean:
//
//	cd compat && go test -run '^$' -bench KMSv2 -benchtime 2000x
func BenchmarkKMSv2(b *testing.B) {
	p := newPlugin(b)
	ctx := context.Background()
	loop, tr := newStatusLoop(b, p.endpoint)
	loop.poll(b)
	seed := make([]byte, 32)
	enc, err := loop.svc.Encrypt(ctx, "bench", seed)
	require.NoError(b, err)
	// A service that reads the key from the store on every Status, as
	// the API server's once-a-minute Status does, called in process.
	reading, err := k8skms.New(p.key, k8skms.WithRefreshInterval(time.Nanosecond))
	require.NoError(b, err)
	secret := secretValue("bench")
	stored, err := tr.TransformToStorage(ctx, secret, etcdKey("bench"))
	require.NoError(b, err)

	for _, bc := range []struct {
		name string
		call func() error
	}{
		{"Status", func() error { _, err := loop.svc.Status(ctx); return err }},
		{"StatusReadingStore", func() error {
			r, err := reading.Status(ctx, &kmsv2api.StatusRequest{})
			if err == nil && r.Healthz != k8skms.Healthy {
				err = errors.New(r.Healthz)
			}
			return err
		}},
		{"Encrypt", func() error { _, err := loop.svc.Encrypt(ctx, "bench", seed); return err }},
		{"Decrypt", func() error {
			_, err := loop.svc.Decrypt(ctx, "bench", &kmsservice.DecryptRequest{Ciphertext: enc.Ciphertext, KeyID: enc.KeyID})
			return err
		}},
		{"TransformToStorage", func() error { _, err := tr.TransformToStorage(ctx, secret, etcdKey("bench")); return err }},
		{"TransformFromStorage", func() error { _, _, err := tr.TransformFromStorage(ctx, stored, etcdKey("bench")); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			took := make([]time.Duration, 0, b.N)
			for b.Loop() {
				start := time.Now()
				if err := bc.call(); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(took[len(took)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
	}
}
