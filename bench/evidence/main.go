// Command evidence fills an embedded store for the evidence measurements of
// docs/COMPLIANCE.md: -keys keys (a tenth rotated twice) and -records audit
// records spread over the past, the last 1% in the last hour, each with a
// two-key encryption context, keyed as kmsring writes them. Then time
// "kmsring audit archive --before 1h", "audit verify --archive" and
// "compliance report" on it.
//
//	go run ./bench/evidence -dir /tmp/ev -keys 1000 -records 500000
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/boltstore"
)

func main() {
	dir := flag.String("dir", "", "directory for kmsring.db and kmsring.key (required)")
	nkeys := flag.Int("keys", 1000, "number of keys")
	nrecs := flag.Int("records", 500000, "number of audit records")
	flag.Parse()
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	if err := run(context.Background(), *dir, *nkeys, *nrecs); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, dir string, nkeys, nrecs int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	rk, err := keyring.RootKeyFile(filepath.Join(dir, "kmsring.key"))
	if err != nil {
		return err
	}
	st, err := boltstore.Open(filepath.Join(dir, "kmsring.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	mac, err := keyring.AuditMAC(ctx, st, rk)
	if err != nil {
		return err
	}
	l := audit.New(audit.WithStore(st), audit.WithMAC(mac), audit.WithQueue(20000))
	now := time.Now()
	step := time.Hour / time.Duration(max(nrecs/100, 1))
	base := now.Add(-time.Duration(nrecs) * step).Add(-time.Minute)
	clk := clockwork.NewFakeClockAt(base.Add(-24 * time.Hour))
	start := time.Now()
	ids := make([]string, nkeys)
	for i := range ids {
		k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithClock(clk),
			keyring.WithAuditor(l), keyring.WithRotationPeriod(365*24*time.Hour))
		if err != nil {
			return err
		}
		if i%10 == 0 {
			for range 2 {
				if _, err := k.Rotate(ctx); err != nil {
					return err
				}
			}
		}
		ids[i] = k.ID()
	}
	fmt.Printf("%d keys in %v\n", nkeys, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	ctx = audit.WithPrincipal(ctx, "svc-bench")
	for i := range nrecs {
		op := keyring.OpGenerateDataKey
		if i%3 == 0 {
			op = keyring.OpDecrypt
		}
		id := ids[i%nkeys]
		if err := l.Audit(ctx, keyring.AuditEvent{
			Time: base.Add(time.Duration(i) * step), Operation: op, KeyID: id, Version: 1,
			EncryptionContext: map[string]string{"tenant": strconv.Itoa(i % 977), "table": "invoices"},
		}); err != nil {
			return err
		}
		if i%10000 == 9999 {
			if err := l.Flush(ctx); err != nil {
				return err
			}
		}
	}
	if err := l.Close(); err != nil {
		return err
	}
	if d := l.Dropped(); d > 0 {
		return fmt.Errorf("%d records dropped", d)
	}
	fmt.Printf("%d records in %v\n", nrecs, time.Since(start).Round(time.Millisecond))
	return nil
}
