package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/kmsring/kmsring/store"
)

// LookupArchive is LookupEvents over the archive in dir (see Archive)
// followed by the store: a page of the records q selects, oldest first,
// and the After of the next page (0 when this was the last). Segments
// that q's times exclude are skipped unread. It does not verify what it
// reads: Verify with VerifyWithArchive does.
func LookupArchive(ctx context.Context, al store.AuditLog, dir string, q Query) (records []Record, next uint64, err error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	a, err := readArchive(dir, nil, false)
	if err != nil {
		return nil, 0, err
	}
	for _, d := range a.digests {
		if d.LastSeq <= q.After || (!q.Until.IsZero() && !d.FirstTime.Before(q.Until)) || (!q.Since.IsZero() && d.LastTime.Before(q.Since)) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		recs, err := lookupSegment(a.dir, d, q, limit-len(records))
		if err != nil {
			return nil, 0, err
		}
		records = append(records, recs...)
		if len(records) == limit {
			return records, records[len(records)-1].Seq, nil
		}
	}
	sq := q
	sq.After, sq.Limit = max(q.After, a.lastSeq), limit-len(records)
	recs, next, err := LookupEvents(ctx, al, sq)
	return append(records, recs...), next, err
}

func lookupSegment(dir string, d Digest, q Query, limit int) ([]Record, error) {
	sr, err := openSegment(dir, d.Segment)
	if err != nil {
		return nil, fmt.Errorf("audit: lookup: segment %s: %w", d.Segment, err)
	}
	defer sr.Close()
	var out []Record
	// Lines past the digest's count are refused unread, so that a small
	// segment of many short lines cannot keep a lookup busy.
	for n, seq := uint64(0), d.FirstSeq; len(out) < limit; n, seq = n+1, seq+1 {
		line, err := sr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("audit: lookup: segment %s: %w", d.Segment, err)
		}
		if n == d.Count {
			return nil, fmt.Errorf("audit: lookup: segment %s holds more records than its digest says: it was changed", d.Segment)
		}
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("audit: lookup: segment %s: a record does not parse", d.Segment)
		}
		if r.Chain != "" {
			r.Seq = seq // a partitioned log's records carry their number by place only
		}
		if r.Seq > q.After && q.match(r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// match reports whether r satisfies q's filters (not After or Limit).
func (q Query) match(r Record) bool {
	return (q.KeyID == "" || r.KeyID == q.KeyID) &&
		(q.Operation == "" || r.Operation == q.Operation) &&
		(q.Since.IsZero() || !r.Time.Before(q.Since)) &&
		(q.Until.IsZero() || r.Time.Before(q.Until))
}
