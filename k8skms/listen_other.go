//go:build !unix

package k8skms

import (
	"errors"
	"net"
)

// Errors Listen fails with, for errors.Is.
var (
	ErrUnsafeSocketDir = errors.New("k8skms: socket directory is writable by other users")
	ErrSocketInUse     = errors.New("k8skms: socket path in use")
)

// Listen needs unix sockets, as the API server does.
func Listen(endpoint string) (net.Listener, error) {
	return nil, errors.New("k8skms: unix sockets are not supported on this system")
}
