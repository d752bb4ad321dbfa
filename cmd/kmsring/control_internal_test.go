//go:build linux

package main

import (
	"log/slog"
	"net"
	"net/rpc"
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

// TestAttackControlSocketOtherUserConnects: serve answers only the store
// owner's user ID; a connection from another user is closed unanswered.
func TestAttackControlSocketOtherUserConnects(t *testing.T) {
	dir, err := os.MkdirTemp("/tmp", "ctl")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	storePath := filepath.Join(dir, "s.db")
	own := controlOwnerUID
	controlOwnerUID = func() int { return os.Getuid() + 1 }
	defer func() { controlOwnerUID = own }()
	stop, err := listenControl(storePath, &ControlService{changed: func(string) {}}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer stop()
	fi, err := os.Lstat(storePath + controlSuffix)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the socket file is the owner's only")

	c, err := net.Dial("unix", storePath+controlSuffix)
	require.NoError(t, err)
	defer c.Close()
	rs := &remoteStore{c: rpc.NewClient(c)}
	_, err = rs.List(t.Context())
	require.Error(t, err, "the connection is closed before any call is answered")
}
