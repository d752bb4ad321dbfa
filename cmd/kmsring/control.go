package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/rpc"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/kmsring/kmsring/store"
)

// The control socket: while serve holds an embedded store (which opens in
// one process at a time), every other kmsring command reaches the store
// through serve. serve listens on a Unix socket beside the store file
// (STORE.sock, mode 0600, and on Linux only the store owner's user ID is
// answered), and serves the store's operations on it: the command runs as
// it would without serve, in its own process, with its own files, root key
// and audit principal, and only its store reads and writes go through
// serve, which applies every change to its caches at once. The socket
// grants nothing the store file does not: whoever may use it may read and
// write the file.

// controlSuffix names the socket beside the store file.
const controlSuffix = ".sock"

// controlDialTimeout bounds connecting to serve's socket.
const controlDialTimeout = 2 * time.Second

// RemoteErr carries a store error across the socket, keeping its sentinel.
type RemoteErr struct {
	Kind string // "notfound", "exists", "conflict", "closed", "pagelimit" or ""
	Msg  string
}

var remoteKinds = map[string]error{
	"notfound":  store.ErrNotFound,
	"exists":    store.ErrExists,
	"conflict":  store.ErrConflict,
	"closed":    store.ErrClosed,
	"pagelimit": store.ErrPageLimit,
}

func toRemote(err error) *RemoteErr {
	if err == nil {
		return nil
	}
	for k, s := range remoteKinds {
		if errors.Is(err, s) {
			return &RemoteErr{Kind: k, Msg: err.Error()}
		}
	}
	return &RemoteErr{Msg: err.Error()}
}

func (e *RemoteErr) err() error {
	if e == nil {
		return nil
	}
	if s, ok := remoteKinds[e.Kind]; ok {
		return fmt.Errorf("%s (through kmsring serve): %w", trimSentinel(e.Msg, s), s)
	}
	return fmt.Errorf("%s (through kmsring serve)", e.Msg)
}

// trimSentinel drops a trailing ": "+sentinel from msg, which err adds
// back.
func trimSentinel(msg string, s error) string {
	if m, ok := cutSuffix(msg, ": "+s.Error()); ok {
		return m
	}
	if msg == s.Error() {
		return "store"
	}
	return msg
}

func cutSuffix(s, suffix string) (string, bool) {
	if len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix {
		return s[:len(s)-len(suffix)], true
	}
	return s, false
}

// Arguments and replies of the socket's calls (exported, as net/rpc
// requires).
type (
	CtlWrite struct {
		Rec      store.Record
		Versions []store.Version
	}
	CtlRecord struct {
		Rec store.Record
		Err *RemoteErr
	}
	CtlVersionsArgs struct {
		KeyID          string
		After, Through uint32
		Range          bool
	}
	CtlVersions struct {
		Versions []store.Version
		Err      *RemoteErr
	}
	CtlIDs struct {
		IDs []string
		Err *RemoteErr
	}
	CtlAudit struct {
		Entries []store.AuditEntry
		Err     *RemoteErr
	}
)

// ControlService is what serve answers on the socket.
type ControlService struct {
	st controlStore
	// changed is told of every record a command created or updated.
	changed func(keyID string)
}

// callTimeout bounds one store call made for a command.
const callTimeout = time.Minute

func (s *ControlService) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

func (s *ControlService) Create(in CtlWrite, out *CtlRecord) error {
	ctx, cancel := s.ctx()
	defer cancel()
	rec, err := s.st.Create(ctx, in.Rec, in.Versions)
	if err == nil {
		s.changed(rec.KeyID)
	}
	*out = CtlRecord{rec, toRemote(err)}
	return nil
}

func (s *ControlService) Update(in CtlWrite, out *CtlRecord) error {
	ctx, cancel := s.ctx()
	defer cancel()
	rec, err := s.st.Update(ctx, in.Rec, in.Versions)
	if err == nil {
		s.changed(rec.KeyID)
	}
	*out = CtlRecord{rec, toRemote(err)}
	return nil
}

func (s *ControlService) Get(id string, out *CtlRecord) error {
	ctx, cancel := s.ctx()
	defer cancel()
	rec, err := s.st.Get(ctx, id)
	*out = CtlRecord{rec, toRemote(err)}
	return nil
}

func (s *ControlService) Versions(in CtlVersionsArgs, out *CtlVersions) error {
	ctx, cancel := s.ctx()
	defer cancel()
	var vs []store.Version
	var err error
	if in.Range {
		vs, err = s.st.VersionRange(ctx, in.KeyID, in.After, in.Through)
	} else {
		vs, err = s.st.Versions(ctx, in.KeyID, in.After)
	}
	*out = CtlVersions{vs, toRemote(err)}
	return nil
}

