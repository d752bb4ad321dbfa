package audit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kmsring/kmsring/store"
)

// # The archive
//
// An archive directory holds, for each segment of the log it took from the
// store, two files named after the segment's first and last sequence
// numbers (zero-padded, so that name order is chain order):
//
//	segment-00000000000000000001-00000000000000050000.jsonl.gz
//	segment-00000000000000000001-00000000000000050000.digest.json
//
// The segment is the stored bytes of its records, one a line, gzip'd. The
// digest is one JSON object ([Digest]) that names the segment, its first
// and last sequence numbers and count, the SHA-256 of the segment file,
// the chain head at its end, the hash of the previous digest file, and (in
// a keyed log) a MAC under the audit chain key. Files are written under a
// temporary name, fsync'd, and linked into place (never over an existing
// file), so that a crash leaves at most a temporary file and a segment
// without its digest, both of which the next Archive removes.

// Archive file names.
const (
	segmentPrefix = "segment-"
	segmentSuffix = ".jsonl.gz"
	digestSuffix  = ".digest.json"
	tempPrefix    = ".kmsring-archive-tmp-"
	// segmentRecords is the most records one segment holds.
	segmentRecords = 50_000
	// maxArchiveLine bounds one record line read from a segment, and
	// maxDigestSize one digest file.
	maxArchiveLine = 1 << 20
	maxDigestSize  = 64 << 10
)

// Errors of the archive.
var (
	// ErrForeignDir reports an archive directory that holds files that
	// are not an archive's.
	ErrForeignDir = errors.New("audit: the directory holds files that are not this archive's")
	// ErrNoPrune reports a store that cannot delete archived records (it
	// does not implement store.AuditPruner).
	ErrNoPrune = errors.New("audit: the store cannot delete archived audit records")
	// ErrOtherLog reports an archive and a store whose logs are not one
	// chain: the archive was made from another store, or the store's
	// records were archived elsewhere.
	ErrOtherLog = errors.New("audit: the archive and the store are not one log")
)

