package main

import (
	"context"
	"strings"

	"github.com/kmsring/kmsring/keyring"
	"github.com/spf13/cobra"
)

// The version commands are kmsring's own (AWS KMS has no versions to act
// on): they retire old key material once rewrap has moved every envelope
// off it.

type (
	versionEntry struct {
		KeyVersion      uint32
		KeyMaterialId   string
		CreationDate    awsTime
		Origin          string
		State           string
		DestructionDate awsTime `json:",omitzero"`
		Current         bool
	}
	listVersionsOutput struct {
		KeyId    string
		Versions []versionEntry
	}
	versionOutput struct {
		KeyId           string
		KeyVersion      uint32
		State           string
		DestructionDate awsTime `json:",omitzero"`
	}
)

// versionName turns a keyring name ("pending-destruction") into the
// output's style ("PENDING_DESTRUCTION").
func versionName(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }

func (a *app) versionCommands() []*cobra.Command {
	list := a.keyCommand("ListKeyVersions", &cobra.Command{
		Use:   "list-key-versions",
		Short: "List every version of a key with its number and state",
		Long: `List every version of a key's material, oldest first: its number (as inspect
and the audit log show it), creation date, origin (INITIAL, AUTOMATIC,
ON_DEMAND), state (ENABLED, DISABLED, PENDING_DESTRUCTION, DESTROYED) and
whether it is the current one. AWS KMS has no such command.`,
		Example: `  kmsring list-key-versions --key-id alias/orders`,
		GroupID: "versions",
	}, func(ctx context.Context, k *keyring.Keyring) (any, error) {
		md, err := a.describe(ctx, "ListKeyVersions", k)
		if err != nil {
			return nil, err
		}
		out := listVersionsOutput{KeyId: k.ID(), Versions: []versionEntry{}}
		for _, v := range md.Versions {
			out.Versions = append(out.Versions, versionEntry{
				KeyVersion:      v.Number,
				KeyMaterialId:   keyMaterialID(k.ID(), v.Number),
				CreationDate:    awsTime(v.CreatedAt),
				Origin:          versionName(v.Origin.String()),
				State:           versionName(v.State.String()),
				DestructionDate: awsTime(v.DestroyAt),
				Current:         v.Number == md.CurrentVersion,
			})
		}
		return out, nil
	})

	disable := a.versionCommand("disable-key-version", "Disable an old version",
		`Disable a version that is not the current one: until enable-key-version,
nothing encrypted under it decrypts. The reversible way to check that nothing
still needs a version before destroying it.`,
		func(ctx context.Context, k *keyring.Keyring, n uint32, _ int) error { return k.DisableVersion(ctx, n) })
	enable := a.versionCommand("enable-key-version", "Enable a disabled version again",
		`Enable a disabled version again.`,
		func(ctx context.Context, k *keyring.Keyring, n uint32, _ int) error { return k.EnableVersion(ctx, n) })
	schedule := a.versionCommand("schedule-key-version-destruction", "Schedule the destruction of an old version",
		`Schedule the destruction of a version that is not the current one, after a
waiting period (--pending-window-in-days, 30 by default). Until then it is
disabled and cancel-key-version-destruction brings it back; afterwards its
material is erased and what was encrypted under it is lost.`,
		func(ctx context.Context, k *keyring.Keyring, n uint32, days int) error {
			_, err := k.ScheduleVersionDestruction(ctx, n, daysDuration(days))
			return err
		})
	cancel := a.versionCommand("cancel-key-version-destruction", "Cancel a scheduled destruction",
		`Cancel the scheduled destruction of a version; it is left disabled.`,
		func(ctx context.Context, k *keyring.Keyring, n uint32, _ int) error {
			return k.CancelVersionDestruction(ctx, n)
		})
	return []*cobra.Command{list, disable, enable, schedule, cancel}
}

// versionCommand builds a command that acts on version --key-version of
// --key-id and prints the version's new state.
func (a *app) versionCommand(use, short, long string, fn func(ctx context.Context, k *keyring.Keyring, n uint32, days int) error) *cobra.Command {
	var n uint32
	var days int
	c := &cobra.Command{
		Use:     use,
		Short:   short,
		Long:    long,
		Example: "  kmsring " + use + " --key-id alias/orders --key-version 1",
		GroupID: "versions",
	}
	c.Flags().Uint32Var(&n, "key-version", 0, "the version number")
	c.MarkFlagRequired("key-version")
	if strings.HasPrefix(use, "schedule") {
		c.Flags().IntVar(&days, "pending-window-in-days", 30, "days before the version is destroyed")
		c.PreRunE = func(*cobra.Command, []string) error {
			if days <= 0 {
				return usageError("--pending-window-in-days must be a positive number of days, not %d", days)
			}
			return nil
		}
	}
	return a.keyCommand(pascal(use), c, func(ctx context.Context, k *keyring.Keyring) (any, error) {
		if err := fn(ctx, k, n, days); err != nil {
			return nil, err
		}
		md := k.Cached()
		for _, v := range md.Versions {
			if v.Number == n {
				return versionOutput{KeyId: k.ID(), KeyVersion: n, State: versionName(v.State.String()), DestructionDate: awsTime(v.DestroyAt)}, nil
			}
		}
		return nil, nil
	})
}

// pascal turns a command name into an operation name:
// "disable-key-version" is "DisableKeyVersion".
func pascal(use string) string {
	var b strings.Builder
	for _, w := range strings.Split(use, "-") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}
