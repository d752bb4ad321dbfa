package keyring

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// AddAlias gives the key another alias (see WithAlias for the syntax). It
// fails with an error wrapping store.ErrExists if the alias belongs to
// another key; adding an alias the key has does nothing.
func (k *Keyring) AddAlias(ctx context.Context, name string) error {
	if !aliasRE.MatchString(name) {
		err := fmt.Errorf("%w: invalid alias %q", ErrInvalidArgument, name)
		return k.audit(ctx, AuditEvent{Operation: OpAddAlias, Alias: name, Err: err})
	}
	err := k.mutateAliases(ctx, string(OpAddAlias), func(aliases *[]string, _ *keyDoc, _ []*version, _ time.Time) ([]*version, error) {
		if slices.Contains(*aliases, name) {
			return nil, errNoChange
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
