package compliance_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/compliance"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/memstore"
)

// A key rotated every 90 days for a year is compliant with a 365-day
// cryptoperiod; the report says when each rotation happened and who made
// it.
func ExampleBuild() {
	ctx := context.Background()
	st := memstore.New()
	rk, err := keyring.NewRootKey(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		log.Fatal(err)
	}
	mac, err := keyring.AuditMAC(ctx, st, rk)
	if err != nil {
		log.Fatal(err)
	}
	logger := audit.New(audit.WithStore(st), audit.WithMAC(mac))
	defer logger.Close()
	clk := clockwork.NewFakeClockAt(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithClock(clk),
		keyring.WithAuditor(logger), keyring.WithRotationPeriod(90*compliance.Day))
	if err != nil {
		log.Fatal(err)
	}
	for range 365 {
		clk.Advance(compliance.Day)
		if _, _, err := k.RotateIfDue(audit.WithPrincipal(ctx, "scheduler")); err != nil {
			log.Fatal(err)
		}
	}
	if err := logger.Flush(ctx); err != nil {
		log.Fatal(err)
	}

	r, err := compliance.Build(ctx, st, compliance.WithClock(clk), compliance.WithRootKey(rk), compliance.WithMAC(mac))
	if err != nil {
		log.Fatal(err)
	}
	key := r.Keys[0]
	for _, rot := range key.Rotations {
		fmt.Println(rot.Date.Format(time.DateOnly), rot.Type, rot.Principal, rot.KeyVersion)
	}
	fmt.Println("longest interval:", key.LongestIntervalDays, "days; compliant:", key.Compliant)
	// Output:
	// 2025-04-01 AUTOMATIC scheduler 2
	// 2025-06-30 AUTOMATIC scheduler 3
	// 2025-09-28 AUTOMATIC scheduler 4
	// 2025-12-27 AUTOMATIC scheduler 5
	// longest interval: 90 days; compliant: true
}
