package envelope

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"

	"github.com/kmsring/kmsring/internal/format"
	"github.com/kmsring/kmsring/keyring"
)

var errClosed = errors.New("envelope: write after Close")

// NewWriter returns a WriteCloser that seals everything written to it into
// one envelope on w, in the same format as Seal. The header is written
// before NewWriter returns. Close must be called: it writes the final
// segment, without which the envelope does not open. Close does not close
// w. Memory use is one segment (64 KiB), whatever the length of the stream.
func NewWriter(ctx context.Context, k *keyring.Keyring, w io.Writer, opts ...Option) (io.WriteCloser, error) {
	c := newConfig(opts)
	c.cache = nil // streams always use a fresh data key
	header, pk, err := newHeader(ctx, k, c, 0, 0)
	if err != nil {
		return nil, err
	}
	sw := &writer{w: w, aead: newPayloadAEAD(&pk.key), buf: make([]byte, 0, sealedSegmentSize)}
	clear(pk.key[:])
	if _, err := w.Write(header); err != nil {
		return nil, err
	}
	return sw, nil
}

type writer struct {
	w     io.Writer
	aead  cipher.AEAD
	buf   []byte // plaintext of the current segment; sealed in place
	n     uint64 // index of the current segment
	nonce [12]byte
	err   error // sticky
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
	segmentNonce(&sw.nonce, sw.n, last)
	sealed := sw.aead.Seal(sw.buf[:0], sw.nonce[:], sw.buf, nil)
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
// commitment before NewReader returns, so those failures surface here. Each
// segment is authenticated before any of its plaintext is returned; a
// tampered or truncated stream ends in an error (keyring.ErrDecrypt or
// keyring.ErrMalformed), never in io.EOF, so a caller who reads to io.EOF
// has read the whole authentic plaintext. Memory use is one segment.
func NewReader(ctx context.Context, k Opener, r io.Reader, opts ...Option) (io.Reader, error) {
	c := newConfig(opts)
	h, _, err := format.ReadHeader(r)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	pk, err := openHeader(ctx, k, h, c)
	if err != nil {
		return nil, err
	}
	sr := &reader{r: r, aead: newPayloadAEAD(&pk.key), buf: make([]byte, sealedSegmentSize+1), look: -1}
	clear(pk.key[:])
	return sr, nil
}

type reader struct {
	r     io.Reader
	aead  cipher.AEAD
	buf   []byte // one sealed segment plus one byte of lookahead
	look  int    // the lookahead byte, or -1 if none is held
	plain []byte // decrypted, unread plaintext (aliases buf)
	n     uint64 // index of the next segment
	done  bool   // the last segment has been read
	err   error  // sticky
	nonce [12]byte
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
	if sr.done {
		if n < tagSize {
			return fmt.Errorf("envelope: %w: truncated payload", keyring.ErrMalformed)
		}
		if n == tagSize && sr.n > 0 {
			return fmt.Errorf("envelope: %w: empty final segment", keyring.ErrMalformed)
		}
		sr.look = -1
	} else {
		sr.look = int(sr.buf[sealedSegmentSize])
	}
	seg := sr.buf[:min(n, sealedSegmentSize)]
	segmentNonce(&sr.nonce, sr.n, sr.done)
	plain, err := sr.aead.Open(seg[:0], sr.nonce[:], seg, nil)
	if err != nil {
		return keyring.ErrDecrypt
	}
	sr.n++
	sr.plain = plain
	return nil
}
