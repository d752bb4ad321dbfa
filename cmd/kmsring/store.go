package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/kmsring/kmsring/store/pgstore"
)

// Default file names, in os.UserConfigDir()/kmsring.
const (
	defaultDir     = "kmsring"
	defaultStore   = "kmsring.db"
	defaultRootKey = "kmsring.key"
)

func isPostgres(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// defaultPath returns name in the default directory.
func defaultPath(name string) (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no default location for %s (%v): set --store and --root-key-file", name, err)
	}
	return filepath.Join(dir, defaultDir, name), nil
}

// emptyStore reports whether err says the default store does not exist
// yet, or that a PostgreSQL database holds no keys, which reading commands
// answer as an empty store (as aws kms answers a new account). A file named
// with --store or KMSRING_STORE that does not exist is a mistake (a typo, a
// wrong directory), not an empty store: they fail with err rather than
// answer "no keys" or "verified".
func (a *app) emptyStore(err error) bool {
	return errors.Is(err, errNoStore) && (a.defaultStore || isPostgres(a.storeURL))
}

// errNoStore reports that the embedded store file does not exist yet. The
// commands that read treat it as an empty store, without creating it.
var errNoStore = errors.New("no store")

// open opens the store, its root key and the audit logger, once. With
// create, a store that does not exist yet is created, and so is its root
// key file if that is missing too; without it, a missing store is an
// error. A root key file is never created for a store that exists.
func (a *app) open(ctx context.Context, create bool) error {
	if a.opened {
		return nil
	}
	if a.rootKeyPath == "" {
		p, err := defaultPath(defaultRootKey)
		if err != nil {
			return err
		}
		a.rootKeyPath = p
	}
	if a.storeURL == "" {
		p, err := defaultPath(defaultStore)
		if err != nil {
			return err
		}
		a.storeURL, a.defaultStore = p, true
	}
	var err error
	if isPostgres(a.storeURL) {
		err = a.openPostgres(ctx, create)
	} else {
		err = a.openBolt(create)
	}
	if err != nil {
		if a.st != nil {
			a.st.Close()
			a.st = nil
		}
		return err
	}
	// The audit chain is keyed by the store's audit key, which only the
	// root key unwraps (on a store with no keys yet, this makes it): a
	// root key that cannot open the store's keys fails here, explained,
	// so that every command, list-keys included, says so the same way.
	mac, err := keyring.AuditMAC(ctx, a.st, a.rk)
	if err != nil {
		a.st.Close()
		a.st = nil
		return a.explain(err)
	}
	a.mac = mac
	aopts := []audit.Option{audit.WithStore(a.st), audit.WithMAC(mac)}
	if a.auditFailClosed > 0 {
		aopts = append(aopts, audit.WithFailClosed(a.auditFailClosed))
	}
	a.log = audit.New(aopts...)
	a.opened = true
	return nil
}

func (a *app) openBolt(create bool) error {
	path := a.storeURL
	a.stDesc = path
	exists, err := fileExists(path)
	if err != nil {
		return err
	}
	if !exists && !create {
		return fmt.Errorf("%w at %s (create-key creates one; --store or %s names another)", errNoStore, path, envStore)
	}
	rkCreated, err := a.rootKey(exists)
	if err != nil {
		return err
	}
	if !exists {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return fmt.Errorf("create store directory: %w", err)
		}
	}
	st, err := boltstore.Open(path)
	if errors.Is(err, boltstore.ErrLocked) {
		// kmsring serve holds the store: go through its control socket.
		rs, derr := dialControl(path)
		if derr != nil {
			return fmt.Errorf("%w (an embedded store opens in one process at a time, and no kmsring serve answers on %s: wait for the other command to finish)", err, path+controlSuffix)
		}
		a.st = rs
		return nil
	}
	if err != nil {
		return err
	}
	a.st = st
	switch {
	case !exists && rkCreated:
		a.created = []string{path, a.rootKeyPath}
		a.createdNote = fmt.Sprintf("created store %s and root key file %s (0600); keep the root key apart from the store and back it up: without it no key can be used", path, a.rootKeyPath)
	case !exists:
		a.created = []string{path}
		a.createdNote = fmt.Sprintf("created store %s (0600) under the root key in %s", path, a.rootKeyPath)
	}
	return nil
}

