package boltstore_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/stretchr/testify/require"
)

const crashEnv = "KMSRING_CRASH_DIR"

// TestCrashChild is the child process of TestCrashRecovery: it rotates and
// generates data keys in a loop, reporting each result on stdout only after
// the call returned, until it is killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("child process of TestCrashRecovery")
	}
	ctx := context.Background()
	rk, err := keyring.RootKeyFile(filepath.Join(dir, "root.key"))
	require.NoError(t, err)
	st, err := boltstore.Open(filepath.Join(dir, "kmsring.db"))
	require.NoError(t, err)
	k, err := keyring.Load(ctx, st, "alias/crash", keyring.WithRootKey(rk))
	if err != nil {
		k, err = keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithAlias("alias/crash"))
	}
	require.NoError(t, err)
	fmt.Println("ready")
	for {
		v, err := k.Rotate(ctx)
		require.NoError(t, err)
		fmt.Println("rotated", v.Number)
		for range 3 {
			dk, err := k.GenerateDataKey(ctx, keyring.WithEncryptionContext(map[string]string{"n": strconv.Itoa(int(v.Number))}))
			require.NoError(t, err)
			fmt.Println("blob", dk.Version, hex.EncodeToString(dk.Ciphertext))
		}
	}
}

// TestCrashRecovery kills a real child process with SIGKILL at a random
// moment of its rotation loop, many times over one store, and checks after
// each kill that the store opens, versions are dense, no rotation that
// returned is lost, and every blob the child was given still decrypts.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	trials := 20
	if s := os.Getenv("KMSRING_CRASH_TRIALS"); s != "" {
		trials, _ = strconv.Atoi(s)
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	type blob struct {
		version uint32
		data    []byte
	}
	var blobs []blob
	var maxRotated uint32
	for trial := range trials {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		lines := make(chan string)
		go func() {
			sc := bufio.NewScanner(out)
			sc.Buffer(make([]byte, 1<<16), 1<<20)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		require.Equal(t, "ready", <-lines, "trial %d: child started", trial)
		kill := time.After(time.Duration(5+rng.IntN(100)) * time.Millisecond)
	read:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					break read
				}
				f := strings.Fields(line)
				switch f[0] {
				case "rotated":
					n, _ := strconv.Atoi(f[1])
					maxRotated = max(maxRotated, uint32(n))
				case "blob":
					n, _ := strconv.Atoi(f[1])
					b, err := hex.DecodeString(f[2])
					require.NoError(t, err)
					blobs = append(blobs, blob{uint32(n), b})
				}
			case <-kill:
				require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
				kill = nil
			}
		}
		require.Error(t, cmd.Wait(), "trial %d: child was killed", trial)

		// Recover: the store opens and the key loads with dense versions.
		ctx := t.Context()
		rk, err := keyring.RootKeyFile(filepath.Join(dir, "root.key"))
		require.NoError(t, err)
		st, err := boltstore.Open(filepath.Join(dir, "kmsring.db"))
		require.NoError(t, err, "trial %d: store reopens", trial)
		k, err := keyring.Load(ctx, st, "alias/crash", keyring.WithRootKey(rk))
		require.NoError(t, err, "trial %d: key loads", trial)
		md, err := k.Describe(ctx)
		require.NoError(t, err)
		for i, v := range md.Versions {
			require.Equal(t, uint32(i+1), v.Number, "trial %d: versions dense", trial)
		}
		require.GreaterOrEqual(t, md.CurrentVersion, maxRotated, "trial %d: no returned rotation lost", trial)
		for _, b := range blobs {
			_, err := k.Decrypt(ctx, b.data, keyring.WithEncryptionContext(map[string]string{"n": strconv.Itoa(int(b.version))}))
			require.NoError(t, err, "trial %d: blob under version %d decrypts", trial, b.version)
		}
		require.NoError(t, st.Close())
	}
	t.Logf("%d trials: %d rotations survived, %d blobs decrypted after kills", trials, maxRotated, len(blobs))
}
