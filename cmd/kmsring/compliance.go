package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kmsring/kmsring/compliance"
	"github.com/spf13/cobra"
)

type (
	signingKeyOutput struct {
		SigningKey struct {
			PrivateKeyFile string
			PublicKeyFile  string
			Algorithm      string
		}
	}
	reportOutput struct {
		Report struct {
			File          string
			Format        string
			SignatureFile string `json:",omitempty"`
			Keys          int
			Compliant     int
			NonCompliant  int
			AuditLogHead  string
			AuditVerified bool
		}
	}
	reportVerifyOutput struct {
		Verified      bool
		Report        string
		SignatureFile string
	}
)

func (a *app) complianceCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "compliance",
		Short: "Signed evidence of every key's rotation for an auditor",
		Long: `Build a compliance report of key rotation (PCI DSS 3.7.4 cryptoperiods,
3.7.5 retired keys, NIST SP 800-53 AU-9 and AU-10 for the audit log) from the
authenticated key records and the audit log, sign it with a reporting key,
and verify it with the public key alone. See docs/COMPLIANCE.md.`,
		GroupID: "audit",
	}
	c.AddCommand(a.complianceReportCommand(), a.createSigningKeyCommand(), a.complianceVerifyCommand())
	return c
}

func (a *app) complianceReportCommand() *cobra.Command {
	var (
		keyIDs                          []string
		since, until, archive, previous string
		format, out, signingKey         string
		maxDays                         int
	)
	c := &cobra.Command{
		Use:   "report",
		Short: "Write the rotation compliance report (JSON, CSV or HTML)",
		Long: `Write the rotation compliance report of every key (or of each --key-id): its
rotations with date, type, principal and version, the longest interval
between rotations, the stretches past the maximum cryptoperiod, each
version's state and use, state changes, and findings per control, with the
audit log's verification and head. JSON is the exchange form; CSV has one
row per key; HTML is one self-contained page (no network, no script) with a
rotation timeline per key.

With --signing-key, a detached signature PATH.sig over the file's exact
bytes is written beside --out. With --previous-report (a JSON report made
earlier), the log must continue that report's: a log cut short since, or a
report of another store, fails (exit status 1) and writes nothing. A log
that does not verify gives a report that says so (every key non-compliant),
written, and exit status 1.`,
		Example: `  kmsring compliance report --format html --out report.html --signing-key reporting.key
  kmsring compliance report --since 2025-01-01 --until 2026-01-01 --archive /var/lib/kmsring/audit-archive \
      --previous-report 2025-q4.json --out 2026-q1.json --signing-key reporting.key`,
		Args: cobra.NoArgs,
	}
	f := c.Flags()
	f.StringArrayVar(&keyIDs, "key-id", nil, "report on this key (key ID, key ARN, alias or alias ARN); repeat for several (default: every key)")
	f.StringVar(&since, "since", "", "the period's start: RFC 3339, a date or a duration back from now (default: the oldest key's creation)")
	f.StringVar(&until, "until", "", "the period's end (default: now)")
	f.IntVar(&maxDays, "max-cryptoperiod-days", 365, "the maximum cryptoperiod in days")
	f.StringVar(&archive, "archive", "", "read the audit archive in this directory (made by audit archive) before the store")
	f.StringVar(&previous, "previous-report", "", "a JSON report made earlier: the audit log must continue it")
	f.StringVar(&format, "format", "json", "json, csv or html")
	f.StringVar(&out, "out", "-", "the report file (- for standard output)")
	f.StringVar(&signingKey, "signing-key", "", "sign the report with this private key (compliance create-signing-key); writes OUT.sig")
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, _ []string) error {
		if format != "json" && format != "csv" && format != "html" {
			return usageError("--format must be json, csv or html, not %q", format)
		}
		if maxDays <= 0 {
			return usageError("--max-cryptoperiod-days must be positive")
		}
		if signingKey != "" && out == "-" {
			return usageError("--signing-key needs --out PATH: the signature goes to PATH.sig")
		}
		start, err := parseTime("since", since)
		if err != nil {
			return err
		}
		end, err := parseTime("until", until)
		if err != nil {
			return err
		}
		if err := checkNewOutput(out); err != nil {
			return err
		}
		var priv []byte
		if signingKey != "" {
			if priv, err = readFileArg(signingKey); err != nil {
				return err
			}
			if _, err := compliance.Sign(priv, nil); err != nil {
				return fmt.Errorf("--signing-key %s: %w", signingKey, err)
			}
		}
		opts := []compliance.Option{compliance.WithMaxCryptoperiod(time.Duration(maxDays) * compliance.Day),
			compliance.WithPeriod(start, end), compliance.WithARN(a.region, a.account)}
		if previous != "" {
			b, err := readReportFile(previous, maxReportFile)
			if err != nil {
				return fmt.Errorf("--previous-report: %w", err)
			}
			prev, err := compliance.ReadJSON(bytes.NewReader(b))
			if err != nil {
				return fmt.Errorf("--previous-report %s: %w", previous, err)
			}
			opts = append(opts, compliance.WithPreviousReport(prev))
		}
		if archive != "" {
			opts = append(opts, compliance.WithArchive(archive))
		}
		if err := a.open(ctx, false); err != nil {
			return err
		}
		for _, ref := range keyIDs {
			name, err := a.keyName(ref)
			if err != nil {
				return err
			}
			opts = append(opts, compliance.WithKeyIDs(name))
		}
		// Flush this process's own records (none today) so the report
		// sees the log as it is.
		if err := a.log.Flush(ctx); err != nil {
			return err
		}
		opts = append(opts, compliance.WithRootKey(a.rk), compliance.WithMAC(a.mac))
		if testClock != nil {
			if c := testClock(); c != nil {
				opts = append(opts, compliance.WithClock(c))
			}
		}
		r, err := compliance.Build(ctx, a.st, opts...)
		if err != nil {
			return err
		}
		if c := r.AuditLog.ContinuesPreviousReport; c != nil && !*c {
			return fmt.Errorf("--previous-report %s: %s", previous, r.AuditLog.Error)
		}
		var buf bytes.Buffer
		switch format {
		case "json":
			err = r.WriteJSON(&buf)
		case "csv":
			err = r.WriteCSV(&buf)
		case "html":
			err = r.WriteHTML(&buf)
		}
		if err != nil {
			return err
		}
		if out == "-" {
			if _, err := a.stdout.Write(buf.Bytes()); err != nil {
				return err
			}
		} else {
			if err := writeFileAtomic(out, buf.Bytes()); err != nil {
				return err
			}
			var o reportOutput
			o.Report.File, o.Report.Format = out, format
			o.Report.Keys, o.Report.Compliant, o.Report.NonCompliant = r.Summary.Keys, r.Summary.Compliant, r.Summary.NonCompliant
			o.Report.AuditLogHead, o.Report.AuditVerified = r.AuditLog.Head, r.AuditLog.Verified
			if priv != nil {
				sig, err := compliance.Sign(priv, buf.Bytes())
				if err != nil {
					return err
				}
				if err := writeFileAtomic(out+".sig", sig); err != nil {
					return err
				}
				o.Report.SignatureFile = out + ".sig"
			}
			if err := a.print(o); err != nil {
				return err
			}
		}
		if !r.AuditLog.Verified {
			return fmt.Errorf("the report was written, but the audit log does not verify: %s", r.AuditLog.Error)
		}
		return nil
	})
	return c
}

