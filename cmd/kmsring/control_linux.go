package main

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// checkPeer accepts a control socket connection only with a process of
// this process's user at the other end (SO_PEERCRED), whatever the socket
// file's mode: serve checks the command, the command checks serve.
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
	if want := controlOwnerUID(); int(cred.Uid) != want {
		return fmt.Errorf("peer user ID %d is not the store owner's %d", cred.Uid, want)
	}
	return nil
}

// fileOwner returns the user ID that owns the file fi describes.
func fileOwner(fi os.FileInfo) (uid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
