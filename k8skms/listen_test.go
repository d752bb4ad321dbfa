//go:build unix

package k8skms_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/kmsring/kmsring/k8skms"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	kmsv2 "k8s.io/kms/apis/v2"
)

// socketDir is a directory only this user can write.
func socketDir(t *testing.T) string {
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o700))
	return dir
}

func TestSocketPath(t *testing.T) {
	p, err := k8skms.SocketPath("unix:///var/run/kmsring/kms.sock")
	require.NoError(t, err)
	assert.Equal(t, "/var/run/kmsring/kms.sock", p)
	for _, bad := range []string{"", "/var/run/kms.sock", "unix://relative.sock", "tcp://127.0.0.1:80", "unix:///a/../b.sock", "unix:///a\x00b"} {
		_, err := k8skms.SocketPath(bad)
		assert.ErrorIs(t, err, keyring.ErrInvalidArgument, "%q", bad)
	}
}

func TestListenServesTheAPIServerOverAnOwnerOnlySocket(t *testing.T) {
	f := newFixture(t)
	path := filepath.Join(socketDir(t), "kms.sock")
	ln, err := k8skms.Listen("unix://" + path)
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSocket|0o600, fi.Mode(), "the socket is the owner's only")
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary name is left behind")

	g := grpc.NewServer()
	f.svc.Register(g)
	go g.Serve(ln)
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	client := kmsv2.NewKeyManagementServiceClient(conn)
	ctx := context.Background()
	st, err := client.Status(ctx, &kmsv2.StatusRequest{})
	require.NoError(t, err)
	assert.Equal(t, "ok", st.Healthz)
	enc, err := client.Encrypt(ctx, &kmsv2.EncryptRequest{Plaintext: seed(3), Uid: "a"})
	require.NoError(t, err)
	assert.Equal(t, st.KeyId, enc.KeyId)
	dec, err := client.Decrypt(ctx, &kmsv2.DecryptRequest{Ciphertext: enc.Ciphertext, KeyId: enc.KeyId, Uid: "b"})
	require.NoError(t, err)
	assert.Equal(t, seed(3), dec.Plaintext)

	// In use while served.
	_, err = k8skms.Listen("unix://" + path)
	assert.ErrorIs(t, err, k8skms.ErrSocketInUse)
	assert.ErrorContains(t, err, "another process is serving on it")

	g.Stop()
	_, err = os.Stat(path)
	assert.ErrorIs(t, err, os.ErrNotExist, "closing the listener removes the socket")
}

func TestListenRemovesAStaleSocket(t *testing.T) {
	path := filepath.Join(socketDir(t), "kms.sock")
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	old.SetUnlinkOnClose(false)
	require.NoError(t, old.Close()) // a crashed plugin's socket
	_, err = os.Lstat(path)
	require.NoError(t, err)
	ln, err := k8skms.Listen("unix://" + path)
	require.NoError(t, err, "a socket no server answers is removed")
	ln.Close()
}

func TestListenRefusesUnsafePaths(t *testing.T) {
	open := t.TempDir()
	require.NoError(t, os.Chmod(open, 0o777))
	_, err := k8skms.Listen("unix://" + filepath.Join(open, "kms.sock"))
	assert.ErrorIs(t, err, k8skms.ErrUnsafeSocketDir)
	assert.ErrorContains(t, err, "world-writable")
	require.NoError(t, os.Chmod(open, 0o777|os.ModeSticky))
	_, err = k8skms.Listen("unix://" + filepath.Join(open, "kms.sock"))
	assert.ErrorIs(t, err, k8skms.ErrUnsafeSocketDir, "a sticky directory such as /tmp is refused too")

	dir := socketDir(t)
	file := filepath.Join(dir, "kms.sock")
	require.NoError(t, os.WriteFile(file, []byte("data"), 0o600))
	_, err = k8skms.Listen("unix://" + file)
	assert.ErrorIs(t, err, k8skms.ErrSocketInUse)
	assert.ErrorContains(t, err, "not a socket")
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, "data", string(b), "a file at the path is left as it was")

	_, err = k8skms.Listen("unix://" + filepath.Join(dir, "missing", "kms.sock"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}
