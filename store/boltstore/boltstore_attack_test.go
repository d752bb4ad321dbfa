package boltstore_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The child process of TestAttackBoltCyclicPage: it opens the file named
// by cycleEnv and reads everything, under a watchdog that ends it when
// the heap passes 256 MiB (exit 3) or after 20 s (exit 4), and with a
// 64 MiB stack limit, so that an unbounded loop or recursion ends quickly
// instead of exhausting the machine.
const cycleEnv = "KMSRING_BOLT_CYCLE"

func TestAttackBoltCycleChild(t *testing.T) {
	path := os.Getenv(cycleEnv)
	if path == "" {
		t.Skip("child process of TestAttackBoltCyclicPage")
	}
	debug.SetMaxStack(64 << 20)
	start := time.Now()
	go func() {
		var m runtime.MemStats
		for {
			time.Sleep(5 * time.Millisecond)
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > 256<<20 {
				fmt.Println("UNBOUNDED heap", m.HeapAlloc>>20, "MiB after", time.Since(start))
				os.Exit(3)
			}
			if time.Since(start) > 20*time.Second {
				fmt.Println("HANG")
				os.Exit(4)
			}
		}
	}()
	fmt.Println("opening")
	st, err := boltstore.Open(path)
	if err != nil {
		fmt.Println("ERR", err)
		return
	}
	fmt.Println("opened")
	defer st.Close()
	ctx := context.Background()
	ids, err := st.List(ctx)
	if err != nil {
		fmt.Println("ERR", err)
		return
	}
	for _, id := range ids {
		if _, err := st.Get(ctx, id); err != nil {
			fmt.Println("ERR", err)
			return
		}
		if _, err := st.Versions(ctx, id, 0); err != nil {
			fmt.Println("ERR", err)
			return
		}
	}
	fmt.Println("OK")
}

// TestAttackBoltCyclicPage: someone who can write the store file while no
// process holds it (a restored or edited backup) makes every branch page's
// first child its own page. bbolt follows page references without a cycle
// check, so without Open's own page walk the first read through such a
// page loops forever growing its cursor stack, or recurses until the stack
// limit kills the process. README: a damaged file is reported as boltstore.ErrCorrupt,
// never a panic; DESIGN.md: nothing read from a store can make the process
// hang or allocate without bound.
func TestAttackBoltCyclicPage(t *testing.T) {
	path, b := fill(t)
	pageSize := int(binary.LittleEndian.Uint32(b[24:])) // meta page: 16-byte header, magic, version, page size
	require.True(t, pageSize >= 512 && len(b)%pageSize == 0, "page size %d", pageSize)
	branches := 0
	for off := 0; off+pageSize <= len(b); off += pageSize {
		flags := binary.LittleEndian.Uint16(b[off+8:])
		count := binary.LittleEndian.Uint16(b[off+10:])
		if flags != 0x01 || count == 0 { // a branch page
			continue
		}
		id := binary.LittleEndian.Uint64(b[off:])
		binary.LittleEndian.PutUint64(b[off+16+8:], id) // element 0's child: itself
		branches++
	}
	require.NotZero(t, branches, "the file has branch pages")
	require.NoError(t, os.WriteFile(path, b, 0o600))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestAttackBoltCycleChild$", "-test.v")
	cmd.Env = append(os.Environ(), cycleEnv+"="+path)
	out, err := cmd.CombinedOutput()
	text := string(out)
	if i := strings.Index(text, "goroutine "); i > 0 {
		text = text[:i] // the stack dump of a fatal error says nothing more
	}
	t.Logf("%d branch pages made cyclic; the child said: %s", branches, strings.TrimSpace(text))
	require.NoError(t, err, "opening and reading the edited file must end with ErrCorrupt, not kill or hang the process")
	assert.Contains(t, text, "ERR", "the cycle is reported as an error")
}
