//go:build linux

package main

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/rpc"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kmsring/kmsring/store"
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

// fakeControlStore answers List and counts AppendAudit's calls; the rest
// of the store is not used.
type fakeControlStore struct {
	controlStore
	appends atomic.Int32
}

func (f *fakeControlStore) List(context.Context) ([]string, error) { return []string{"k"}, nil }

func (f *fakeControlStore) AppendAudit(context.Context, []store.AuditEntry) error {
	f.appends.Add(1)
	return nil
}

// controlDir is a directory for a store and its socket, short enough for a
// Unix socket path.
func controlDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/tmp", "ctl")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestAttackControlSocketOversizedRequest: a peer of the store owner's
// user (a buggy or hostile process, or a corrupted client) sends a gob
// message over the request bound. serve must not read it (the length
// alone is refused, before anything is allocated for it), must close that
// connection without calling the store, and must keep answering others.
// The peer here is a plain net/rpc client, which bounds nothing.
func TestAttackControlSocketOversizedRequest(t *testing.T) {
	storePath := filepath.Join(controlDir(t), "s.db")
	st := &fakeControlStore{}
	stop, err := listenControl(storePath, &ControlService{st: st, changed: func(string) {}}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer stop()

	c, err := net.Dial("unix", storePath+controlSuffix)
	require.NoError(t, err)
	raw := rpc.NewClient(c)
	defer raw.Close()
	big := []store.AuditEntry{{Seq: 1, Data: make([]byte, maxControlRequest+1)}}
	var out CtlAudit
	err = raw.Call("Store.AppendAudit", big, &out)
	require.Error(t, err, "a request over the bound is not answered")
	assert.Zero(t, st.appends.Load(), "a request over the bound never reaches the store")

	rs, err := dialControl(storePath)
	require.NoError(t, err)
	defer rs.Close()
	ids, err := rs.List(t.Context())
	require.NoError(t, err, "serve keeps answering other connections")
	assert.Equal(t, []string{"k"}, ids)
}

// TestAttackControlSocketChmodFollowsSymlink: between serve's creating the
// socket and setting its mode, a symlink put in its place (the store's
// directory may be shared) must not redirect the mode change to the file
// it points at.
func TestAttackControlSocketChmodFollowsSymlink(t *testing.T) {
	dir := controlDir(t)
	storePath := filepath.Join(dir, "s.db")
	victim := filepath.Join(dir, "victim")
	require.NoError(t, os.WriteFile(victim, []byte("x"), 0o644))
	require.NoError(t, os.Chmod(victim, 0o644))
	controlBound = func(string) {
		path := storePath + controlSuffix
		os.Remove(path)
		require.NoError(t, os.Symlink(victim, path))
	}
	defer func() { controlBound = func(string) {} }()

	stop, err := listenControl(storePath, &ControlService{st: &fakeControlStore{}, changed: func(string) {}}, slog.New(slog.DiscardHandler))
	if err == nil {
		defer stop()
	}
	fi, serr := os.Stat(victim)
	require.NoError(t, serr)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm(), "the symlink's target keeps its mode")
	require.NoError(t, err)
	fi, err = os.Lstat(storePath + controlSuffix)
	require.NoError(t, err)
	assert.Equal(t, fs.ModeSocket, fi.Mode().Type(), "serve's socket is in place, not the symlink")
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	rs, err := dialControl(storePath)
	require.NoError(t, err)
	defer rs.Close()
	_, err = rs.List(t.Context())
	require.NoError(t, err)
}

// staleSocket leaves a socket file at path with nothing listening, as a
// process that crashed does.
func staleSocket(t *testing.T, path string) {
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	require.NoError(t, ln.Close())
}

// TestControlSocketStaleReplaced: a socket of this user left by a serve
// that crashed is replaced, and serve's own goes when it stops.
func TestControlSocketStaleReplaced(t *testing.T) {
	storePath := filepath.Join(controlDir(t), "s.db")
	staleSocket(t, storePath+controlSuffix)
	stop, err := listenControl(storePath, &ControlService{st: &fakeControlStore{}, changed: func(string) {}}, slog.New(slog.DiscardHandler))
	require.NoError(t, err, "a stale socket of this user does not block serve")
	rs, err := dialControl(storePath)
	require.NoError(t, err)
	_, err = rs.List(t.Context())
	require.NoError(t, err)
	rs.Close()
	stop()
	_, err = os.Lstat(storePath + controlSuffix)
	assert.ErrorIs(t, err, fs.ErrNotExist, "serve removes its socket when it stops")
}

// TestAttackControlSocketStaleOfAnotherUser: in a sticky directory such as
// /tmp, another user may have made STORE.sock first. serve must neither
// remove nor trust it, and must say whose it is. The other user is
// simulated by changing the user ID serve expects.
func TestAttackControlSocketStaleOfAnotherUser(t *testing.T) {
	storePath := filepath.Join(controlDir(t), "s.db")
	path := storePath + controlSuffix
	staleSocket(t, path)
	before, err := os.Lstat(path)
	require.NoError(t, err)
	own := controlOwnerUID
	controlOwnerUID = func() int { return os.Getuid() + 1 }
	defer func() { controlOwnerUID = own }()

	stop, err := listenControl(storePath, &ControlService{st: &fakeControlStore{}, changed: func(string) {}}, slog.New(slog.DiscardHandler))
	if err == nil {
		stop()
	}
	require.Error(t, err, "another user's socket is not replaced")
	assert.Contains(t, err.Error(), path, "the error names the socket")
	assert.Contains(t, err.Error(), fmt.Sprintf("user ID %d", os.Getuid()), "the error names its owner")
	after, err := os.Lstat(path)
	require.NoError(t, err, "another user's socket is left alone")
	assert.True(t, os.SameFile(before, after), "another user's socket is left alone")
}
