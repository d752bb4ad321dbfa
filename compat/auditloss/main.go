// Command auditloss measures what a crash of `kmsring serve` loses from
// the audit log: clients call GenerateDataKey as fast as serve answers,
// serve is killed with SIGKILL, and the successes clients saw are counted
// against the GenerateDataKey records the store holds. It runs serve as
// it runs by default (fail-open: records are written behind the answer)
// and with --audit-fail-closed, on an embedded store.
//
//	cd compat && go run ./auditloss [-clients 8] [-duration 2s] [-runs 3]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

func main() {
	clients := flag.Int("clients", 8, "concurrent clients")
	duration := flag.Duration("duration", 2*time.Second, "how long clients call before the kill")
	runs := flag.Int("runs", 3, "runs of each mode")
	flag.Parse()
	dir, err := os.MkdirTemp("", "kmsring-auditloss-")
	check(err)
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "kmsring")
	build := exec.Command("go", "build", "-o", bin, "./cmd/kmsring")
	build.Dir = ".."
	build.Stderr = os.Stderr
	check(build.Run())
	for _, mode := range [][]string{nil, {"--audit-fail-closed", "2s"}} {
		for run := range *runs {
			seen, stored, perSec := once(bin, filepath.Join(dir, fmt.Sprint(len(mode), run)), mode, *clients, *duration)
			fmt.Printf("serve %v: %d successes seen, %d recorded, %d lost (%.0f requests/s; %.0f ms of traffic)\n",
				mode, seen, stored, seen-stored, perSec, 1000*float64(seen-stored)/perSec)
		}
	}
}

var listening = regexp.MustCompile(`^listening on (http://\S+)$`)

func once(bin, dir string, mode []string, clients int, d time.Duration) (seen, stored int, perSec float64) {
	check(os.MkdirAll(dir, 0o700))
	env := append(os.Environ(), "KMSRING_STORE="+filepath.Join(dir, "kms.db"), "KMSRING_ROOT_KEY_FILE="+filepath.Join(dir, "kms.key"))
	run := func(v any, args ...string) {
		c := exec.Command(bin, args...)
		c.Env = env
		out, err := c.Output()
		check(err)
		if v != nil {
			check(json.Unmarshal(out, v))
		}
	}
	var key struct{ KeyMetadata struct{ KeyId string } }
	run(&key, "create-key")
	var ak struct {
		AccessKey struct{ AccessKeyId, SecretAccessKey string }
	}
	run(&ak, "create-access-key", "--principal", "ops", "--admin")

	c := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0"}, mode...)...)
	c.Env = env
	out, err := c.StdoutPipe()
	check(err)
	check(c.Start())
	sc := bufio.NewScanner(out)
	var url string
	for sc.Scan() {
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
			break
		}
	}
	client := kms.New(kms.Options{Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider(ak.AccessKey.AccessKeyId, ak.AccessKey.SecretAccessKey, ""),
		Retryer:     aws.NopRetryer{}})
	var ok atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				_, err := client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(key.KeyMetadata.KeyId), KeySpec: types.DataKeySpecAes256})
				if err == nil {
					ok.Add(1)
				}
			}
		})
	}
	time.Sleep(d)
	c.Process.Signal(syscall.SIGKILL)
	c.Wait()
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	var events struct{ Events []json.RawMessage }
	run(&events, "audit", "lookup", "--operation", "GenerateDataKey")
	return int(ok.Load()), len(events.Events), float64(ok.Load()) / elapsed.Seconds()
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
