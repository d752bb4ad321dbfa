// Command propagation measures how soon a change made by one process
// reaches a second `kmsring serve` sharing a PostgreSQL store: a disabled
// key (DisableKey through the first serve) and a revoked access key
// (update-access-key --status Inactive, by the library as the command
// does), each refused by the second serve. It runs the real binary twice
// in a schema of its own, and times from the moment the change is
// requested to the first refusal seen by a client polling the second
// serve every half millisecond.
//
//	cd compat && go run ./propagation -dsn postgres://postgres@127.0.0.1:5432/test [-trials 20]
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/jackc/pgx/v5"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/kmsapi"
	"github.com/kmsring/kmsring/store/pgstore"
)

func main() {
	dsn := flag.String("dsn", os.Getenv("KMSRING_TEST_POSTGRES_DSN"), "a PostgreSQL database to make a schema in")
	trials := flag.Int("trials", 20, "trials of each change")
	poolMax := flag.Int("pool-max-conns", 0, "the serves' connection pool size (pool_max_conns; 0: pgx's default)")
	flag.Parse()
	if *dsn == "" {
		log.Fatal("give -dsn or KMSRING_TEST_POSTGRES_DSN")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends both serve processes
	dir, err := os.MkdirTemp("", "kmsring-propagation-")
	check(err)
	defer os.RemoveAll(dir)

	// A schema of its own.
	conn, err := pgx.Connect(ctx, *dsn)
	check(err)
	var rb [6]byte
	rand.Read(rb[:])
	schema := "propagation_" + hex.EncodeToString(rb[:])
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+schema)
	check(err)
	defer conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	u, err := url.Parse(*dsn)
	check(err)
	q := u.Query()
	q.Set("search_path", schema)
	if *poolMax > 0 {
		q.Set("pool_max_conns", fmt.Sprint(*poolMax))
	}
	u.RawQuery = q.Encode()
	storeURL := u.String()

	bin := filepath.Join(dir, "kmsring")
	build := exec.Command("go", "build", "-o", bin, "./cmd/kmsring")
	build.Dir = ".." // the library's module, whose go.sum covers the command
	build.Stderr = os.Stderr
	check(build.Run())
	env := append(os.Environ(), "KMSRING_STORE="+storeURL, "KMSRING_ROOT_KEY_FILE="+filepath.Join(dir, "root.key"))
	kmsringJSON := func(v any, args ...string) {
		c := exec.Command(bin, args...)
		c.Env = env
		c.Stderr = os.Stderr
		out, err := c.Output()
		check(err)
		if v != nil {
			check(json.Unmarshal(out, v))
		}
	}
	var created struct{ KeyMetadata struct{ KeyId string } }
	kmsringJSON(&created, "create-key", "--description", "propagation")
	keyID := created.KeyMetadata.KeyId
	type accessKey struct {
		AccessKey struct{ AccessKeyId, SecretAccessKey string }
	}
	var admin, app accessKey
	kmsringJSON(&admin, "create-access-key", "--principal", "ops", "--admin")
	kmsringJSON(&app, "create-access-key", "--principal", "app", "--admin")

	urlA, stopA := startServe(ctx, bin, env, filepath.Join(dir, "a.log"))
	defer stopA()
	urlB, stopB := startServe(ctx, bin, env, filepath.Join(dir, "b.log"))
	defer stopB()
	a := client(urlA, admin.AccessKey.AccessKeyId, admin.AccessKey.SecretAccessKey)
	b := client(urlB, admin.AccessKey.AccessKeyId, admin.AccessKey.SecretAccessKey)
	bApp := client(urlB, app.AccessKey.AccessKeyId, app.AccessKey.SecretAccessKey)

	st, err := pgstore.Open(ctx, storeURL)
	check(err)
	defer st.Close()
	rk, err := keyring.ReadRootKeyFile(filepath.Join(dir, "root.key"))
	check(err)

	gdk := func(c *kms.Client) error {
		_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(keyID), KeySpec: types.DataKeySpecAes256})
		return err
	}
	list := func(c *kms.Client) error {
		_, err := c.ListKeys(ctx, &kms.ListKeysInput{})
		return err
	}
	var disabled, revoked []time.Duration
	for range *trials {
		_, err := a.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(keyID)})
		check(err)
		waitFor(func() bool { return gdk(b) == nil })
		start := time.Now()
		_, err = a.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(keyID)})
		check(err)
		waitFor(func() bool {
			var de *types.DisabledException
			return errors.As(gdk(b), &de)
		})
		disabled = append(disabled, time.Since(start))

		check(kmsapi.UpdateAccessKey(ctx, st, rk, app.AccessKey.AccessKeyId, kmsapi.AccessKeyActive))
		waitFor(func() bool { return list(bApp) == nil })
		start = time.Now()
		check(kmsapi.UpdateAccessKey(ctx, st, rk, app.AccessKey.AccessKeyId, kmsapi.AccessKeyInactive))
		waitFor(func() bool { return list(bApp) != nil })
		revoked = append(revoked, time.Since(start))
	}
	report("disabled key refused by the other serve", disabled)
	report("revoked access key refused by the other serve", revoked)
}

// waitFor polls cond every pollInterval (plus the request's own time),
// for at most 10 s. A pause between polls keeps the client from taking
// the CPU the serves need on a small machine.
func waitFor(cond func() bool) {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		time.Sleep(pollInterval)
		if time.Now().After(deadline) {
			panic("no change seen in 10 s") // runs the deferred stops
		}
	}
}

func report(what string, ds []time.Duration) {
	slices.Sort(ds)
	med := ds[len(ds)/2]
	if len(ds)%2 == 0 {
		med = (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
	}
	fmt.Printf("%s: %v\n", what, ds)
	fmt.Printf("%s: %d trials, median %v, max %v, min %v\n", what, len(ds), med.Round(10*time.Microsecond), ds[len(ds)-1].Round(10*time.Microsecond), ds[0].Round(10*time.Microsecond))
}

// pollInterval is the pause between polls: the measurement's resolution.
const pollInterval = 500 * time.Microsecond

var listening = regexp.MustCompile(`^listening on (http://\S+)$`)

// startServe runs kmsring serve and returns its URL and a function that
// stops it.
func startServe(ctx context.Context, bin string, env []string, logPath string) (string, func()) {
	c := exec.CommandContext(ctx, bin, "serve", "--addr", "127.0.0.1:0")
	c.Env = env
	lf, err := os.Create(logPath)
	check(err)
	c.Stderr = lf
	out, err := c.StdoutPipe()
	check(err)
	check(c.Start())
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			go func() {
				for sc.Scan() {
				}
			}()
			return m[1], func() {
				c.Process.Signal(os.Interrupt)
				c.Wait()
			}
		}
	}
	c.Process.Kill()
	log.Fatal("serve did not start")
	return "", nil
}

func client(url, id, secret string) *kms.Client {
	return kms.New(kms.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider(id, secret, ""),
		Retryer:      aws.NopRetryer{},
	})
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
