// Package memstore is an in-memory [store.Store], the default store of a
// keyring and the one to use in tests.
//
// Everything it holds is lost when the process exits. It is safe for
// concurrent use.
package memstore

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kmsring/kmsring/store"
)

var (
	_ store.Volatile      = (*Store)(nil)
	_ store.AuditLog      = (*Store)(nil)
	_ store.VersionRanger = (*Store)(nil)
	_ store.DueIndex      = (*Store)(nil)
	_ store.Pager         = (*Store)(nil)
	_ store.AuditPruner   = (*Store)(nil)
)

// Store is an in-memory store. The zero value is not usable; call New.
type Store struct {
	mu      sync.RWMutex
	records map[string]store.Record
	aliases map[string]string // alias -> key ID
	// versions holds each key's versions indexed by number-1; numbers are
	// dense in practice but the store does not rely on it.
	versions map[string]map[uint32][]byte
	audit    []store.AuditEntry
	// The indexes, kept sorted: key IDs, aliases, and the records with a
	// Due time by (Due, KeyID).
	ids        []string
	aliasNames []string
	due        []store.DueEntry
}

// New returns an empty store.
func New() *Store {
	return &Store{
		records:  make(map[string]store.Record),
		aliases:  make(map[string]string),
		versions: make(map[string]map[uint32][]byte),
	}
}

// Volatile reports true: the store's contents end with the process.
func (s *Store) Volatile() bool { return true }

