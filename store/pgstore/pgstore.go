// Package pgstore is a [store.Store] in PostgreSQL, for services that run
// as many replicas sharing their keys.
//
// # Schema
//
// Open creates its tables with embedded, numbered migrations, applied in
// one transaction under an advisory lock so that replicas starting together
// migrate once. The schema version is recorded in kmsring_schema; Open
// refuses a database whose schema is newer than this release knows
// ([ErrSchemaVersion]). Tables are created in the first schema of the
// connection's search_path, so several stores can share a database
// (search_path=... in the DSN).
//
// # Replicas
//
// Update is a compare-and-swap on the record's revision in a transaction:
// of any number of replicas updating the same key from the same revision,
// exactly one commits. Every committed create and update sends a NOTIFY on the
// kmsring_changes channel with the key ID; [Store.Notify] delivers them (a
// listener connection is kept open while anyone listens), so that
// keyring.Keyring.Watch refreshes within milliseconds of a change made by
// another replica.
//
// # Outages
//
// Reads that fail before reaching the server, or on a connection the server
// terminated, are retried once on a fresh connection; writes are retried
// only when nothing was sent. Otherwise errors are returned: keyrings keep
// encrypting and decrypting with what they have loaded, and mutations fail
// until the database returns. The connection pool reconnects by itself.
package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kmsring/kmsring/store"
)

var (
	_ store.Store         = (*Store)(nil)
	_ store.Notifier      = (*Store)(nil)
	_ store.ChangeFeed    = (*Store)(nil)
	_ store.AuditLog      = (*Store)(nil)
	_ store.VersionRanger = (*Store)(nil)
	_ store.DueIndex      = (*Store)(nil)
	_ store.Pager         = (*Store)(nil)
)

// ErrSchemaVersion reports a database whose kmsring schema is newer than
// this release.
var ErrSchemaVersion = errors.New("pgstore: database schema is newer than this release")

//go:embed migrations/*.sql
var migrations embed.FS

// channel is the NOTIFY channel of key changes.
const channel = "kmsring_changes"

// migrationLock is the pg_advisory_xact_lock key that serializes migrations.
const migrationLock = 0x6b6d7372696e67 // "kmsring"

// Store is a store in a PostgreSQL database.
type Store struct {
	pool     *pgxpool.Pool
	ownsPool bool // Close closes the pool only if Open made it
	log      *slog.Logger

	mu       sync.Mutex
	closed   bool
	subs     map[*sub]struct{}
	listenCh chan struct{} // closed to stop the listener
	listenWG sync.WaitGroup
}

type sub struct {
	keyID string
	c     chan<- struct{}
	fn    func(string) // a ChangeFeed subscriber: every key
}

// Open connects to the database at dsn (a libpq connection string or
// postgres:// URL), applies pending migrations and returns the store. Call
// Close when done.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "kmsring"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	s, err := New(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownsPool = true
	return s, nil
}

// New returns a store on a pool the service already has, after applying
// pending migrations as Open does. Tables go to the first schema of the
// pool's search_path. Close stops the store's listener but leaves the pool
// open: it is the caller's. The store's NOTIFY listener (for Watch) holds
// one of the pool's connections while anyone listens.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if pool == nil {
		return nil, errors.New("pgstore: nil pool")
	}
	s := &Store{pool: pool, log: slog.Default(), subs: make(map[*sub]struct{})}
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// SchemaVersion is the schema version this release writes.
var SchemaVersion = func() int {
	n, _ := latestMigration()
	return n
}()

type migration struct {
	version int
	sql     string
}

func readMigrations() ([]migration, error) {
	ents, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range ents {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != len(ms)+1 {
			return nil, fmt.Errorf("pgstore: bad migration name %q", e.Name())
		}
		b, err := fs.ReadFile(migrations, "migrations/"+e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{v, string(b)})
	}
	return ms, nil
}

func latestMigration() (int, error) {
	ms, err := readMigrations()
	return len(ms), err
}

