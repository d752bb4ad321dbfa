// Package boltstore is a [store.Store] in one embedded file, built on
// go.etcd.io/bbolt: kmsring's default persistent store.
//
// # File
//
// The file is created with mode 0600. Every successful write is one bbolt
// transaction, fsync'd before it returns. The file records its layout
// version; Open refuses a file of an unknown version, a file that is not a
// kmsring store, and a file that is truncated or whose structure is damaged
// (with an error wrapping [ErrCorrupt], never a panic and never an empty
// store in its place). Open checks the file's page tree and its count of
// keys, not each record, so that its cost does not grow with the records'
// contents: a damaged record is reported when it is read, by the call that
// reads it, with an error wrapping ErrCorrupt that names the key (or the
// alias that names a missing key).
//
// # Locking
//
// One process at a time may open a file, and that process once: Open fails
// at once with [ErrLocked], without waiting, while another process holds
// the file or this one has it open already (the message says which).
// Within the process, one *Store is safe for concurrent use by any number
// of keyrings: share it.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/kmsring/kmsring/store"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var (
	_ store.Store         = (*Store)(nil)
	_ store.AuditLog      = (*Store)(nil)
	_ store.VersionRanger = (*Store)(nil)
	_ store.DueIndex      = (*Store)(nil)
	_ store.Pager         = (*Store)(nil)
)

var (
	// ErrLocked reports that the file is held, by another process or by
	// an earlier Open in this one that was not closed.
	ErrLocked = errors.New("boltstore: file is locked")
	// ErrCorrupt reports a file that is truncated, damaged or not a kmsring
	// store.
	ErrCorrupt = errors.New("boltstore: file is corrupt or not a kmsring store")
	// ErrLayoutVersion reports a file written in a layout this release does
	// not know.
	ErrLayoutVersion = errors.New("boltstore: unsupported file layout version")
)

// layoutVersion is the version of the bucket layout below, recorded in the
// meta bucket.
const layoutVersion = 1

// Buckets: meta {"layout": uint32}, keys {key ID: record}, aliases {alias:
// key ID}, versions {key ID: bucket {uint32 number: data}}, due {due time
// || key ID: empty} (see dueKey; built from the records when a file
// without it is opened).
var (
	bucketMeta     = []byte("meta")
	bucketKeys     = []byte("keys")
	bucketAliases  = []byte("aliases")
	bucketVersions = []byte("versions")
	bucketAudit    = []byte("audit") // {uint64 seq: compact audit value (auditvalue.go)}
	bucketDue      = []byte("due")
	keyLayout      = []byte("layout")
	keyCount       = []byte("keys") // uint64 number of keys, checked by Open
)

// Store is a store in one bbolt file.
type Store struct {
	db *bolt.DB
	id fileID // released by Close

	mu     sync.RWMutex // guards closed against Close during an operation
	closed bool
}

// Open opens the store file at path, creating it (mode 0600) if it does not
// exist. It fails with ErrLocked if another process holds the file, and
// with ErrCorrupt or ErrLayoutVersion if the file cannot be used. Call Close
// when done.
func Open(path string) (*Store, error) {
	db, id, err := openDB(path)
	switch {
	case errors.Is(err, errOpenHere):
		return nil, fmt.Errorf("%w: %s is already open in this process (share its *Store, or close it first)", ErrLocked, path)
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s is in use by another process", ErrLocked, path)
	case errors.Is(err, ErrCorrupt):
		return nil, err
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	case err != nil:
		if _, statErr := os.Stat(path); statErr == nil && !errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, withoutPath(err))
		}
		return nil, fmt.Errorf("boltstore: open %s: %w", path, withoutPath(err))
	}
	readAll, err := prepare(db, path)
	if err != nil {
		db.Close()
		release(id)
		return nil, err
	}
	// Building the due index of an older file read every record through
	// the memory map, which keeps those pages resident and counted in the
	// process's memory; a fresh map holds only the pages used from now on
	// (a store of 100,000 keys is 120 MB).
	if fi, err := os.Stat(path); err == nil && readAll && fi.Size() > remapAbove {
		db.Close()
		release(id)
		if db, id, err = openDB(path); err != nil {
			if errors.Is(err, berrors.ErrTimeout) {
				return nil, fmt.Errorf("%w: %s is in use by another process", ErrLocked, path)
			}
			return nil, fmt.Errorf("boltstore: reopen %s: %w", path, withoutPath(err))
		}
	}
	return &Store{db: db, id: id}, nil
}

