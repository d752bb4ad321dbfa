package keyring

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kmsring/kmsring/store"
)

// Paged listing: a page of keys or aliases costs a page of reads, not the
// store, when the store implements store.Pager (every store in this module
// does); other stores are listed whole and cut.

// ListPage returns at most limit (1..store.MaxPage) key IDs of st greater
// than after (byte order; "" from the start), sorted, deleted keys included
// and records that are not keys (ReservedPrefix) left out, and whether more
// follow. Pass the last ID of a page as after to get the next.
func ListPage(ctx context.Context, st store.Store, after string, limit int) (ids []string, more bool, err error) {
	if st == nil {
		return nil, false, fmt.Errorf("%w: nil store", ErrInvalidArgument)
	}
	if err := store.CheckLimit(limit); err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	p, ok := st.(store.Pager)
	if !ok {
		all, err := List(ctx, st)
		if err != nil {
			return nil, false, err
		}
		i, found := slices.BinarySearch(all, after)
		if found {
			i++
		}
		all = all[i:]
		return all[:min(limit, len(all))], len(all) > limit, nil
	}
	// Reserved records are few and sort after key IDs (UUIDs are hex
	// digits); read one more than a page to tell whether more follow.
	for len(ids) <= limit {
		page, err := p.ListPage(ctx, after, min(limit+1, store.MaxPage))
		if err != nil {
			return nil, false, fmt.Errorf("keyring: list keys: %w", err)
		}
		for _, id := range page {
			// What the store lists is not trusted to be in order: an ID
			// listed twice or out of order would repeat keys, or make
			// the cursor stand still.
			if id <= after {
				return nil, false, fmt.Errorf("%w: the store listed key %q after %q (listed twice or out of order)", ErrTampered, id, after)
			}
			after = id
			if !isReserved(id) {
				ids = append(ids, id)
			}
		}
		if len(page) < min(limit+1, store.MaxPage) {
			break
		}
	}
	if len(ids) > limit {
		return ids[:limit], true, nil
	}
	return ids, false, nil
}

// ListAliasPage returns at most limit (1..store.MaxPage) aliases of st
// greater than after (byte order; "" from the start), sorted, with the key
// each names, and whether more follow. Each alias's key record is read and
// authenticated, and must claim the alias (ErrTampered, naming the key,
// otherwise), so that a page costs at most limit record reads; it needs
// the store's root key (WithRootKey) unless st is volatile.
func ListAliasPage(ctx context.Context, st store.Store, after string, limit int, opts ...Option) ([]AliasEntry, bool, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, false, err
	}
	if st == nil {
		return nil, false, fmt.Errorf("%w: nil store", ErrInvalidArgument)
	}
	if err := store.CheckLimit(limit); err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	p, ok := st.(store.Pager)
	if !ok {
		all, err := ListAliases(ctx, st, opts...)
		if err != nil {
			return nil, false, err
		}
		i, found := slices.BinarySearchFunc(all, after, func(a AliasEntry, s string) int {
			return strings.Compare(a.Alias, s)
		})
		if found {
			i++
		}
		all = all[i:]
		return all[:min(limit, len(all))], len(all) > limit, nil
	}
	if err := checkRootKey(c, st); err != nil {
		return nil, false, err
	}
	page, err := p.ListAliasPage(ctx, after, min(limit+1, store.MaxPage))
	if err != nil {
		return nil, false, fmt.Errorf("keyring: list aliases: %w", err)
	}
	for i, a := range page {
		if a.Alias <= after || i > 0 && a.Alias <= page[i-1].Alias {
			return nil, false, fmt.Errorf("%w: the store listed alias %q twice or out of order", ErrTampered, a.Alias)
		}
	}
	more := len(page) > limit
	page = page[:min(limit, len(page))]
	if len(page) == 0 {
		return nil, more, nil
	}
	sk, err := loadStoreKeys(ctx, st, c.rootKey, false)
	if err != nil {
		return nil, false, err
	}
	docs := make(map[string]*keyDoc)
	out := make([]AliasEntry, 0, len(page))
	for _, a := range page {
		if isReserved(a.KeyID) {
			continue
		}
		doc, ok := docs[a.KeyID]
		if !ok {
			u, err := keyIDBytes(a.KeyID)
			if err != nil {
				return nil, false, fmt.Errorf("%w (named by alias %q)", err, a.Alias)
			}
			rec, err := st.Get(ctx, a.KeyID)
			if errors.Is(err, store.ErrNotFound) {
				return nil, false, tampered(u, "the store maps alias %s to it, but holds no such key", a.Alias)
			}
			if err != nil {
				return nil, false, fmt.Errorf("keyring: list aliases: %w", err)
			}
			if rec.KeyID != a.KeyID {
				return nil, false, tampered(u, "the store returned the record of %q for it", rec.KeyID)
			}
			d, err := openKeyDoc(sk, u, rec.Data)
			if err != nil {
				return nil, false, err
			}
			doc = &d
			docs[a.KeyID] = doc
		}
		if !slices.Contains(doc.Aliases, a.Alias) {
			return nil, false, fmt.Errorf("%w: key %s: the store maps alias %s to it, but the key does not have that alias", ErrTampered, a.KeyID, a.Alias)
		}
		out = append(out, AliasEntry{Alias: a.Alias, KeyID: a.KeyID})
	}
	return out, more, nil
}