func (s *Store) migrate(ctx context.Context) error {
	ms, err := readMigrations()
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("pgstore: migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS kmsring_schema (version integer NOT NULL)`); err != nil {
			return fmt.Errorf("pgstore: create kmsring_schema: %w", err)
		}
		var have int
		err := tx.QueryRow(ctx, `SELECT version FROM kmsring_schema`).Scan(&have)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if _, err := tx.Exec(ctx, `INSERT INTO kmsring_schema (version) VALUES (0)`); err != nil {
				return fmt.Errorf("pgstore: %w", err)
			}
		case err != nil:
			return fmt.Errorf("pgstore: read schema version: %w", err)
		}
		if have > len(ms) {
			return fmt.Errorf("%w: version %d, this release knows %d", ErrSchemaVersion, have, len(ms))
		}
		for _, m := range ms[have:] {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("pgstore: migration %d: %w", m.version, err)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE kmsring_schema SET version = $1`, len(ms)); err != nil {
			return fmt.Errorf("pgstore: %w", err)
		}
		return nil
	})
}

// Close stops the listener and closes the pool if Open made it. Later calls fail with
// store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.listenCh != nil {
		close(s.listenCh)
	}
	s.mu.Unlock()
	s.listenWG.Wait()
	if s.ownsPool {
		s.pool.Close()
	}
	return nil
}

func (s *Store) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	return nil
}

// retryable reports whether a failed call may be repeated: nothing reached
// the server, or (for reads only) the server terminated the connection.
func retryable(err error, read bool) bool {
	if pgconn.SafeToRetry(err) {
		return true
	}
	var pe *pgconn.PgError
	if read && errors.As(err, &pe) && (pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03") {
		return true // admin_shutdown, crash_shutdown, cannot_connect_now
	}
	var ce *pgconn.ConnectError
	return read && errors.As(err, &ce)
}

// run calls fn, once more if the first failure is retryable.
func (s *Store) run(ctx context.Context, read bool, fn func() error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	err := fn()
	if err != nil && ctx.Err() == nil && retryable(err, read) {
		err = fn()
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("pgstore: %w", ctx.Err())
	}
	return err
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// Create implements [store.Store].
func (s *Store) Create(ctx context.Context, rec store.Record, versions []store.Version) (store.Record, error) {
	err := s.run(ctx, false, func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var taken bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM kmsring_aliases WHERE alias = $1)`, rec.KeyID).Scan(&taken); err != nil {
				return err
			}
			if taken {
				return fmt.Errorf("pgstore: key %s: %w", rec.KeyID, store.ErrExists)
			}
			tag, err := tx.Exec(ctx, `INSERT INTO kmsring_keys (key_id, revision, aliases, data, due) VALUES ($1, 1, $2, $3, $4) ON CONFLICT DO NOTHING`,
				rec.KeyID, nonNil(rec.Aliases), rec.Data, dueArg(rec.Due))
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return fmt.Errorf("pgstore: key %s: %w", rec.KeyID, store.ErrExists)
			}
			if err := putAliases(ctx, tx, rec); err != nil {
				return err
			}
			if err := putVersions(ctx, tx, rec.KeyID, versions); err != nil {
				return err
			}
			// A new key is news too: another process's scheduler looks
			// at its dates now, not at its next refresh.
			_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, rec.KeyID)
			return err
		})
	})
	if err != nil {
		return store.Record{}, wrap("create", err)
	}
	rec.Revision = 1
	return rec.Clone(), nil
}

func nonNil(a []string) []string {
	if a == nil {
		return []string{}
	}
	return a
}

// putAliases inserts rec's aliases; an alias that is taken, or that is a
// key ID, is ErrExists.
func putAliases(ctx context.Context, tx pgx.Tx, rec store.Record) error {
	for _, a := range rec.Aliases {
		var isKey bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM kmsring_keys WHERE key_id = $1)`, a).Scan(&isKey); err != nil {
			return err
		}
		if isKey {
			return fmt.Errorf("pgstore: alias %s: %w", a, store.ErrExists)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO kmsring_aliases (alias, key_id) VALUES ($1, $2)`, a, rec.KeyID); err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("pgstore: alias %s: %w", a, store.ErrExists)
			}
			return err
		}
	}
	return nil
}

func putVersions(ctx context.Context, tx pgx.Tx, keyID string, versions []store.Version) error {
	if len(versions) == 0 {
		return nil
	}
	var b pgx.Batch
	for _, v := range versions {
		b.Queue(`INSERT INTO kmsring_versions (key_id, number, data) VALUES ($1, $2, $3)
			ON CONFLICT (key_id, number) DO UPDATE SET data = EXCLUDED.data`, keyID, int64(v.Number), v.Data)
	}
	return tx.SendBatch(ctx, &b).Close()
}

// wrap adds the package prefix to errors that lack one.
func wrap(op string, err error) error {
	if errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) ||
		errors.Is(err, store.ErrClosed) || strings.HasPrefix(err.Error(), "pgstore: ") {
		return err
	}
	return fmt.Errorf("pgstore: %s: %w", op, err)
}