// Digest describes one archive segment. It is the JSON of a digest file.
type Digest struct {
	// Segment is the segment's file name, in the same directory.
	Segment  string `json:"segment"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	Count    uint64 `json:"count"`
	// FirstTime and LastTime are the times of the first and last record.
	FirstTime time.Time `json:"first_time"`
	LastTime  time.Time `json:"last_time"`
	// SHA256 is the hex SHA-256 of the segment file's bytes.
	SHA256 string `json:"sha256"`
	// Prev is the link the first record continues (the Prev it holds);
	// Head the link of the last record: the chain head at the segment's
	// end.
	Prev string `json:"prev,omitempty"`
	Head string `json:"head"`
	// PrevDigest is the hex SHA-256 of the previous digest file's bytes,
	// empty for the first segment.
	PrevDigest string `json:"prev_digest,omitempty"`
	// MAC, in a keyed log, is the hex HMAC-SHA256 under the audit chain
	// key of the digest's JSON without it.
	MAC string `json:"mac,omitempty"`
}

// marshal returns the digest file's bytes: its JSON and a newline.
func (d Digest) marshal() []byte {
	b, err := json.Marshal(d)
	if err != nil {
		panic("audit: marshal digest: " + err.Error())
	}
	return append(b, '\n')
}

// sealDigest sets d.MAC in a keyed log and returns the file's bytes.
func sealDigest(d Digest, mac func() hash.Hash) []byte {
	d.MAC = ""
	if mac != nil {
		body := d.marshal()
		d.MAC = hex.EncodeToString(sum(mac, body))
	}
	return d.marshal()
}

func segmentName(first, last uint64) string {
	return fmt.Sprintf("%s%020d-%020d%s", segmentPrefix, first, last, segmentSuffix)
}

func digestName(segment string) string {
	return strings.TrimSuffix(segment, segmentSuffix) + digestSuffix
}

// parseSegmentName returns the sequence numbers a segment or digest file
// name holds; ok is false for any other name.
func parseSegmentName(name string) (first, last uint64, digest, ok bool) {
	rest, found := strings.CutPrefix(name, segmentPrefix)
	if !found {
		return 0, 0, false, false
	}
	if r, found := strings.CutSuffix(rest, digestSuffix); found {
		rest, digest = r, true
	} else if r, found := strings.CutSuffix(rest, segmentSuffix); found {
		rest = r
	} else {
		return 0, 0, false, false
	}
	var a, b uint64
	if len(rest) != 41 || rest[20] != '-' {
		return 0, 0, false, false
	}
	if _, err := fmt.Sscanf(rest, "%020d-%020d", &a, &b); err != nil || segmentName(a, b) != segmentPrefix+rest+segmentSuffix || a == 0 || b < a {
		return 0, 0, false, false
	}
	return a, b, digest, true
}

// archiveDir is an archive directory as read from disk: its digests in
// chain order, checked against each other.
type archiveDir struct {
	dir     string
	digests []Digest
	files   []string // digest file names, parallel to digests
	// orphans are segments without a digest after the last one: an
	// Archive interrupted between the two files.
	orphans []string
	temps   []string
	// last is the hash of the last digest file, lastSeq and head its
	// segment's end.
	last    string
	lastSeq uint64
	head    string
}

// readArchive lists dir (which must exist) and checks its digests' chain:
// every file is a segment, a digest or a temporary file of an archive;
// digests follow each other (sequence numbers, previous digest's hash,
// previous head) and, with auth, carry a valid MAC under mac (none
// without). Segment contents are not read.
func readArchive(dir string, mac func() hash.Hash, auth bool) (*archiveDir, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: archive: %w", err)
	}
	a := &archiveDir{dir: dir}
	segments := map[string]bool{}
	var digests []string
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, tempPrefix) && e.Type().IsRegular() {
			a.temps = append(a.temps, name)
			continue
		}
		_, _, digest, ok := parseSegmentName(name)
		if !ok || !e.Type().IsRegular() {
			return nil, fmt.Errorf("%w: %s in %s", ErrForeignDir, name, dir)
		}
		if digest {
			digests = append(digests, name)
		} else {
			segments[name] = true
		}
	}
	slices.Sort(digests)
	for _, name := range digests {
		d, raw, err := readDigest(dir, name, mac, auth)
		if err != nil {
			return nil, err
		}
		te := func(reason string, args ...any) error {
			return &TamperError{Seq: d.FirstSeq, File: name, Reason: fmt.Sprintf(reason, args...)}
		}
		switch {
		case d.FirstSeq != a.lastSeq+1 && a.lastSeq == 0:
			return nil, te("the archive's first segment starts at record %d, not 1: a segment or digest before it is missing", d.FirstSeq)
		case d.FirstSeq != a.lastSeq+1:
			return nil, te("it starts at record %d but the segment before it ends at %d: a segment or digest is missing or was moved", d.FirstSeq, a.lastSeq)
		case d.PrevDigest != a.last:
			return nil, te("it does not follow the digest before it (its prev_digest differs): a digest was replaced, removed or moved")
		case d.Prev != a.head:
			return nil, te("its first record does not continue the head of the segment before it")
		}
		delete(segments, d.Segment)
		a.digests = append(a.digests, d)
		a.files = append(a.files, name)
		a.last, a.lastSeq, a.head = hexSHA256(raw), d.LastSeq, d.Head
	}
	for name := range segments {
		first, _, _, _ := parseSegmentName(name)
		if first <= a.lastSeq {
			return nil, &TamperError{Seq: first, File: name, Reason: "a segment that no digest names: it was moved or its digest replaced"}
		}
		a.orphans = append(a.orphans, name)
	}
	slices.Sort(a.orphans)
	return a, nil
}

// readDigest reads and checks one digest file (see parseDigest).
func readDigest(dir, name string, mac func() hash.Hash, auth bool) (Digest, []byte, error) {
	raw, err := readFileMax(filepath.Join(dir, name), maxDigestSize)
	if err != nil {
		return Digest{}, nil, fmt.Errorf("audit: archive: digest %s: %w", name, err)
	}
	d, err := parseDigest(name, raw, mac, auth)
	return d, raw, err
}

// parseDigest parses the digest file name holding raw: its JSON is exactly
// what the archive writes (no other field, no other spacing), its name
// matches the segment it describes, and, with auth, its MAC verifies under
// mac (and it has none without).
func parseDigest(name string, raw []byte, mac func() hash.Hash, auth bool) (Digest, error) {
	var d Digest
	first, last, digest, ok := parseSegmentName(name)
	if !ok || !digest {
		return d, fmt.Errorf("%w: %s is not a digest file name", ErrForeignDir, name)
	}
	te := func(reason string) error { return &TamperError{Seq: first, File: name, Reason: reason} }
	if len(raw) > maxDigestSize {
		return d, te("the digest is too large")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil || !bytes.Equal(d.marshal(), raw) {
		return d, te("the digest does not parse or is not in its canonical form: it was changed")
	}
	switch {
	case d.Segment != segmentName(first, last) || d.FirstSeq != first || d.LastSeq != last:
		return d, te(fmt.Sprintf("the digest describes %.80q, not the segment its name says: digests were swapped or renamed", d.Segment))
	case d.Count != last-first+1:
		return d, te("its count disagrees with its sequence numbers")
	case !auth:
	case mac == nil && d.MAC != "":
		return d, fmt.Errorf("%w (digest %s carries a MAC)", ErrKeyed, name)
	case mac != nil && d.MAC == "":
		return d, te("it has no MAC: it was written or rewritten without the audit chain key")
	case mac != nil && !validMAC(mac, sealDigestBody(d), d.MAC):
		return d, te("its MAC does not verify: it was changed")
	}
	return d, nil
}

// sealDigestBody returns the bytes a digest's MAC covers.
func sealDigestBody(d Digest) []byte {
	d.MAC = ""
	return d.marshal()
}

func readFileMax(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("larger than %d bytes", limit)
	}
	return b, err
}

func hexSHA256(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// ArchiveResult says what Archive moved.
type ArchiveResult struct {
	// Segments and Records count what this call wrote; FirstSeq and
	// LastSeq number its records (0 when it wrote none).
	Segments         int
	Records          uint64
	FirstSeq         uint64
	LastSeq          uint64
	Bytes            int64 // of the segment files written
	Dir              string
	ArchivedThrough  uint64 // the archive's last record, this call's or an earlier one's
	ArchiveHead      string // that record's link
	PrunedFromStore  bool   // the store no longer holds the records before ArchivedThrough
	RemovedTempFiles int    // left by an interrupted earlier run
}

// Archive moves the stored audit records older than before into the
// archive directory dir, oldest first, and deletes them from the store:
// segments of at most 50,000 records, each followed by its digest (see
// [Digest]), each file written under a temporary name, fsync'd and linked
// into place together with an fsync of the directory, and the records
// deleted (store.AuditPruner) only once both files are durable. The
// newest archived record stays in the store as the anchor the live log
// continues from. It stops at the first record at or after before, so
// the archive is always a prefix of the chain.
//
// Every record is checked as Verify checks it before it is archived, so
// Archive never moves a tampered record out of the store; pass
// VerifyWithMAC for a keyed log (its digests are then MACed too).
//
// dir is created (0700) if missing. Later calls add segments that
// continue the archive's chain; a directory holding files that are not an
// archive's fails with ErrForeignDir, and one that is another log's
// archive with ErrOtherLog. Interrupted, Archive loses nothing and can be
// repeated: the next call removes what a crash left half written and
// deletes from the store what is archived but still there. Files are
// created 0600 and never overwritten. One Archive at a time may write to
// a directory (a second fails without harm: it cannot link its files);
// Loggers may append meanwhile.
func Archive(ctx context.Context, al store.AuditLog, dir string, before time.Time, opts ...VerifyOption) (ArchiveResult, error) {
	c := verifyConfig{openChains: true}
	for _, o := range opts {
		o(&c)
	}
	res := ArchiveResult{Dir: dir}
	pr, ok := al.(store.AuditPruner)
	if !ok {
		return res, ErrNoPrune
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, fmt.Errorf("audit: archive: %w", err)
	}
	a, err := readArchive(dir, c.mac, true)
	if err != nil {
		return res, err
	}
	for _, name := range append(a.temps, a.orphans...) {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return res, fmt.Errorf("audit: archive: removing what an interrupted run left: %w", err)
		}
		res.RemovedTempFiles++
	}
	if err := syncDir(dir); err != nil {
		return res, err
	}
	// The store must continue the archive: it holds record lastSeq (the
	// anchor, or not yet pruned) with the archive's head, or, for an
	// empty archive, record 1.
	first, err := al.ReadAudit(ctx, store.AuditQuery{After: a.lastSeq - min(a.lastSeq, 1), Limit: 1})
	if err != nil {
		return res, fmt.Errorf("audit: archive: %w", err)
	}
	switch {
	case len(first) == 0 && a.lastSeq == 0:
		return res, nil // nothing stored
	case len(first) == 0 || first[0].Seq != max(a.lastSeq, 1):
		return res, fmt.Errorf("%w: the archive ends at record %d, the store starts after it (its records were archived elsewhere)", ErrOtherLog, a.lastSeq)
	case a.lastSeq > 0 && link(first[0].Data) != a.head:
		return res, fmt.Errorf("%w: record %d in the store is not the archive's last record (%s is another log's archive)", ErrOtherLog, a.lastSeq, dir)
	}
	res.ArchivedThrough, res.ArchiveHead = a.lastSeq, a.head
	if a.lastSeq > 0 {
		if err := pr.PruneAudit(ctx, a.lastSeq); err != nil {
			return res, fmt.Errorf("audit: archive: %w", err)
		}
		res.PrunedFromStore = true
	}
	w := &segmentWriter{dir: dir, mac: c.mac, prevDigest: a.last}
	perSegment := uint64(segmentRecords)
	if c.segment > 0 {
		perSegment = uint64(c.segment)
	}
	seq, head := a.lastSeq, a.head
	for {
		entries, err := al.ReadAudit(ctx, store.AuditQuery{After: seq, Limit: 1000})
		if err != nil {
			return res, fmt.Errorf("audit: archive: %w", err)
		}
		done := len(entries) < 1000
		for _, e := range entries {
			if !e.Time.Before(before) {
				done = true
				break
			}
			if _, err := c.check(e, seq, head); err != nil {
				return res, err
			}
			if err := w.add(e, head); err != nil {
				return res, err
			}
			seq, head = e.Seq, link(e.Data)
			if w.count == perSegment {
				if err := w.finish(ctx, pr, &res); err != nil {
					return res, err
				}
			}
		}
		if done {
			break
		}
	}
	if w.count > 0 {
		if err := w.finish(ctx, pr, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// segmentWriter writes one segment at a time.
type segmentWriter struct {
	dir        string
	mac        func() hash.Hash
	prevDigest string

	f     *os.File
	tmp   string
	sum   hash.Hash
	gz    *gzip.Writer
	bw    *bufio.Writer
	d     Digest
	count uint64
}

func (w *segmentWriter) add(e store.AuditEntry, prev string) error {
	if w.f == nil {
		f, tmp, err := createTemp(w.dir)
		if err != nil {
			return err
		}
		w.f, w.tmp, w.sum = f, tmp, sha256.New()
		w.bw = bufio.NewWriterSize(io.MultiWriter(f, w.sum), 256<<10)
		w.gz, _ = gzip.NewWriterLevel(w.bw, gzip.BestSpeed)
		w.d = Digest{FirstSeq: e.Seq, FirstTime: e.Time.UTC(), Prev: prev}
		w.count = 0
	}
	if bytes.IndexByte(e.Data, '\n') >= 0 {
		return &TamperError{Seq: e.Seq, Reason: "record holds a raw newline"}
	}
	if _, err := w.gz.Write(e.Data); err != nil {
		return w.fail(err)
	}
	if _, err := w.gz.Write([]byte{'\n'}); err != nil {
		return w.fail(err)
	}
	w.d.LastSeq, w.d.LastTime, w.d.Head = e.Seq, e.Time.UTC(), link(e.Data)
	w.count++
	return nil
}

func (w *segmentWriter) fail(err error) error {
	w.f.Close()
	os.Remove(w.tmp)
	w.f = nil
	return fmt.Errorf("audit: archive: %w", err)
}

// finish makes the segment and its digest durable, then deletes the
// segment's records (but its last) from the store.
func (w *segmentWriter) finish(ctx context.Context, pr store.AuditPruner, res *ArchiveResult) error {
	if err := w.gz.Close(); err != nil {
		return w.fail(err)
	}
	if err := w.bw.Flush(); err != nil {
		return w.fail(err)
	}
	size, _ := w.f.Seek(0, io.SeekCurrent)
	if err := w.f.Sync(); err != nil {
		return w.fail(err)
	}
	if err := w.f.Close(); err != nil {
		return w.fail(err)
	}
	w.f = nil
	w.d.Segment = segmentName(w.d.FirstSeq, w.d.LastSeq)
	w.d.Count = w.count
	w.d.SHA256 = hex.EncodeToString(w.sum.Sum(nil))
	w.d.PrevDigest = w.prevDigest
	if err := place(w.dir, w.tmp, w.d.Segment); err != nil {
		return err
	}
	raw := sealDigest(w.d, w.mac)
	if err := writeNew(w.dir, digestName(w.d.Segment), raw); err != nil {
		return err
	}
	if err := syncDir(w.dir); err != nil {
		return err
	}
	w.prevDigest = hexSHA256(raw)
	if res.FirstSeq == 0 {
		res.FirstSeq = w.d.FirstSeq
	}
	res.LastSeq, res.ArchivedThrough, res.ArchiveHead = w.d.LastSeq, w.d.LastSeq, w.d.Head
	res.Segments++
	res.Records += w.count
	res.Bytes += size
	w.count = 0
	if err := pr.PruneAudit(ctx, w.d.LastSeq); err != nil {
		return fmt.Errorf("audit: archive: segment %s is archived but its records are still in the store (run again): %w", w.d.Segment, err)
	}
	res.PrunedFromStore = true
	return nil
}

// createTemp creates a new temporary file in dir, 0600.
func createTemp(dir string) (*os.File, string, error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	name := filepath.Join(dir, tempPrefix+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("audit: archive: %w", err)
	}
	return f, name, nil
}

// place links the fsync'd temporary file tmp to dir/name, failing if name
// exists, and removes tmp.
func place(dir, tmp, name string) error {
	if err := os.Link(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("audit: archive: %w (archive files are never overwritten)", err)
	}
	return os.Remove(tmp)
}

// writeNew writes b durably to the new file dir/name.
func writeNew(dir, name string, b []byte) error {
	f, tmp, err := createTemp(dir)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("audit: archive: %w", err)
	}
	return place(dir, tmp, name)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit: archive: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("audit: archive: sync %s: %w", dir, err)
	}
	return nil
}

// segmentReader reads one segment's records, hashing the file as it goes.
type segmentReader struct {
	f   *os.File
	sum hash.Hash
	br  *bufio.Reader
	gz  *gzip.Reader
	sc  *bufio.Scanner
}

func openSegment(dir, name string) (*segmentReader, error) {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	r := &segmentReader{f: f, sum: sha256.New()}
	r.br = bufio.NewReaderSize(io.TeeReader(f, r.sum), 256<<10)
	r.gz, err = gzip.NewReader(r.br)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.gz.Multistream(false)
	r.sc = bufio.NewScanner(r.gz)
	r.sc.Buffer(make([]byte, 64<<10), maxArchiveLine)
	return r, nil
}

// next returns the next record line, or io.EOF after the last.
func (r *segmentReader) next() ([]byte, error) {
	if r.sc.Scan() {
		return r.sc.Bytes(), nil
	}
	if err := r.sc.Err(); err != nil {
		return nil, err
	}
	return nil, io.EOF
}

// hash reads what is left of the file and returns its hex SHA-256.
func (r *segmentReader) hash() (string, error) {
	// Bytes after the gzip stream are part of the file the digest hashes.
	if _, err := io.Copy(io.Discard, r.br); err != nil {
		return "", err
	}
	return hex.EncodeToString(r.sum.Sum(nil)), nil
}

func (r *segmentReader) Close() error { return r.f.Close() }

// equalHex compares two hex digests in constant time.
func equalHex(a, b string) bool { return hmac.Equal([]byte(a), []byte(b)) }
