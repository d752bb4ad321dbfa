// Command bench compares kmsring's AWS KMS-compatible endpoint with
// local-kms (github.com/nsmithuk/local-kms, built from the Go module proxy
// into this module only): GenerateDataKey and Decrypt through aws-sdk-go-v2
// over loopback, with 1 and 16 clients, in one run.
//
// Both servers run as child processes, so that the CPU time each spends
// (utime + stime from /proc/PID/stat) is measured apart from the clients'
// on a machine where they share the cores. kmsring runs as `kmsring serve`
// would: SigV4 verification on, the audit log on (stored in its embedded
// store), a non-admin principal whose every call is checked against a key
// policy with conditions.
//
//	cd compat/bench && go run . [-duration 5s] [-warmup 1s] [-cpuprofile kmsring.pprof]
//	cd compat/bench && go run . -servers kmsring,serve,do-nothing -ops GenerateDataKey
//	cd compat/bench && go run . -servers serve=OLD,serve,do-nothing -ops GenerateDataKey -rounds 5 -duration 1s
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "serve-kmsring" {
		serveKMSRing(os.Args[2])
		return
	}
	if len(os.Args) >= 2 && os.Args[1] == "replicas" {
		replicas(os.Args[2:])
		return
	}
	if len(os.Args) == 2 && os.Args[1] == "serve-noop" {
		serveNoop()
		return
	}
	duration := flag.Duration("duration", 5*time.Second, "measured time of each phase")
	warmup := flag.Duration("warmup", time.Second, "unmeasured time before each phase")
	cpuprofile := flag.String("cpuprofile", "", "write kmsring's (in-process) server CPU profile here")
	servers := flag.String("servers", "local-kms,kmsring,do-nothing", "the servers to drive, in order: local-kms, kmsring (the endpoint in a child process, set up as serve sets it up; kmsring=bare without the audit log, request log and metrics), serve (the kmsring serve binary built from this checkout; serve=PATH runs the binary PATH, such as one built from another commit), do-nothing")
	ops := flag.String("ops", "GenerateDataKey,Decrypt", "the operations")
	clientCounts := flag.String("clients", "1,16", "the numbers of concurrent clients")
	rounds := flag.Int("rounds", 1, "run each phase this many times, the servers taking turns, and sum them: on a shared machine, load that comes and goes then weighs on every server alike")
	flag.Parse()

	dir, err := os.MkdirTemp("", "kmsring-bench")
	check(err)
	defer os.RemoveAll(dir)

	var children []*child
	for _, name := range strings.Split(*servers, ",") {
		var c *child
		name, bin, _ := strings.Cut(name, "=")
		switch name {
		case "local-kms":
			c = startLocalKMS(dir)
		case "kmsring":
			c = startKMSRing(dir, *cpuprofile, bin == "bare")
		case "serve":
			c = startServe(dir, bin)
		case "do-nothing":
			c = startChild("do-nothing", nil, "serve-noop")
		default:
			log.Fatalf("unknown server %q", name)
		}
		defer c.stop()
		children = append(children, c)
	}
	var counts []int
	for _, s := range strings.Split(*clientCounts, ",") {
		n, err := strconv.Atoi(s)
		check(err)
		counts = append(counts, n)
	}

	fmt.Printf("CPU: %s, %d cores; Go %s; %d x %s per phase after %s of warm-up; load average %s\n\n", cpuModel(), numCPU(), goVersion(), *rounds, *duration, *warmup, loadAverage())
	fmt.Println("| server | operation | clients | calls/s | p50 | p99 | server CPU s | calls per server-CPU s |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|")
	type key struct {
		op      string
		clients int
		server  string
	}
	perCPU := map[key]float64{}
	p50s := map[key]time.Duration{}
	for _, op := range strings.Split(*ops, ",") {
		for _, clients := range counts {
			results := make([]result, len(children))
			for range max(*rounds, 1) {
				for i, s := range children {
					results[i] = results[i].add(s.run(op, clients, *warmup, *duration))
				}
			}
			for i, s := range children {
				r := results[i]
				fmt.Printf("| %s | %s | %d | %.0f | %s | %s | %.2f | %.0f |\n", s.name, op, clients, r.rate(), r.p(50), r.p(99), r.cpu.Seconds(), r.perCPU())
				perCPU[key{op, clients, s.name}] = r.perCPU()
				p50s[key{op, clients, s.name}] = r.p(50)
			}
		}
	}
	// Each kmsring server against local-kms and against the do-nothing
	// server, where those ran.
	for _, base := range []string{"local-kms", "do-nothing"} {
		for _, s := range children {
			if s.name == base || s.name == "local-kms" || s.name == "do-nothing" {
				continue
			}
			for _, op := range strings.Split(*ops, ",") {
				for _, clients := range counts {
					b, ok := perCPU[key{op, clients, base}]
					if !ok {
						continue
					}
					v := perCPU[key{op, clients, s.name}]
					fmt.Printf("%s / %s: %s, %2d clients: %.2fx calls per server-CPU second; p50 %s vs %s\n", s.name, base, op, clients,
						v/b, p50s[key{op, clients, s.name}], p50s[key{op, clients, base}])
				}
			}
		}
	}
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	check(err)
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

// child is a server process and a client for it.
type child struct {
	name  string
	cmd   *exec.Cmd
	c     *kms.Client
	keyID string
	blob  []byte
	ec    map[string]string
}

func newClient(url, id, secret string) *kms.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return kms.New(kms.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(url),
		Credentials:      credentials.NewStaticCredentialsProvider(id, secret, ""),
		RetryMaxAttempts: 1,
		HTTPClient:       &http.Client{Transport: tr},
	})
}

