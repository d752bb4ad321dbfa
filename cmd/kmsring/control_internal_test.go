//go:build linux

package main

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAttackControlSocketPlantedByAnotherUser: a command that finds the
// store locked talks to whatever answers on STORE.sock, and hands it its
// store writes (wrapped records, access key secrets, audit records) and
// trusts its replies. A socket that another user planted there (a store
// in a directory others can write) must be refused: the command checks
// the listening process's user ID as serve checks the command's. The
// other user is simulated by changing the user ID the check expects.
func TestAttackControlSocketPlantedByAnotherUser(t *testing.T) {
	dir, err := os.MkdirTemp("/tmp", "ctl") // short: socket paths are bounded
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	storePath := filepath.Join(dir, "s.db")
	ln, err := net.Listen("unix", storePath+controlSuffix)
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	rs, err := dialControl(storePath)
	require.NoError(t, err, "a socket of this user is answered")
	rs.Close()

	own := controlOwnerUID
	controlOwnerUID = func() int { return os.Getuid() + 1 }
	defer func() { controlOwnerUID = own }()
	rs, err = dialControl(storePath)
	if rs != nil {
		rs.Close()
	}
	require.Error(t, err, "a socket whose listener is another user's is refused")
	assert.Contains(t, err.Error(), "not the store owner's")
}
