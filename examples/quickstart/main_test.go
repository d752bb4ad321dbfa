package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// capture runs the quickstart and returns what it printed.
func capture(t *testing.T, f files) string {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	output := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		output <- b
	}()
	stdout := os.Stdout
	os.Stdout = w
	runErr := run(t.Context(), f)
	os.Stdout = stdout
	require.NoError(t, w.Close())
	got := string(<-output)
	require.NoError(t, runErr)
	return got
}

// TestQuickstart runs the quickstart twice on one store and checks the
// facts it prints.
func TestQuickstart(t *testing.T) {
	dir := t.TempDir()
	f := files{store: filepath.Join(dir, "q.db"), rootKey: filepath.Join(dir, "q.key"), record: filepath.Join(dir, "q.sealed")}
	got := capture(t, f)
	for _, want := range []string{
		"2026-01-31: version 2 (on-demand) is now current",
		"2027-01-31: automatic rotation, version 2 -> 3",
		"2028-01-31: automatic rotation, version 3 -> 4",
		"2029-01-30: automatic rotation, version 4 -> 5",
		"current version 5, rotation enabled true, period 365 days",
		"the record sealed under version 1 still opens",
		"401 days without a rotation: overdue: true",
	} {
		assert.Contains(t, got, want)
	}

	got = capture(t, f)
	for _, want := range []string{
		"Find the key from the earlier run",
		"current version 5, rotation enabled true, period 365 days",
		`sealed under version 1: {"order":1001`,
		"2029-01-31: version 6 (on-demand) is now current",
	} {
		assert.Contains(t, got, want)
	}
}
