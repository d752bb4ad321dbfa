// Package fipsmode tells kmsring's packages whether the process runs in
// FIPS 140-3 mode, in one place, so that tests can exercise the mode's
// refusals without a FIPS build.
//
// The mode follows crypto/fips140.Enabled(): a GOFIPS140 build, or
// GODEBUG=fips140=on or only. In the mode kmsring writes only the approved
// formats (docs/FORMAT.md, "FIPS 140-3") and refuses to read the others
// unless the caller opts in for a migration.
package fipsmode

import (
	"crypto/fips140"
	"sync/atomic"
)

var (
	enabled = fips140.Enabled()
	forced  atomic.Bool
)

// Enabled reports whether kmsring is in FIPS 140-3 mode: crypto/fips140
// says so, or a test forced it with Force.
func Enabled() bool { return enabled || forced.Load() }

// Force turns the mode on (or back to what crypto/fips140 says) for a
// test, and returns the function that restores the previous setting. The
// Go Cryptographic Module itself is unaffected: only kmsring's choice of
// formats and its refusals follow. Tests that call it must not run in
// parallel with others.
func Force(on bool) (restore func()) {
	old := forced.Swap(on)
	return func() { forced.Store(old) }
}

// Legacy runs f, which reads a format that is not approved (for a
// migration the caller opted in to), with the standard library's strict
// enforcement (GODEBUG=fips140=only) lifted, as crypto/fips140's
// WithoutEnforcement does; outside that setting it just runs f.
func Legacy(f func()) { fips140.WithoutEnforcement(f) }
