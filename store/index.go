package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Indexes a store may keep so that a process serving many keys finds its
// work without reading every record: the due index (Record.Due) and paged
// listing of key IDs and aliases. Both are optional, found by type
// assertion, so that the Store interface stays narrow; all the stores in
// this module implement them.
//
// What an index says is derived data, as unauthenticated as the rest of
// what a store holds: a caller treats an entry as a hint to read the
// record, never as a fact about the key.

// MaxPage bounds the limit of one page of ListDue, ListPage and
// ListAliasPage, so that no single call reads an unbounded amount.
const MaxPage = 10000

// ErrPageLimit reports a page limit outside 1..MaxPage.
var ErrPageLimit = errors.New("store: page limit out of range")

// CheckLimit returns an error wrapping ErrPageLimit unless 1 <= limit <=
// MaxPage; for backends.
func CheckLimit(limit int) error {
	if limit < 1 || limit > MaxPage {
		return fmt.Errorf("%w: %d is not within 1..%d", ErrPageLimit, limit, MaxPage)
	}
	return nil
}

// DueEntry is one entry of the due index: a record and its Due time.
type DueEntry struct {
	KeyID string
	Due   time.Time
}

// Less orders due entries by Due, then KeyID, as ListDue returns them.
func (e DueEntry) Less(o DueEntry) bool {
	if !e.Due.Equal(o.Due) {
		return e.Due.Before(o.Due)
	}
	return e.KeyID < o.KeyID
}

// DueIndex is implemented by stores that index Record.Due, so that "what
// is due before T" costs what is due, not what is stored.
type DueIndex interface {
	// ListDue returns the records whose Due is non-zero and not after
	// through, ordered by Due and then KeyID, beginning after the entry
	// after (the zero DueEntry: from the start; pass the last entry of a
	// page to get the next), at most limit of them (1..MaxPage, else
	// ErrPageLimit). The entry is what the index holds; the record it
	// names may have changed or gone since.
	ListDue(ctx context.Context, through time.Time, after DueEntry, limit int) ([]DueEntry, error)
}

// AliasEntry is one alias and the key ID the store maps it to.
type AliasEntry struct{ Alias, KeyID string }

// Pager is implemented by stores that list key IDs and aliases a page at a
// time, in time proportional to the page rather than to the store.
type Pager interface {
	// ListPage returns the key IDs greater than after (byte order),
	// sorted, at most limit of them (1..MaxPage, else ErrPageLimit). ""
	// starts at the beginning; pass the last ID of a page for the next.
	ListPage(ctx context.Context, after string, limit int) ([]string, error)
	// ListAliasPage returns the aliases greater than after (byte order)
	// with the key ID the store maps each to, sorted by alias, at most
	// limit of them (1..MaxPage, else ErrPageLimit).
	ListAliasPage(ctx context.Context, after string, limit int) ([]AliasEntry, error)
}

// DueTime rounds t up to the microsecond, the precision every store keeps
// Due in, so that a Due written is the Due read back.
func DueTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	r := t.Truncate(time.Microsecond)
	if r.Before(t) {
		r = r.Add(time.Microsecond)
	}
	return r.UTC()
}
