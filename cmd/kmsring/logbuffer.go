package main

import (
	"io"
	"sync"
	"time"
)

// Bounds of serve's log buffer: a line reaches standard error at most
// logFlushDelay after it is logged, and at once when logFlushSize bytes
// are waiting.
const (
	logFlushDelay = 20 * time.Millisecond
	logFlushSize  = 32 << 10
)

// logBuffer batches serve's log lines into few writes, as nginx's
// buffered access log does: a line per request written on its own costs
// a system call per request, more than the rest of the line's cost. The
// first line of a batch arms a timer; the batch is written when it fires,
// when the buffer fills, and on Close, after which writes go straight
// through (so that whatever serve's caller prints last comes last). A
// process killed outright loses at most logFlushDelay of lines; the audit
// log, not this one, is the record of what was done.
type logBuffer struct {
	mu     sync.Mutex
	w      io.Writer
	buf    []byte
	timer  *time.Timer
	closed bool
	err    error // the first write error, reported by Close
}

func newLogBuffer(w io.Writer) *logBuffer {
	b := &logBuffer{w: w}
	b.timer = time.AfterFunc(time.Hour, b.Flush)
	b.timer.Stop()
	return b
}

// Write keeps p for the next batch; it always succeeds. A line is never
// split between batches.
func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return b.w.Write(p)
	}
	if len(b.buf) == 0 {
		b.timer.Reset(logFlushDelay)
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) >= logFlushSize {
		b.flushLocked()
	}
	return len(p), nil
}

// Flush writes what is waiting.
func (b *logBuffer) Flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
}

func (b *logBuffer) flushLocked() {
	if len(b.buf) == 0 {
		return
	}
	b.timer.Stop()
	if _, err := b.w.Write(b.buf); err != nil && b.err == nil {
		b.err = err
	}
	if cap(b.buf) > 2*logFlushSize {
		b.buf = nil // a burst of long lines: do not keep its buffer
	}
	b.buf = b.buf[:0]
}

// Close writes what is waiting and makes later writes unbuffered. It
// returns the first error writing to the underlying writer.
func (b *logBuffer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	b.closed = true
	return b.err
}
