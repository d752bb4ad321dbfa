package main

import (
	"context"
	"time"

	"github.com/kmsring/kmsring/keyring"
	"github.com/spf13/cobra"
)

func descriptionOption(d string) []keyring.Option {
	if d == "" {
		return nil
	}
	return []keyring.Option{keyring.WithDescription(d)}
}

// The deletion waiting period in days, as the library (and AWS KMS)
// allows it.
const (
	minDeletionDays     = int(keyring.MinDeletionWindow / (24 * time.Hour))
	maxDeletionDays     = int(keyring.MaxDeletionWindow / (24 * time.Hour))
	defaultDeletionDays = maxDeletionDays
)

func (a *app) stateCommands() []*cobra.Command {
	enable := a.keyCommand("EnableKey", &cobra.Command{
		Use:     "enable-key",
		Short:   "Enable a disabled key",
		Long:    `Enable a disabled key, so that it encrypts and decrypts again. A key pending deletion must have its deletion cancelled first.`,
		Example: `  kmsring enable-key --key-id alias/orders`,
		GroupID: "keys",
	}, func(ctx context.Context, k *keyring.Keyring) (any, error) {
		return nil, k.EnableKey(ctx)
	})
	disable := a.keyCommand("DisableKey", &cobra.Command{
		Use:   "disable-key",
		Short: "Disable a key: no encryption or decryption until enabled",
		Long: `Disable a key: until enable-key, every cryptographic operation with it fails
(DisabledException) and automatic rotation pauses. Reversible, unlike
deletion: the way to find out whether something still uses a key.`,
		Example: `  kmsring disable-key --key-id alias/orders`,
		GroupID: "keys",
	}, func(ctx context.Context, k *keyring.Keyring) (any, error) {
		return nil, k.DisableKey(ctx)
	})

	var days int
	schedule := &cobra.Command{
		Use:   "schedule-key-deletion",
		Short: "Schedule a key's deletion after 7 to 30 days",
		Long: `Schedule the key's deletion after a waiting period of 7 to 30 days (30 unless
--pending-window-in-days says otherwise). Meanwhile the key is PendingDeletion:
every cryptographic operation fails and is recorded in the audit log (what
to alarm on), and cancel-key-deletion brings it back, disabled. At the
deletion date its key material and aliases are erased: everything encrypted
under it is lost for good. Like rotation, deletion needs no daemon: the first
kmsring command to use the key after the date carries it out.`,
		Example: `  kmsring schedule-key-deletion --key-id alias/orders --pending-window-in-days 7`,
		GroupID: "keys",
	}
	schedule.Flags().IntVar(&days, "pending-window-in-days", defaultDeletionDays, "days before the key is deleted (7 to 30)")
	schedule.PreRunE = func(*cobra.Command, []string) error {
		if days < minDeletionDays || days > maxDeletionDays {
			return usageError("--pending-window-in-days must be %d to %d days, not %d", minDeletionDays, maxDeletionDays, days)
		}
		return nil
	}
	a.keyCommand("ScheduleKeyDeletion", schedule, func(ctx context.Context, k *keyring.Keyring) (any, error) {
		at, err := k.ScheduleKeyDeletion(ctx, daysDuration(days))
		if err != nil {
			return nil, err
		}
		return deletionOutput{KeyId: a.keyARN(k.ID()), DeletionDate: awsTime(at), KeyState: keyring.KeyPendingDeletion.String(), PendingWindowInDays: days}, nil
	})

	cancel := a.keyCommand("CancelKeyDeletion", &cobra.Command{
		Use:     "cancel-key-deletion",
		Short:   "Cancel a scheduled deletion; the key stays disabled",
		Long:    `Cancel the scheduled deletion of a key. As in AWS KMS, the key is then Disabled: enable it with enable-key.`,
		Example: `  kmsring cancel-key-deletion --key-id alias/orders && kmsring enable-key --key-id alias/orders`,
		GroupID: "keys",
	}, func(ctx context.Context, k *keyring.Keyring) (any, error) {
		if err := k.CancelKeyDeletion(ctx); err != nil {
			return nil, err
		}
		return keyIDOutput{KeyId: a.keyARN(k.ID())}, nil
	})

	var description string
	update := &cobra.Command{
		Use:     "update-key-description",
		Short:   "Replace a key's description",
		Long:    `Replace a key's description.`,
		Example: `  kmsring update-key-description --key-id alias/orders --description "order records, EU"`,
		GroupID: "keys",
	}
	update.Flags().StringVar(&description, "description", "", "the new description")
	update.MarkFlagRequired("description")
	a.keyCommand("UpdateKeyDescription", update, func(ctx context.Context, k *keyring.Keyring) (any, error) {
		return nil, k.SetDescription(ctx, description)
	})
	return []*cobra.Command{enable, disable, schedule, cancel, update}
}
