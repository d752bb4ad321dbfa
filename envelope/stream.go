package envelope

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/kmsring/kmsring/internal/format"
	"github.com/kmsring/kmsring/keyring"
)

var errClosed = errors.New("envelope: write after Close")

// NewWriter returns a WriteCloser that seals everything written to it into
// one envelope on w, in the same format as Seal, with AES-256-GCM (the
// length is not known in advance). The header is written before NewWriter
// returns. Close must be called: it writes the final segment, without which
// the envelope fails to open with ErrTruncated. Close does not close w.
// Memory use is one segment (64 KiB), whatever the length of the stream.
// NewWriter fails as Seal does; WithCache does not apply (a stream always
// gets a fresh data key).
func NewWriter(ctx context.Context, k *keyring.Keyring, w io.Writer, opts ...Option) (io.WriteCloser, error) {
	c := newConfig(opts)
	c.cache = nil
	ecLen, err := format.CheckContext(c.ec)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w: %v", keyring.ErrInvalidArgument, err)
	}
	suite := byte(format.SuiteAES256GCM)
	if k.Approved() {
		suite = format.SuiteApproved
	}
	header, aead, err := appendHeader(ctx, make([]byte, 0, headerSize(suite, ecLen)+randSize), k, &c, suite, ecLen, 0)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(header); err != nil {
		return nil, err
	}
	fillHeader(&c, header)
	return &writer{w: w, aead: aead, buf: make([]byte, 0, sealedSegmentSize(suite))}, nil
}

type writer struct {
	w    io.Writer
	aead segmentAEAD
	buf  []byte // plaintext of the current segment; sealed in place
	n    uint64 // index of the current segment
	err  error  // sticky
}

// Write implements io.Writer. A full segment is sealed only when more data
// follows it, since until then it may be the last one.
func (sw *writer) Write(p []byte) (int, error) {
	if sw.err != nil {
		return 0, sw.err
	}
	written := 0
	for len(p) > 0 {
		if len(sw.buf) == segmentSize {
			if err := sw.flush(false); err != nil {
				return written, err
			}
		}
		n := copy(sw.buf[len(sw.buf):segmentSize], p)
		sw.buf = sw.buf[:len(sw.buf)+n]
		p = p[n:]
		written += n
	}
	return written, nil
}

func (sw *writer) flush(last bool) error {
	if sw.aead.approved && sw.n >= maxApprovedSegments {
		sw.err = errTooManySegments
		return sw.err
	}
	sealed := sw.aead.seal(sw.buf[:0], sw.n, last, sw.buf)
	if _, err := sw.w.Write(sealed); err != nil {
		sw.err = err
		return err
	}
	sw.n++
	sw.buf = sw.buf[:0]
	return nil
}

// Close writes the final segment. Later Writes fail; a second Close is a
// no-op.
func (sw *writer) Close() error {
	if sw.err == errClosed {
		return nil
	}
	if sw.err != nil {
		return sw.err
	}
	if err := sw.flush(true); err != nil {
		return err
	}
	sw.err = errClosed
	return nil
}

// NewReader reads an envelope from r and returns a Reader of its plaintext.
// The header is read, its data key unwrapped with k and checked against the
// commitment before NewReader returns, so those failures surface here, with
// the errors Open lists (but ErrTruncated). Each segment is authenticated
// before any of its plaintext is returned; a tampered or truncated stream
// ends in an error (keyring.ErrDecrypt, which ErrTruncated also matches, or
// keyring.ErrMalformed), never in io.EOF, so a caller who reads to io.EOF
// has read the whole authentic plaintext. Memory use is one segment, and
// a second for the approved suite (its segments open beside the sealed
// bytes, not in place) and for a stream that ends at a segment boundary. The
// Reader implements io.WriterTo, which io.Copy uses to save a copy.
func NewReader(ctx context.Context, k Opener, r io.Reader, opts ...Option) (io.Reader, error) {
	c := newConfig(opts)
	h, raw, err := format.ReadHeader(r)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	sr := &reader{r: r, suite: h.Suite, buf: make([]byte, sealedSegmentSize(h.Suite)+1), look: -1}
	if sr.aead, err = openHeader(ctx, k, &h, raw, &c, sr.buf[:dekSize]); err != nil {
		return nil, err
	}
	if c.header != nil {
		*c.header = newHeader(&h, len(raw))
	}
	return sr, nil
}

type reader struct {
	r     io.Reader
	suite byte
	aead  segmentAEAD
	buf   []byte // one sealed segment plus one byte of lookahead
	spare []byte // a final full segment (every approved segment) opens here, not in place
	look  int    // the lookahead byte, or -1 if none is held
	plain []byte // decrypted, unread plaintext (aliases buf or spare)
	n     uint64 // index of the next segment
	done  bool   // the last segment has been read
	err   error  // sticky
}

func (sr *reader) Read(p []byte) (int, error) {
	for len(sr.plain) == 0 {
		if sr.err != nil {
			return 0, sr.err
		}
		if sr.done {
			return 0, io.EOF
		}
		if err := sr.next(); err != nil {
			sr.err = err
			return 0, err
		}
	}
	n := copy(p, sr.plain)
	sr.plain = sr.plain[n:]
	return n, nil
}

// WriteTo writes the plaintext to w, segment by segment, without the copy
// that Read makes; io.Copy uses it. Like Read, it writes nothing of a
// segment that does not authenticate, and it ends in an error, not a short
// success, if the stream was tampered with or cut.
func (sr *reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(sr.plain) > 0 {
			n, err := w.Write(sr.plain)
			total += int64(n)
			sr.plain = sr.plain[n:]
			if err != nil {
				return total, err
			}
			continue
		}
		if sr.err != nil {
			return total, sr.err
		}
		if sr.done {
			return total, nil
		}
		if err := sr.next(); err != nil {
			sr.err = err
			return total, err
		}
	}
}

// next reads and opens the next segment. A segment is the last one when
// the stream ends before one byte past a full segment.
func (sr *reader) next() error {
	start := 0
	if sr.look >= 0 {
		sr.buf[0] = byte(sr.look)
		start = 1
	}
	n, err := io.ReadFull(sr.r, sr.buf[start:])
	n += start
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		sr.done = true
	case err != nil:
		return err
	}
	sss := sealedSegmentSize(sr.suite)
	if sr.done {
		sr.look = -1
	} else {
		sr.look = int(sr.buf[sss])
	}
	seg := sr.buf[:min(n, sss)]
	out := seg[:0]
	if sr.aead.approved || sr.done && n == sss {
		// A stream that ends at a segment boundary may have been cut
		// there: if the segment fails as the last one, it is tried as
		// another, so it must not be opened in place (a failed open
		// clears its output). An approved segment is never opened in
		// place: its nonce comes first, so in place the module would
		// first move the whole ciphertext back over it (and allocate a
		// copy of the nonce), for every segment.
		if sr.spare == nil {
			sr.spare = make([]byte, segmentSize)
		}
		out = sr.spare[:0]
	}
	plain, err := openSegment(&sr.aead, sr.suite, out, sr.n, seg, sr.done)
	if err != nil {
		return err
	}
	sr.n++
	sr.plain = plain
	return nil
}
