//go:build unix

package k8skms

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kmsring/kmsring/keyring"
)

// Errors Listen fails with, for errors.Is.
var (
	// ErrUnsafeSocketDir reports a socket directory that other users may
	// write: one of them could replace the socket with their own and
	// receive the API server's seeds.
	ErrUnsafeSocketDir = errors.New("k8skms: socket directory is writable by other users")
	// ErrSocketInUse reports a socket path where a process already
	// answers, or that is not this user's socket.
	ErrSocketInUse = errors.New("k8skms: socket path in use")
)

// dialTimeout bounds how long Listen waits to learn whether a socket left
// at its path still has a server.
const dialTimeout = time.Second

// SocketPath returns the path of a unix:///PATH endpoint, as the API
// server's EncryptionConfiguration names it. The path must be absolute.
func SocketPath(endpoint string) (string, error) {
	p, ok := strings.CutPrefix(endpoint, "unix://")
	if !ok || !filepath.IsAbs(p) || filepath.Clean(p) != p || strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%w: k8skms: endpoint %q is not unix:///ABSOLUTE/PATH", keyring.ErrInvalidArgument, endpoint)
	}
	return p, nil
}

// Listen listens on the unix socket of endpoint (unix:///PATH) for the API
// server, safely: it refuses a directory that other users may write
// (ErrUnsafeSocketDir) and a path where a server already answers or that
// holds anything but this user's socket (ErrSocketInUse); it removes a
// socket of this user that no server answers any more (left by a crash);
// and the socket appears at PATH already 0600 (made under another name
// and renamed). Closing the listener removes the socket.
func Listen(endpoint string) (net.Listener, error) {
	path, err := SocketPath(endpoint)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("k8skms: socket directory: %w", err)
	}
	if fi.Mode().Perm()&0o002 != 0 {
		return nil, fmt.Errorf("%w: %s is world-writable (mode %v); put the socket in a directory only the plugin's user can write, such as /var/run/kmsring (0700)", ErrUnsafeSocketDir, dir, fi.Mode().Perm())
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".kms%d.tmp", os.Getpid()))
	os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("k8skms: listen: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("k8skms: listen: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("k8skms: listen: %w", err)
	}
	return &listener{UnixListener: ln, path: path}, nil
}

// removeStale removes a socket of this user at path that no server
// answers, and refuses anything else that is there.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("k8skms: socket path: %w", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%w: %s exists and is not a socket (%v)", ErrSocketInUse, path, fi.Mode().Type())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: %s is another user's socket (uid %d)", ErrSocketInUse, path, st.Uid)
	}
	c, err := net.DialTimeout("unix", path, dialTimeout)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w: %s: another process is serving on it (another kms-plugin?)", ErrSocketInUse, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%w: %s: %v", ErrSocketInUse, path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("k8skms: removing the stale socket %s: %w", path, err)
	}
	return nil
}

// listener removes its socket when first closed.
type listener struct {
	*net.UnixListener
	path string
	once sync.Once
}

func (l *listener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() { os.Remove(l.path) })
	return err
}
