package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"slices"
	"strings"

	"github.com/kmsring/kmsring/store"
)

// Verification is what Verify found in a sound log.
type Verification struct {
	// Records is the number of records checked, in the archive and the
	// store; FirstSeq and LastSeq number the first and last.
	Records  uint64
	FirstSeq uint64
	LastSeq  uint64
	// Head is the link of the last record (its MAC in a keyed log, else
	// the hex SHA-256 of its bytes): keep it elsewhere to detect later
	// truncation of the log.
	Head string
	// Keyed says every record was authenticated under the audit chain key.
	Keyed bool
	// Segments is the number of archive segments checked, and
	// ArchivedThrough the last record they hold (0 without an archive).
	Segments        int
	ArchivedThrough uint64
	// Chains lists the writers' chains of a partitioned log (see
	// Record.Chain), by name; empty for a log of one chain. Keep their
	// heads elsewhere, as Head, to detect later truncation of any chain.
	Chains []ChainHead
}

// ChainHead is where one writer's chain ends.
type ChainHead struct {
	Chain string
	// Records is the chain's number of records; LastSeq is the store's
	// number of the last, and Head its link.
	Records uint64
	LastSeq uint64
	Head    string
}

// chainHeads returns the chains the walk met, by name.
func (c *verifyConfig) chainHeads() []ChainHead {
	var out []ChainHead
	for name, p := range c.chains {
		out = append(out, ChainHead{Chain: name, Records: p.n, LastSeq: p.seq, Head: p.head})
	}
	slices.SortFunc(out, func(a, b ChainHead) int { return strings.Compare(a.Chain, b.Chain) })
	return out
}

// VerifyOption configures Verify, Walk and Archive.
type VerifyOption func(*verifyConfig)

type verifyConfig struct {
	mac     func() hash.Hash
	archive string
	segment int  // records per archive segment; 0: segmentRecords
	lean    bool // hand fn records without encryption contexts

	// chains is where each writer's chain of a partitioned log stands
	// in the walk; openChains lets a chain start past its first record
	// (Archive, which does not read the archived records again).
	chains     map[string]chainPos
	openChains bool
}

// WalkWithoutContexts makes Walk hand fn records without their encryption
// contexts (EncryptionContext, EncryptionContextKeys and their Source
// forms stay nil), which spares decoding them: for reports that count
// operations, over logs of millions of records. Verification is the same.
func WalkWithoutContexts() VerifyOption {
	return func(c *verifyConfig) { c.lean = true }
}

// VerifyWithMAC makes Verify authenticate every record under the audit
// chain key, as a Logger given WithMAC(mac) wrote them (and every archive
// digest, as Archive given the same option wrote them).
func VerifyWithMAC(mac func() hash.Hash) VerifyOption {
	return func(c *verifyConfig) { c.mac = mac }
}

// VerifyWithArchive makes Verify and Walk read the archive in dir (see
// Archive) before the store, checking both as one chain: every digest,
// every segment's SHA-256 and every record in it, and the store's records
// as the continuation of the archive's last.
func VerifyWithArchive(dir string) VerifyOption {
	return func(c *verifyConfig) { c.archive = dir }
}

// ErrKeyed reports a keyed log given to Verify without VerifyWithMAC: it
// cannot be authenticated without the audit chain key.
var ErrKeyed = errors.New("audit: the log is keyed: verify it with the audit chain key (VerifyWithMAC)")

// Verify reads the whole log and checks its chain: sequence numbers run 1,
// 2, 3, ... without gaps, each record holds the link of the one before,
// and each stored record's bytes agree with the fields the store indexes.
// With VerifyWithMAC, every record must carry a MAC under the audit chain
// key over its bytes (its link included), so a record changed by someone
// without the root key is named even if every later link was recomputed.
// With VerifyWithArchive, the archive's segments come first (a store
// whose oldest records were archived verifies only with its archive).
// It returns a *TamperError (errors.Is ErrTampered) naming the first record
// that fails (and, in an archive, the file), or ErrKeyed for a keyed log
// verified without its key.
func Verify(ctx context.Context, al store.AuditLog, opts ...VerifyOption) (Verification, error) {
	return Walk(ctx, al, nil, opts...)
}