// startKMSRing runs the endpoint in a child process; bare, it runs it
// without the audit log, the request log and the metrics: the handler's
// own work (SigV4, the policy, the data key) through net/http, what no
// cut outside the handler can go below.
func startKMSRing(dir, cpuprofile string, bare bool) *child {
	name := "kmsring"
	var env []string
	if bare {
		name = "kmsring (no audit, log or metrics)"
		env = append(env, "BENCH_AUDIT=off", "BENCH_OBSERVE=off")
	}
	kdir, err := os.MkdirTemp(dir, "kmsring")
	check(err)
	if cpuprofile != "" && !bare {
		abs, err := filepath.Abs(cpuprofile)
		check(err)
		env = append(env, "BENCH_CPUPROFILE="+abs)
	}
	return startChild(name, env, "serve-kmsring", kdir)
}

// startChild runs this program with args as a server and reads the
// serverInfo it prints.
func startChild(name string, env []string, args ...string) *child {
	self, err := os.Executable()
	check(err)
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	check(err)
	check(cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	check(err)
	var info serverInfo
	check(json.Unmarshal([]byte(line), &info))
	c := &child{name: name, cmd: cmd, c: newClient(info.URL, info.AccessKeyID, info.SecretAccessKey), keyID: info.KeyID,
		ec: map[string]string{"tenant": "acme"}}
	c.prepare()
	return c
}

func startLocalKMS(dir string) *child {
	bin := filepath.Join(dir, "local-kms")
	build := exec.Command("go", "build", "-o", bin, "github.com/nsmithuk/local-kms")
	build.Stderr = os.Stderr
	check(build.Run())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "KMS_DATA_PATH="+filepath.Join(dir, "local-kms-data"),
		"KMS_REGION=us-east-1", "KMS_ACCOUNT_ID=111122223333", "KMS_SEED_PATH="+filepath.Join(dir, "none.yaml"))
	check(cmd.Start())
	c := &child{name: "local-kms", cmd: cmd, c: newClient("http://127.0.0.1:"+strconv.Itoa(port), "AKIAEXAMPLE", "secret"),
		ec: map[string]string{"tenant": "acme"}}
	for i := 0; ; i++ {
		k, err := c.c.CreateKey(context.Background(), &kms.CreateKeyInput{})
		if err == nil {
			c.keyID = aws.ToString(k.KeyMetadata.KeyId)
			break
		}
		if i == 100 {
			log.Fatalf("local-kms did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.prepare()
	return c
}

// prepare makes the blob that the Decrypt phases decrypt.
func (c *child) prepare() {
	dk, err := c.c.GenerateDataKey(context.Background(), &kms.GenerateDataKeyInput{KeyId: aws.String(c.keyID),
		KeySpec: types.DataKeySpecAes256, EncryptionContext: c.ec})
	check(err)
	c.blob = dk.CiphertextBlob
}

func (c *child) call(ctx context.Context, op string) error {
	var err error
	switch op {
	case "GenerateDataKey":
		_, err = c.c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(c.keyID), KeySpec: types.DataKeySpecAes256, EncryptionContext: c.ec})
	case "Decrypt":
		_, err = c.c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: c.blob, EncryptionContext: c.ec})
	}
	return err
}

func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	c.cmd.Wait()
}

type result struct {
	calls int
	wall  time.Duration
	cpu   time.Duration
	lat   []time.Duration
}

// add sums two runs of one phase.
func (r result) add(o result) result {
	lat := append(r.lat, o.lat...)
	slices.Sort(lat)
	return result{calls: r.calls + o.calls, wall: r.wall + o.wall, cpu: r.cpu + o.cpu, lat: lat}
}

func (r result) rate() float64   { return float64(r.calls) / r.wall.Seconds() }
func (r result) perCPU() float64 { return float64(r.calls) / r.cpu.Seconds() }
func (r result) p(q int) time.Duration {
	return r.lat[(len(r.lat)-1)*q/100].Round(time.Microsecond)
}

// run drives op with n concurrent clients: warm-up, then a measured phase.
func (c *child) run(op string, n int, warmup, d time.Duration) result {
	c.drive(op, n, warmup, nil)
	cpu0 := cpuTime(c.cmd.Process.Pid)
	lats := make([][]time.Duration, n)
	start := time.Now()
	c.drive(op, n, d, lats)
	wall := time.Since(start)
	r := result{wall: wall, cpu: cpuTime(c.cmd.Process.Pid) - cpu0}
	for _, l := range lats {
		r.lat = append(r.lat, l...)
	}
	slices.Sort(r.lat)
	r.calls = len(r.lat)
	return r
}

func (c *child) drive(op string, n int, d time.Duration, lats [][]time.Duration) {
	ctx := context.Background()
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			for {
				t := time.Now()
				if !t.Before(end) {
					return
				}
				if err := c.call(ctx, op); err != nil {
					log.Fatalf("%s %s: %v", c.name, op, err)
				}
				if lats != nil {
					lats[i] = append(lats[i], time.Since(t))
				}
			}
		})
	}
	wg.Wait()
}

// cpuTime returns the user + system CPU time of a process, all threads.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	check(err)
	return statCPU(b)
}

// statCPU reads utime + stime from the bytes of /proc/PID/stat.
func statCPU(b []byte) time.Duration {
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, err := strconv.ParseInt(f[11], 10, 64)
	check(err)
	stime, err := strconv.ParseInt(f[12], 10, 64)
	check(err)
	const ticksPerSecond = 100 // sysconf(_SC_CLK_TCK) on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	check(err)
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	check(err)
	return strings.Count(string(b), "\nprocessor") + 1
}

func goVersion() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	check(err)
	return strings.TrimSpace(string(out))
}
