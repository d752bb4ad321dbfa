package main

import (
	"bytes"
	"crypto/fips140"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/internal/pgtest"
	"github.com/kmsring/kmsring/keyring"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain makes the test binary run as kmsring when a script runs the
// kmsring command: the scripts drive the real command, as a user does.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"kmsring": main})
}

// envClockOffset, in the test binary only, moves the keys' clock ahead by a
// duration, so that scripts see rotations and deletions fall due without
// waiting: a fake clock set that far ahead of now.
const envClockOffset = "KMSRING_TEST_CLOCK_OFFSET"

// envRefresh, in the test binary only, sets how often serve reads the
// store's key list again (a duration), so that scripts see a key created
// by another process join the rotation scheduler without waiting a minute.
const envRefresh = "KMSRING_TEST_REFRESH_INTERVAL"

func init() {
	testClock = func() keyring.Clock {
		d, err := time.ParseDuration(os.Getenv(envClockOffset))
		if err != nil {
			return nil
		}
		return clockwork.NewFakeClockAt(time.Now().Add(d))
	}
	if d, err := time.ParseDuration(os.Getenv(envRefresh)); err == nil && d > 0 {
		serveRefresh = d
	}
}

// TestScripts runs testdata/*.txtar, one story each. Scripts that need
// PostgreSQL have the condition [postgres], true when
// KMSRING_TEST_POSTGRES_DSN is set; they get $PGSTORE, a store URL with a
// schema of their own.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(e *testscript.Env) error {
			e.Setenv("HOME", filepath.Join(e.WorkDir, "home"))
			e.Values[procsKey{}] = &procs{m: map[string]*proc{}}
			if os.Getenv(pgtest.Env) != "" {
				e.Setenv("PGSTORE", pgtest.DSN(t))
			}
			// With -cover (.ci/fips), the binary (this test process run
			// again) writes its coverage where the test's goes, and the
			// test's profile then includes it.
			d := os.Getenv("GOCOVERDIR")
			if f := flag.Lookup("test.gocoverdir"); d == "" && f != nil {
				d = f.Value.String()
			}
			if d != "" {
				e.Setenv("GOCOVERDIR", d)
			}
			// GODEBUG=fips140=only (.ci/fips) reaches the commands.
			if v := os.Getenv("GODEBUG"); v != "" {
				e.Setenv("GODEBUG", v)
			}
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if cond == "postgres" {
				return os.Getenv(pgtest.Env) != "", nil
			}
			if cond == "fips" { // the binary is this test process
				return fips140.Enabled(), nil
			}
			return false, errors.New("unknown condition " + cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"jsonfield": cmdJSONField,
			"exits":     cmdExits,
			"start":     cmdStart,
			"halt":      cmdHalt,
			"waitline":  cmdWaitline,
			"kmscall":   cmdKMSCall,
			"gencert":   cmdGenCert,
			"kmsv2":     cmdKMSv2,
			"httpget":   cmdHTTPGet,
		},
	})
}

// cmdJSONField implements "jsonfield FILE PATH VAR": it sets $VAR to the
// value at PATH (dot-separated object keys and list indexes, such as
// KeyMetadata.KeyId or Rotations.0.RotationType) in the JSON in FILE
// (stdout for the last command's output). "jsonfield FILE PATH =VALUE"
// asserts the value instead. With !, it asserts that PATH is absent.
func cmdJSONField(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 && !(neg && len(args) == 2) {
		ts.Fatalf("usage: jsonfield FILE PATH VAR")
	}
	var v any
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(args[0])), &v))
	for _, step := range strings.Split(args[1], ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[step]; !ok {
				if neg {
					return
				}
				ts.Fatalf("%s: no %q in %s", args[0], step, args[1])
			}
		case []any:
			i, err := strconv.Atoi(step)
			if err != nil || i < 0 || i >= len(x) {
				if neg {
					return
				}
				ts.Fatalf("%s: no element %q in %s", args[0], step, args[1])
			}
			v = x[i]
		default:
			ts.Fatalf("%s: %s: %q is not inside an object or list", args[0], args[1], step)
		}
	}
	if neg {
		ts.Fatalf("%s: %s is present: %v", args[0], args[1], v)
	}
	s, ok := v.(string)
	if !ok {
		b, _ := json.Marshal(v)
		s = string(b)
	}
	if want, ok := strings.CutPrefix(args[2], "="); ok {
		if s != want {
			ts.Fatalf("%s: %s is %q, want %q", args[0], args[1], s, want)
		}
		return
	}
	ts.Setenv(args[2], s)
}

// scriptEnv lists the variables cmdExits passes on from the script. The
// command is found on the test's PATH, where testscript.Main put kmsring.
var scriptEnv = []string{"PATH", "HOME", "TMPDIR", "USER", envStore, envRootKey, envRegion, envAccount, envProgress, envClockOffset, envRefresh, "GOCOVERDIR", "GODEBUG"}

// cmdExits implements "exits N COMMAND ARGS...": it runs the command and
// asserts that it exits with status N and, when N is not 0, that it wrote
// exactly one line to standard error. Its output is the script's stdout
// and stderr afterwards.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits N COMMAND ARGS...")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	cmd := exec.Command(args[1], args[2:]...)
	cmd.Env = scriptEnviron(ts)
	cmd.Dir = ts.MkAbs(".")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	ts.Stdout().Write(stdout.Bytes())
	ts.Stderr().Write(stderr.Bytes())
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else {
		ts.Check(err)
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d; stderr:\n%s", args[1], got, want, stderr.String())
	}
	if lines := strings.Count(stderr.String(), "\n"); want != 0 && (lines != 1 || !strings.HasSuffix(stderr.String(), "\n")) {
		ts.Fatalf("%s wrote %d lines to standard error, want one:\n%s", args[1], lines, stderr.String())
	}
}
