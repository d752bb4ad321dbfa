package main

import (
	"errors"
	"fmt"
	"math"
	"net"
)

// Bounds on one gob message on the control socket. A gob stream is a
// sequence of messages, each its length (a gob unsigned integer) and that
// many bytes; the decoder reads a whole message before decoding it, so
// that a length is a promise to make the reader allocate. Each end reads
// the lengths itself and refuses a message over its bound before handing
// anything of it to gob.
const (
	// maxControlRequest bounds a message a command sends serve. The
	// largest request is an Update of the root key rotation, which puts
	// every version of a key: a key record (at most 1 MiB read back,
	// keyring's maxKeyRecord; 256 KiB written, MaxKeyRecordSize) and its
	// versions (at most 16 KiB each, keyring's maxVersionRecord, a few
	// hundred bytes under a local root key). 64 MiB holds the record and
	// 4000 versions of the largest kind, or about 200,000 of the usual
	// one. An AppendAudit batch is at most 500 records (audit's
	// maxBatch); 64 MiB allows 128 KiB each, far over a command's record.
	maxControlRequest = 64 << 20
	// maxControlReply bounds a message serve sends a command. Replies
	// may be larger than requests: a page of 1000 audit records (audit's
	// Walk and archive), each up to about 256 KiB when an API request of
	// kmsapi's DefaultMaxRequestSize put its encryption context in it;
	// List's every key ID (about 6 million IDs); every version of a key.
	maxControlReply = 256 << 20
)

// errControlTooLarge reports a control socket message over its bound.
var errControlTooLarge = errors.New("control socket: message over the bound")

// gobFrames follows the message lengths of a gob stream fed to it and
// refuses a message longer than max, or a malformed length.
type gobFrames struct {
	max  uint64
	left uint64  // bytes of the current message still to come
	hdr  []byte  // the bytes of a length read so far
	err  error   // sticky
	buf  [9]byte // hdr's storage
}

func newGobFrames(max uint64) *gobFrames {
	f := &gobFrames{max: max}
	f.hdr = f.buf[:0]
	return f
}

// feed follows p, the next bytes of the stream. Once it has returned an
// error, it returns that error.
func (f *gobFrames) feed(p []byte) error {
	for f.err == nil && len(p) > 0 {
		if f.left > 0 {
			n := min(uint64(len(p)), f.left)
			f.left -= n
			p = p[n:]
			continue
		}
		f.hdr = append(f.hdr, p[0])
		p = p[1:]
		n, done, ok := gobUint(f.hdr)
		switch {
		case !ok:
			f.err = fmt.Errorf("%w: malformed message length", errControlTooLarge)
		case !done:
		case n > f.max:
			f.err = fmt.Errorf("%w: a message of %d bytes, over %d", errControlTooLarge, n, f.max)
		default:
			f.hdr, f.left = f.hdr[:0], n
		}
	}
	return f.err
}

// gobUint decodes b as a gob unsigned integer: one byte below 0x80 is
// itself; otherwise the first byte is the negated count (1..8) of the
// big-endian bytes that follow. done is false while b is a prefix of one.
func gobUint(b []byte) (n uint64, done, ok bool) {
	if b[0] < 0x80 {
		return uint64(b[0]), true, true
	}
	count := 256 - int(b[0])
	if count > 8 {
		return 0, false, false
	}
	if len(b) < 1+count {
		return 0, false, true
	}
	for _, c := range b[1:] {
		n = n<<8 | uint64(c)
	}
	return n, true, true
}

// boundedConn is a control socket connection whose reads refuse a
// message over in's bound, and whose writes refuse one over out's. A
// refusal is final: the connection is closed, and every later read or
// write fails with the error that closed it.
type boundedConn struct {
	net.Conn
	in, out *gobFrames
}

// newBoundedConn bounds c's incoming messages by in bytes and outgoing
// ones by out.
func newBoundedConn(c net.Conn, in, out uint64) *boundedConn {
	return &boundedConn{Conn: c, in: newGobFrames(in), out: newGobFrames(out)}
}

func (c *boundedConn) Read(p []byte) (int, error) {
	if c.in.err != nil {
		return 0, c.in.err
	}
	n, err := c.Conn.Read(p)
	if ferr := c.in.feed(p[:n]); ferr != nil {
		c.Conn.Close()
		return 0, ferr
	}
	return n, err
}

func (c *boundedConn) Write(p []byte) (int, error) {
	if err := c.out.feed(p); err != nil {
		c.Conn.Close()
		return 0, err
	}
	return c.Conn.Write(p)
}

// unbounded is the bound of a direction no bound is put on.
const unbounded = math.MaxUint64