// remapAbove is the file size above which Open maps the file again after
// reading every record (once, to build the due index of an older file).
var remapAbove int64 = 16 << 20

// withoutPath returns the cause of an *fs.PathError, whose text repeats
// the path the caller's message already names.
func withoutPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// fileID names a file whatever the path to it.
type fileID struct{ dev, ino uint64 }

// opened holds the files this process has open, so that a second Open of
// one is told so: bbolt's flock would report it as held by another
// process, as flock locks belong to an open file, not to a process.
var opened = struct {
	sync.Mutex
	files map[fileID]bool
}{files: make(map[fileID]bool)}

var errOpenHere = errors.New("boltstore: already open in this process")

// claim records f as open in this process, failing with errOpenHere if it
// already is.
func claim(f *os.File) (fileID, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileID{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, fmt.Errorf("boltstore: cannot identify %s", f.Name())
	}
	id := fileID{uint64(st.Dev), st.Ino}
	opened.Lock()
	defer opened.Unlock()
	if opened.files[id] {
		return fileID{}, errOpenHere
	}
	opened.files[id] = true
	return id, nil
}

func release(id fileID) {
	opened.Lock()
	defer opened.Unlock()
	delete(opened.files, id)
}

// openDB opens the bbolt file and claims it for this process. If bbolt
// panics on a damaged file, the file is unlocked and closed and the panic
// becomes ErrCorrupt; the memory map bbolt made is lost (it is unmapped
// only when the process exits).
func openDB(path string) (db *bolt.DB, id fileID, err error) {
	var f *os.File
	claimed := false
	defer func() {
		if err != nil && claimed {
			release(id)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if f != nil {
				// Unlock explicitly: bbolt's memory map of the file, which
				// it could not unmap, would otherwise keep the lock.
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}
			db, err = nil, fmt.Errorf("%w: %s: %s", ErrCorrupt, path, damage(r))
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      time.Nanosecond, // fail at once if the file is locked
		FreelistType: bolt.FreelistMapType,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			var err error
			if f, err = os.OpenFile(name, flag, perm); err != nil {
				return nil, err
			}
			if id, err = claim(f); err != nil {
				f.Close()
				f = nil
				return nil, err
			}
			claimed = true
			return f, nil
		},
	})
	return db, id, err
}

// damage says what a panic raised while reading the file means: bbolt
// followed a reference to a page that is missing (the file was cut short)
// or damaged. The runtime's own words ("nil pointer dereference") would
// read like a crash of the program.
func damage(r any) string {
	if _, ok := r.(runtime.Error); ok {
		return "a page it refers to is missing or damaged"
	}
	return fmt.Sprintf("damaged page (%v)", r)
}

// prepare creates the buckets of a new file and checks an existing one. It
// reports whether it read every record (to build the due index).
func prepare(db *bolt.DB, path string) (readAll bool, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer catch(&err)
	keys, err := checkFile(db, path)
	if err != nil {
		return false, err
	}
	// A file this release has prepared before needs no write (and no
	// fsync): check it in a read transaction.
	complete := false
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				return nil
			}
		}
		complete = true
		return checkMeta(meta, path, keys)
	})
	if err != nil || complete {
		return false, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if !isEmpty(tx) {
				return fmt.Errorf("%w: %s has no kmsring meta bucket", ErrCorrupt, path)
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if err := meta.Put(keyLayout, binary.BigEndian.AppendUint32(nil, layoutVersion)); err != nil {
				return err
			}
			if err := meta.Put(keyCount, binary.BigEndian.AppendUint64(nil, 0)); err != nil {
				return err
			}
		}
		if err := checkMeta(meta, path, keys); err != nil {
			return err
		}
		for _, b := range [][]byte{bucketKeys, bucketAliases, bucketVersions, bucketAudit} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if tx.Bucket(bucketDue) == nil {
			readAll = true
			return buildDueIndex(tx)
		}
		return nil
	})
	return readAll, err
}

