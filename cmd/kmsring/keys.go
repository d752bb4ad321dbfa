package main

import (
	"context"
	"errors"

	"github.com/kmsring/kmsring/keyring"
	"github.com/spf13/cobra"
)

// keyCommand builds a command whose one required flag is --key-id: it
// loads the key and hands it to fn, then prints what fn returns. A key that
// cannot be loaded is recorded in the audit log as a failure of op, the
// AWS name of the operation.
func (a *app) keyCommand(op string, c *cobra.Command, fn func(ctx context.Context, k *keyring.Keyring) (any, error)) *cobra.Command {
	var ref string
	c.Flags().StringVar(&ref, "key-id", "", "the key: key ID, key ARN, alias name (alias/...) or alias ARN")
	c.MarkFlagRequired("key-id")
	c.RegisterFlagCompletionFunc("key-id", a.completeKeyID)
	c.Args = cobra.NoArgs
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, _ []string) error {
		k, err := a.loadKey(ctx, ref)
		if err != nil {
			a.record(ctx, op, ref, err)
			return err
		}
		out, err := fn(ctx, k)
		if err != nil {
			return err
		}
		return a.print(out)
	})
	return c
}

func (a *app) keyCommands() []*cobra.Command {
	cs := []*cobra.Command{a.createKeyCommand(), a.describeKeyCommand(), a.listKeysCommand()}
	return append(cs, a.stateCommands()...)
}

func (a *app) createKeyCommand() *cobra.Command {
	var alias, description string
	var days int
	c := &cobra.Command{
		Use:   "create-key",
		Short: "Create a key (creates the store on first use)",
		Long: `Create a key: a stable key ID with its first version of key material, and
optionally an alias, a description and automatic rotation. Prints its
KeyMetadata, as aws kms create-key does.

On first use, the store and the root key file are created (0600), and a line
on standard error says where.`,
		Example: `  kmsring create-key --description "order records" --alias alias/orders
  kmsring create-key --alias alias/payments --rotation-period-in-days 90`,
		GroupID: "keys",
		Args:    cobra.NoArgs,
	}
	c.Flags().StringVar(&description, "description", "", "a description of the key")
	c.Flags().StringVar(&alias, "alias", "", "an alias for the key, such as alias/orders")
	c.Flags().IntVar(&days, "rotation-period-in-days", 0, "enable automatic rotation with this period")
	c.RunE = a.op(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		opts := []keyring.Option{}
		if cmd.Flags().Changed("rotation-period-in-days") {
			if err := checkPeriod(days); err != nil {
				return err
			}
			opts = append(opts, keyring.WithRotationPeriod(daysDuration(days)))
		}
		if alias != "" {
			opts = append(opts, keyring.WithAlias(alias))
		}
		opts = append(opts, descriptionOption(description)...)
		if err := a.open(ctx, true); err != nil {
			return err
		}
		opts = append(opts, keyring.WithStore(a.st))
		opts = append(opts, a.keyOptions()...)
		k, err := keyring.New(ctx, opts...)
		if err != nil {
			a.discardCreated()
			return err
		}
		a.keepCreated()
		return a.print(keyMetadataOutput{a.keyMetadata(k.Cached())})
	})
	return c
}

func (a *app) describeKeyCommand() *cobra.Command {
	return a.keyCommand("DescribeKey", &cobra.Command{
		Use:   "describe-key",
		Short: "Show a key's metadata",
		Long: `Show a key's metadata: ARN, creation date, state, description, deletion date
when pending deletion, and the ID of its current key material (which changes
at every rotation). As aws kms describe-key, it does not show aliases
(list-aliases) or rotation (get-key-rotation-status).`,
		Example: `  kmsring describe-key --key-id alias/orders
  kmsring --output table describe-key --key-id 1234abcd-12ab-34cd-56ef-1234567890ab`,
		GroupID: "keys",
	}, func(ctx context.Context, k *keyring.Keyring) (any, error) {
		md, err := a.describe(ctx, "DescribeKey", k)
		if err != nil {
			return nil, err
		}
		return keyMetadataOutput{a.keyMetadata(md)}, nil
	})
}

func (a *app) listKeysCommand() *cobra.Command {
	c := &cobra.Command{
		Use:     "list-keys",
		Short:   "List the keys in the store",
		Long:    `List the ID and ARN of every key in the store.`,
		Example: `  kmsring list-keys`,
		GroupID: "keys",
		Args:    cobra.NoArgs,
	}
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, _ []string) error {
		out := listKeysOutput{Keys: []keyListEntry{}}
		if err := a.open(ctx, false); errors.Is(err, errNoStore) {
			return a.print(out)
		} else if err != nil {
			return err
		}
		ids, err := keyring.List(ctx, a.st)
		a.record(ctx, "ListKeys", "", err)
		if err != nil {
			return err
		}
		for _, id := range ids {
			out.Keys = append(out.Keys, keyListEntry{KeyId: id, KeyArn: a.keyARN(id)})
		}
		return a.print(out)
	})
	return c
}

// completeKeyID completes --key-id with the store's aliases and key IDs.
// It reads the store only if it exists, and prints nothing on failure.
func (a *app) completeKeyID(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	const directive = cobra.ShellCompDirectiveNoFileComp
	if err := a.checkGlobals(cmd, nil); err != nil {
		return nil, directive
	}
	ctx := cmd.Context()
	if err := a.open(ctx, false); err != nil {
		return nil, directive
	}
	defer a.close()
	var out []string
	if aliases, err := a.aliases(ctx); err == nil {
		for _, e := range aliases {
			out = append(out, e.Alias)
		}
	}
	if ids, err := keyring.List(ctx, a.st); err == nil {
		out = append(out, ids...)
	}
	return out, directive
}
