package audit_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/memstore"
)

// Move the records older than a day out of the store into an archive
// directory, then verify archive and store as one chain.
func ExampleArchive() {
	ctx := context.Background()
	st := memstore.New()
	logger := audit.New(audit.WithStore(st))
	defer logger.Close()
	clk := clockwork.NewFakeClockAt(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithClock(clk), keyring.WithAuditor(logger))
	if err != nil {
		log.Fatal(err)
	}
	for range 3 {
		if _, err := k.GenerateDataKey(ctx); err != nil {
			log.Fatal(err)
		}
		clk.Advance(24 * time.Hour)
	}
	if err := logger.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "audit-archive")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	res, err := audit.Archive(ctx, st, dir, clk.Now().Add(-24*time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("archived records %d to %d in %d segment\n", res.FirstSeq, res.LastSeq, res.Segments)
	v, err := audit.Verify(ctx, st, audit.VerifyWithArchive(dir))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("verified %d records, %d archived\n", v.Records, v.ArchivedThrough)
	// Output:
	// archived records 1 to 3 in 1 segment
	// verified 4 records, 3 archived
}
