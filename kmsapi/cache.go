package kmsapi

import (
	"context"
	"fmt"
	"strings"

	"github.com/kmsring/kmsring/keyring"
)

// The handler's loaded keys are bounded: a store of 100,000 keys used once
// each does not keep 100,000 keyrings. Keys load on first use, one load per
// key at a time and loads of different keys at once (internal/lru); the
// least recently used go when the bound is reached and load again on their
// next use.

// DefaultMaxLoadedKeys is how many keys a handler keeps loaded unless
// WithMaxLoadedKeys says otherwise.
const DefaultMaxLoadedKeys = 10000

// WithMaxLoadedKeys bounds the keys the handler keeps loaded to n (at
// least 1; default DefaultMaxLoadedKeys), dropping the least recently used.
func WithMaxLoadedKeys(n int) Option {
	return func(h *Handler) error {
		if n < 1 {
			return fmt.Errorf("kmsapi: WithMaxLoadedKeys needs at least 1, not %d", n)
		}
		h.keys.max = n
		return nil
	}
}

// LoadedKeys returns how many keys the handler holds loaded.
func (h *Handler) LoadedKeys() int { return h.keys.byID.Len() }

// Keys returns the keyrings the handler holds loaded now (at most
// WithMaxLoadedKeys), for metrics. It is safe for concurrent use.
func (h *Handler) Keys() []*keyring.Keyring {
	es := h.keys.byID.Values()
	ks := make([]*keyring.Keyring, len(es))
	for i, e := range es {
		ks[i] = e.k
	}
	return ks
}

// Listing reads a page from the store (keyring.ListPage,
// keyring.ListAliasPage), never the whole store. A marker is the last key
// ID or alias of the previous page; anything else is refused.

// limit returns the page size the request asks for, or def.
func (in *pageInput) limit(def int) (int, error) {
	if in.Limit == nil {
		return def, nil
	}
	if *in.Limit < 1 || *in.Limit > 1000 {
		return 0, errValidation("Limit must be between 1 and 1000")
	}
	return *in.Limit, nil
}

func errInvalidMarker() error {
	return &apiError{Type: "InvalidMarkerException", Message: "the marker is not one this endpoint returned"}
}

// aliasPage returns a page of aliases after in.Marker, of one key if
// keyID is set (read from its authenticated record), and the next marker.
func (h *Handler) aliasPage(ctx context.Context, keyID string, in *pageInput) ([]keyring.AliasEntry, string, error) {
	if in.Marker != "" && !strings.HasPrefix(in.Marker, "alias/") {
		return nil, "", errInvalidMarker()
	}
	if keyID != "" {
		e, err := h.entry(ctx, keyID)
		if err != nil {
			return nil, "", err
		}
		md, err := e.k.Describe(ctx)
		if err != nil {
			return nil, "", err
		}
		entries := make([]keyring.AliasEntry, len(md.Aliases))
		for i, a := range md.Aliases {
			entries[i] = keyring.AliasEntry{Alias: a, KeyID: keyID}
		}
		return page(in, entries, func(a keyring.AliasEntry) string { return a.Alias }, 100)
	}
	limit, err := in.limit(100)
	if err != nil {
		return nil, "", err
	}
	entries, more, err := keyring.ListAliasPage(ctx, h.st, in.Marker, limit, keyring.WithRootKey(h.rk))
	if err != nil {
		return nil, "", err
	}
	if more && len(entries) > 0 {
		return entries, entries[len(entries)-1].Alias, nil
	}
	return entries, "", nil
}