// checkNewOutput refuses an --out that exists and is not a regular file
// (a symlink, device, pipe or directory), leaving it as it is.
func checkNewOutput(path string) error {
	if path == "-" {
		return nil
	}
	if err := checkReplaceable(path); err != nil {
		return fmt.Errorf("--out %w", err)
	}
	return nil
}

// writeFileAtomic writes b to path through a temporary file (0600) renamed
// into place.
func writeFileAtomic(path string, b []byte) error {
	if err := checkNewOutput(path); err != nil {
		return err
	}
	o, err := createAtomic(path)
	if err != nil {
		return err
	}
	defer o.abort()
	if _, err := o.Write(b); err != nil {
		return err
	}
	return o.commit()
}

func (a *app) createSigningKeyCommand() *cobra.Command {
	var out, alg string
	c := &cobra.Command{
		Use:   "create-signing-key",
		Short: "Create a reporting key that signs compliance reports",
		Long: `Create a reporting key: the private key is written to --out (0600, PEM
PKCS #8), the public key to --out.pub (PEM). It is not the root key: give
the .pub file to the auditor, who verifies reports with it alone. Existing
files are never overwritten.`,
		Example: `  kmsring compliance create-signing-key --out reporting.key`,
		Args:    cobra.NoArgs,
	}
	c.Flags().StringVar(&out, "out", "", "the private key file (required); the public key goes to FILE.pub")
	c.Flags().StringVar(&alg, "algorithm", compliance.Ed25519, "ed25519 or ecdsa-p256")
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, _ []string) error {
		if out == "" || out == "-" {
			return usageError("--out FILE is required")
		}
		if alg != compliance.Ed25519 && alg != compliance.ECDSAP256 {
			return usageError("--algorithm must be ed25519 or ecdsa-p256, not %q", alg)
		}
		priv, pub, err := compliance.GenerateSigningKey(alg)
		if err != nil {
			return err
		}
		if err := writeNewFile(out, priv, 0o600); err != nil {
			return err
		}
		if err := writeNewFile(out+".pub", pub, 0o644); err != nil {
			os.Remove(out)
			return err
		}
		var o signingKeyOutput
		o.SigningKey.PrivateKeyFile, o.SigningKey.PublicKeyFile, o.SigningKey.Algorithm = out, out+".pub", alg
		return a.print(o)
	})
	return c
}