// Get implements [store.Store].
func (s *Store) Get(ctx context.Context, idOrAlias string) (store.Record, error) {
	var rec store.Record
	err := s.run(ctx, true, func() error {
		var due *time.Time
		err := s.pool.QueryRow(ctx, `SELECT key_id, revision, aliases, data, due FROM kmsring_keys
			WHERE key_id = $1 OR key_id = (SELECT key_id FROM kmsring_aliases WHERE alias = $1)`, idOrAlias).
			Scan(&rec.KeyID, &rec.Revision, &rec.Aliases, &rec.Data, &due)
		if due != nil {
			rec.Due = due.UTC()
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("pgstore: %s: %w", idOrAlias, store.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return store.Record{}, wrap("get", err)
	}
	if len(rec.Aliases) == 0 {
		rec.Aliases = nil
	}
	return rec, nil
}

// Versions implements [store.Store].
func (s *Store) Versions(ctx context.Context, keyID string, after uint32) ([]store.Version, error) {
	return s.VersionRange(ctx, keyID, after, math.MaxUint32)
}

// VersionRange implements [store.VersionRanger].
func (s *Store) VersionRange(ctx context.Context, keyID string, after, through uint32) ([]store.Version, error) {
	var out []store.Version
	err := s.run(ctx, true, func() error {
		// One round trip: the key's row joined to its versions after
		// `after`; no row means no key, a NULL number means no versions.
		rows, err := s.pool.Query(ctx, `SELECT v.number, v.data FROM kmsring_keys k
			LEFT JOIN kmsring_versions v ON v.key_id = k.key_id AND v.number > $2 AND v.number <= $3
			WHERE k.key_id = $1 ORDER BY v.number`, keyID, int64(after), int64(through))
		if err != nil {
			return err
		}
		defer rows.Close()
		found := false
		out = nil
		for rows.Next() {
			found = true
			var n *int64
			var data []byte
			if err := rows.Scan(&n, &data); err != nil {
				return err
			}
			if n != nil {
				out = append(out, store.Version{Number: uint32(*n), Data: data})
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("pgstore: %s: %w", keyID, store.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return nil, wrap("versions", err)
	}
	return out, nil
}

// Update implements [store.Store].
func (s *Store) Update(ctx context.Context, rec store.Record, versions []store.Version) (store.Record, error) {
	err := s.run(ctx, false, func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var rev int64
			var old []string
			err := tx.QueryRow(ctx, `SELECT revision, aliases FROM kmsring_keys WHERE key_id = $1 FOR UPDATE`, rec.KeyID).Scan(&rev, &old)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("pgstore: %s: %w", rec.KeyID, store.ErrNotFound)
			}
			if err != nil {
				return err
			}
			// The row lock makes concurrent updaters wait here and then
			// see the winner's revision.
			if rev != int64(rec.Revision) {
				return fmt.Errorf("pgstore: %s at revision %d, not %d: %w", rec.KeyID, rev, rec.Revision, store.ErrConflict)
			}
			if _, err := tx.Exec(ctx, `UPDATE kmsring_keys SET revision = revision + 1, aliases = $2, data = $3, due = $4 WHERE key_id = $1`,
				rec.KeyID, nonNil(rec.Aliases), rec.Data, dueArg(rec.Due)); err != nil {
				return err
			}
			if !slices.Equal(old, rec.Aliases) {
				if _, err := tx.Exec(ctx, `DELETE FROM kmsring_aliases WHERE key_id = $1`, rec.KeyID); err != nil {
					return err
				}
				if err := putAliases(ctx, tx, rec); err != nil {
					return err
				}
			}
			if err := putVersions(ctx, tx, rec.KeyID, versions); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, rec.KeyID)
			return err
		})
	})
	if err != nil {
		return store.Record{}, wrap("update", err)
	}
	rec.Revision++
	return rec.Clone(), nil
}

// List implements [store.Store].
func (s *Store) List(ctx context.Context) ([]string, error) {
	var ids []string
	err := s.run(ctx, true, func() error {
		rows, err := s.pool.Query(ctx, `SELECT key_id FROM kmsring_keys ORDER BY key_id COLLATE "C"`)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, wrap("list", err)
	}
	return ids, nil
}

// Notify implements [store.Notifier]: a value is sent on c, without
// blocking, when another process (or this one) commits a change to keyID,
// and after the listener reconnects, since notifications may have been
// missed meanwhile.
func (s *Store) Notify(keyID string, c chan<- struct{}) (stop func()) {
	return s.subscribe(&sub{keyID: keyID, c: c})
}

// subscribe adds sb, starting the listener if it is the first.
func (s *Store) subscribe(sb *sub) (stop func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return func() {}
	}
	s.subs[sb] = struct{}{}
	if s.listenCh == nil {
		s.listenCh = make(chan struct{})
		s.listenWG.Add(1)
		go s.listen(s.listenCh)
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.subs, sb)
	}
}

// Changes implements [store.ChangeFeed]: fn is called with the key ID of
// every change committed by any process sharing the database (the payload
// of a NOTIFY on kmsring_changes), and with "" after the listener
// reconnects.
func (s *Store) Changes(fn func(keyID string)) (stop func()) {
	return s.subscribe(&sub{fn: fn})
}

// dispatch signals the subscribers of keyID, or all if keyID is empty.
func (s *Store) dispatch(keyID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sb := range s.subs {
		if sb.fn != nil {
			sb.fn(keyID)
			continue
		}
		if keyID == "" || sb.keyID == keyID {
			select {
			case sb.c <- struct{}{}:
			default:
			}
		}
	}
}

// listen holds a connection in LISTEN until stop is closed, reconnecting
// with backoff after failures.
func (s *Store) listen(stop chan struct{}) {
	defer s.listenWG.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("kmsring: pgstore listener lost its connection; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (s *Store) listenOnce(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		conn.Conn().Close(ctx)
		return err
	}
	// Changes made while the listener was down were not delivered.
	s.dispatch("")
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			// The connection is in an unknown state; do not return it
			// to the pool still listening.
			conn.Conn().Close(context.Background())
			return err
		}
		s.dispatch(n.Payload)
	}
}

