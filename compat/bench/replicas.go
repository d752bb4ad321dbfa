package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	bbolt "go.etcd.io/bbolt"
)

// replicas measures `kmsring serve` replicas sharing one PostgreSQL
// database: GenerateDataKey calls per second through 1 and then N
// replicas (the same total number of clients, spread over them), the
// transactions PostgreSQL committed and rolled back meanwhile
// (pg_stat_database of a database of its own, so other users of the
// server do not count), whether `kmsring audit verify` passes, and whether
// the stored GenerateDataKey records equal the calls that succeeded.
//
//	cd compat/bench && go run . replicas -kmsring /path/to/kmsring \
//	    [-pg postgres://postgres@127.0.0.1:5432] [-db kmsring_replicas] \
//	    [-replicas 3] [-clients 12] [-duration 10s] [-gomaxprocs N]
//
// It drops and recreates the database -db (psql must be on PATH).
func replicas(args []string) {
	fs := flag.NewFlagSet("replicas", flag.ExitOnError)
	bin := fs.String("kmsring", "", "the kmsring binary to measure")
	pg := fs.String("pg", "postgres://postgres@127.0.0.1:5432", "the PostgreSQL server (no database)")
	db := fs.String("db", "kmsring_replicas", "the database to (re)create for the run")
	n := fs.Int("replicas", 3, "replicas in the second phase")
	clients := fs.Int("clients", 12, "clients in each phase, spread over the replicas")
	duration := fs.Duration("duration", 10*time.Second, "measured time of each phase")
	replicaProcs := fs.Int("gomaxprocs", 0, "run each replica with GOMAXPROCS=N (0: Go's default, every core)")
	bolt := fs.Bool("bolt", false, "instead: one replica on the embedded store, and the audit bucket's bytes per GenerateDataKey record")
	check(fs.Parse(args))
	if *bolt && *bin != "" {
		boltBytes(*bin, *clients, *duration)
		return
	}
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "replicas: -kmsring is required")
		os.Exit(2)
	}
	fmt.Printf("CPU: %s, %d cores; %d clients; %s per phase; load average at start: %s\n\n",
		cpuModel(), numCPU(), *clients, *duration, loadAvg())
	fmt.Println("| replicas | GenerateDataKey/s | errors | commits | rollbacks | rollback % | audit verify | GDK records = calls | CPU µs per call: replicas, PostgreSQL, clients |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---|---|---|")
	for _, r := range []int{1, *n} {
		replicaPhase(*bin, *pg, *db, r, *clients, *duration, *replicaProcs)
	}
}

func replicaPhase(bin, pg, db string, n, clients int, d time.Duration, procs int) {
	psql(pg+"/postgres", "DROP DATABASE IF EXISTS "+db)
	psql(pg+"/postgres", "CREATE DATABASE "+db)
	dir, err := os.MkdirTemp("", "kmsring-replicas")
	check(err)
	defer os.RemoveAll(dir)
	dsn := pg + "/" + db
	global := []string{"--store", dsn, "--root-key-file", filepath.Join(dir, "kmsring.key")}
	run := func(args ...string) []byte {
		out, err := exec.Command(bin, append(global, args...)...).Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				fmt.Fprintf(os.Stderr, "kmsring %s: %s\n", strings.Join(args, " "), ee.Stderr)
			}
			check(err)
		}
		return out
	}
	var ak struct {
		AccessKey struct{ AccessKeyId, SecretAccessKey string }
	}
	check(json.Unmarshal(run("create-access-key", "--principal", "bench", "--admin"), &ak))
	var key struct{ KeyMetadata struct{ KeyId string } }
	check(json.Unmarshal(run("create-key"), &key))

	var cmds []*exec.Cmd
	var kcs []*kms.Client
	for range n {
		cmd, url := startReplica(bin, global, procs)
		cmds = append(cmds, cmd)
		kcs = append(kcs, newClient(url, ak.AccessKey.AccessKeyId, ak.AccessKey.SecretAccessKey))
	}
	commits0, rollbacks0 := xactStats(pg, db)
	// Where the cores went: the replicas, every PostgreSQL process, and
	// this process (the clients).
	serveCPU := func() (d time.Duration) {
		for _, p := range cmds {
			d += cpuTime(p.Process.Pid)
		}
		return d
	}
	serve0, pg0, self0 := serveCPU(), postgresCPU(), cpuTime(os.Getpid())
	// Calls in flight at the end are waited for, not cancelled, so that
	// every call the servers completed is counted.
	ctx, deadline := context.Background(), time.Now().Add(d)
	var calls, errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		wg.Go(func() {
			c := kcs[i%n]
			for time.Now().Before(deadline) {
				_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(key.KeyMetadata.KeyId), KeySpec: types.DataKeySpecAes256})
				if err == nil {
					calls.Add(1)
				} else {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	serve1, pg1, self1 := serveCPU(), postgresCPU(), cpuTime(os.Getpid())
	for _, p := range cmds {
		p.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range cmds {
		p.Wait()
	}
	commits1, rollbacks1 := xactStats(pg, db)
	commits, rollbacks := commits1-commits0, rollbacks1-rollbacks0
	verify := "passed"
	if out, err := exec.Command(bin, append(global, "audit", "verify")...).CombinedOutput(); err != nil {
		verify = "FAILED: " + strings.TrimSpace(string(out))
	}
	records, err := strconv.ParseInt(psql(dsn, "SELECT count(*) FROM kmsring_audit WHERE operation = 'GenerateDataKey' AND convert_from(data, 'UTF8') NOT LIKE '%\"outcome\":\"failure\"%'"), 10, 64)
	check(err)
	equal := "yes"
	if records != calls.Load() {
		equal = fmt.Sprintf("NO: %d records, %d calls", records, calls.Load())
	}
	perCall := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(max(calls.Load(), 1)) }
	fmt.Printf("| %d | %.0f | %d | %d | %d | %.2f | %s | %s | %.1f, %.1f, %.1f |\n", n, float64(calls.Load())/wall.Seconds(), errs.Load(),
		commits, rollbacks, 100*float64(rollbacks)/float64(max(commits+rollbacks, 1)), verify, equal,
		perCall(serve1-serve0), perCall(pg1-pg0), perCall(self1-self0))
}

// postgresCPU is the CPU time of every process named postgres.
func postgresCPU() (d time.Duration) {
	ents, err := os.ReadDir("/proc")
	check(err)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(comm)) == "postgres" {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
				d += statCPU(b)
			}
		}
	}
	return d
}