// maxReportFile bounds a report file read back (compliance.ReadJSON's
// bound too), and maxSignatureFile its signature file.
const (
	maxReportFile    = 1 << 30
	maxSignatureFile = 4 << 10
)

// readReportFile reads a report (or its signature) an auditor was handed:
// a regular file of at most limit bytes. A device or a named pipe (a
// symlink to /dev/zero, say) is refused before it is opened, and checked
// again once open: reading one would never end, or block.
func readReportFile(path string, limit int) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err == nil && len(b) > limit {
		err = fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, err
}

// writeNewFile creates path with perm, failing if it exists, and syncs it.
func writeNewFile(path string, b []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

func (a *app) complianceVerifyCommand() *cobra.Command {
	var pubPath string
	c := &cobra.Command{
		Use:   "verify --public-key FILE.pub REPORT",
		Short: "Check a report's signature with the reporting public key",
		Long: `Check that REPORT.sig is a signature of REPORT's exact bytes under the
public key: exit status 0 if it is, 1 if not (the report was changed after
signing, or the key is another). Needs neither the store nor the root key.`,
		Example: `  kmsring compliance verify --public-key reporting.key.pub report.html`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError("compliance verify takes one REPORT file")
			}
			return nil
		},
	}
	c.Flags().StringVar(&pubPath, "public-key", "", "the reporting public key (FILE.pub of create-signing-key; required)")
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, args []string) error {
		if pubPath == "" {
			return usageError("--public-key is required")
		}
		pub, err := readFileArg(pubPath)
		if err != nil {
			return err
		}
		report, err := readReportFile(args[0], maxReportFile)
		if err != nil {
			return err
		}
		sig, err := readReportFile(args[0]+".sig", maxSignatureFile)
		if err != nil {
			return fmt.Errorf("no signature: %w", err)
		}
		if err := compliance.VerifySignature(pub, report, sig); err != nil {
			return fmt.Errorf("%s: %w", args[0], err)
		}
		return a.print(reportVerifyOutput{Verified: true, Report: args[0], SignatureFile: args[0] + ".sig"})
	})
	return c
}
