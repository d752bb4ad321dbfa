package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/kmsring/kmsring/store"
	bolt "go.etcd.io/bbolt"
)

// The due index and paged listing (store.DueIndex, store.Pager).

// dueKey is the due bucket's key of e: its time in Unix nanoseconds as a
// big-endian uint64 with the sign bit flipped (so that byte order is time
// order), then the key ID.
func dueKey(e store.DueEntry) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(e.Due.UnixNano())^(1<<63))
	return append(b, e.KeyID...)
}

func parseDueKey(k []byte) (store.DueEntry, error) {
	if len(k) <= 8 {
		return store.DueEntry{}, fmt.Errorf("%w: due index entry %x", ErrCorrupt, k)
	}
	ns := int64(binary.BigEndian.Uint64(k) ^ (1 << 63))
	return store.DueEntry{KeyID: string(k[8:]), Due: time.Unix(0, ns).UTC()}, nil
}

// moveDue moves the record's due entry from old's Due to rec's.
func moveDue(tx *bolt.Tx, old, rec store.Record) error {
	b := tx.Bucket(bucketDue)
	if !old.Due.IsZero() {
		if err := b.Delete(dueKey(store.DueEntry{KeyID: old.KeyID, Due: old.Due})); err != nil {
			return err
		}
	}
	if rec.Due.IsZero() {
		return nil
	}
	return b.Put(dueKey(store.DueEntry{KeyID: rec.KeyID, Due: rec.Due}), nil)
}

// buildDueIndex creates the due bucket in a file written before it
// existed. Its records carry no Due: each is given the Unix epoch, "look
// at once", so that the first pass of a scheduler reads each key once and
// writes its real due time.
func buildDueIndex(tx *bolt.Tx) error {
	b, err := tx.CreateBucket(bucketDue)
	if err != nil {
		return err
	}
	keys := tx.Bucket(bucketKeys)
	epoch := time.Unix(0, 0).UTC()
	var ids [][]byte
	if err := keys.ForEach(func(id, _ []byte) error {
		ids = append(ids, bytes.Clone(id))
		return nil
	}); err != nil {
		return err
	}
	for _, id := range ids {
		rec, err := decodeRecord(id, keys.Get(id))
		if err != nil {
			return err
		}
		if rec.Due.IsZero() {
			rec.Due = epoch
			if err := keys.Put(id, encodeRecord(rec)); err != nil {
				return err
			}
		}
		if err := b.Put(dueKey(store.DueEntry{KeyID: rec.KeyID, Due: rec.Due}), nil); err != nil {
			return err
		}
	}
	return nil
}

// ListDue implements [store.DueIndex].
func (s *Store) ListDue(ctx context.Context, through time.Time, after store.DueEntry, limit int) (out []store.DueEntry, err error) {
	if err := store.CheckLimit(limit); err != nil {
		return nil, err
	}
	err = s.do(ctx, false, func(tx *bolt.Tx) error {
		out = nil
		c := tx.Bucket(bucketDue).Cursor()
		var k []byte
		if after == (store.DueEntry{}) {
			k, _ = c.First()
		} else {
			start := dueKey(after)
			if k, _ = c.Seek(start); bytes.Equal(k, start) {
				k, _ = c.Next()
			}
		}
		for ; k != nil && len(out) < limit; k, _ = c.Next() {
			e, err := parseDueKey(k)
			if err != nil {
				return err
			}
			if e.Due.After(through) {
				break
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// ListPage implements [store.Pager].
func (s *Store) ListPage(ctx context.Context, after string, limit int) (ids []string, err error) {
	if err := store.CheckLimit(limit); err != nil {
		return nil, err
	}
	err = s.do(ctx, false, func(tx *bolt.Tx) error {
		ids = nil
		return page(tx.Bucket(bucketKeys), after, limit, func(k, _ []byte) { ids = append(ids, string(k)) })
	})
	return ids, err
}

// ListAliasPage implements [store.Pager].
func (s *Store) ListAliasPage(ctx context.Context, after string, limit int) (out []store.AliasEntry, err error) {
	if err := store.CheckLimit(limit); err != nil {
		return nil, err
	}
	err = s.do(ctx, false, func(tx *bolt.Tx) error {
		out = nil
		return page(tx.Bucket(bucketAliases), after, limit, func(k, v []byte) {
			out = append(out, store.AliasEntry{Alias: string(k), KeyID: string(v)})
		})
	})
	return out, err
}

// page calls fn with the first limit entries of b whose key is greater
// than after.
func page(b *bolt.Bucket, after string, limit int, fn func(k, v []byte)) error {
	c := b.Cursor()
	k, v := c.Seek([]byte(after))
	if k != nil && string(k) == after {
		k, v = c.Next()
	}
	for n := 0; k != nil && n < limit; k, v = c.Next() {
		if v == nil && b.Bucket(k) != nil {
			return fmt.Errorf("%w: a bucket among records", ErrCorrupt)
		}
		fn(k, v)
		n++
	}
	return nil
}
