package rotation_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/rotation"
)

// A scheduler on a fake clock: three years of yearly rotation in
// milliseconds.
func ExampleScheduler_Run() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := clockwork.NewFakeClockAt(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	const year = 365 * 24 * time.Hour
	k, err := keyring.New(ctx, keyring.WithClock(clk), keyring.WithRotationPeriod(year))
	if err != nil {
		log.Fatal(err)
	}
	events := make(chan rotation.Event)
	s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(quiet),
		rotation.WithOnRotate(func(e rotation.Event) { events <- e }))
	s.Add(k)
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()

	for range 3 {
		clk.BlockUntil(1) // Run is asleep until the key is due
		clk.Advance(year)
		e := <-events
		fmt.Println(e.At.Format("2006-01-02"), e.Origin, e.Previous, "->", e.Version)
	}
	cancel()
	fmt.Println(<-done)
	// Output:
	// 2027-01-01 automatic 1 -> 2
	// 2028-01-01 automatic 2 -> 3
	// 2028-12-31 automatic 3 -> 4
	// context canceled
}

func ExampleOverdue() {
	ctx := context.Background()
	clk := clockwork.NewFakeClockAt(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	k, err := keyring.New(ctx, keyring.WithClock(clk), keyring.WithRotationPeriod(365*24*time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	md, err := k.Describe(ctx)
	if err != nil {
		log.Fatal(err)
	}
	grace := 35 * 24 * time.Hour // alarm after 400 days without rotation
	fmt.Println(rotation.Overdue(md, clk.Now().Add(400*24*time.Hour), grace))
	fmt.Println(rotation.Overdue(md, clk.Now().Add(401*24*time.Hour), grace))
	// Output:
	// false
	// true
}
