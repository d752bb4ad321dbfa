// Package compat drives kmsring's AWS KMS-compatible endpoint (package
// kmsapi) with real AWS clients: aws-sdk-go-v2, Tink's AWS KMS client and
// the AWS CLI. It is its own module so that their dependencies stay out of
// the library's go.mod.
package compat

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/kmsapi"
	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/tink"
)

const (
	region  = "us-east-1"
	account = "111122223333"
)

// server is kmsapi on a real listener, over an embedded store and a root
// key file in a temporary directory, with the audit log on: as `kmsring
// serve` runs it.
type server struct {
	URL   string
	st    *boltstore.Store
	rk    tink.AEAD
	audit *audit.Logger
	admin kmsapi.AccessKey
	alice kmsapi.AccessKey
}

func startServer(t testing.TB, opts ...kmsapi.Option) *server {
	dir := t.TempDir()
	rk, err := keyring.RootKeyFile(filepath.Join(dir, "kmsring.key"))
	require.NoError(t, err)
	st, err := boltstore.Open(filepath.Join(dir, "kmsring.db"))
	require.NoError(t, err)
	mac, err := keyring.AuditMAC(t.Context(), st, rk)
	require.NoError(t, err)
	logger := audit.New(audit.WithStore(st), audit.WithMAC(mac))
	opts = append([]kmsapi.Option{kmsapi.WithAccount(account), kmsapi.WithRegion(region), kmsapi.WithAuditor(logger),
		kmsapi.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	h, err := kmsapi.New(st, rk, opts...)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		require.NoError(t, srv.Shutdown(context.Background()))
		require.ErrorIs(t, <-done, http.ErrServerClosed)
		require.NoError(t, logger.Close())
		require.NoError(t, st.Close())
	})
	s := &server{URL: "http://" + ln.Addr().String(), st: st, rk: rk, audit: logger}
	ctx := context.Background()
	s.admin, err = kmsapi.CreateAccessKey(ctx, st, rk, "ops", true)
	require.NoError(t, err)
	s.alice, err = kmsapi.CreateAccessKey(ctx, st, rk, "alice", false)
	require.NoError(t, err)
	return s
}

// client returns an aws-sdk-go-v2 KMS client for the server, signing with
// ak, without retries (so that an error is the server's first answer).
func (s *server) client(ak kmsapi.AccessKey) *kms.Client {
	return s.clientWith(ak.ID, ak.SecretAccessKey(), region)
}

func (s *server) clientWith(id, secret, region string) *kms.Client {
	return kms.New(kms.Options{
		Region:           region,
		BaseEndpoint:     aws.String(s.URL),
		Credentials:      credentials.NewStaticCredentialsProvider(id, secret, ""),
		RetryMaxAttempts: 1,
	})
}

func keyARN(id string) string { return "arn:aws:kms:" + region + ":" + account + ":key/" + id }

// requireAPIError asserts that err is an AWS API error with the given code
// (for exceptions the SDK does not model as types).
func requireAPIError(t testing.TB, err error, code string) {
	t.Helper()
	var ae interface{ ErrorCode() string }
	require.True(t, errors.As(err, &ae), "an API error, not %v", err)
	require.Equal(t, code, ae.ErrorCode(), "%v", err)
}
