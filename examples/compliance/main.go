// Command compliance tells the story an auditor is shown: three keys live
// through three simulated years on a fake clock (one rotates yearly, one
// every 90 days and once on demand, one had its rotation switched off and
// is overdue), the oldest audit records are archived, and the compliance
// report is written as HTML and JSON, signed with a reporting key, and
// verified with the public key alone (and a tampered copy refused).
//
//	go run ./examples/compliance              # files in a temporary directory, removed
//	go run ./examples/compliance -out report  # files kept in ./report
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/compliance"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/rotation"
	"github.com/kmsring/kmsring/store/boltstore"
)

const day = 24 * time.Hour

// Start is when the story begins; it runs 1,096 days, to 2026-01-01.
var Start = time.Date(2023, 1, 1, 9, 0, 0, 0, time.UTC)

func main() {
	log.SetFlags(0)
	out := flag.String("out", "", "keep the report, the keys and the archive in this directory")
	flag.Parse()
	dir := *out
	if dir == "" {
		d, err := os.MkdirTemp("", "kmsring-compliance")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Fatal(err)
	}
	if err := run(context.Background(), os.Stdout, dir); err != nil {
		log.Fatal("compliance: ", err)
	}
}

func run(ctx context.Context, out io.Writer, dir string) error {
	rk, err := keyring.RootKeyFile(filepath.Join(dir, "root.key"))
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
	logger := audit.New(audit.WithStore(st), audit.WithMAC(mac))
	defer logger.Close()
	clk := clockwork.NewFakeClockAt(Start)
	sched := rotation.New(rotation.WithClock(clk))
	newKey := func(alias string, period time.Duration) (*keyring.Keyring, error) {
		k, err := keyring.New(audit.WithPrincipal(ctx, "alice"), keyring.WithStore(st), keyring.WithRootKey(rk),
			keyring.WithClock(clk), keyring.WithAuditor(logger), keyring.WithAlias(alias), keyring.WithRotationPeriod(period))
		if err == nil {
			sched.Add(k)
		}
		return k, err
	}
	payments, err := newKey("alias/payments", 365*day)
	if err != nil {
		return err
	}
	orders, err := newKey("alias/orders", 90*day)
	if err != nil {
		return err
	}
	legacy, err := newKey("alias/legacy-reports", 365*day)
	if err != nil {
		return err
	}

	fmt.Fprintln(out, "1. Three years of operations on a fake clock")
	users := map[*keyring.Keyring]context.Context{
		payments: audit.WithPrincipal(ctx, "svc-payments"),
		orders:   audit.WithPrincipal(ctx, "svc-orders"),
		legacy:   audit.WithPrincipal(ctx, "svc-reports"),
	}
	blobs := map[*keyring.Keyring][]*keyring.DataKey{}
	for d := 1; d <= 1096; d++ {
		clk.Advance(day)
		if _, err := sched.RunOnce(ctx); err != nil {
			return err
		}
		switch d {
		case 59: // 2023-03-01: rotation switched off "until the reports are migrated"
			if err := legacy.DisableRotation(audit.WithPrincipal(ctx, "bob")); err != nil {
				return err
			}
			fmt.Fprintln(out, "   2023-03-01 bob disables rotation of alias/legacy-reports")
		case 531: // 2024-06-15: incident response
			if _, err := orders.Rotate(audit.WithPrincipal(ctx, "alice")); err != nil {
				return err
			}
			fmt.Fprintln(out, "   2024-06-15 alice rotates alias/orders on demand")
		}
		if d%7 == 0 { // weekly traffic: a data key per key, and an older one opened again
			for _, k := range []*keyring.Keyring{payments, orders, legacy} {
				dk, err := k.GenerateDataKey(users[k])
				if err != nil {
					return err
				}
				blobs[k] = append(blobs[k], dk)
				if _, err := k.Decrypt(users[k], blobs[k][len(blobs[k])/2].Ciphertext); err != nil {
					return err
				}
			}
		}
	}
	if err := logger.Flush(ctx); err != nil {
		return err
	}

	fmt.Fprintln(out, "2. Archive the audit records of 2023 and 2024")
	archive := filepath.Join(dir, "audit-archive")
	res, err := audit.Archive(ctx, st, archive, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), audit.VerifyWithMAC(mac))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   %d records (%d to %d) moved into %d segment(s), %d bytes gzip'd\n", res.Records, res.FirstSeq, res.LastSeq, res.Segments, res.Bytes)
	v, err := audit.Verify(ctx, st, audit.VerifyWithMAC(mac), audit.VerifyWithArchive(archive))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   archive and store verify as one chain: %d records, head %.16s...\n", v.Records, v.Head)

	fmt.Fprintln(out, "3. The compliance report (maximum cryptoperiod 365 days)")
	r, err := compliance.Build(ctx, st, compliance.WithClock(clk), compliance.WithRootKey(rk), compliance.WithMAC(mac),
		compliance.WithArchive(archive), compliance.WithPeriod(Start, clk.Now()))
	if err != nil {
		return err
	}
	for _, k := range r.Keys {
		fmt.Fprintf(out, "   %-22s compliant %-5v longest interval %6.1f days, %d rotation(s)\n", k.Aliases[0], k.Compliant, k.LongestIntervalDays, len(k.Rotations))
		prev := k.CreationDate
		for _, rot := range k.Rotations {
			if k.Aliases[0] != "alias/orders" || rot.Type == compliance.OnDemand || rot.KeyVersion <= 3 {
				fmt.Fprintf(out, "     %s  v%-2d %-9s by %-16s after %5.1f days\n", rot.Date.Format(time.DateOnly), rot.KeyVersion, rot.Type, rot.Principal, rot.Date.Sub(prev).Hours()/24)
			}
			prev = rot.Date
		}
		for _, o := range k.OverduePeriods {
			fmt.Fprintf(out, "     OVERDUE %s to %s (%.0f days)\n", o.Start.Format(time.DateOnly), o.End.Format(time.DateOnly), o.Days)
		}
		for _, f := range k.Findings {
			if f.Status == compliance.Fail {
				fmt.Fprintf(out, "     %s %s: %s\n", f.Status, f.Control, f.Detail)
			}
		}
	}
	fmt.Fprintf(out, "   summary: %d keys, %d compliant, %d non-compliant; audit log verified %v, %d records\n",
		r.Summary.Keys, r.Summary.Compliant, r.Summary.NonCompliant, r.AuditLog.Verified, r.AuditLog.Records)

	fmt.Fprintln(out, "4. Written, signed with a reporting key, verified with its public key")
	priv, pub, err := compliance.GenerateSigningKey(compliance.Ed25519)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "reporting.key"), priv, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "reporting.key.pub"), pub, 0o644); err != nil {
		return err
	}
	for _, name := range []string{"report.json", "report.html"} {
		var buf bytes.Buffer
		if name == "report.json" {
			err = r.WriteJSON(&buf)
		} else {
			err = r.WriteHTML(&buf)
		}
		if err != nil {
			return err
		}
		sig, err := compliance.Sign(priv, buf.Bytes())
		if err != nil {
			return err
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(path+".sig", sig, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "   %s (%d bytes) and %s.sig: verify %v\n", name, buf.Len(), name, compliance.VerifySignature(pub, buf.Bytes(), sig))
		if name == "report.json" {
			edited := bytes.Replace(buf.Bytes(), []byte(`"NonCompliant": 1`), []byte(`"NonCompliant": 0`), 1)
			fmt.Fprintf(out, "   an edited copy: %v\n", compliance.VerifySignature(pub, edited, sig))
		}
	}
	return nil
}
