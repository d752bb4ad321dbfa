package keyring_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/memstore"
)

func ExampleKeyring_ScheduleKeyDeletion() {
	ctx := context.Background()
	clk := clockwork.NewFakeClockAt(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	k, err := keyring.New(ctx, keyring.WithClock(clk), keyring.WithAlias("alias/retired"))
	if err != nil {
		log.Fatal(err)
	}
	blob, err := k.Encrypt(ctx, []byte("old data"))
	if err != nil {
		log.Fatal(err)
	}

	at, err := k.ScheduleKeyDeletion(ctx, 7*24*time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(k.KeyState(), "until", at.Format("2006-01-02"))
	_, err = k.Decrypt(ctx, blob)
	fmt.Println("decrypt refused:", errors.Is(err, keyring.ErrKeyPendingDeletion))

	// Changed our mind: the key comes back disabled, as in AWS KMS.
	if err := k.CancelKeyDeletion(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(k.KeyState())
	if err := k.EnableKey(ctx); err != nil {
		log.Fatal(err)
	}
	pt, err := k.Decrypt(ctx, blob)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(k.KeyState(), string(pt))

	// Scheduled again, and the date comes (the rotation scheduler calls
	// DeleteIfDue): material and aliases are gone, a tombstone remains.
	if _, err := k.ScheduleKeyDeletion(ctx, 7*24*time.Hour); err != nil {
		log.Fatal(err)
	}
	clk.Advance(7 * 24 * time.Hour)
	if _, err := k.DeleteIfDue(ctx); err != nil {
		log.Fatal(err)
	}
	md, err := k.Describe(ctx)
	if err != nil {
		log.Fatal(err)
	}
	_, err = k.Decrypt(ctx, blob)
	fmt.Println(md.KeyState, md.Aliases, errors.Is(err, keyring.ErrKeyNotFound))
	// Output:
	// PendingDeletion until 2026-01-08
	// decrypt refused: true
	// Disabled
	// Enabled old data
	// Deleted [] true
}

func ExampleLoadOrNew() {
	ctx := context.Background()
	st := memstore.New() // a service would use boltstore or pgstore, with WithRootKey
	for range 2 {        // two starts of a service, or two replicas
		k, created, err := keyring.LoadOrNew(ctx, "alias/orders", keyring.WithStore(st),
			keyring.WithRotationPeriod(365*24*time.Hour))
		if err != nil {
			log.Fatal(err)
		}
		md, err := k.Describe(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("created:", created, "aliases:", md.Aliases, "rotation:", md.RotationEnabled)
	}
	// Output:
	// created: true aliases: [alias/orders] rotation: true
	// created: false aliases: [alias/orders] rotation: true
}
