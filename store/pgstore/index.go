package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kmsring/kmsring/store"
)

// The due index and paged listing (store.DueIndex, store.Pager), each one
// indexed query. Key IDs and aliases are compared in byte order (COLLATE
// "C"), as the other stores do, whatever the database's collation.

// dueArg is a record's due time as a query argument: NULL when zero.
func dueArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// ListDue implements [store.DueIndex].
func (s *Store) ListDue(ctx context.Context, through time.Time, after store.DueEntry, limit int) ([]store.DueEntry, error) {
	if err := store.CheckLimit(limit); err != nil {
		return nil, err
	}
	var out []store.DueEntry
	err := s.run(ctx, true, func() error {
		var rows pgx.Rows
		var err error
		if after == (store.DueEntry{}) {
			rows, err = s.pool.Query(ctx, `SELECT key_id, due FROM kmsring_keys
				WHERE due IS NOT NULL AND due <= $1
				ORDER BY due, key_id COLLATE "C" LIMIT $2`, through, limit)
		} else {
			rows, err = s.pool.Query(ctx, `SELECT key_id, due FROM kmsring_keys
				WHERE due IS NOT NULL AND due <= $1 AND (due, key_id COLLATE "C") > ($3, $4 COLLATE "C")
				ORDER BY due, key_id COLLATE "C" LIMIT $2`, through, limit, after.Due, after.KeyID)
		}
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.DueEntry, error) {
			var e store.DueEntry
			err := r.Scan(&e.KeyID, &e.Due)
			e.Due = e.Due.UTC()
			return e, err
		})
		return err
	})
	if err != nil {
		return nil, wrap("list due", err)
	}
	return out, nil
}

// ListPage implements [store.Pager].
func (s *Store) ListPage(ctx context.Context, after string, limit int) ([]string, error) {
	if err := store.CheckLimit(limit); err != nil {
		return nil, err
	}
	var ids []string
	err := s.run(ctx, true, func() error {
		rows, err := s.pool.Query(ctx, `SELECT key_id FROM kmsring_keys WHERE key_id COLLATE "C" > $1
			ORDER BY key_id COLLATE "C" LIMIT $2`, after, limit)
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

// ListAliasPage implements [store.Pager].
func (s *Store) ListAliasPage(ctx context.Context, after string, limit int) ([]store.AliasEntry, error) {
	if err := store.CheckLimit(limit); err != nil {
		return nil, err
	}
	var out []store.AliasEntry
	err := s.run(ctx, true, func() error {
		rows, err := s.pool.Query(ctx, `SELECT alias, key_id FROM kmsring_aliases WHERE alias COLLATE "C" > $1
			ORDER BY alias COLLATE "C" LIMIT $2`, after, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowToStructByPos[store.AliasEntry])
		return err
	})
	if err != nil {
		return nil, wrap("list aliases", err)
	}
	return out, nil
}
