package boltstore_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every truncation of a store file is reported as corruption, in words
// that read like corruption rather than a crash of the program.
func TestTruncatedFileMessages(t *testing.T) {
	path, orig := fill(t)
	for n := 512; n < len(orig); n += 512 {
		require.NoError(t, os.WriteFile(path, orig[:n], 0o600))
		st, err := boltstore.Open(path)
		if err == nil {
			require.NoError(t, st.Close())
			continue
		}
		require.ErrorIs(t, err, boltstore.ErrCorrupt)
		for _, crash := range []string{"runtime error", "nil pointer", "invalid memory address", "panic", "goroutine"} {
			require.NotContains(t, err.Error(), crash, "truncated to %d bytes", n)
		}
	}
}

// A second Open of a file this process holds fails at once, saying so:
// not "in use by another process".
func TestOpenTwiceInProcess(t *testing.T) {
	st, path := newStore(t)
	defer st.Close()
	_, err := boltstore.Open(path)
	require.ErrorIs(t, err, boltstore.ErrLocked)
	assert.Contains(t, err.Error(), "already open in this process")
	assert.NotContains(t, err.Error(), "another process")

	// Through another path to the same file, too.
	link := filepath.Join(t.TempDir(), "link.db")
	require.NoError(t, os.Symlink(path, link))
	_, err = boltstore.Open(link)
	require.ErrorIs(t, err, boltstore.ErrLocked)
	assert.Contains(t, err.Error(), "already open in this process")

	require.NoError(t, st.Close())
	again, err := boltstore.Open(path)
	require.NoError(t, err, "the file opens again once closed")
	require.NoError(t, again.Close())
}

// A missing directory names the path once.
func TestMissingDirectoryMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "kmsring.db")
	_, err := boltstore.Open(path)
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.Equal(t, 1, strings.Count(err.Error(), path), "the path appears once: %v", err)
	t.Log(err)
}