func (s *ControlService) List(_ struct{}, out *CtlIDs) error {
	ctx, cancel := s.ctx()
	defer cancel()
	ids, err := s.st.List(ctx)
	*out = CtlIDs{ids, toRemote(err)}
	return nil
}

func (s *ControlService) AppendAudit(in []store.AuditEntry, out *CtlAudit) error {
	ctx, cancel := s.ctx()
	defer cancel()
	*out = CtlAudit{Err: toRemote(s.st.AppendAudit(ctx, in))}
	return nil
}

func (s *ControlService) LastAudit(_ struct{}, out *CtlAudit) error {
	ctx, cancel := s.ctx()
	defer cancel()
	e, err := s.st.LastAudit(ctx)
	*out = CtlAudit{Entries: []store.AuditEntry{e}, Err: toRemote(err)}
	return nil
}

func (s *ControlService) ReadAudit(q store.AuditQuery, out *CtlAudit) error {
	ctx, cancel := s.ctx()
	defer cancel()
	es, err := s.st.ReadAudit(ctx, q)
	*out = CtlAudit{Entries: es, Err: toRemote(err)}
	return nil
}

// listenControl opens the control socket beside the embedded store at
// storePath and serves svc on it until stop is called. A socket of this
// user left by a serve that crashed is replaced: this process holds the
// store's lock, so no other serve answers there. Anything else at the
// path (another user's socket, in a shared directory such as /tmp, or a
// file that is not a socket) is left alone and named in the error.
func listenControl(storePath string, svc *ControlService, log *slog.Logger) (stop func(), err error) {
	path := storePath + controlSuffix
	if err := checkStaleControl(path); err != nil {
		return nil, err
	}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Store", svc); err != nil {
		return nil, err
	}
	ln, sock, err := bindControl(path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	var wg sync.WaitGroup
	conns := map[net.Conn]struct{}{}
	var mu sync.Mutex
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if err := checkPeer(c); err != nil {
				log.Warn("kmsring: control socket: refused a connection", "err", err)
				c.Close()
				continue
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Go(func() {
				bc := newBoundedConn(c, maxControlRequest, unbounded)
				srv.ServeConn(bc)
				if errors.Is(bc.in.err, errControlTooLarge) {
					log.Warn("kmsring: control socket: closed a connection", "err", bc.in.err)
				}
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			})
		}
	})
	return func() {
		ln.Close()
		// The socket goes if it is still the one bindControl made.
		if fi, err := os.Lstat(path); err == nil && os.SameFile(fi, sock) {
			os.Remove(path)
		}
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}, nil
}

// checkStaleControl returns an error unless path is free for serve's
// socket: absent, or a socket of this user that a crashed serve left.
func checkStaleControl(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("control socket: %w", err)
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("control socket %s: exists and is not a socket; remove it", path)
	}
	if uid, ok := fileOwner(fi); ok && uid != controlOwnerUID() {
		return fmt.Errorf("control socket %s: exists and belongs to %s, not to this user: keep the store in a directory of its own, or have the socket removed", path, userString(uid))
	}
	return nil
}

// userString names user ID uid, with its name where it has one.
func userString(uid int) string {
	s := "user ID " + strconv.Itoa(uid)
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		s += " (" + u.Username + ")"
	}
	return s
}

// controlOwnerUID is the user ID both ends of the control socket must
// have (a variable so that a test can play another user).
var controlOwnerUID = os.Getuid

// controlBound is called with the socket's path once bindControl has
// bound the socket (a variable so that a test can swap the path then).
var controlBound = func(path string) {}

// bindControl makes the Unix socket at path, mode 0600, and returns its
// listener and file. It binds in a directory of its own (mode 0700,
// beside path, so that the rename stays within one file system), sets
// the mode there, where no other user can put anything in the socket's
// place, and renames the socket to path: rename replaces a stale socket
// without following a symlink, and fails on another user's file in a
// sticky directory. Setting the mode by path beside the store would
// follow a symlink swapped in after bind; fchmod on the listener's
// descriptor changes the socket's in-kernel inode on Linux, not the file
// bind made; and the umask is the whole process's.
func bindControl(path string) (*net.UnixListener, os.FileInfo, error) {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".ctl")
	if err != nil {
		return nil, nil, err
	}
	defer os.Remove(dir)
	p := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		return nil, nil, err
	}
	// Closing would unlink p, where the socket no longer is: stop
	// removes path.
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*net.UnixListener, os.FileInfo, error) {
		ln.Close()
		os.Remove(p)
		return nil, nil, err
	}
	if err := os.Chmod(p, 0o600); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return fail(err)
	}
	controlBound(path)
	if err := os.Rename(p, path); err != nil {
		return fail(err)
	}
	return ln, fi, nil
}

