package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/spf13/cobra"
)

func (a *app) aliasCommands() []*cobra.Command {
	return []*cobra.Command{a.listAliasesCommand(), a.createAliasCommand(), a.deleteAliasCommand()}
}

func (a *app) listAliasesCommand() *cobra.Command {
	var ref string
	c := &cobra.Command{
		Use:   "list-aliases",
		Short: "List aliases and the keys they name",
		Long:  `List every alias in the store with its ARN and the key it names, sorted by alias; with --key-id, only that key's.`,
		Example: `  kmsring list-aliases
  kmsring list-aliases --key-id 1234abcd-12ab-34cd-56ef-1234567890ab`,
		GroupID: "aliases",
		Args:    cobra.NoArgs,
	}
	c.Flags().StringVar(&ref, "key-id", "", "only the aliases of this key")
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, _ []string) error {
		out := listAliasesOutput{Aliases: []aliasListEntry{}}
		if err := a.open(ctx, false); errors.Is(err, errNoStore) && ref == "" {
			return a.print(out)
		} else if err != nil && !errors.Is(err, errNoStore) {
			return err
		}
		var only string
		if ref != "" {
			k, err := a.loadKey(ctx, ref)
			if err != nil {
				a.record(ctx, "ListAliases", ref, err)
				return err
			}
			only = k.ID()
		}
		entries, err := a.aliases(ctx)
		a.record(ctx, "ListAliases", only, err)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if only == "" || e.KeyID == only {
				out.Aliases = append(out.Aliases, aliasListEntry{AliasName: e.Alias, AliasArn: a.aliasARN(e.Alias), TargetKeyId: e.KeyID})
			}
		}
		return a.print(out)
	})
	return c
}

func (a *app) createAliasCommand() *cobra.Command {
	var alias, target string
	c := &cobra.Command{
		Use:   "create-alias",
		Short: "Give a key an alias",
		Long: `Give a key an alias: a name such as alias/orders that --key-id accepts
wherever it takes the key ID. An alias names one key; a key may have several.
To point an alias at another key, delete it and create it again.`,
		Example: `  kmsring create-alias --alias-name alias/orders-2026 --target-key-id 1234abcd-12ab-34cd-56ef-1234567890ab`,
		GroupID: "aliases",
		Args:    cobra.NoArgs,
	}
	c.Flags().StringVar(&alias, "alias-name", "", "the alias, alias/NAME")
	c.Flags().StringVar(&target, "target-key-id", "", "the key: key ID or key ARN")
	c.MarkFlagRequired("alias-name")
	c.MarkFlagRequired("target-key-id")
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, _ []string) error {
		k, err := a.loadKey(ctx, target)
		if err != nil {
			a.record(ctx, "CreateAlias", target, err)
			return err
		}
		if rec, err := a.st.Get(ctx, alias); err == nil {
			err = fmt.Errorf("%w: alias %s already names key %s", store.ErrExists, alias, rec.KeyID)
			a.record(ctx, "CreateAlias", k.ID(), err)
			return err
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return k.AddAlias(ctx, alias)
	})
	return c
}

func (a *app) deleteAliasCommand() *cobra.Command {
	var alias string
	c := &cobra.Command{
		Use:     "delete-alias",
		Short:   "Delete an alias (the key stays)",
		Long:    `Delete an alias. The key it named is not affected and keeps its key ID.`,
		Example: `  kmsring delete-alias --alias-name alias/orders-2026`,
		GroupID: "aliases",
		Args:    cobra.NoArgs,
	}
	c.Flags().StringVar(&alias, "alias-name", "", "the alias, alias/NAME")
	c.MarkFlagRequired("alias-name")
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, _ []string) error {
		name, err := a.keyName(alias)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(name, "alias/") {
			return usageError("--alias-name must be an alias (alias/NAME) or alias ARN, not %q", alias)
		}
		k, err := a.loadKey(ctx, name)
		if err != nil {
			a.record(ctx, "DeleteAlias", alias, err)
			return err
		}
		return k.RemoveAlias(ctx, name)
	})
	return c
}

// aliases returns every alias in the store, sorted, with the key it names,
// authenticated under the root key.
func (a *app) aliases(ctx context.Context) ([]keyring.AliasEntry, error) {
	return keyring.ListAliases(ctx, a.st, a.keyOptions()...)
}
