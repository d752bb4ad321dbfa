package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lockedBuffer is a bytes.Buffer safe to read while the timer writes.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestLogBufferBatchesLines(t *testing.T) {
	var out lockedBuffer
	b := newLogBuffer(&out)
	for i := range 100 {
		n, err := fmt.Fprintf(b, "line %d\n", i)
		require.NoError(t, err)
		require.Equal(t, len(fmt.Sprintf("line %d\n", i)), n)
	}
	b.Flush()
	assert.Equal(t, 1, out.writes, "a hundred lines logged together are one write")
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	require.Len(t, lines, 100)
	for i, l := range lines {
		assert.Equal(t, fmt.Sprintf("line %d", i), l)
	}
}

func TestLogBufferWritesWhenFull(t *testing.T) {
	var out lockedBuffer
	b := newLogBuffer(&out)
	line := strings.Repeat("x", 1023) + "\n"
	for range logFlushSize / len(line) {
		b.Write([]byte(line))
	}
	assert.Equal(t, logFlushSize, len(out.String()), "a full buffer is written without waiting")
	b.Write([]byte("tail\n"))
	assert.Equal(t, 1, out.writes, "the line after it waits for the next batch")
	require.NoError(t, b.Close())
	assert.True(t, strings.HasSuffix(out.String(), line+"tail\n"))
}

func TestLogBufferWritesWithinTheDelay(t *testing.T) {
	var out lockedBuffer
	b := newLogBuffer(&out)
	defer b.Close()
	b.Write([]byte("alone\n"))
	// The timer writes it; the bound here only keeps a broken buffer
	// from hanging the test.
	require.Eventually(t, func() bool { return out.String() == "alone\n" }, time.Minute, time.Millisecond)
}

func TestLogBufferClosePassesThrough(t *testing.T) {
	var out lockedBuffer
	b := newLogBuffer(&out)
	b.Write([]byte("before\n"))
	require.NoError(t, b.Close())
	assert.Equal(t, "before\n", out.String(), "Close writes what waits")
	b.Write([]byte("after\n"))
	assert.Equal(t, "before\nafter\n", out.String(), "after Close, writes go straight through")
	assert.Equal(t, 2, out.writes)
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestLogBufferReportsWriteError(t *testing.T) {
	b := newLogBuffer(failWriter{})
	_, err := b.Write([]byte("lost\n"))
	require.NoError(t, err, "the logger is not failed for a later write's error")
	require.EqualError(t, b.Close(), "disk full")
}

func TestLogBufferConcurrentLinesStayWhole(t *testing.T) {
	var out lockedBuffer
	b := newLogBuffer(&out)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				fmt.Fprintf(b, "g%d-%d %s\n", g, i, strings.Repeat("y", 100))
			}
		})
	}
	wg.Wait()
	require.NoError(t, b.Close())
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	require.Len(t, lines, 8*500)
	next := map[string]int{}
	for _, l := range lines {
		var g, i int
		_, err := fmt.Sscanf(l, "g%d-%d", &g, &i)
		require.NoError(t, err, l)
		require.Equal(t, strings.Repeat("y", 100), strings.Fields(l)[1])
		key := fmt.Sprint(g)
		require.Equal(t, next[key], i, "each goroutine's lines in order")
		next[key]++
	}
}
