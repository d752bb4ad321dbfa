package main

import (
	"context"
	"crypto/fips140"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/kmsapi"
	"github.com/spf13/cobra"
)

// defaultAddr is where serve listens unless --addr says otherwise.
const defaultAddr = "127.0.0.1:8080"

// Bounds of the HTTP server. Requests are small (kmsapi bounds bodies at
// 256 KiB) and answered in milliseconds; the bounds only stop slow or idle
// clients from holding connections.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	// shutdownTimeout bounds how long a stopping serve waits for the
	// requests in flight.
	shutdownTimeout = 10 * time.Second
)

func (a *app) serveCommand() *cobra.Command {
	var addr, certFile, keyFile string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the AWS KMS-compatible endpoint over the store's keys",
		Long: `Run an AWS KMS-compatible endpoint (the AWS KMS JSON 1.1 protocol) over the
keys of the store, so that unchanged AWS clients (the AWS CLI with
--endpoint-url, every AWS SDK, Tink's AWS KMS client) use them. Requests are
signed with SigV4 by access keys from create-access-key; --admin principals
may call everything, others what each key's policy allows (put-key-policy).
Every request is recorded in the audit log with its principal.

While serve runs, automatic rotations, key deletions and version
destructions happen at their dates, for every key in the store, including
keys created through the endpoint or by another process sharing the store
(the key list is read again every minute).

The first line of standard output is "listening on http://HOST:PORT" (https
with TLS), with the port chosen when --addr ends in :0; logs go to standard
error. Beyond loopback (127.0.0.1, ::1, localhost) serve needs TLS
(--tls-cert and --tls-key, PEM files). SIGINT or SIGTERM stops it gracefully:
requests in flight finish (10 seconds at most), the audit log is written out
and the store closed.

An embedded store file can be open in one process at a time: while serve runs
on one, other kmsring commands cannot open it. Stop serve for them, or keep
the keys in PostgreSQL (--store postgres://...), where the commands and any
number of serve processes share the keys.`,
		Example: `  kmsring serve
  kmsring serve --addr 127.0.0.1:0
  kmsring serve --addr :8443 --tls-cert server.crt --tls-key server.key
  AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_DEFAULT_REGION=us-east-1 \
    aws kms list-keys --endpoint-url http://127.0.0.1:8080`,
		GroupID: "endpoint",
		Args:    cobra.NoArgs,
	}
	c.Flags().StringVar(&addr, "addr", defaultAddr, "the address to listen on, HOST:PORT (port 0 picks a free one)")
	c.Flags().StringVar(&certFile, "tls-cert", "", "serve HTTPS with this certificate (PEM; the chain, leaf first)")
	c.Flags().StringVar(&keyFile, "tls-key", "", "the private key of --tls-cert (PEM)")
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, _ []string) error {
		if err := checkListenAddr(addr, certFile, keyFile); err != nil {
			return err
		}
		var tlsConfig *tls.Config
		if certFile != "" {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return fmt.Errorf("--tls-cert and --tls-key: %w", err)
			}
			tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
		if err := a.openExisting(ctx, "serve answers with the keys and access keys of an existing store (create-key, then create-access-key)"); err != nil {
			return err
		}
		return a.serve(ctx, addr, tlsConfig)
	})
	return c
}

// checkListenAddr refuses a bad --addr, TLS flags given alone, and
// listening beyond loopback without TLS.
func checkListenAddr(addr, certFile, keyFile string) error {
	host, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = net.LookupPort("tcp", port)
	}
	if err != nil {
		return usageError("--addr %q is not HOST:PORT: %v", addr, err)
	}
	if (certFile == "") != (keyFile == "") {
		return usageError("--tls-cert and --tls-key go together")
	}
	if certFile == "" && !isLoopbackHost(host) {
		return errNoTLS(addr)
	}
	return nil
}

func errNoTLS(addr string) error {
	return usageError("--addr %s listens beyond loopback: give --tls-cert and --tls-key to serve HTTPS there, or listen on 127.0.0.1 (signatures authenticate requests but do not hide them)", addr)
}

// isLoopbackHost reports whether host names only the loopback interface:
// localhost, 127.0.0.0/8 or ::1. An empty host is every interface.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// serve runs the endpoint on addr until ctx ends, with the rotation
// scheduler over the store's keys.
func (a *app) serve(ctx context.Context, addr string, tlsConfig *tls.Config) error {
	logger := slog.New(slog.NewTextHandler(a.stderr, nil))
	logger.Info("kmsring serve", "version", version(), "fips140", fips140.Enabled(), "fips140_enforced", fips140.Enforced(), "fips140_module", fips140.Version())
	keys := a.newServeKeys(logger)
	h, err := kmsapi.New(a.st, a.rk,
		kmsapi.WithRegion(a.region), kmsapi.WithAccount(a.account),
		kmsapi.WithAuditor(a.log), kmsapi.WithAuditor(keys),
		kmsapi.WithLogger(logger))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// "localhost" resolved to an address beyond loopback, say.
	if tcp, ok := ln.Addr().(*net.TCPAddr); tlsConfig == nil && (!ok || !tcp.IP.IsLoopback()) {
		ln.Close()
		return errNoTLS(addr)
	}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	// The scheduler and the key list run on a context of their own, so
	// that they stop only after the last request.
	var wg sync.WaitGroup
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer wg.Wait()
	defer stop()
	keys.sync(bg)
	wg.Go(func() { keys.run(bg) })

	served := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	fmt.Fprintf(a.stdout, "listening on %s\n", listenURL(addr, ln.Addr(), tlsConfig != nil))

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("kmsring: shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("kmsring: requests still running after the shutdown bound were cut off", "bound", shutdownTimeout)
		srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// listenURL is the endpoint's URL: the host as --addr names it (every
// interface's address when it names none) and the port listened on.
func listenURL(addr string, bound net.Addr, https bool) string {
	host, _, _ := net.SplitHostPort(addr)
	boundHost, port, _ := net.SplitHostPort(bound.String())
	if host == "" {
		host = boundHost
	}
	scheme := "http"
	if https {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// serveOptions are the options of the keys the scheduler holds: the root
// key, the audit log, and the scheduler's clock.
func (a *app) serveOptions(clock keyring.Clock) []keyring.Option {
	return []keyring.Option{keyring.WithRootKey(a.rk), keyring.WithAuditor(a.log), keyring.WithClock(clock)}
}