// allBuckets are the buckets of a prepared file.
var allBuckets = [][]byte{bucketMeta, bucketKeys, bucketAliases, bucketVersions, bucketAudit, bucketDue}

// checkMeta checks the layout version and that the key count in meta is
// keys, the number of key records the page walk found.
func checkMeta(meta *bolt.Bucket, path string, keys uint64) error {
	v := meta.Get(keyLayout)
	if len(v) != 4 {
		return fmt.Errorf("%w: %s: bad layout record", ErrCorrupt, path)
	}
	if n := binary.BigEndian.Uint32(v); n != layoutVersion {
		return fmt.Errorf("%w: %s has layout %d, this release reads %d", ErrLayoutVersion, path, n, layoutVersion)
	}
	want := meta.Get(keyCount)
	if len(want) != 8 {
		return fmt.Errorf("%w: %s: bad key count record", ErrCorrupt, path)
	}
	if n := binary.BigEndian.Uint64(want); n != keys {
		return fmt.Errorf("%w: %s holds %d keys, its count says %d", ErrCorrupt, path, keys, n)
	}
	return nil
}

func isEmpty(tx *bolt.Tx) bool {
	k, _ := tx.Cursor().First()
	return k == nil
}

// checkFile rejects a file shorter than the pages its meta page claims
// (reading them through the memory map would fault) and checks its page
// tree (checkPages); it returns the number of records in the keys bucket.
func checkFile(db *bolt.DB, path string) (keys uint64, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("boltstore: %w", err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		if tx.Size() > fi.Size() {
			return fmt.Errorf("%w: %s is truncated (%d of %d bytes)", ErrCorrupt, path, fi.Size(), tx.Size())
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("boltstore: %w", err)
	}
	defer f.Close()
	return checkPages(f, path, fi.Size())
}

// catch turns a panic from a damaged file into an ErrCorrupt error. bbolt
// panics on some malformed pages; a fault on a mapped page is made a panic
// for the duration of the call.
func catch(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %s", ErrCorrupt, damage(r))
	}
}

// Close closes the file. Later calls on the store fail with store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	defer release(s.id)
	return s.db.Close()
}

// do runs fn in a read or write transaction, after checking ctx and that
// the store is open, turning panics from a damaged file into errors.
func (s *Store) do(ctx context.Context, write bool, fn func(tx *bolt.Tx) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer catch(&err)
	if write {
		return s.db.Update(fn)
	}
	return s.db.View(fn)
}

type recordDoc struct {
	Revision uint64    `json:"revision"`
	Aliases  []string  `json:"aliases,omitempty"`
	Data     []byte    `json:"data"`
	Due      time.Time `json:"due,omitzero"`
}

func encodeRecord(r store.Record) []byte {
	b, err := json.Marshal(recordDoc{Revision: r.Revision, Aliases: r.Aliases, Data: r.Data, Due: r.Due})
	if err != nil {
		panic("boltstore: " + err.Error())
	}
	return b
}

// decodeRecord decodes a stored record; v is copied.
func decodeRecord(id, v []byte) (store.Record, error) {
	var d recordDoc
	if err := json.Unmarshal(v, &d); err != nil {
		return store.Record{}, fmt.Errorf("%w: record %s: %v", ErrCorrupt, id, err)
	}
	return store.Record{KeyID: string(id), Aliases: d.Aliases, Revision: d.Revision, Data: d.Data, Due: d.Due}, nil
}

