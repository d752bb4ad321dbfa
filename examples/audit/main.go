// Command audit tells the operations story of key rotation: prove from the
// audit log alone that rotation happened and which version each operation
// used, watch the Prometheus gauges go overdue, catch a tampered log, and
// see a destroyed version refuse to decrypt.
//
//	go run ./examples/audit
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/rotation"
	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	bolt "go.etcd.io/bbolt"
)

const day = 24 * time.Hour

func main() {
	log.SetFlags(0)
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal("audit: ", err)
	}
}

func run(ctx context.Context, out io.Writer) error {
	dir, err := os.MkdirTemp("", "kmsring-audit")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rk, err := keyring.RootKeyFile(filepath.Join(dir, "root.key"))
	if err != nil {
		return err
	}
	dbPath := filepath.Join(dir, "kmsring.db")
	st, err := boltstore.Open(dbPath)
	if err != nil {
		return err
	}
	clk := clockwork.NewFakeClockAt(time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC))
	// The chain is keyed by the store's audit key, which only the root key
	// unwraps: whoever can edit the file cannot recompute it.
	mac, err := keyring.AuditMAC(ctx, st, rk)
	if err != nil {
		return err
	}
	logger := audit.New(audit.WithStore(st), audit.WithMAC(mac))
	bus := audit.NewBus()
	events := bus.Subscribe(audit.Filter{}, 16)
	metrics := audit.NewCollector(audit.WithCollectorClock(clk), audit.WithOverdueGrace(35*day))
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithClock(clk),
		keyring.WithRotationPeriod(365*day), keyring.WithAuditor(logger), keyring.WithAuditor(bus), keyring.WithAuditor(metrics))
	if err != nil {
		return err
	}
	metrics.Add(k)
	ctx = audit.WithPrincipal(ctx, "svc-billing")

	fmt.Fprintln(out, "1. Rotation, proven from the audit log alone")
	old, err := k.GenerateDataKey(ctx, keyring.WithEncryptionContext(map[string]string{"table": "invoices"}))
	if err != nil {
		return err
	}
	clk.Advance(30 * day)
	if _, err := k.Rotate(ctx); err != nil {
		return err
	}
	if _, err := k.GenerateDataKey(ctx, keyring.WithEncryptionContext(map[string]string{"table": "invoices"})); err != nil {
		return err
	}
	if err := logger.Flush(ctx); err != nil {
		return err
	}
	recs, _, err := audit.LookupEvents(ctx, st, audit.Query{KeyID: k.ID()})
	if err != nil {
		return err
	}
	for _, r := range recs {
		fmt.Fprintf(out, "   #%d %s %-16s version %d", r.Seq, r.Time.Format("2006-01-02"), r.Operation, r.Version)
		if r.Operation == string(keyring.OpRotateKey) {
			fmt.Fprintf(out, " (%s, from version %d)", r.Origin, r.PreviousVersion)
		}
		if r.Principal == "" {
			r.Principal = "-"
		}
		fmt.Fprintf(out, " by %s: %s\n", r.Principal, r.Outcome)
	}
	fmt.Fprintln(out, "   event:", eventLine(<-events.Events()))

	fmt.Fprintln(out, "\n2. Prometheus, before and after the rotation is overdue")
	if err := scrape(out, metrics); err != nil {
		return err
	}
	clk.Advance(401 * day) // no scheduler ran since the rotation
	if err := scrape(out, metrics); err != nil {
		return err
	}
	if md := k.Cached(); rotation.Overdue(md, clk.Now(), 35*day) {
		bus.Overdue(md) // what rotation.WithOverdue does on every scheduler pass
	}
	fmt.Fprintln(out, "   event:", eventLine(<-events.Events()))
	s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	s.Add(k)
	if _, err := s.RunOnce(ctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "   the scheduler catches up:", eventLine(<-events.Events()))

	fmt.Fprintln(out, "\n3. A destroyed version's blob")
	if _, err := k.ScheduleVersionDestruction(ctx, 1, 7*day); err != nil {
		return err
	}
	fmt.Fprintln(out, "   event:", eventLine(<-events.Events()))
	clk.Advance(7 * day)
	if _, err := s.RunOnce(ctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "   event:", eventLine(<-events.Events()))
	_, err = k.Decrypt(ctx, old.Ciphertext, keyring.WithEncryptionContext(map[string]string{"table": "invoices"}))
	fmt.Fprintf(out, "   decrypting a version-1 blob: %v (errors.Is ErrVersionDestroyed: %t)\n", err, errors.Is(err, keyring.ErrVersionDestroyed))

	fmt.Fprintln(out, "\n4. Verify the log, then delete a record behind its back")
	if err := logger.Close(); err != nil {
		return err
	}
	v, err := audit.Verify(ctx, st, audit.VerifyWithMAC(mac))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   %d records, chain intact, head %s...\n", v.Records, v.Head[:16])
	if err := st.Close(); err != nil {
		return err
	}
	if err := deleteRecord(dbPath, 3); err != nil {
		return err
	}
	if st, err = boltstore.Open(dbPath); err != nil {
		return err
	}
	defer st.Close()
	_, err = audit.Verify(ctx, st, audit.VerifyWithMAC(mac))
	fmt.Fprintf(out, "   after deleting record 3 from the file: %v\n", err)
	return nil
}

func eventLine(e audit.Event) string {
	s := fmt.Sprintf("%s version %d", e.Type, e.Version)
	if e.Type == audit.EventRotationOverdue {
		s += ", due " + e.NextRotationAt.Format("2006-01-02")
	}
	if e.Origin != 0 {
		s += " (" + e.Origin.String() + ")"
	}
	if !e.DestroyAt.IsZero() {
		s += " at " + e.DestroyAt.Format("2006-01-02")
	}
	return s
}

// scrape prints the collector's per-key gauges in the Prometheus text
// format.
func scrape(out io.Writer, c prometheus.Collector) error {
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		return err
	}
	mfs, err := reg.Gather()
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "kmsring_key_") {
			if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
				return err
			}
		}
	}
	for line := range strings.Lines(b.String()) {
		if !strings.HasPrefix(line, "#") {
			fmt.Fprint(out, "   ", line)
		}
	}
	fmt.Fprintln(out)
	return nil
}

// deleteRecord removes audit record seq from the bbolt file directly, as an
// attacker with the file would.
func deleteRecord(path string, seq uint64) error {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("audit")).Delete(binary.BigEndian.AppendUint64(nil, seq))
	})
}
