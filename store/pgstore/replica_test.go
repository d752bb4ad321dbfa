package pgstore_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/rotation"
	"github.com/kmsring/kmsring/store/pgstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The replica tests run real processes: each replica is this test binary
// re-executed as TestReplicaChild, with its own connection pool, keyring
// handle and scheduler, driven over stdin/stdout by the parent, which also
// shares one clock with all of them by sending the time with every tick.

const (
	replicaEnv = "KMSRING_REPLICA" // DSN|alias|root key hex
	alias      = "alias/replicated"
	period     = time.Hour
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TestReplicaChild is one replica. Commands, one per line:
//
//	tick UNIXNANO  set the clock, run the scheduler once, seal a data key:
//	               "tick ROTATED VERSION BLOBHEX ERR|-"
//	open BLOBHEX   decrypt: "open ok" or "open ERR"
//	rotate N       N on-demand rotations: "rotate V1,V2,..." or "rotate ERR"
func TestReplicaChild(t *testing.T) {
	env := os.Getenv(replicaEnv)
	if env == "" {
		t.Skip("child process of the replica tests")
	}
	parts := strings.Split(env, "|")
	ctx := context.Background()
	rkBytes, err := hex.DecodeString(parts[2])
	require.NoError(t, err)
	rk, err := keyring.NewRootKey(rkBytes)
	require.NoError(t, err)
	st, err := pgstore.Open(ctx, parts[0])
	require.NoError(t, err)
	defer st.Close()
	clk := clockwork.NewFakeClockAt(epoch)
	k, err := keyring.Load(ctx, st, parts[1], keyring.WithRootKey(rk), keyring.WithClock(clk), keyring.WithReloadInterval(0))
	require.NoError(t, err)
	s := rotation.New(rotation.WithClock(clk))
	s.Add(k)
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch f[0] {
		case "tick":
			ns, _ := strconv.ParseInt(f[1], 10, 64)
			clk.Advance(time.Unix(0, ns).Sub(clk.Now()))
			events, err := s.RunOnce(ctx)
			msg := "-"
			if err != nil {
				msg = strings.ReplaceAll(err.Error(), " ", "_")
			}
			dk, err := k.GenerateDataKey(ctx)
			require.NoError(t, err, "encryption never needs the database")
			fmt.Println("tick", len(events), dk.Version, hex.EncodeToString(dk.Ciphertext), msg)
		case "open":
			blob, _ := hex.DecodeString(f[1])
			if _, err := k.Decrypt(ctx, blob); err != nil {
				fmt.Println("open", strings.ReplaceAll(err.Error(), " ", "_"))
			} else {
				fmt.Println("open ok")
			}
		case "rotate":
			n, _ := strconv.Atoi(f[1])
			var vs []string
			for range n {
				v, err := k.Rotate(ctx)
				if err != nil {
					fmt.Println("rotate", strings.ReplaceAll(err.Error(), " ", "_"))
					break
				}
				vs = append(vs, strconv.Itoa(int(v.Number)))
			}
			if len(vs) == n {
				fmt.Println("rotate", strings.Join(vs, ","))
			}
		}
	}
}

type replica struct {
	name string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
}

func (r *replica) call(t testing.TB, line string) []string {
	t.Helper()
	_, err := fmt.Fprintln(r.in, line)
	require.NoError(t, err)
	require.True(t, r.out.Scan(), "%s answers %q", r.name, line)
	return strings.Fields(r.out.Text())
}

