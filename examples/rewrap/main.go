// Command rewrap moves a directory of sealed files to their key's current
// version, so that old versions can be destroyed: the way to retire key
// versions after a rotation.
//
//	go run ./examples/rewrap -demo
//	go run ./examples/rewrap -dir DIR -store kmsring.db -root-key kmsring.key -key alias/orders
//
// Every *.sealed file in DIR is rewrapped with envelope.Rewrap (a new data
// key blob, payload bytes untouched) and replaced atomically (a temporary
// file renamed over it). Files already under the current version are left
// alone, so a run stopped by Ctrl-C, a crash or a power cut resumes where it
// stopped when started again. At the end it reports which versions the
// directory still references: the others can be scheduled for destruction.
//
// -demo seals 300 files under three versions in a temporary directory,
// stops the first run at 40% as if interrupted, and runs again to finish.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/boltstore"
)

func main() {
	log.SetFlags(0)
	dir := flag.String("dir", "", "directory of *.sealed files")
	storePath := flag.String("store", "kmsring.db", "embedded store `file`")
	rootKey := flag.String("root-key", "kmsring.key", "root key `file`")
	key := flag.String("key", "", "key ID or alias")
	demo := flag.Bool("demo", false, "run a self-contained demonstration")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	if *demo {
		err = runDemo(ctx, os.Stdout)
	} else if *dir == "" || *key == "" {
		flag.Usage()
		os.Exit(2)
	} else {
		err = run(ctx, os.Stdout, *dir, *storePath, *rootKey, *key)
	}
	if err != nil {
		log.Fatal("rewrap: ", err)
	}
}

func run(ctx context.Context, out io.Writer, dir, storePath, rootKeyPath, key string) error {
	rk, err := keyring.RootKeyFile(rootKeyPath)
	if err != nil {
		return err
	}
	st, err := boltstore.Open(storePath)
	if err != nil {
		return err
	}
	defer st.Close()
	k, err := keyring.Load(ctx, st, key, keyring.WithRootKey(rk))
	if err != nil {
		return err
	}
	_, err = rewrapDir(ctx, out, k, dir)
	return err
}

// rewrapDir rewraps every *.sealed file in dir and prints progress and a
// report.
func rewrapDir(ctx context.Context, out io.Writer, k *keyring.Keyring, dir string) (envelope.RewrapReport, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.sealed"))
	if err != nil {
		return envelope.RewrapReport{}, err
	}
	slices.Sort(names)
	current := k.CurrentVersion()
	fmt.Fprintf(out, "rewrapping %d files in %s to version %d of %s\n", len(names), dir, current, k.ID())
	bar := func(r envelope.RewrapReport) {
		done := r.Rewrapped + r.Current + r.Foreign + len(r.Failed)
		const width = 30
		filled := width * done / max(len(names), 1)
		fmt.Fprintf(out, "\r[%s%s] %d/%d  rewrapped %d  already current %d  failed %d",
			strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, len(names), r.Rewrapped, r.Current, len(r.Failed))
	}
	r, err := envelope.RewrapAll(ctx, k, files(names), replace, bar)
	fmt.Fprintln(out)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(out, "interrupted: run again to resume")
		return r, err
	}
	for name, ferr := range r.Failed {
		fmt.Fprintf(out, "failed: %s: %v\n", filepath.Base(name), ferr)
	}
	if r.Foreign > 0 {
		fmt.Fprintf(out, "%d files belong to other keys and were left alone\n", r.Foreign)
	}
	fmt.Fprintf(out, "versions still referenced: %v\n", r.ReferencedVersions())
	var free []uint32
	for v := uint32(1); v < current; v++ {
		if !r.Referenced(v) {
			free = append(free, v)
		}
	}
	fmt.Fprintf(out, "versions no file in %s needs any more: %v\n", dir, free)
	return r, err
}

// files yields the name and bytes of each file; unreadable files yield nil
// bytes, which RewrapAll reports as failed.
func files(names []string) iter.Seq2[string, []byte] {
	return func(yield func(string, []byte) bool) {
		for _, n := range names {
			b, _ := os.ReadFile(n)
			if !yield(n, b) {
				return
			}
		}
	}
}

// replace writes b over the file name atomically: a crash leaves either the
// old file or the new one, never a mix.
func replace(name string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".rewrap-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

// runDemo seals files under three versions, interrupts a first run at 40%
// and resumes.
func runDemo(ctx context.Context, out io.Writer) error {
	base, err := os.MkdirTemp("", "kmsring-rewrap-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	rk, err := keyring.RootKeyFile(filepath.Join(base, "root.key"))
	if err != nil {
		return err
	}
	st, err := boltstore.Open(filepath.Join(base, "kmsring.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithAlias("alias/archive"))
	if err != nil {
		return err
	}
	dir := filepath.Join(base, "records")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	const perVersion = 100
	for v := 1; v <= 3; v++ {
		for i := range perVersion {
			name := fmt.Sprintf("record-%d-%03d", v, i)
			sealed, err := envelope.Seal(ctx, k, []byte("contents of "+name), envelope.WithEncryptionContext(map[string]string{"file": name}))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, name+".sealed"), sealed, 0o600); err != nil {
				return err
			}
		}
		if _, err := k.Rotate(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "sealed %d files under versions 1, 2 and 3; the key is now at version 4\n\n", 3*perVersion)

	first, interrupt := context.WithCancel(ctx)
	n := 0
	counting := &interrupter{after: 3 * perVersion * 4 / 10, cancel: interrupt, n: &n}
	_, err = rewrapDir(first, counting.wrap(out), k, dir)
	interrupt()
	if !errors.Is(err, context.Canceled) {
		return fmt.Errorf("the first run should have been interrupted: %v", err)
	}
	fmt.Fprintln(out, "\nsecond run:")
	r, err := rewrapDir(ctx, out, k, dir)
	if err != nil {
		return err
	}
	for v := uint32(1); v <= 3; v++ {
		if _, err := k.ScheduleVersionDestruction(ctx, v, 0); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "scheduled versions 1-3 for destruction in 30 days; %d files rewrapped in the second run, %d were already done\n", r.Rewrapped, r.Current)
	return nil
}

// interrupter cancels a run after a number of progress updates, standing
// in for Ctrl-C.
type interrupter struct {
	after  int
	cancel func()
	n      *int
}

func (i *interrupter) wrap(w io.Writer) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		if len(p) > 0 && p[0] == '\r' {
			if *i.n++; *i.n == i.after {
				i.cancel()
			}
		}
		return w.Write(p)
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
