package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/kmsapi"
	"github.com/kmsring/kmsring/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// What serve tells its operator: a log line per request on standard error
// (text or JSON), and with --metrics-addr, Prometheus metrics on /metrics
// and a health check on /healthz.

// newLogger returns serve's logger on w in format "text" or "json". The
// request lines do not go through it: requestLogger writes them as these
// handlers with nil options would, so an option set here must be set
// there too (requestlog.go).
func newLogger(w io.Writer, format string) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, usageError("--log-format must be text or json, not %q", format)
}

// metrics are serve's request metrics.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	keys     *audit.Collector
}

// newMetrics reports the keys keys returns, and counts operations on at
// most maxKeys keys (the most recently used).
func newMetrics(clock keyring.Clock, keys func() []*keyring.Keyring, maxKeys int) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmsring_requests_total",
			Help: "Requests to the KMS-compatible endpoint, by operation and outcome (success or the AWS exception).",
		}, []string{"operation", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kmsring_request_duration_seconds",
			Help:    "Time to answer a request to the KMS-compatible endpoint, by operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"operation"}),
		keys: audit.NewCollector(audit.WithCollectorClock(clock), audit.WithKeySource(keys), audit.WithMaxKeySeries(maxKeys)),
	}
	m.reg.MustRegister(m.requests, m.duration, m.keys)
	return m
}

// observe counts a request. The operation label is an operation this
// endpoint knows or "unknown", so clients cannot grow the label set.
func (m *metrics) observe(_ context.Context, r kmsapi.Request) {
	op := r.Operation
	if op == "" {
		op = "unknown"
	}
	outcome := "success"
	if r.Exception != "" {
		outcome = r.Exception
	}
	m.requests.WithLabelValues(op, outcome).Inc()
	m.duration.WithLabelValues(op).Observe(r.Duration.Seconds())
}

// healthProbe is a record no store holds: reading it answers "not found"
// when the store is up.
const healthProbe = keyring.ReservedPrefix + "healthz"

// healthTimeout bounds the store read of a health check.
const healthTimeout = 2 * time.Second

// metricsHandler serves /metrics and /healthz.
func (m *metrics) handler(st store.Store, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		if _, err := st.Get(ctx, healthProbe); err != nil && !errors.Is(err, store.ErrNotFound) {
			log.Warn("kmsring: health check: the store does not answer", "err", err)
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	return mux
}

// limitListener accepts at most n connections at a time; Accept waits
// for one to close beyond that, so a flood of idle connections costs a
// bounded number of goroutines and descriptors.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func newLimitListener(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: sync.OnceFunc(func() { <-l.sem })}, nil
}

type limitConn struct {
	net.Conn
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// checkMetricsAddr refuses a bad --metrics-addr.
func checkMetricsAddr(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = net.LookupPort("tcp", port)
	}
	if err != nil {
		return usageError("--metrics-addr %q is not HOST:PORT: %v", addr, err)
	}
	return nil
}

// serveMetrics listens on addr and serves h there until ctx ends,
// printing its URL on out.
func serveMetrics(ctx context.Context, addr string, h http.Handler, out io.Writer, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, WriteTimeout: writeTimeout,
		IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	fmt.Fprintf(out, "metrics on %s\n", listenURL(addr, ln.Addr(), false))
	return func() {
		srv.Close()
		<-done
	}, nil
}
