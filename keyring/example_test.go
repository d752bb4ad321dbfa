package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/memstore"
)

func ExampleKeyring_GenerateDataKey() {
	ctx := context.Background()
	k, err := keyring.New(ctx)
	if err != nil {
		log.Fatal(err)
	}
	ec := map[string]string{"tenant": "acme"}
	dk, err := k.GenerateDataKey(ctx, keyring.WithEncryptionContext(ec))
	if err != nil {
		log.Fatal(err)
	}
	defer dk.Destroy()
	// Encrypt with dk.Plaintext, store dk.Ciphertext beside the data.

	// Later: the blob names its key and version.
	keyID, version, err := keyring.ParseCiphertext(dk.Ciphertext)
	if err != nil {
		log.Fatal(err)
	}
	key, err := k.Decrypt(ctx, dk.Ciphertext, keyring.WithEncryptionContext(ec))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(keyID == k.ID(), version, len(key), string(key) == string(dk.Plaintext))
	// Output: true 1 32 true
}

func ExampleKeyring_Rotate() {
	ctx := context.Background()
	clk := clockwork.NewFakeClockAt(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	k, err := keyring.New(ctx, keyring.WithClock(clk))
	if err != nil {
		log.Fatal(err)
	}
	old, err := k.Encrypt(ctx, []byte("sealed under version 1"))
	if err != nil {
		log.Fatal(err)
	}

	clk.Advance(24 * time.Hour)
	v, err := k.Rotate(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("rotated to version", v.Number, v.Origin, v.CreatedAt.Format("2006-01-02"))

	dk, err := k.GenerateDataKey(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("new data keys use version", dk.Version)

	pt, err := k.Decrypt(ctx, old)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(pt))
	// Output:
	// rotated to version 2 on-demand 2026-01-02
	// new data keys use version 2
	// sealed under version 1
}

func ExampleKeyring_RotateIfDue() {
	ctx := context.Background()
	clk := clockwork.NewFakeClockAt(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	k, err := keyring.New(ctx, keyring.WithClock(clk), keyring.WithRotationPeriod(90*24*time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	clk.Advance(1000 * 24 * time.Hour) // a long outage
	for range 2 {
		v, rotated, err := k.RotateIfDue(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(v.Number, rotated)
	}
	fmt.Println("next due", k.NextRotationAt().Format("2006-01-02"))
	// Output:
	// 2 true
	// 2 false
	// next due 2028-12-26
}

// Moving a store to a new root key: run with both keys, rewrap, then drop
// the old one.
func ExampleRotateRootKey() {
	ctx := context.Background()
	oldRK, err := keyring.NewRootKey(bytes.Repeat([]byte{1}, keyring.RootKeySize))
	if err != nil {
		log.Fatal(err)
	}
	newRK, err := keyring.NewRootKey(bytes.Repeat([]byte{2}, keyring.RootKeySize))
	if err != nil {
		log.Fatal(err)
	}
	st := memstore.New()
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(oldRK))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := k.Rotate(ctx); err != nil {
		log.Fatal(err)
	}

	// 1. Processes run with keyring.RootKeys(newRK, oldRK).
	// 2. One of them rewraps every version; repeat it if interrupted.
	n, err := keyring.RotateRootKey(ctx, st, oldRK, newRK)
	if err != nil {
		log.Fatal(err)
	}
	// 3. The old root key can go.
	_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(newRK))
	fmt.Println(n, "versions rewrapped; load with the new root key:", err)
	_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(oldRK))
	fmt.Println(errors.Is(err, keyring.ErrRootKey))
	// Output:
	// 2 versions rewrapped; load with the new root key: <nil>
	// true
}

// Retiring an old version: disable it to see what breaks, then schedule it
// for destruction; the scheduler destroys it when the wait is over.
func ExampleKeyring_ScheduleVersionDestruction() {
	ctx := context.Background()
	clk := clockwork.NewFakeClockAt(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	k, err := keyring.New(ctx, keyring.WithClock(clk))
	if err != nil {
		log.Fatal(err)
	}
	old, err := k.Encrypt(ctx, []byte("sealed under version 1"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := k.Rotate(ctx); err != nil {
		log.Fatal(err)
	}
	if err := k.DisableVersion(ctx, 1); err != nil {
		log.Fatal(err)
	}
	_, err = k.Decrypt(ctx, old)
	fmt.Println(errors.Is(err, keyring.ErrVersionDisabled))

	at, err := k.ScheduleVersionDestruction(ctx, 1, 0) // the default 30 days
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("destroyed on", at.Format("2006-01-02"))
	clk.Advance(30 * 24 * time.Hour)
	destroyed, err := k.DestroyDueVersions(ctx) // what the rotation scheduler does
	if err != nil {
		log.Fatal(err)
	}
	_, err = k.Decrypt(ctx, old)
	fmt.Println(len(destroyed), errors.Is(err, keyring.ErrVersionDestroyed))
	// Output:
	// true
	// destroyed on 2026-01-31
	// 1 true
}

// A passphrase root key whose every algorithm is approved in FIPS 140-3:
// PBKDF2-HMAC-SHA-256 (at least 600,000 iterations) and AES-256-GCM.
func ExampleNewPBKDF2RootKey() {
	ctx := context.Background()
	rk, err := keyring.NewPBKDF2RootKey([]byte("a long passphrase, not this one"), keyring.DefaultPBKDF2Iterations)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rk)
	k, err := keyring.New(ctx, keyring.WithRootKey(rk), keyring.WithApprovedAlgorithms())
	if err != nil {
		log.Fatal(err)
	}
	blob, err := k.Encrypt(ctx, []byte("secret"))
	if err != nil {
		log.Fatal(err)
	}
	pt, err := k.Decrypt(ctx, blob)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(pt))
	// Output:
	// keyring.PassphraseRootKey(PBKDF2-HMAC-SHA-256 i=600000)
	// secret
}
