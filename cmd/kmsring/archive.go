package main

import (
	"context"

	"github.com/kmsring/kmsring/audit"
	"github.com/spf13/cobra"
)

type archiveOutput struct {
	Archive struct {
		Directory string
		// Segments, Records, FirstSeq, LastSeq and Bytes are what this
		// run moved; ArchivedThrough and Head the archive's end.
		Segments        int
		Records         uint64
		FirstSeq        uint64
		LastSeq         uint64
		Bytes           int64
		ArchivedThrough uint64
		Head            string
	}
}

func (a *app) auditArchiveCommand() *cobra.Command {
	var before, dir string
	c := &cobra.Command{
		Use:   "archive",
		Short: "Move old audit records out of the store into an archive directory",
		Long: `Move the audit records older than --before out of the store into --dir:
segment files of records (JSON Lines, gzip) and, for each, a digest (first
and last sequence number, count, SHA-256 of the segment, the chain head at
its end, the previous digest's hash, and a MAC under the audit chain key).
Records are deleted from the store only once the segment and its digest are
durable; the newest archived record stays in the store as the anchor the
log continues from. Interrupted, it loses nothing: run it again. Later runs
into the same directory add segments that continue its chain. A directory
holding files that are not this archive's is refused. Archive files are
created 0600 and never overwritten.

--before takes an RFC 3339 time, a date (2026-01-31) or a duration back from
now (720h). Check the result with "audit verify --archive DIR".`,
		Example: `  kmsring audit archive --before 720h --dir /var/lib/kmsring/audit-archive
  kmsring audit verify --archive /var/lib/kmsring/audit-archive`,
		Args: cobra.NoArgs,
	}
	c.Flags().StringVar(&before, "before", "", "archive the records older than this time (required)")
	c.Flags().StringVar(&dir, "dir", "", "the archive directory, created if missing (required)")
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, _ []string) error {
		if before == "" || dir == "" {
			return usageError("--before and --dir are required")
		}
		t, err := parseTime("before", before)
		if err != nil {
			return err
		}
		if err := a.open(ctx, false); err != nil {
			return err
		}
		// Records this command's own process queued (none today) go
		// first, so the archive's end is the store's.
		if err := a.log.Flush(ctx); err != nil {
			return err
		}
		res, err := audit.Archive(ctx, a.st, dir, t, audit.VerifyWithMAC(a.mac))
		if err != nil {
			return err
		}
		var out archiveOutput
		o := &out.Archive
		o.Directory, o.Segments, o.Records, o.FirstSeq, o.LastSeq, o.Bytes = dir, res.Segments, res.Records, res.FirstSeq, res.LastSeq, res.Bytes
		o.ArchivedThrough, o.Head = res.ArchivedThrough, res.ArchiveHead
		return a.print(out)
	})
	return c
}

// archiveFlag adds --archive to an audit command.
func archiveFlag(c *cobra.Command, dir *string) {
	c.Flags().StringVar(dir, "archive", "", "also read the archive in this directory (made by audit archive), before the store")
}

// verifyArchive verifies the archive in dir and the store as one chain.
func (a *app) verifyArchive(ctx context.Context, dir string) (audit.Verification, error) {
	return audit.Verify(ctx, a.st, audit.VerifyWithMAC(a.mac), audit.VerifyWithArchive(dir))
}