// startReplicas creates the key and starts n replica processes.
func startReplicas(t *testing.T, n int, rotationPeriod time.Duration) (string, *keyring.Keyring, []*replica) {
	ctx := t.Context()
	dsn := freshDSN(t)
	rkBytes := make([]byte, 32)
	copy(rkBytes, "replica test root key")
	rk, err := keyring.NewRootKey(rkBytes)
	require.NoError(t, err)
	st := open(t, dsn)
	opts := []keyring.Option{keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithAlias(alias), keyring.WithClock(clockwork.NewFakeClockAt(epoch))}
	if rotationPeriod > 0 {
		opts = append(opts, keyring.WithRotationPeriod(rotationPeriod))
	}
	k, err := keyring.New(ctx, opts...)
	require.NoError(t, err)
	var rs []*replica
	for i := range n {
		u, err := url.Parse(dsn)
		require.NoError(t, err)
		q := u.Query()
		q.Set("application_name", fmt.Sprintf("kmsring-replica-%d", i))
		u.RawQuery = q.Encode()
		cmd := exec.Command(os.Args[0], "-test.run=^TestReplicaChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), replicaEnv+"="+u.String()+"|"+alias+"|"+hex.EncodeToString(rkBytes))
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		require.NoError(t, err)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		r := &replica{name: fmt.Sprintf("replica %d", i), cmd: cmd, in: in, out: bufio.NewScanner(out)}
		r.out.Buffer(make([]byte, 1<<16), 1<<20)
		require.True(t, r.out.Scan())
		require.Equal(t, "ready", r.out.Text())
		rs = append(rs, r)
		t.Cleanup(func() {
			in.Close()
			cmd.Wait()
		})
	}
	return dsn, k, rs
}

// TestReplicasOneVersionPerPeriod drives 3 replica processes, each with its
// own scheduler, through 1,000 rotation periods on one database; cuts one
// replica's connections mid-run; then checks that every period made exactly
// one version and that every replica opens every blob any replica sealed.
func TestReplicasOneVersionPerPeriod(t *testing.T) {
	periods := 1000
	if testing.Short() {
		periods = 50
	}
	dsn, k, rs := startReplicas(t, 3, period)
	type blob struct {
		by   int
		data string
	}
	var blobs []blob
	cutAt := periods / 2
	failures, cut := 0, 0
	for p := 1; p <= periods; p++ {
		if p == cutAt {
			cut = terminate(t, dsn, "kmsring-replica-1")
		}
		now := epoch.Add(time.Duration(p) * period)
		answers := make([][]string, len(rs))
		var wg sync.WaitGroup
		for i, r := range rs {
			wg.Go(func() { answers[i] = r.call(t, "tick "+strconv.FormatInt(now.UnixNano(), 10)) })
		}
		wg.Wait()
		rotated := 0
		for i, a := range answers {
			n, _ := strconv.Atoi(a[1])
			rotated += n
			v, _ := strconv.Atoi(a[2])
			if a[4] != "-" {
				failures++
				require.Equal(t, 1, i, "period %d: only the cut replica may fail: %s", p, a[4])
				// A dead connection fails the one tick that draws it from
				// the pool, which then drops it. An idle one may be drawn
				// much later: pgxpool pings only connections idle for a
				// second, and a period here lasts milliseconds.
				require.LessOrEqual(t, failures, cut, "period %d: each cut connection fails at most one tick", p)
			} else {
				assert.Equal(t, p+1, v, "period %d: %s encrypts under the new version", p, rs[i].name)
			}
			blobs = append(blobs, blob{i, a[3]})
		}
		require.Equal(t, 1, rotated, "period %d: exactly one replica rotates", p)
	}
	md, err := k.Describe(t.Context())
	require.NoError(t, err)
	require.Equal(t, uint32(periods+1), md.CurrentVersion)
	for i, v := range md.Versions {
		require.Equal(t, uint32(i+1), v.Number, "versions dense")
		if i > 0 {
			require.Equal(t, keyring.OriginAutomatic, v.Origin)
		}
	}
	opened := 0
	for _, b := range blobs {
		for i, r := range rs {
			if i == b.by {
				continue
			}
			require.Equal(t, []string{"open", "ok"}, r.call(t, "open "+b.data), "%s opens a blob of replica %d", r.name, b.by)
			opened++
		}
	}
	t.Logf("%d replicas, %d periods, %d versions, %d blobs cross-opened %d times; %d tick failures after cutting replica 1's connections",
		len(rs), periods, md.CurrentVersion, len(blobs), opened, failures)
}

// terminate ends every backend of the named application and returns how
// many it ended.
func terminate(t *testing.T, dsn, app string) int {
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n))
	require.NotZero(t, n, "%s had connections to terminate", app)
	t.Logf("terminated %d backends of %s", n, app)
	return n
}

// TestConcurrentOnDemandRotations: 5 replica processes rotate 10 times each,
// all at once: 50 new versions, no gaps, no duplicates.
func TestConcurrentOnDemandRotations(t *testing.T) {
	_, k, rs := startReplicas(t, 5, 0)
	results := make([][]string, len(rs))
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Go(func() { results[i] = r.call(t, "rotate 10") })
	}
	wg.Wait()
	var got []int
	for i, res := range results {
		vs := strings.Split(res[1], ",")
		require.Len(t, vs, 10, "%s: %v", rs[i].name, res)
		for _, v := range vs {
			n, err := strconv.Atoi(v)
			require.NoError(t, err)
			got = append(got, n)
		}
	}
	slices.Sort(got)
	want := make([]int, 50)
	for i := range want {
		want[i] = i + 2
	}
	require.Equal(t, want, got, "versions 2..51, each given to exactly one call")
	md, err := k.Describe(t.Context())
	require.NoError(t, err)
	require.Equal(t, uint32(51), md.CurrentVersion)
}
