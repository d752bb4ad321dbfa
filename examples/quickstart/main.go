// Command quickstart tells kmsring's rotation story end to end, the way a
// team tests rotation before production: create a key, seal a record,
// rotate, and live through three years of yearly rotation on a fake clock.
//
//	go run ./examples/quickstart
//
// The key lives in the embedded store, kmsring-quickstart.db in the current
// directory, under the root key in kmsring-quickstart.key. A second run
// finds the key from the first, shows its versions and history, opens the
// record the first run sealed and rotates once more. Delete the three
// kmsring-quickstart.* files to start over.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/rotation"
	"github.com/kmsring/kmsring/store/boltstore"
)

const year = 365 * 24 * time.Hour

const alias = "alias/quickstart"

// files are where the quickstart keeps its state.
type files struct{ store, rootKey, record string }

func main() {
	log.SetFlags(0)
	f := files{}
	flag.StringVar(&f.store, "store", "kmsring-quickstart.db", "embedded store `file`")
	flag.StringVar(&f.rootKey, "root-key", "kmsring-quickstart.key", "root key `file` (created 0600 if missing)")
	flag.StringVar(&f.record, "record", "kmsring-quickstart.sealed", "`file` for the sealed record")
	flag.Parse()
	if err := run(context.Background(), f); err != nil {
		log.Fatal("quickstart: ", err)
	}
}