// AppendAudit implements [store.AuditLog]. Appends take the audit
// log's append lock (see AppendAuditNext), so a writer whose numbers
// another process took first gets store.ErrConflict without a failed
// insert.
func (s *Store) AppendAudit(ctx context.Context, entries []store.AuditEntry) error {
	if len(entries) == 0 {
		return s.check(ctx)
	}
	err := s.run(ctx, false, func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, lockAudit); err != nil {
				return err
			}
			var last int64
			if err := tx.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM kmsring_audit`).Scan(&last); err != nil {
				return err
			}
			for i, e := range entries {
				if want := uint64(last) + uint64(i) + 1; e.Seq != want {
					return fmt.Errorf("pgstore: audit entry %d where %d is next: %w", e.Seq, want, store.ErrConflict)
				}
			}
			err := copyAudit(ctx, tx, uint64(last)+1, entries)
			if isUniqueViolation(err) {
				return fmt.Errorf("pgstore: audit entry %d was appended by another process: %w", entries[0].Seq, store.ErrConflict)
			}
			return err
		})
	})
	if err != nil {
		return wrap("append audit", err)
	}
	return nil
}

// LastAudit implements [store.AuditLog].
func (s *Store) LastAudit(ctx context.Context) (store.AuditEntry, error) {
	var e store.AuditEntry
	err := s.run(ctx, true, func() error {
		var seq int64
		err := s.pool.QueryRow(ctx, `SELECT seq, time, key_id, operation, data FROM kmsring_audit ORDER BY seq DESC LIMIT 1`).
			Scan(&seq, &e.Time, &e.KeyID, &e.Operation, &e.Data)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("pgstore: audit log is empty: %w", store.ErrNotFound)
		}
		e.Seq = uint64(seq)
		return err
	})
	if err != nil {
		return store.AuditEntry{}, wrap("last audit", err)
	}
	e.Time = e.Time.UTC()
	return e, nil
}

// ReadAudit implements [store.AuditLog].
func (s *Store) ReadAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	var out []store.AuditEntry
	err := s.run(ctx, true, func() error {
		sql := `SELECT seq, time, key_id, operation, data FROM kmsring_audit WHERE seq > $1`
		args := []any{int64(q.After)}
		add := func(cond string, v any) {
			args = append(args, v)
			sql += fmt.Sprintf(" AND "+cond, len(args))
		}
		if q.KeyID != "" {
			add("key_id = $%d", q.KeyID)
		}
		if q.Operation != "" {
			add("operation = $%d", q.Operation)
		}
		if !q.Since.IsZero() {
			add("time >= $%d", q.Since)
		}
		if !q.Until.IsZero() {
			add("time < $%d", q.Until)
		}
		sql += " ORDER BY seq"
		if q.Limit > 0 {
			sql += " LIMIT " + strconv.Itoa(q.Limit)
		}
		rows, err := s.pool.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AuditEntry, error) {
			var e store.AuditEntry
			var seq int64
			err := row.Scan(&seq, &e.Time, &e.KeyID, &e.Operation, &e.Data)
			e.Seq, e.Time = uint64(seq), e.Time.UTC()
			return e, err
		})
		return err
	})
	if err != nil {
		return nil, wrap("read audit", err)
	}
	return out, nil
}