// xactStats returns the transactions committed and rolled back in db.
func xactStats(pg, db string) (commits, rollbacks int64) {
	// The statistics are sent at the end of each transaction, and read
	// from a snapshot: clear it so the second read is fresh.
	out := psql(pg+"/postgres", "SELECT pg_stat_clear_snapshot(); SELECT xact_commit || ' ' || xact_rollback FROM pg_stat_database WHERE datname = '"+db+"'")
	f := strings.Fields(out)
	commits, err := strconv.ParseInt(f[len(f)-2], 10, 64)
	check(err)
	rollbacks, err = strconv.ParseInt(f[len(f)-1], 10, 64)
	check(err)
	return commits, rollbacks
}

func psql(dsn, sql string) string {
	out, err := exec.Command("psql", "-XqAt", "-d", dsn, "-c", sql).CombinedOutput()
	if err != nil {
		panic(fmt.Sprintf("psql %q: %v: %s", sql, err, out))
	}
	return strings.TrimSpace(string(out))
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	check(err)
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// boltBytes runs one replica on a bbolt store, drives GenerateDataKey
// for d, and reports what the audit bucket's pages hold per record: the
// bytes in use and the bytes allocated (bbolt's own page statistics, so
// the file's growth in steps does not blur it).
func boltBytes(bin string, clients int, d time.Duration) {
	dir, err := os.MkdirTemp("", "kmsring-boltbytes")
	check(err)
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "kmsring.db")
	global := []string{"--store", db, "--root-key-file", filepath.Join(dir, "kmsring.key")}
	out, err := exec.Command(bin, append(global, "create-access-key", "--principal", "bench", "--admin")...).Output()
	check(err)
	var ak struct {
		AccessKey struct{ AccessKeyId, SecretAccessKey string }
	}
	check(json.Unmarshal(out, &ak))
	out, err = exec.Command(bin, append(global, "create-key")...).Output()
	check(err)
	var key struct{ KeyMetadata struct{ KeyId string } }
	check(json.Unmarshal(out, &key))
	cmd, url := startReplica(bin, global, 0)
	c := newClient(url, ak.AccessKey.AccessKeyId, ak.AccessKey.SecretAccessKey)
	deadline := time.Now().Add(d)
	var calls atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				_, err := c.GenerateDataKey(context.Background(), &kms.GenerateDataKeyInput{KeyId: aws.String(key.KeyMetadata.KeyId), KeySpec: types.DataKeySpecAes256,
					EncryptionContext: map[string]string{"tenant": "acme"}})
				if err == nil {
					calls.Add(1)
				}
			}
		})
	}
	wg.Wait()
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	bdb, err := bbolt.Open(db, 0o600, &bbolt.Options{ReadOnly: true})
	check(err)
	defer bdb.Close()
	check(bdb.View(func(tx *bbolt.Tx) error {
		st := tx.Bucket([]byte("audit")).Stats()
		n := float64(st.KeyN)
		fmt.Printf("GenerateDataKey calls %d, audit records %d (encryption context of one pair)\n", calls.Load(), st.KeyN)
		fmt.Printf("audit bucket per record: %.1f B in use, %.1f B of pages allocated\n",
			float64(st.LeafInuse+st.BranchInuse)/n, float64(st.LeafAlloc+st.BranchAlloc)/n)
		return nil
	}))
}

// startReplica starts `kmsring serve` on a free port, with GOMAXPROCS=procs
// unless procs is 0, and returns its URL.
func startReplica(bin string, global []string, procs int) (*exec.Cmd, string) {
	cmd := exec.Command(bin, append(global, "serve", "--addr", "127.0.0.1:0")...)
	if procs > 0 {
		cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(procs))
	}
	return cmd, listenURL(cmd)
}
