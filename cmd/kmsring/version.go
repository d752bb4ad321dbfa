package main

import (
	"context"
	"crypto/fips140"
	"runtime"

	"github.com/spf13/cobra"
)

// buildVersionOutput is what kmsring version prints.
type buildVersionOutput struct {
	Version   string
	GoVersion string
	// FIPSMode: crypto/fips140.Enabled(), the mode in which kmsring writes
	// only FIPS 140-3 approved formats (docs/FIPS.md).
	FIPSMode bool
	// FIPSEnforced: GODEBUG=fips140=only, where the standard library
	// refuses non-approved algorithms.
	FIPSEnforced bool
	// FIPSModuleVersion: the Go Cryptographic Module's version
	// (crypto/fips140.Version(): "v1.26.0" in a GOFIPS140=v1.26.0 build,
	// "latest" otherwise).
	FIPSModuleVersion string
}

func (a *app) buildVersionCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the version, and whether FIPS 140-3 mode is on",
		Long: `Print kmsring's version, the Go version it was built with, whether FIPS 140-3
mode is on (a GOFIPS140 build, or GODEBUG=fips140=on or only), whether the
standard library enforces it (GODEBUG=fips140=only) and the version of the Go
Cryptographic Module. Needs no store.`,
		Example: `  kmsring version
  GODEBUG=fips140=only kmsring version`,
		Args: cobra.NoArgs,
	}
	c.RunE = a.op(func(context.Context, *cobra.Command, []string) error {
		return a.print(buildVersionOutput{
			Version: version(), GoVersion: runtime.Version(),
			FIPSMode: fips140.Enabled(), FIPSEnforced: fips140.Enforced(), FIPSModuleVersion: fips140.Version(),
		})
	})
	return c
}
