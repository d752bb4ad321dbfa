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
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/boltstore"
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

// defaultMaxConnections caps serve's concurrent connections.
const defaultMaxConnections = 1024

// serveFlags are serve's settings beyond where it listens.
type serveFlags struct {
	logFormat       string
	metricsAddr     string
	maxConnections  int
	auditFailClosed time.Duration
}

func (a *app) serveCommand() *cobra.Command {
	var addr, certFile, keyFile string
	var maxLoaded int
	var sf serveFlags
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
(found from the store's index of due dates, looked at again at least every
minute). Keys are loaded on first use, not at start, and at most
--max-loaded-keys of them are kept (least recently used go; the scheduler
keeps at most 64 more).

The first line of standard output is "listening on http://HOST:PORT" (https
with TLS), with the port chosen when --addr ends in :0; logs go to standard
error. Beyond loopback (127.0.0.1, ::1, localhost) serve needs TLS
(--tls-cert and --tls-key, PEM files). SIGINT or SIGTERM stops it gracefully:
requests in flight finish (10 seconds at most), the audit log is written out
and the store closed.

An embedded store file is open in one process at a time: while serve runs on
one, the other kmsring commands reach it through serve's control socket
beside it (STORE.sock, owner only), with the same output, and their changes
take effect in serve at once. On PostgreSQL (--store postgres://...) the
commands and any number of serve processes share the keys directly.`,
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
	c.Flags().IntVar(&maxLoaded, "max-loaded-keys", keyring.DefaultMaxLoaded, "keep at most N keys loaded (least recently used go)")
	c.Flags().StringVar(&sf.logFormat, "log-format", "text", "the request log on standard error: text or json")
	c.Flags().StringVar(&sf.metricsAddr, "metrics-addr", "", "serve Prometheus metrics (GET /metrics) and a health check (GET /healthz) on HOST:PORT")
	c.Flags().IntVar(&sf.maxConnections, "max-connections", defaultMaxConnections, "the most client connections served at once; more wait")
	c.Flags().DurationVar(&sf.auditFailClosed, "audit-fail-closed", 0, "fail a request (KMSInternalException) whose audit record is not stored within this duration, such as 2s (default: fail-open, records written behind)")
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, _ []string) error {
		if err := checkListenAddr(addr, certFile, keyFile); err != nil {
			return err
		}
		if err := checkMetricsAddr(sf.metricsAddr); err != nil {
			return err
		}
		if sf.maxConnections < 1 {
			return usageError("--max-connections must be at least 1, not %d", sf.maxConnections)
		}
		if sf.auditFailClosed < 0 {
			return usageError("--audit-fail-closed must be a positive duration, not %v", sf.auditFailClosed)
		}
		// Everything serve writes to standard error goes through one
		// buffer, in order; its end is written before serve returns.
		lb := newLogBuffer(a.stderr)
		a.stderr = lb
		defer lb.Close()
		logger, err := newLogger(lb, sf.logFormat)
		if err != nil {
			return err
		}
		reqLog := newRequestLogger(lb, sf.logFormat, logger)
		a.auditFailClosed = sf.auditFailClosed
		var tlsConfig *tls.Config
		if certFile != "" {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return fmt.Errorf("--tls-cert and --tls-key: %w", err)
			}
			tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
		// On first use the store and its root key are created, as
		// create-key creates them: serve in an empty directory is an
		// empty KMS (CreateKey over the wire fills it).
		if err := a.open(ctx, true); err != nil {
			return err
		}
		if maxLoaded < 1 {
			return usageError("--max-loaded-keys must be at least 1, not %d", maxLoaded)
		}
		// A store made for this serve is kept once serve listens; if it
		// cannot (the port is taken, say), nothing is left behind.
		listening := false
		err = a.serve(ctx, addr, tlsConfig, logger, reqLog, sf, maxLoaded, func() {
			listening = true
			a.keepCreated()
		})
		if !listening {
			a.discardCreated()
		}
		return err
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
// scheduler over the store's keys. reqLog writes the request lines, on
// logger's writer.
func (a *app) serve(ctx context.Context, addr string, tlsConfig *tls.Config, logger *slog.Logger, reqLog *requestLogger, sf serveFlags, maxLoaded int, ready func()) error {
	logger.Info("kmsring serve", "version", version(), "fips140", fips140.Enabled(), "fips140_enforced", fips140.Enforced(), "fips140_module", fips140.Version())
	keys, err := a.newServeKeys(ctx, logger, maxLoaded)
	if err != nil {
		return err
	}
	// /metrics reports the keys the handler holds loaded and counts
	// operations on as many (bounded by --max-loaded-keys), not every key
	// in the store.
	var h *kmsapi.Handler
	m := newMetrics(keys.clock, func() []*keyring.Keyring { return h.Keys() }, maxLoaded)
	h, err = kmsapi.New(a.st, a.rk,
		kmsapi.WithRegion(a.region), kmsapi.WithAccount(a.account),
		kmsapi.WithAuditor(a.log), kmsapi.WithAuditor(keys), kmsapi.WithAuditor(m.keys),
		kmsapi.WithLogger(logger), kmsapi.WithMaxLoadedKeys(maxLoaded),
		kmsapi.WithRequestObserver(reqLog.log), kmsapi.WithRequestObserver(m.observe))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	ln = newLimitListener(ln, sf.maxConnections)
	// Beside an embedded store, the control socket lets every other
	// command use the store while serve holds it.
	if bs, ok := a.st.(*boltstore.Store); ok {
		stopControl, err := listenControl(a.storeURL, &ControlService{st: bs, changed: func(id string) {
			h.Changed(context.WithoutCancel(ctx), id)
			keys.changed(id)
		}}, logger)
		if err != nil {
			ln.Close()
			return err
		}
		defer stopControl()
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

	// The scheduler runs on a context of its own, so that it stops only
	// after the last request.
	var wg sync.WaitGroup
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer wg.Wait()
	defer stop()
	wg.Go(func() { keys.run(bg) })
	// Changes other processes make (PostgreSQL's notifications) reach
	// the handler's caches and the scheduler at once: a key created or
	// rescheduled by another replica is looked at now, not at the next
	// refresh.
	wg.Go(func() { h.Watch(bg) })
	if feed, ok := a.st.(store.ChangeFeed); ok {
		defer feed.Changes(keys.changed)()
	}

	served := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	ready()
	fmt.Fprintf(a.stdout, "listening on %s\n", listenURL(addr, ln.Addr(), tlsConfig != nil))
	if sf.metricsAddr != "" {
		stopMetrics, err := serveMetrics(bg, sf.metricsAddr, m.handler(a.st, logger), a.stdout, logger)
		if err != nil {
			srv.Close()
			<-served
			return err
		}
		defer stopMetrics()
	}

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