// remoteStore is the store of a serve that holds it, reached through its
// control socket. It implements what the commands need of a store.
type remoteStore struct {
	c *rpc.Client
}

var (
	_ storeCloser         = (*remoteStore)(nil)
	_ store.VersionRanger = (*remoteStore)(nil)
)

// dialControl connects to the serve holding the embedded store at
// storePath, if there is one. The listening process must be this user's
// (on Linux), as serve demands of the command: a socket another user
// planted beside the store would otherwise receive the command's writes
// and answer its reads.
func dialControl(storePath string) (*remoteStore, error) {
	conn, err := net.DialTimeout("unix", storePath+controlSuffix, controlDialTimeout)
	if err != nil {
		return nil, err
	}
	if err := checkPeer(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("control socket %s: %w", storePath+controlSuffix, err)
	}
	return &remoteStore{c: rpc.NewClient(newBoundedConn(conn, maxControlReply, maxControlRequest))}, nil
}

// call makes one call, ending early (with the call abandoned) when ctx
// ends.
func (r *remoteStore) call(ctx context.Context, method string, in, out any) error {
	call := r.c.Go("Store."+method, in, out, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
		if call.Error != nil {
			return fmt.Errorf("kmsring serve's control socket: %w", call.Error)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *remoteStore) Create(ctx context.Context, rec store.Record, versions []store.Version) (store.Record, error) {
	var out CtlRecord
	if err := r.call(ctx, "Create", CtlWrite{rec, versions}, &out); err != nil {
		return store.Record{}, err
	}
	return out.Rec, out.Err.err()
}

func (r *remoteStore) Update(ctx context.Context, rec store.Record, versions []store.Version) (store.Record, error) {
	var out CtlRecord
	if err := r.call(ctx, "Update", CtlWrite{rec, versions}, &out); err != nil {
		return store.Record{}, err
	}
	return out.Rec, out.Err.err()
}

func (r *remoteStore) Get(ctx context.Context, idOrAlias string) (store.Record, error) {
	var out CtlRecord
	if err := r.call(ctx, "Get", idOrAlias, &out); err != nil {
		return store.Record{}, err
	}
	return out.Rec, out.Err.err()
}

func (r *remoteStore) Versions(ctx context.Context, keyID string, after uint32) ([]store.Version, error) {
	var out CtlVersions
	if err := r.call(ctx, "Versions", CtlVersionsArgs{KeyID: keyID, After: after}, &out); err != nil {
		return nil, err
	}
	return out.Versions, out.Err.err()
}

func (r *remoteStore) VersionRange(ctx context.Context, keyID string, after, through uint32) ([]store.Version, error) {
	var out CtlVersions
	if err := r.call(ctx, "Versions", CtlVersionsArgs{KeyID: keyID, After: after, Through: through, Range: true}, &out); err != nil {
		return nil, err
	}
	return out.Versions, out.Err.err()
}

func (r *remoteStore) List(ctx context.Context) ([]string, error) {
	var out CtlIDs
	if err := r.call(ctx, "List", struct{}{}, &out); err != nil {
		return nil, err
	}
	return out.IDs, out.Err.err()
}

func (r *remoteStore) AppendAudit(ctx context.Context, entries []store.AuditEntry) error {
	var out CtlAudit
	if err := r.call(ctx, "AppendAudit", entries, &out); err != nil {
		return err
	}
	return out.Err.err()
}

func (r *remoteStore) LastAudit(ctx context.Context) (store.AuditEntry, error) {
	var out CtlAudit
	if err := r.call(ctx, "LastAudit", struct{}{}, &out); err != nil {
		return store.AuditEntry{}, err
	}
	if err := out.Err.err(); err != nil {
		return store.AuditEntry{}, err
	}
	if len(out.Entries) != 1 {
		return store.AuditEntry{}, errors.New("kmsring serve's control socket: malformed reply")
	}
	return out.Entries[0], nil
}

func (r *remoteStore) ReadAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	var out CtlAudit
	if err := r.call(ctx, "ReadAudit", q, &out); err != nil {
		return nil, err
	}
	return out.Entries, out.Err.err()
}

func (r *remoteStore) Close() error { return r.c.Close() }
