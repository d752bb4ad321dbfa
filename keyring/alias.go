package keyring

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
)

// AddAlias gives the key another alias (see WithAlias for the syntax). It
// fails with an error wrapping store.ErrExists if the alias belongs to
// another key; adding an alias the key has does nothing.
func (k *Keyring) AddAlias(ctx context.Context, name string) error {
	if !aliasRE.MatchString(name) {
		err := fmt.Errorf("%w: invalid alias %q", ErrInvalidArgument, name)
		return k.audit(ctx, AuditEvent{Operation: OpAddAlias, Alias: name, Err: err})
	}
	err := k.mutateAliases(ctx, string(OpAddAlias), func(aliases *[]string, doc *keyDoc, _ []*version, _ time.Time) ([]*version, error) {
		if err := k.changeable(doc); err != nil {
			return nil, err
		}
		if slices.Contains(*aliases, name) {
			return nil, errNoChange
		}
		if len(*aliases) >= maxAliases {
			return nil, fmt.Errorf("%w: key %s has %d aliases, the most a key may have", ErrInvalidArgument, k.id, maxAliases)
		}
		*aliases = append(*aliases, name)
		return nil, nil
	})
	if err == errNoChange {
		err = nil
	}
	return k.audit(ctx, AuditEvent{Operation: OpAddAlias, Alias: name, Err: err})
}

// RemoveAlias removes an alias of the key; removing one it does not have
// does nothing. The key ID never changes and always finds the key.
func (k *Keyring) RemoveAlias(ctx context.Context, name string) error {
	err := k.mutateAliases(ctx, string(OpRemoveAlias), func(aliases *[]string, _ *keyDoc, _ []*version, _ time.Time) ([]*version, error) {
		i := slices.Index(*aliases, name)
		if i < 0 {
			return nil, errNoChange
		}
		*aliases = slices.Delete(*aliases, i, i+1)
		return nil, nil
	})
	if err == errNoChange {
		err = nil
	}
	return k.audit(ctx, AuditEvent{Operation: OpRemoveAlias, Alias: name, Err: err})
}

// AliasEntry is one alias and the key it names.
type AliasEntry struct{ Alias, KeyID string }

// ListAliases returns every alias in st with the key it names, sorted by
// alias. It reads each key's record and authenticates it (ErrTampered), so
// it needs the store's root key (WithRootKey) unless st is volatile; a key
// whose record fails authentication fails the call, naming it.
func ListAliases(ctx context.Context, st store.Store, opts ...Option) ([]AliasEntry, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("%w: nil store", ErrInvalidArgument)
	}
	if err := checkRootKey(c, st); err != nil {
		return nil, err
	}
	ids, err := List(ctx, st)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	sk, err := loadStoreKeys(ctx, st, c.rootKey, false)
	if err != nil {
		return nil, err
	}
	var out []AliasEntry
	for _, id := range ids {
		u, err := keyIDBytes(id)
		if err != nil {
			return nil, err
		}
		rec, err := st.Get(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("keyring: list aliases: %w", err)
		}
		doc, err := openKeyDoc(sk, u, rec.Data)
		if err != nil {
			return nil, err
		}
		for _, a := range doc.Aliases {
			out = append(out, AliasEntry{Alias: a, KeyID: id})
		}
	}
	slices.SortFunc(out, func(a, b AliasEntry) int { return strings.Compare(a.Alias, b.Alias) })
	return out, nil
}

// LoadOrNew returns the key with the given alias from the store that opts
// name (WithStore; the default is a fresh in-memory store), creating it with
// New(WithAlias(alias), opts...) if there is none, and reports whether this
// call created it. It is safe to call from many replicas starting at once:
// the store's alias uniqueness decides one creator, and the others load
// what it made. Creation-only options (WithRotationPeriod, WithDescription,
// WithAlias for further aliases) apply only when it creates.
func LoadOrNew(ctx context.Context, alias string, opts ...Option) (k *Keyring, created bool, err error) {
	if !aliasRE.MatchString(alias) {
		return nil, false, fmt.Errorf("%w: invalid alias %q", ErrInvalidArgument, alias)
	}
	c, err := newConfig(opts)
	if err != nil {
		return nil, false, err
	}
	if c.store == nil {
		c.store = memstore.New()
		opts = append(opts, WithStore(c.store))
	}
	var loadOpts []Option
	if c.rootKey != nil {
		loadOpts = append(loadOpts, WithRootKey(c.rootKey))
	}
	loadOpts = append(loadOpts, WithClock(c.clock), WithReloadInterval(c.reloadInterval))
	if c.logger != nil {
		loadOpts = append(loadOpts, WithLogger(c.logger))
	}
	for _, a := range c.auditors {
		loadOpts = append(loadOpts, WithAuditor(a))
	}
	for attempt := 0; attempt < 3; attempt++ {
		k, err = Load(ctx, c.store, alias, loadOpts...)
		if !errors.Is(err, ErrKeyNotFound) {
			return k, false, err
		}
		k, err = New(ctx, append(opts, WithAlias(alias))...)
		if !errors.Is(err, store.ErrExists) {
			return k, err == nil, err
		}
		// Another replica created it first (or took the alias): load it.
	}
	return nil, false, err
}