// Create implements [store.Store].
func (s *Store) Create(ctx context.Context, rec store.Record, versions []store.Version) (store.Record, error) {
	if err := ctx.Err(); err != nil {
		return store.Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.records[rec.KeyID]; ok {
		return store.Record{}, fmt.Errorf("memstore: key %s: %w", rec.KeyID, store.ErrExists)
	}
	if _, ok := s.aliases[rec.KeyID]; ok {
		return store.Record{}, fmt.Errorf("memstore: key %s: %w", rec.KeyID, store.ErrExists)
	}
	if err := s.checkAliases(rec); err != nil {
		return store.Record{}, err
	}
	rec = rec.Clone()
	rec.Revision = 1
	s.records[rec.KeyID] = rec
	for _, a := range rec.Aliases {
		s.aliases[a] = rec.KeyID
		s.aliasNames = insertSorted(s.aliasNames, a)
	}
	s.ids = insertSorted(s.ids, rec.KeyID)
	s.indexDue(store.Record{}, rec)
	vs := make(map[uint32][]byte, len(versions))
	for _, v := range versions {
		vs[v.Number] = slices.Clone(v.Data)
	}
	s.versions[rec.KeyID] = vs
	return rec.Clone(), nil
}

// checkAliases reports ErrExists if an alias of rec names another key or is
// the ID of one. s.mu must be held.
func (s *Store) checkAliases(rec store.Record) error {
	for _, a := range rec.Aliases {
		if owner, ok := s.aliases[a]; ok && owner != rec.KeyID {
			return fmt.Errorf("memstore: alias %s: %w", a, store.ErrExists)
		}
		if _, ok := s.records[a]; ok {
			return fmt.Errorf("memstore: alias %s: %w", a, store.ErrExists)
		}
	}
	return nil
}

// Get implements [store.Store].
func (s *Store) Get(ctx context.Context, idOrAlias string) (store.Record, error) {
	if err := ctx.Err(); err != nil {
		return store.Record{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	id := idOrAlias
	if owner, ok := s.aliases[idOrAlias]; ok {
		id = owner
	}
	rec, ok := s.records[id]
	if !ok {
		return store.Record{}, fmt.Errorf("memstore: %s: %w", idOrAlias, store.ErrNotFound)
	}
	return rec.Clone(), nil
}

// Versions implements [store.Store].
func (s *Store) Versions(ctx context.Context, keyID string, after uint32) ([]store.Version, error) {
	return s.VersionRange(ctx, keyID, after, math.MaxUint32)
}

// VersionRange implements [store.VersionRanger].
func (s *Store) VersionRange(ctx context.Context, keyID string, after, through uint32) ([]store.Version, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	vs, ok := s.versions[keyID]
	if !ok {
		return nil, fmt.Errorf("memstore: %s: %w", keyID, store.ErrNotFound)
	}
	var out []store.Version
	for n, d := range vs {
		if n > after && n <= through {
			out = append(out, store.Version{Number: n, Data: slices.Clone(d)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}

// Update implements [store.Store].
func (s *Store) Update(ctx context.Context, rec store.Record, versions []store.Version) (store.Record, error) {
	if err := ctx.Err(); err != nil {
		return store.Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.records[rec.KeyID]
	if !ok {
		return store.Record{}, fmt.Errorf("memstore: %s: %w", rec.KeyID, store.ErrNotFound)
	}
	if old.Revision != rec.Revision {
		return store.Record{}, fmt.Errorf("memstore: %s at revision %d, not %d: %w",
			rec.KeyID, old.Revision, rec.Revision, store.ErrConflict)
	}
	if err := s.checkAliases(rec); err != nil {
		return store.Record{}, err
	}
	for _, a := range old.Aliases {
		delete(s.aliases, a)
		s.aliasNames = deleteSorted(s.aliasNames, a)
	}
	rec = rec.Clone()
	rec.Revision = old.Revision + 1
	s.records[rec.KeyID] = rec
	for _, a := range rec.Aliases {
		s.aliases[a] = rec.KeyID
		s.aliasNames = insertSorted(s.aliasNames, a)
	}
	s.indexDue(old, rec)
	vs := s.versions[rec.KeyID]
	for _, v := range versions {
		vs[v.Number] = slices.Clone(v.Data)
	}
	return rec.Clone(), nil
}

// List implements [store.Store].
func (s *Store) List(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.ids), nil
}

func insertSorted(a []string, v string) []string {
	i, found := slices.BinarySearch(a, v)
	if found {
		return a
	}
	return slices.Insert(a, i, v)
}

func deleteSorted(a []string, v string) []string {
	if i, found := slices.BinarySearch(a, v); found {
		return slices.Delete(a, i, i+1)
	}
	return a
}

func cmpDue(a, b store.DueEntry) int {
	if c := a.Due.Compare(b.Due); c != 0 {
		return c
	}
	return strings.Compare(a.KeyID, b.KeyID)
}

// indexDue moves the record's due entry from old's Due to rec's. s.mu must
// be held.
func (s *Store) indexDue(old, rec store.Record) {
	if !old.Due.IsZero() {
		e := store.DueEntry{KeyID: old.KeyID, Due: old.Due}
		if i, found := slices.BinarySearchFunc(s.due, e, cmpDue); found {
			s.due = slices.Delete(s.due, i, i+1)
		}
	}
	if !rec.Due.IsZero() {
		e := store.DueEntry{KeyID: rec.KeyID, Due: rec.Due}
		i, _ := slices.BinarySearchFunc(s.due, e, cmpDue)
		s.due = slices.Insert(s.due, i, e)
	}
}

// ListDue implements [store.DueIndex].
func (s *Store) ListDue(ctx context.Context, through time.Time, after store.DueEntry, limit int) ([]store.DueEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := store.CheckLimit(limit); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	i := 0
	if after != (store.DueEntry{}) {
		i, _ = slices.BinarySearchFunc(s.due, after, cmpDue)
		if i < len(s.due) && cmpDue(s.due[i], after) == 0 {
			i++
		}
	}
	var out []store.DueEntry
	for ; i < len(s.due) && len(out) < limit && !s.due[i].Due.After(through); i++ {
		out = append(out, s.due[i])
	}
	return out, nil
}

// ListPage implements [store.Pager].
func (s *Store) ListPage(ctx context.Context, after string, limit int) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := store.CheckLimit(limit); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(pageAfter(s.ids, after, limit)), nil
}

// ListAliasPage implements [store.Pager].
func (s *Store) ListAliasPage(ctx context.Context, after string, limit int) ([]store.AliasEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := store.CheckLimit(limit); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := pageAfter(s.aliasNames, after, limit)
	out := make([]store.AliasEntry, len(names))
	for i, a := range names {
		out[i] = store.AliasEntry{Alias: a, KeyID: s.aliases[a]}
	}
	return out, nil
}

// pageAfter returns the elements of sorted a greater than after, at most
// limit of them.
func pageAfter(a []string, after string, limit int) []string {
	i, found := slices.BinarySearch(a, after)
	if found {
		i++
	}
	return a[i:min(len(a), i+limit)]
}

// AppendAudit implements [store.AuditLog].
func (s *Store) AppendAudit(ctx context.Context, entries []store.AuditEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, e := range entries {
		if want := s.lastSeq() + uint64(i) + 1; e.Seq != want {
			return fmt.Errorf("memstore: audit entry %d where %d is next: %w", e.Seq, want, store.ErrConflict)
		}
	}
	for _, e := range entries {
		e.Data = slices.Clone(e.Data)
		s.audit = append(s.audit, e)
	}
	return nil
}

// LastAudit implements [store.AuditLog].
func (s *Store) LastAudit(ctx context.Context) (store.AuditEntry, error) {
	if err := ctx.Err(); err != nil {
		return store.AuditEntry{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.audit) == 0 {
		return store.AuditEntry{}, fmt.Errorf("memstore: audit log is empty: %w", store.ErrNotFound)
	}
	e := s.audit[len(s.audit)-1]
	e.Data = slices.Clone(e.Data)
	return e, nil
}

// ReadAudit implements [store.AuditLog].
func (s *Store) ReadAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []store.AuditEntry
	for _, e := range s.audit[s.auditIndex(q.After+1):] {
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
		if q.Match(e) {
			e.Data = slices.Clone(e.Data)
			out = append(out, e)
		}
	}
	return out, nil
}
