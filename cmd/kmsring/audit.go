package main

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/store"
	"github.com/spf13/cobra"
)

type (
	auditEvent struct {
		EventId               string
		EventTime             awsTime
		EventName             string
		Username              string            `json:",omitempty"`
		KeyId                 string            `json:",omitempty"`
		KeyVersion            uint32            `json:",omitempty"`
		PreviousKeyVersion    uint32            `json:",omitempty"`
		RotationType          string            `json:",omitempty"`
		AliasName             string            `json:",omitempty"`
		EncryptionContext     map[string]string `json:",omitempty"`
		EncryptionContextKeys []string          `json:",omitempty"`
		Outcome               string
		ErrorCode             string `json:",omitempty"`
	}
	lookupOutput struct{ Events []auditEvent }
	verifyOutput struct {
		Verified bool
		Records  uint64
		Head     string
		// With --archive: the archive's segments and last record.
		Segments        int    `json:",omitempty"`
		ArchivedThrough uint64 `json:",omitempty"`
		// Chains counts a partitioned log's writers' chains (one per
		// process that appended: serve, or a command).
		Chains int `json:",omitempty"`
	}
)

func (a *app) auditCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "audit",
		Short: "Search and verify the audit log",
		Long: `The audit log records every operation on every key (CloudTrail's role): its
time, the key and version used, the principal (cli:USER for this command),
the encryption context, and the outcome. Records are hash-chained.`,
		GroupID: "audit",
	}
	c.AddCommand(a.auditLookupCommand(), a.auditVerifyCommand(), a.auditArchiveCommand())
	return c
}

func (a *app) auditLookupCommand() *cobra.Command {
	var ref, op, since, until, archive string
	var maxItems int
	c := &cobra.Command{
		Use:   "lookup",
		Short: "List audit records, oldest first",
		Long: `List audit records, oldest first, selected by key, operation (as CloudTrail
names it: CreateKey, GenerateDataKey, Decrypt, RotateKey, EnableKeyRotation,
...) and time. --since and --until take an RFC 3339 time, a date
(2026-01-31) or a duration back from now (24h).`,
		Example: `  kmsring audit lookup --key-id alias/orders
  kmsring audit lookup --operation Decrypt --since 24h
  kmsring --output table audit lookup --key-id alias/orders --since 2026-01-01`,
		Args: cobra.NoArgs,
	}
	c.Flags().StringVar(&ref, "key-id", "", "only records of this key (key ID, key ARN, alias or alias ARN)")
	c.Flags().StringVar(&op, "operation", "", "only records of this operation, such as GenerateDataKey")
	c.Flags().StringVar(&since, "since", "", "only records at or after this time")
	c.Flags().StringVar(&until, "until", "", "only records before this time")
	c.Flags().IntVar(&maxItems, "max-items", 0, "at most this many records (0: all)")
	archiveFlag(c, &archive)
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, _ []string) error {
		q := audit.Query{Operation: op}
		var err error
		if q.Since, err = parseTime("since", since); err != nil {
			return err
		}
		if q.Until, err = parseTime("until", until); err != nil {
			return err
		}
		if maxItems < 0 {
			return usageError("--max-items must not be negative")
		}
		out := lookupOutput{Events: []auditEvent{}}
		if err := a.open(ctx, false); a.emptyStore(err) {
			return a.print(out)
		} else if err != nil {
			return err
		}
		if ref != "" {
			if q.KeyID, err = a.auditKeyID(ctx, ref); err != nil {
				return err
			}
		}
		for {
			lookup := audit.LookupEvents
			if archive != "" {
				lookup = func(ctx context.Context, al store.AuditLog, q audit.Query) ([]audit.Record, uint64, error) {
					return audit.LookupArchive(ctx, al, archive, q)
				}
			}
			recs, next, err := lookup(ctx, a.st, q)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if maxItems > 0 && len(out.Events) == maxItems {
					return a.print(out)
				}
				out.Events = append(out.Events, auditEventOf(r))
			}
			if next == 0 {
				return a.print(out)
			}
			q.After = next
		}
	})
	return c
}

// auditKeyID resolves --key-id for a lookup. Records outlive keys and
// aliases, so a key ID is taken as it is, and an alias as the store names
// it now.
func (a *app) auditKeyID(ctx context.Context, ref string) (string, error) {
	name, err := a.keyName(ref)
	if err != nil || !strings.HasPrefix(name, "alias/") {
		return name, err
	}
	k, err := a.loadKey(ctx, name)
	if err != nil {
		return "", err
	}
	return k.ID(), nil
}

func auditEventOf(r audit.Record) auditEvent {
	e := auditEvent{
		EventId:               strconv.FormatUint(r.Seq, 10),
		EventTime:             awsTime(r.Time),
		EventName:             r.Operation,
		Username:              r.Principal,
		KeyId:                 r.KeyID,
		KeyVersion:            r.Version,
		PreviousKeyVersion:    r.PreviousVersion,
		AliasName:             r.Alias,
		EncryptionContext:     r.EncryptionContext,
		EncryptionContextKeys: r.EncryptionContextKeys,
		Outcome:               r.Outcome,
		ErrorCode:             r.ErrorClass,
	}
	switch r.Origin {
	case "automatic":
		e.RotationType = "AUTOMATIC"
	case "on-demand":
		e.RotationType = "ON_DEMAND"
	}
	return e
}

// parseTime parses a --since or --until value: RFC 3339, a date, or a
// duration back from now.
func parseTime(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, usageError("--%s %q is not an RFC 3339 time, a date (2026-01-31) or a duration (24h)", flag, v)
}

func (a *app) auditVerifyCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit log's hash chain",
		Long: `Check the whole audit log's hash chain: a record deleted, reordered or changed
anywhere is reported by number (exit status 1). Keep the Head it prints
somewhere else to detect a later truncation of the log. With --archive, the
archive's segments and digests are checked first and the store's records
as their continuation; a damaged, missing or moved segment or digest is
named by its file.`,
		Example: `  kmsring audit verify
  kmsring audit verify --archive /var/lib/kmsring/audit-archive`,
		Args: cobra.NoArgs,
	}
	var archive string
	archiveFlag(c, &archive)
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, _ []string) error {
		if archive != "" {
			if err := a.open(ctx, false); err != nil {
				return err
			}
			v, err := a.verifyArchive(ctx, archive)
			if err != nil {
				return err
			}
			return a.print(verifyOutput{Verified: true, Records: v.Records, Head: v.Head, Segments: v.Segments, ArchivedThrough: v.ArchivedThrough, Chains: len(v.Chains)})
		}
		if err := a.open(ctx, false); a.emptyStore(err) {
			return a.print(verifyOutput{Verified: true})
		} else if err != nil {
			return err
		}
		v, err := audit.Verify(ctx, a.st, audit.VerifyWithMAC(a.mac))
		if err != nil {
			return err
		}
		return a.print(verifyOutput{Verified: true, Records: v.Records, Head: v.Head, Chains: len(v.Chains)})
	})
	return c
}
