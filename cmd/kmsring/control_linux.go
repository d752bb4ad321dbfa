package main

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// checkPeer accepts a control socket connection only from a process of
// this process's user (SO_PEERCRED), whatever the socket file's mode.
func checkPeer(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("not a Unix socket connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("peer user ID %d is not the store owner's %d", cred.Uid, os.Getuid())
	}
	return nil
}

func umask(m int) int { return syscall.Umask(m) }
