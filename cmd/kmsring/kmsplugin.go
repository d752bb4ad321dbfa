package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/k8skms"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/rotation"
	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	kmsv2 "k8s.io/kms/apis/v2"
)

// maxKMSRequest bounds a KMS v2 request: a ciphertext (1 KiB at most),
// annotations (32 KiB) and a key_id (1 KiB), as the API server sends them.
const maxKMSRequest = 64 << 10

func (a *app) kmsPluginCommand() *cobra.Command {
	var listen, keyRef, metricsAddr string
	c := &cobra.Command{
		Use:   "kms-plugin",
		Short: "Run the Kubernetes KMS v2 plugin over a key, for a kube-apiserver",
		Long: `Run the Kubernetes KMS v2 plugin (gRPC over a unix socket) over one key, so
that a kube-apiserver encrypts Secrets at rest under it: name the socket in
the API server's EncryptionConfiguration (kms: apiVersion: v2, endpoint:
unix:///PATH.sock). Status reports the key's current version as the key_id;
when the key rotates (rotate-key-on-demand, or its rotation period while the
plugin runs) the API server encrypts new writes under the new version and
reports older objects as stale, and every enabled version still decrypts.
Every Encrypt and Decrypt is recorded in the audit log as k8s:kms-plugin.

The socket is made 0600 in a directory other users cannot write (a
world-writable one, such as /tmp, is refused); a socket left by a plugin that
died is removed, one where a plugin still answers is refused. The first line
of standard output is "listening on unix:///PATH.sock"; with --metrics-addr,
the second is "metrics on http://HOST:PORT/metrics" (Prometheus; /healthz
answers 200 while the key can encrypt). SIGINT or SIGTERM stops the plugin
gracefully: calls in flight finish (10 seconds at most), the socket is
removed, the audit log written out.

Automatic rotation of the key happens while the plugin runs. With the
embedded store the plugin holds the file, so other kmsring commands cannot
open it meanwhile; with PostgreSQL (--store postgres://...) every API
server's plugin and the commands share the key, and a rotation made anywhere
shows in every plugin's Status within a second. See docs/KUBERNETES.md.`,
		Example: `  kmsring kms-plugin --listen unix:///var/run/kmsring/kms.sock --key-id alias/k8s-secrets
  kmsring --store postgres://kmsring@db/kms kms-plugin --listen unix:///var/run/kmsring/kms.sock \
    --key-id alias/k8s-secrets --metrics-addr 127.0.0.1:9464`,
		GroupID: "kubernetes",
		Args:    cobra.NoArgs,
	}
	c.Flags().StringVar(&listen, "listen", "", "the socket to serve, unix:///ABSOLUTE/PATH.sock (required)")
	c.Flags().StringVar(&keyRef, "key-id", "", "the key: key ID, key ARN, alias name or alias ARN (required)")
	c.Flags().StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics and /healthz over HTTP on HOST:PORT")
	c.MarkFlagRequired("listen")
	c.MarkFlagRequired("key-id")
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, _ []string) error {
		if _, err := k8skms.SocketPath(listen); err != nil {
			return usageError("--listen %q is not unix:///ABSOLUTE/PATH.sock", listen)
		}
		if metricsAddr != "" {
			if _, _, err := net.SplitHostPort(metricsAddr); err != nil {
				return usageError("--metrics-addr %q is not HOST:PORT: %v", metricsAddr, err)
			}
		}
		// The socket first: a path in use or in an unsafe directory is
		// refused for what it is, before the store is opened.
		ln, err := k8skms.Listen(listen)
		if err != nil {
			return err
		}
		defer ln.Close()
		if err := a.open(ctx, false); err != nil {
			return err
		}
		k, err := a.loadKey(ctx, keyRef)
		if err != nil {
			return err
		}
		return a.kmsPlugin(ctx, k, ln, listen, metricsAddr)
	})
	return c
}

// kmsPlugin serves the KMS v2 plugin over k on ln, the socket of listen,
// until ctx ends, with the rotation scheduler over k.
func (a *app) kmsPlugin(ctx context.Context, k *keyring.Keyring, ln net.Listener, listen, metricsAddr string) error {
	logger := slog.New(slog.NewTextHandler(a.stderr, nil))
	svc, err := k8skms.New(k, k8skms.WithLogger(logger))
	if err != nil {
		return err
	}
	g := grpc.NewServer(grpc.MaxRecvMsgSize(maxKMSRequest))
	svc.Register(g)

	var mln net.Listener
	if metricsAddr != "" {
		if mln, err = net.Listen("tcp", metricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
	}

	// The scheduler, the key's watch and the metrics run on a context of
	// their own, so that they stop only after the last call.
	var wg sync.WaitGroup
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer wg.Wait()
	defer stop()
	sched := rotation.New(rotation.WithClock(a.keyClock()), rotation.WithLogger(logger))
	sched.Add(k)
	wg.Go(func() { sched.Run(bg) })
	wg.Go(func() { svc.Run(bg) })

	// Beside an embedded store, the control socket lets every other
	// command (rotate-key-on-demand, say) use the store while the plugin
	// holds it; a change to the plugin's key is read at once.
	if bs, ok := a.st.(*boltstore.Store); ok {
		stopControl, err := listenControl(a.storeURL, &ControlService{st: bs, changed: func(id string) {
			if id == k.ID() {
				if err := k.Refresh(bg); err != nil {
					logger.Warn("kmsring: refreshing the key after a change failed", "key_id", id, "err", err)
				}
			}
		}}, logger)
		if err != nil {
			return err
		}
		defer stopControl()
	}

	served := make(chan error, 1)
	go func() { served <- g.Serve(ln) }()
	fmt.Fprintf(a.stdout, "listening on %s\n", listen)
	if mln != nil {
		srv := a.kmsMetricsServer(k, svc, logger)
		wg.Go(func() { srv.Serve(mln) })
		context.AfterFunc(bg, func() { srv.Close() })
		fmt.Fprintf(a.stdout, "metrics on http://%s/metrics\n", mln.Addr())
	}

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("kmsring: shutting down")
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(shutdownTimeout):
		logger.Warn("kmsring: calls still running after the shutdown bound were cut off", "bound", shutdownTimeout)
		g.Stop()
	}
	<-served
	return nil
}

// keyClock is the clock keys run on: the real one, or the tests'.
func (a *app) keyClock() keyring.Clock {
	if testClock != nil {
		if c := testClock(); c != nil {
			return c
		}
	}
	return keyring.RealClock()
}

// kmsMetricsServer serves GET /metrics (the plugin's calls and the key's
// gauges) and GET /healthz (200 while the key can encrypt, 503 with the
// reason otherwise).
func (a *app) kmsMetricsServer(k *keyring.Keyring, svc *k8skms.Service, logger *slog.Logger) *http.Server {
	reg := prometheus.NewRegistry()
	keys := audit.NewCollector()
	keys.Add(k)
	reg.MustRegister(svc.Collector(), keys)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		st, err := svc.Status(r.Context(), &kmsv2.StatusRequest{})
		if err == nil && st.Healthz != k8skms.Healthy {
			err = errors.New(st.Healthz)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}
