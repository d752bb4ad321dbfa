package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"

	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/kmsapi"
	"github.com/kmsring/kmsring/store/boltstore"
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

// serveKMSRing runs kmsring's endpoint as `kmsring serve` would: an
// embedded store and a root key file in dir, SigV4 on, the audit log on
// (stored in the same store), a non-admin principal under a key policy.
func serveKMSRing(dir string) {
	ctx := context.Background()
	if path := os.Getenv("BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	rk, err := keyring.RootKeyFile(filepath.Join(dir, "kmsring.key"))
	check(err)
	st, err := boltstore.Open(filepath.Join(dir, "kmsring.db"))
	check(err)
	defer st.Close()
	opts := []kmsapi.Option{kmsapi.WithAccount("111122223333"), kmsapi.WithLogger(slog.New(slog.DiscardHandler))}
	mac, err := keyring.AuditMAC(ctx, st, rk)
	check(err)
	logger := audit.New(audit.WithStore(st), audit.WithMAC(mac))
	defer logger.Close()
	if os.Getenv("BENCH_AUDIT") != "off" { // off only to measure what the audit log costs
		opts = append(opts, kmsapi.WithAuditor(logger))
	}
	h, err := kmsapi.New(st, rk, opts...)
	check(err)
	ak, err := kmsapi.CreateAccessKey(ctx, st, rk, "bench", false)
	check(err)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	check(err)
	check(k.PutKeyPolicy(ctx, benchPolicy))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	b, _ := json.Marshal(serverInfo{"http://" + ln.Addr().String(), ak.ID, ak.SecretAccessKey(), k.ID()})
	fmt.Println(string(b))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	srv.Shutdown(ctx)
	if n := logger.Dropped(); n > 0 {
		fmt.Fprintf(os.Stderr, "audit records dropped: %d\n", n)
	}
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