func versionKey(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

// checkAliases reports ErrExists if an alias of rec names another key or is
// a key ID.
func checkAliases(tx *bolt.Tx, rec store.Record) error {
	aliases, keys := tx.Bucket(bucketAliases), tx.Bucket(bucketKeys)
	for _, a := range rec.Aliases {
		if owner := aliases.Get([]byte(a)); owner != nil && string(owner) != rec.KeyID {
			return fmt.Errorf("boltstore: alias %s: %w", a, store.ErrExists)
		}
		if keys.Get([]byte(a)) != nil {
			return fmt.Errorf("boltstore: alias %s: %w", a, store.ErrExists)
		}
	}
	return nil
}

func putVersions(tx *bolt.Tx, keyID string, versions []store.Version) error {
	vb, err := tx.Bucket(bucketVersions).CreateBucketIfNotExists([]byte(keyID))
	if err != nil {
		return err
	}
	for _, v := range versions {
		if err := vb.Put(versionKey(v.Number), v.Data); err != nil {
			return err
		}
	}
	return nil
}

// Create implements [store.Store].
func (s *Store) Create(ctx context.Context, rec store.Record, versions []store.Version) (out store.Record, err error) {
	err = s.do(ctx, true, func(tx *bolt.Tx) error {
		keys := tx.Bucket(bucketKeys)
		if keys.Get([]byte(rec.KeyID)) != nil || tx.Bucket(bucketAliases).Get([]byte(rec.KeyID)) != nil {
			return fmt.Errorf("boltstore: key %s: %w", rec.KeyID, store.ErrExists)
		}
		if err := checkAliases(tx, rec); err != nil {
			return err
		}
		rec.Revision = 1
		if err := keys.Put([]byte(rec.KeyID), encodeRecord(rec)); err != nil {
			return err
		}
		if err := moveDue(tx, store.Record{}, rec); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		n := binary.BigEndian.Uint64(meta.Get(keyCount))
		if err := meta.Put(keyCount, binary.BigEndian.AppendUint64(nil, n+1)); err != nil {
			return err
		}
		for _, a := range rec.Aliases {
			if err := tx.Bucket(bucketAliases).Put([]byte(a), []byte(rec.KeyID)); err != nil {
				return err
			}
		}
		return putVersions(tx, rec.KeyID, versions)
	})
	if err != nil {
		return store.Record{}, err
	}
	return rec.Clone(), nil
}

// Get implements [store.Store].
func (s *Store) Get(ctx context.Context, idOrAlias string) (rec store.Record, err error) {
	err = s.do(ctx, false, func(tx *bolt.Tx) error {
		id := []byte(idOrAlias)
		owner := tx.Bucket(bucketAliases).Get(id)
		if owner != nil {
			id = owner
		}
		v := tx.Bucket(bucketKeys).Get(id)
		switch {
		case v == nil && owner != nil:
			return fmt.Errorf("%w: alias %s names a missing key %s", ErrCorrupt, idOrAlias, owner)
		case v == nil:
			return fmt.Errorf("boltstore: %s: %w", idOrAlias, store.ErrNotFound)
		}
		rec, err = decodeRecord(bytes.Clone(id), v)
		return err
	})
	return rec, err
}

// Versions implements [store.Store].
func (s *Store) Versions(ctx context.Context, keyID string, after uint32) ([]store.Version, error) {
	return s.VersionRange(ctx, keyID, after, math.MaxUint32)
}

// VersionRange implements [store.VersionRanger].
func (s *Store) VersionRange(ctx context.Context, keyID string, after, through uint32) (out []store.Version, err error) {
	err = s.do(ctx, false, func(tx *bolt.Tx) error {
		vb := tx.Bucket(bucketVersions).Bucket([]byte(keyID))
		if vb == nil {
			if tx.Bucket(bucketKeys).Get([]byte(keyID)) != nil {
				return fmt.Errorf("%w: key %s has no versions", ErrCorrupt, keyID)
			}
			return fmt.Errorf("boltstore: %s: %w", keyID, store.ErrNotFound)
		}
		c := vb.Cursor()
		for k, v := c.Seek(versionKey(after + 1)); k != nil; k, v = c.Next() {
			if len(k) != 4 || v == nil {
				return fmt.Errorf("%w: key %s: a version that is not a version record", ErrCorrupt, keyID)
			}
			n := binary.BigEndian.Uint32(k)
			if n <= after { // after+1 overflowed
				continue
			}
			if n > through {
				break
			}
			out = append(out, store.Version{Number: n, Data: bytes.Clone(v)})
		}
		return nil
	})
	return out, err
}

// Update implements [store.Store].
func (s *Store) Update(ctx context.Context, rec store.Record, versions []store.Version) (out store.Record, err error) {
	err = s.do(ctx, true, func(tx *bolt.Tx) error {
		keys := tx.Bucket(bucketKeys)
		v := keys.Get([]byte(rec.KeyID))
		if v == nil {
			return fmt.Errorf("boltstore: %s: %w", rec.KeyID, store.ErrNotFound)
		}
		old, err := decodeRecord([]byte(rec.KeyID), v)
		if err != nil {
			return err
		}
		if old.Revision != rec.Revision {
			return fmt.Errorf("boltstore: %s at revision %d, not %d: %w", rec.KeyID, old.Revision, rec.Revision, store.ErrConflict)
		}
		if err := checkAliases(tx, rec); err != nil {
			return err
		}
		aliases := tx.Bucket(bucketAliases)
		for _, a := range old.Aliases {
			if err := aliases.Delete([]byte(a)); err != nil {
				return err
			}
		}
		for _, a := range rec.Aliases {
			if err := aliases.Put([]byte(a), []byte(rec.KeyID)); err != nil {
				return err
			}
		}
		rec.Revision++
		if err := keys.Put([]byte(rec.KeyID), encodeRecord(rec)); err != nil {
			return err
		}
		if err := moveDue(tx, old, rec); err != nil {
			return err
		}
		return putVersions(tx, rec.KeyID, versions)
	})
	if err != nil {
		return store.Record{}, err
	}
	return rec.Clone(), nil
}

// List implements [store.Store].
func (s *Store) List(ctx context.Context) (ids []string, err error) {
	err = s.do(ctx, false, func(tx *bolt.Tx) error {
		ids = nil
		return tx.Bucket(bucketKeys).ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	return ids, err
}

func seqKey(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// seqKeySize is the size of a seqKey.
const seqKeySize = 8

// AppendAudit implements [store.AuditLog].
func (s *Store) AppendAudit(ctx context.Context, entries []store.AuditEntry) error {
	return s.do(ctx, true, func(tx *bolt.Tx) error {
		var last uint64
		if k, _ := tx.Bucket(bucketAudit).Cursor().Last(); k != nil {
			last = binary.BigEndian.Uint64(k)
		}
		for i, e := range entries {
			if want := last + uint64(i) + 1; e.Seq != want {
				return fmt.Errorf("boltstore: audit entry %d where %d is next: %w", e.Seq, want, store.ErrConflict)
			}
		}
		return putAudit(tx, last+1, entries)
	})
}

// putAudit stores entries numbered from first.
func putAudit(tx *bolt.Tx, first uint64, entries []store.AuditEntry) error {
	b := tx.Bucket(bucketAudit)
	// Sequence numbers only grow: fill pages rather than split them in
	// half.
	b.FillPercent = 1
	// One buffer holds every key and value (bbolt keeps them, unchanged,
	// until the transaction ends) instead of two allocations per entry.
	n := 0
	for _, e := range entries {
		n += seqKeySize + auditSize(e)
	}
	buf := make([]byte, 0, n)
	for i, e := range entries {
		start := len(buf)
		buf = binary.BigEndian.AppendUint64(buf, first+uint64(i))
		var err error
		if buf, err = appendAudit(buf, e); err != nil {
			return err
		}
		k, v := buf[start:start+seqKeySize:start+seqKeySize], buf[start+seqKeySize:len(buf):len(buf)]
		if err := b.Put(k, v); err != nil {
			return err
		}
	}
	return nil
}

// LastAudit implements [store.AuditLog].
func (s *Store) LastAudit(ctx context.Context) (e store.AuditEntry, err error) {
	err = s.do(ctx, false, func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bucketAudit).Cursor().Last()
		if k == nil {
			return fmt.Errorf("boltstore: audit log is empty: %w", store.ErrNotFound)
		}
		e, err = decodeAudit(k, v)
		return err
	})
	return e, err
}

// ReadAudit implements [store.AuditLog]. Filters other than After are
// applied by scanning.
func (s *Store) ReadAudit(ctx context.Context, q store.AuditQuery) (out []store.AuditEntry, err error) {
	err = s.do(ctx, false, func(tx *bolt.Tx) error {
		out = nil
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Seek(seqKey(q.After + 1)); k != nil; k, v = c.Next() {
			if q.Limit > 0 && len(out) == q.Limit {
				break
			}
			e, err := decodeAudit(k, v)
			if err != nil {
				return err
			}
			if q.Match(e) {
				out = append(out, e)
			}
		}
		return nil
	})
	return out, err
}
