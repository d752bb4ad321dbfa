package main

import (
	"context"

	"github.com/kmsring/kmsring/keyring"
	"github.com/spf13/cobra"
)

// defaultRotationDays is enable-key-rotation's period when none is given,
// as AWS KMS.
const defaultRotationDays = 365

func (a *app) rotationCommands() []*cobra.Command {
	var days int
	enable := &cobra.Command{
		Use:   "enable-key-rotation",
		Short: "Turn on automatic rotation",
		Long: `Turn on automatic rotation: a new version of key material every period (365
days unless --rotation-period-in-days says otherwise), the first one period
from now. Old versions stay, so everything encrypted before still decrypts.

Rotation needs no daemon: every kmsring command that uses a key first makes
the rotation that is due, as the AWS KMS service would have by then. A
service embedding the library runs rotation.Scheduler instead.`,
		Example: `  kmsring enable-key-rotation --key-id alias/orders
  kmsring enable-key-rotation --key-id alias/orders --rotation-period-in-days 90`,
		GroupID: "rotation",
	}
	enable.Flags().IntVar(&days, "rotation-period-in-days", defaultRotationDays, "days between automatic rotations")
	enable.PreRunE = func(*cobra.Command, []string) error { return checkPeriod(days) }
	a.keyCommand("EnableKeyRotation", enable, func(ctx context.Context, k *keyring.Keyring) (any, error) {
		return nil, k.EnableRotation(ctx, daysDuration(days))
	})

	disable := a.keyCommand("DisableKeyRotation", &cobra.Command{
		Use:     "disable-key-rotation",
		Short:   "Turn off automatic rotation",
		Long:    `Turn off automatic rotation. Existing versions stay; rotate-key-on-demand still works.`,
		Example: `  kmsring disable-key-rotation --key-id alias/orders`,
		GroupID: "rotation",
	}, func(ctx context.Context, k *keyring.Keyring) (any, error) {
		return nil, k.DisableRotation(ctx)
	})

	onDemand := a.keyCommand("RotateKeyOnDemand", &cobra.Command{
		Use:   "rotate-key-on-demand",
		Short: "Rotate now: make a new current version of key material",
		Long: `Rotate now: make a new version of key material and make it current. Old
versions stay for decryption. Like AWS KMS, an on-demand rotation neither
enables automatic rotation nor moves its next date.`,
		Example: `  kmsring rotate-key-on-demand --key-id alias/orders`,
		GroupID: "rotation",
	}, func(ctx context.Context, k *keyring.Keyring) (any, error) {
		if _, err := k.Rotate(ctx); err != nil {
			return nil, err
		}
		return keyIDOutput{KeyId: k.ID()}, nil
	})

	status := a.keyCommand("GetKeyRotationStatus", &cobra.Command{
		Use:   "get-key-rotation-status",
		Short: "Show whether automatic rotation is on, its period and next date",
		Long: `Show whether automatic rotation is on and, when it is, its period in days and
the date of the next rotation.`,
		Example: `  kmsring get-key-rotation-status --key-id alias/orders`,
		GroupID: "rotation",
	}, func(ctx context.Context, k *keyring.Keyring) (any, error) {
		md, err := a.describe(ctx, "GetKeyRotationStatus", k)
		if err != nil {
			return nil, err
		}
		return a.rotationStatus(md), nil
	})

	list := a.keyCommand("ListKeyRotations", &cobra.Command{
		Use:   "list-key-rotations",
		Short: "List the key's rotations, automatic and on demand",
		Long: `List the key's completed rotations, oldest first: when each happened, whether
it was AUTOMATIC or ON_DEMAND, and the ID of the key material it made (the
current one is CURRENT). list-key-versions shows every version with its
number and state.`,
		Example: `  kmsring list-key-rotations --key-id alias/orders`,
		GroupID: "rotation",
	}, func(ctx context.Context, k *keyring.Keyring) (any, error) {
		vs, err := k.ListRotations(ctx, 0, 0)
		a.record(ctx, "ListKeyRotations", k.ID(), err)
		if err != nil {
			return nil, err
		}
		current := k.CurrentVersion()
		out := listRotationsOutput{Rotations: []rotationEntry{}}
		for _, v := range vs {
			state := "NON_CURRENT"
			if v.Number == current {
				state = "CURRENT"
			}
			out.Rotations = append(out.Rotations, rotationEntry{
				KeyId:            k.ID(),
				KeyMaterialId:    keyMaterialID(k.ID(), v.Number),
				KeyMaterialState: state,
				RotationDate:     awsTime(v.CreatedAt),
				RotationType:     rotationType(v.Origin),
			})
		}
		return out, nil
	})
	return []*cobra.Command{enable, disable, onDemand, status, list}
}

// checkPeriod checks a --rotation-period-in-days value.
func checkPeriod(days int) error {
	if days <= 0 {
		return usageError("--rotation-period-in-days must be a positive number of days, not %d", days)
	}
	return nil
}