func run(ctx context.Context, f files) error {
	rk, err := keyring.RootKeyFile(f.rootKey)
	if err != nil {
		return err
	}
	st, err := boltstore.Open(f.store)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Printf("Embedded store %s, root key %s\n", f.store, f.rootKey)

	// A fake clock lets this program live through years in milliseconds.
	// A service leaves WithClock out and gets the wall clock.
	clk := clockwork.NewFakeClockAt(time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC))
	k, err := keyring.Load(ctx, st, alias, keyring.WithRootKey(rk), keyring.WithClock(clk))
	switch {
	case err == nil:
		return again(ctx, k, clk, f)
	case !errors.Is(err, keyring.ErrKeyNotFound):
		return err
	}
	day := func() string { return clk.Now().Format("2006-01-02") }

	step(1, "Create a key")
	k, err = keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithClock(clk), keyring.WithAlias(alias))
	if err != nil {
		return err
	}
	fmt.Printf("   key ID %s (%s), version 1, created %s\n", k.ID(), alias, day())

	step(2, "Generate a data key")
	dk1, err := k.GenerateDataKey(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("   %d-byte data key, wrapped under version %d into a %d-byte blob\n", len(dk1.Plaintext), dk1.Version, len(dk1.Ciphertext))
	dk1.Destroy()

	step(3, "Seal a record")
	ec := map[string]string{"table": "orders", "id": "1001"}
	record := []byte(`{"order":1001,"card":"4111 1111 1111 1111"}`)
	sealed, err := envelope.Seal(ctx, k, record, envelope.WithEncryptionContext(ec))
	if err != nil {
		return err
	}
	h, err := envelope.Inspect(sealed)
	if err != nil {
		return err
	}
	fmt.Printf("   %d bytes of plaintext sealed into %d bytes; the header names key %s version %d\n",
		len(record), len(sealed), short(h.KeyID), h.Version)
	if err := os.WriteFile(f.record, sealed, 0o600); err != nil {
		return err
	}

	step(4, "Rotate on demand")
	clk.Advance(30 * 24 * time.Hour)
	v, err := k.Rotate(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("   %s: version %d (%s) is now current\n", day(), v.Number, v.Origin)

	step(5, "Generate another data key")
	dk2, err := k.GenerateDataKey(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("   new data key: key %s version %d (the first was key %s version %d)\n",
		short(dk2.KeyID), dk2.Version, short(dk1.KeyID), dk1.Version)
	fmt.Println("   same key ID, new version: callers never change configuration")
	dk2.Destroy()

	step(6, "Open the old record")
	pt, err := envelope.Open(ctx, k, sealed, envelope.WithEncryptionContext(ec))
	if err != nil {
		return err
	}
	fmt.Printf("   opened with version %d, found from its header: %s\n", h.Version, pt)
	if _, err := envelope.Open(ctx, k, sealed, envelope.WithEncryptionContext(map[string]string{"table": "orders", "id": "1002"})); err != nil {
		fmt.Printf("   with another encryption context it fails: %v\n", err)
	}

	step(7, "Enable yearly rotation and live through three years")
	if err := k.EnableRotation(ctx, year); err != nil {
		return err
	}
	fmt.Printf("   %s: rotation enabled, next due %s\n", day(), k.NextRotationAt().Format("2006-01-02"))
	rotated := make(chan rotation.Event)
	s := rotation.New(rotation.WithClock(clk),
		rotation.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		rotation.WithOnRotate(func(e rotation.Event) { rotated <- e }))
	s.Add(k)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	for range 3 {
		if err := clk.BlockUntilContext(ctx, 1); err != nil { // the scheduler is asleep
			return err
		}
		clk.Advance(year)
		e := <-rotated
		fmt.Printf("   %s: automatic rotation, version %d -> %d\n", e.At.Format("2006-01-02"), e.Previous, e.Version)
	}
	stop()
	if err := <-done; err != context.Canceled {
		return err
	}

	step(8, "Describe the key")
	md, err := describe(ctx, k)
	if err != nil {
		return err
	}
	pt, err = envelope.Open(ctx, k, sealed, envelope.WithEncryptionContext(ec))
	if err != nil {
		return err
	}
	fmt.Printf("   the record sealed under version 1 still opens (%d bytes)\n", len(pt))

	step(9, "Check for overdue rotation (the 400-day alarm)")
	grace := 35 * 24 * time.Hour
	fmt.Printf("   %s: overdue: %t\n", day(), rotation.Overdue(md, clk.Now(), grace))
	clk.Advance(401 * 24 * time.Hour) // no scheduler runs now
	fmt.Printf("   %s, 401 days without a rotation: overdue: %t\n", day(), rotation.Overdue(md, clk.Now(), grace))
	fmt.Printf("\nThe key is kept in %s. Run the quickstart again to find it there.\n", f.store)
	return nil
}

// again is the second run: the key comes from the store.
func again(ctx context.Context, k *keyring.Keyring, clk *clockwork.FakeClock, f files) error {
	step(1, "Find the key from the earlier run")
	md, err := describe(ctx, k)
	if err != nil {
		return err
	}
	fmt.Printf("   %s is key %s\n", alias, k.ID())

	step(2, "Open the record the first run sealed")
	sealed, err := os.ReadFile(f.record)
	if err != nil {
		return err
	}
	h, err := envelope.Inspect(sealed)
	if err != nil {
		return err
	}
	pt, err := envelope.Open(ctx, k, sealed, envelope.WithEncryptionContext(h.EncryptionContext))
	if err != nil {
		return err
	}
	fmt.Printf("   sealed under version %d: %s\n", h.Version, pt)

	step(3, "Rotate on demand once more")
	clk.Advance(md.LastRotatedAt.Add(24 * time.Hour).Sub(clk.Now()))
	v, err := k.Rotate(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("   %s: version %d (%s) is now current, and stored for the next run\n", v.CreatedAt.Format("2006-01-02"), v.Number, v.Origin)
	return nil
}

// describe prints what Describe returns.
func describe(ctx context.Context, k *keyring.Keyring) (keyring.Metadata, error) {
	md, err := k.Describe(ctx)
	if err != nil {
		return md, err
	}
	fmt.Printf("   created %s, current version %d, rotation enabled %t, period %d days\n",
		md.CreatedAt.Format("2006-01-02"), md.CurrentVersion, md.RotationEnabled, md.RotationPeriod/(24*time.Hour))
	fmt.Printf("   last rotated %s, next rotation %s\n", md.LastRotatedAt.Format("2006-01-02"), md.NextRotationAt.Format("2006-01-02"))
	for _, v := range md.Versions {
		fmt.Printf("     version %d  %s  %-9s  %s\n", v.Number, v.CreatedAt.Format("2006-01-02"), v.Origin, v.State)
	}
	return md, nil
}

func step(n int, title string) { fmt.Printf("\n%d. %s\n", n, title) }

// short abbreviates a key ID for display.
func short(id string) string { return id[:strings.IndexByte(id, '-')] + "..." }
