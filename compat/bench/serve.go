package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/kmsapi"
	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// serverInfo is what the kmsring child prints on its first line.
type serverInfo struct {
	URL, AccessKeyID, SecretAccessKey, KeyID string
}

// benchPolicy lets the benchmark's (non-admin) principal use the key, with
// a condition, so that every call evaluates a policy.
const benchPolicy = `{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/bench"},
   "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*",
   "Condition": {"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["tenant"]}}},
  {"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
   "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "blocked"}}}]}`

// setupKMSRing makes, in dir, an embedded store and root key file holding
// a non-admin access key and a key under benchPolicy, and returns them.
func setupKMSRing(ctx context.Context, dir string) (rk tink.AEAD, st *boltstore.Store, ak kmsapi.AccessKey, keyID string) {
	rk, err := keyring.RootKeyFile(filepath.Join(dir, "kmsring.key"))
	check(err)
	st, err = boltstore.Open(filepath.Join(dir, "kmsring.db"))
	check(err)
	ak, err = kmsapi.CreateAccessKey(ctx, st, rk, "bench", false)
	check(err)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	check(err)
	check(k.PutKeyPolicy(ctx, benchPolicy))
	return rk, st, ak, k.ID()
}

// serveKMSRing runs kmsring's endpoint in process, set up as `kmsring
// serve` sets it up (so that it can be profiled): an embedded store and a
// root key file in dir, SigV4 on, the audit log on (stored in the same
// store), a non-admin principal under a key policy, a request log line
// per request (to a file in dir) and Prometheus request metrics.
func serveKMSRing(dir string) {
	ctx := context.Background()
	if path := os.Getenv("BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	rk, st, ak, keyID := setupKMSRing(ctx, dir)
	defer st.Close()
	reqLog, err := os.Create(filepath.Join(dir, "requests.log"))
	check(err)
	defer reqLog.Close()
	opts := []kmsapi.Option{kmsapi.WithAccount("111122223333"), kmsapi.WithLogger(slog.New(slog.DiscardHandler))}
	if os.Getenv("BENCH_OBSERVE") != "off" { // off only to measure what the request log and metrics cost
		opts = append(opts, kmsapi.WithRequestObserver(logRequest(slog.New(slog.NewTextHandler(reqLog, nil)))),
			kmsapi.WithRequestObserver(newMetrics().observe))
	}
	mac, err := keyring.AuditMAC(ctx, st, rk)
	check(err)
	logger := audit.New(audit.WithStore(st), audit.WithMAC(mac))
	defer logger.Close()
	if os.Getenv("BENCH_AUDIT") != "off" { // off only to measure what the audit log costs
		opts = append(opts, kmsapi.WithAuditor(logger))
	}
	h, err := kmsapi.New(st, rk, opts...)
	check(err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	b, _ := json.Marshal(serverInfo{"http://" + ln.Addr().String(), ak.ID, ak.SecretAccessKey(), keyID})
	fmt.Println(string(b))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	srv.Shutdown(ctx)
	if n := logger.Dropped(); n > 0 {
		fmt.Fprintf(os.Stderr, "audit records dropped: %d\n", n)
	}
}

// logRequest and metrics are what `kmsring serve` observes of each
// request (cmd/kmsring/observe.go): a log line and two metrics.
func logRequest(l *slog.Logger) func(context.Context, kmsapi.Request) {
	return func(ctx context.Context, r kmsapi.Request) {
		outcome := "success"
		if r.Exception != "" {
			outcome = r.Exception
		}
		l.LogAttrs(ctx, slog.LevelInfo, "kmsring request",
			slog.String("principal", r.Principal), slog.String("operation", r.Operation),
			slog.String("key_id", r.KeyID), slog.String("outcome", outcome), slog.Int("status", r.Status),
			slog.Float64("duration_ms", float64(r.Duration.Microseconds())/1000),
			slog.String("access_key_id", r.AccessKeyID), slog.String("request_id", r.RequestID),
			slog.String("remote_addr", r.RemoteAddr))
	}
}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kmsring_requests_total"}, []string{"operation", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kmsring_request_duration_seconds",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"operation"}),
	}
	prometheus.NewRegistry().MustRegister(m.requests, m.duration)
	return m
}

func (m *metrics) observe(_ context.Context, r kmsapi.Request) {
	outcome := "success"
	if r.Exception != "" {
		outcome = r.Exception
	}
	m.requests.WithLabelValues(r.Operation, outcome).Inc()
	m.duration.WithLabelValues(r.Operation).Observe(r.Duration.Seconds())
}

// startServe runs `kmsring serve` itself (its request log to a file, its
// metrics on), over a store set up as serveKMSRing's: the binary bin, or
// when bin is "", cmd/kmsring built from this checkout.
func startServe(dir, bin string) *child {
	sdir, err := os.MkdirTemp(dir, "serve")
	check(err)
	_, st, ak, keyID := setupKMSRing(context.Background(), sdir)
	check(st.Close())
	name := "kmsring serve"
	if bin == "" {
		root, err := filepath.Abs("../..")
		check(err)
		bin = filepath.Join(sdir, "kmsring")
		build := exec.Command("go", "build", "-o", bin, "./cmd/kmsring")
		build.Dir, build.Stderr = root, os.Stderr
		check(build.Run())
	} else {
		name += " (" + bin + ")"
	}
	reqLog, err := os.Create(filepath.Join(sdir, "requests.log"))
	check(err)
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "KMSRING_STORE="+filepath.Join(sdir, "kmsring.db"),
		"KMSRING_ROOT_KEY_FILE="+filepath.Join(sdir, "kmsring.key"), "KMSRING_ACCOUNT=111122223333")
	cmd.Stderr = reqLog
	url := listenURL(cmd)
	c := &child{name: name, cmd: cmd, c: newClient(url, ak.ID, ak.SecretAccessKey()), keyID: keyID,
		ec: map[string]string{"tenant": "acme"}}
	c.prepare()
	return c
}

// listenURL starts cmd, a kmsring serve, and returns the URL its first
// line of standard output says it listens on.
func listenURL(cmd *exec.Cmd) string {
	out, err := cmd.StdoutPipe()
	check(err)
	check(cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	check(err)
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		log.Fatalf("kmsring serve said %q", line)
	}
	return url
}

// serveNoop answers every request with a fixed response that parses as a
// GenerateDataKey or Decrypt output, doing nothing else: the ceiling of a
// Go net/http server here.
func serveNoop() {
	body := []byte(`{"CiphertextBlob":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk8=",` +
		`"Plaintext":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","KeyId":"arn:aws:kms:us-east-1:111122223333:key/0b7b8e0e-6f0c-4e8a-9c5e-3f4b2a1d0c9e","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}`)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Write(body)
	})}
	go srv.Serve(ln)
	b, _ := json.Marshal(serverInfo{"http://" + ln.Addr().String(), "AKIAEXAMPLE", "secret", "0b7b8e0e-6f0c-4e8a-9c5e-3f4b2a1d0c9e"})
	fmt.Println(string(b))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
