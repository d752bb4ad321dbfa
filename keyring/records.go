package keyring

import (
	"encoding/json"
	"fmt"
	"time"
)

// The stored form of a keyring: keyDoc in store.Record.Data, versionDoc in
// store.Version.Data. Both are JSON with a format number, so that a store
// written by this release opens in every later one.

const recordFormat = 1

type keyDoc struct {
	Format         int           `json:"format"`
	CreatedAt      time.Time     `json:"created_at"`
	Current        uint32        `json:"current_version"`
	RotationPeriod time.Duration `json:"rotation_period_ns,omitempty"`
	NextRotationAt time.Time     `json:"next_rotation_at,omitzero"`
	LastRotatedAt  time.Time     `json:"last_rotated_at,omitzero"`
	// StateChanges counts changes to existing versions (their state), so
	// that a reload fetches only new versions when it has not moved.
	StateChanges uint64 `json:"state_changes,omitempty"`
}

type versionDoc struct {
	Format    int       `json:"format"`
	CreatedAt time.Time `json:"created_at"`
	Origin    string    `json:"origin"`
	State     string    `json:"state"`
	// DestroyAt is when a version pending destruction will be destroyed,
	// or when a destroyed version was.
	DestroyAt time.Time `json:"destroy_at,omitzero"`
	// Material is the version's key material wrapped under the root key
	// (associated data: materialAD); empty once destroyed.
	Material []byte `json:"material,omitempty"`
}

func (d *keyDoc) marshal() []byte { return mustJSON(d) }

// mustJSON marshals a record type, which cannot fail.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("keyring: marshal record: " + err.Error())
	}
	return b
}

func parseKeyDoc(b []byte) (keyDoc, error) {
	var d keyDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("keyring: corrupt key record: %v", err)
	}
	if d.Format != recordFormat {
		return d, fmt.Errorf("keyring: key record format %d is not supported (want %d)", d.Format, recordFormat)
	}
	if d.Current == 0 || d.RotationPeriod < 0 {
		return d, fmt.Errorf("keyring: corrupt key record")
	}
	return d, nil
}

func lookupName[T comparable](names map[T]string, s string) (T, bool) {
	for v, n := range names {
		if n == s {
			return v, true
		}
	}
	var zero T
	return zero, false
}

func parseVersionDoc(b []byte) (versionDoc, Origin, VersionState, error) {
	var d versionDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return d, 0, 0, fmt.Errorf("keyring: corrupt version record: %v", err)
	}
	if d.Format != recordFormat {
		return d, 0, 0, fmt.Errorf("keyring: version record format %d is not supported (want %d)", d.Format, recordFormat)
	}
	o, ok1 := lookupName(originNames, d.Origin)
	s, ok2 := lookupName(stateNames, d.State)
	if !ok1 || !ok2 {
		return d, 0, 0, fmt.Errorf("keyring: corrupt version record: origin %q, state %q", d.Origin, d.State)
	}
	if (s == VersionDestroyed) != (len(d.Material) == 0) {
		return d, 0, 0, fmt.Errorf("keyring: corrupt version record: state %s with %d bytes of material", s, len(d.Material))
	}
	return d, o, s, nil
}