func (a *app) openPostgres(ctx context.Context, create bool) error {
	u, err := url.Parse(a.storeURL)
	if err != nil {
		return usageError("--store: not a postgres:// URL: %v", err)
	}
	a.stDesc = u.Redacted()
	st, err := pgstore.Open(ctx, a.storeURL)
	if err != nil {
		return err
	}
	a.st = st
	ids, err := keyring.List(ctx, st)
	if err != nil {
		return err
	}
	// A database without keys is a new store: create-key may create its
	// root key; to the other commands it is empty.
	if len(ids) == 0 && !create {
		ok, err := fileExists(a.rootKeyPath)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: no keys in %s yet (create-key creates one)", errNoStore, a.stDesc)
		}
	}
	rkCreated, err := a.rootKey(len(ids) > 0)
	if rkCreated {
		a.created = []string{a.rootKeyPath}
		a.createdNote = fmt.Sprintf("created root key file %s (0600) for the store %s; keep it apart from the store and back it up: without it no key can be used", a.rootKeyPath, a.stDesc)
	}
	return err
}

// keepCreated says on standard error which files this invocation created,
// now that they hold a key.
func (a *app) keepCreated() {
	if a.createdNote != "" {
		fmt.Fprintln(a.stderr, "kmsring: "+a.createdNote)
	}
	a.created, a.createdNote = nil, ""
}

// discardCreated removes the files this invocation created for a key it
// then failed to create, so that a failed first create-key leaves nothing.
func (a *app) discardCreated() {
	a.close()
	for _, p := range a.created {
		os.Remove(p)
	}
	a.created, a.createdNote = nil, ""
}

// rootKey reads the root key file, or creates it for a new store and
// reports that it did.
func (a *app) rootKey(storeExists bool) (created bool, err error) {
	exists, err := fileExists(a.rootKeyPath)
	if err != nil {
		return false, err
	}
	if !exists && storeExists {
		return false, fmt.Errorf("root key file %s does not exist, but the store %s does: its keys open only with the root key they were created with (set --root-key-file or %s)", a.rootKeyPath, a.stDesc, envRootKey)
	}
	if exists {
		a.rk, err = keyring.ReadRootKeyFile(a.rootKeyPath, a.rootKeyOptions()...)
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(a.rootKeyPath), 0o700); err != nil {
		return false, fmt.Errorf("create root key directory: %w", err)
	}
	if a.rk, err = keyring.RootKeyFile(a.rootKeyPath, a.rootKeyOptions()...); err != nil {
		return false, err
	}
	return true, nil
}

func fileExists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, err
	}
}

// close flushes the audit log and closes the store, if they are open.
// Commands that stream for long (seal, open) call it as soon as they no
// longer need the store, so that other commands can open the embedded
// store meanwhile.
func (a *app) close() error {
	if !a.opened {
		return nil
	}
	a.opened = false
	a.log.Close()
	defer func() { a.st = nil }()
	if n := a.log.Dropped(); n > 0 {
		fmt.Fprintf(a.stderr, "kmsring: warning: %d audit records were dropped\n", n)
	}
	return a.st.Close()
}

// principal names the OS user in audit records, as "cli:NAME".
func principal() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	if n := os.Getenv("USER"); n != "" {
		return "cli:" + n
	}
	return fmt.Sprintf("cli:uid-%d", os.Getuid())
}

// rootKeyOptions are the root key's options: --allow-non-approved lets it
// unwrap, in FIPS 140-3 mode, what it wrapped outside the mode.
func (a *app) rootKeyOptions() []keyring.RootKeyOption {
	if a.allowNonApproved {
		return []keyring.RootKeyOption{keyring.RootKeyAllowNonApproved()}
	}
	return nil
}