// Walk is Verify that also hands every record, oldest first, to fn (when
// not nil) once it is checked; an error from fn ends the walk and is
// returned. It reads the log a page at a time and holds no more of it, so
// it suits reports over logs of any length.
func Walk(ctx context.Context, al store.AuditLog, fn func(Record) error, opts ...VerifyOption) (Verification, error) {
	var c verifyConfig
	for _, o := range opts {
		o(&c)
	}
	v := Verification{Keyed: c.mac != nil}
	if mac := c.mac; mac != nil {
		// One hash, reset for each record: Walk checks one record at a
		// time, and a hash per record was a fifth of its allocations.
		h := mac()
		c.mac = func() hash.Hash { h.Reset(); return h }
	}
	var lastArchived []byte
	if c.archive != "" {
		var err error
		if lastArchived, err = c.walkArchive(ctx, &v, fn); err != nil {
			return v, err
		}
	}
	last := v.LastSeq
	if last > 0 {
		// The store's anchor, if still there, is the archive's last record.
		es, err := al.ReadAudit(ctx, store.AuditQuery{After: last - 1, Limit: 1})
		if err != nil {
			return v, fmt.Errorf("audit: verify: %w", err)
		}
		if len(es) == 1 && es[0].Seq == last && !bytes.Equal(es[0].Data, lastArchived) {
			return v, &TamperError{Seq: last, Reason: "the store's copy of the archive's last record differs from the archive's: one of them was changed, or the archive is another log's"}
		}
	}
	const page = 1000
	for {
		entries, err := al.ReadAudit(ctx, store.AuditQuery{After: last, Limit: page})
		if err != nil {
			return v, fmt.Errorf("audit: verify: %w", err)
		}
		for _, e := range entries {
			if e.Seq > 1 && last == 0 {
				return v, &TamperError{Seq: 1, Reason: fmt.Sprintf("records 1 to %d are not in the store: they were archived (verify with the archive) or deleted", e.Seq-1)}
			}
			r, err := c.check(e, last, v.Head)
			if err != nil {
				return v, err
			}
			if err := v.add(r, e.Data, fn); err != nil {
				return v, err
			}
			last = e.Seq
		}
		if len(entries) < page {
			v.Chains = c.chainHeads()
			return v, nil
		}
	}
}

// add counts a checked record and hands it to fn.
func (v *Verification) add(r Record, data []byte, fn func(Record) error) error {
	if v.FirstSeq == 0 {
		v.FirstSeq = r.Seq
	}
	v.Records++
	v.LastSeq, v.Head = r.Seq, link(data)
	if fn != nil {
		r.Link = v.Head
		return fn(r)
	}
	return nil
}

// walkArchive checks the archive's digests, segments and records, and
// returns the bytes of the last record.
func (c *verifyConfig) walkArchive(ctx context.Context, v *Verification, fn func(Record) error) ([]byte, error) {
	a, err := readArchive(c.archive, c.mac, true)
	if err != nil {
		return nil, err
	}
	var last []byte
	for _, d := range a.digests {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if last, err = c.walkSegment(a.dir, d, v, fn); err != nil {
			return nil, err
		}
		v.Segments++
	}
	v.ArchivedThrough = v.LastSeq
	return last, nil
}

// walkSegment checks one segment and returns the bytes of its last record.
func (c *verifyConfig) walkSegment(dir string, d Digest, v *Verification, fn func(Record) error) (last []byte, err error) {
	te := func(seq uint64, reason string, args ...any) error {
		return &TamperError{Seq: seq, File: d.Segment, Reason: fmt.Sprintf(reason, args...)}
	}
	sr, err := openSegment(dir, d.Segment)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, te(d.FirstSeq, "the segment file is missing (records %d to %d)", d.FirstSeq, d.LastSeq)
	}
	if err != nil {
		return nil, te(d.FirstSeq, "the segment does not read as gzip: it was changed")
	}
	defer sr.Close()
	for seq := d.FirstSeq; ; seq++ {
		line, err := sr.next()
		if err == io.EOF {
			if seq != d.LastSeq+1 {
				return nil, te(seq, "the segment ends at record %d, its digest says %d: records were removed", seq-1, d.LastSeq)
			}
			break
		}
		if err != nil {
			return nil, te(seq, "the segment does not read (%v): it was changed", err)
		}
		if seq > d.LastSeq {
			return nil, te(seq, "the segment holds more records than its digest says: records were added")
		}
		r, err := c.checkData(seq, line, v.Head)
		var t *TamperError
		if errors.As(err, &t) {
			t.File = d.Segment
		}
		if err != nil {
			return nil, err
		}
		if err := v.add(r, line, fn); err != nil {
			return nil, err
		}
		last = append(last[:0], line...)
	}
	sum, err := sr.hash()
	if err != nil {
		return nil, te(d.FirstSeq, "the segment does not read (%v)", err)
	}
	switch {
	case !equalHex(sum, d.SHA256):
		return nil, te(d.FirstSeq, "the segment's SHA-256 differs from its digest's: it was changed")
	case v.Head != d.Head:
		return nil, te(d.LastSeq, "the segment's last record is not the head its digest names")
	}
	return last, nil
}
