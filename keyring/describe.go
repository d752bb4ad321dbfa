package keyring

import (
	"context"
	"slices"
	"time"
)

// Describe reloads the key from its store and returns its metadata.
func (k *Keyring) Describe(ctx context.Context) (Metadata, error) {
	if err := k.Refresh(ctx); err != nil {
		return Metadata{}, err
	}
	return k.Cached(), nil
}

// Cached returns the key's metadata as this handle last saw it, without
// reading the store: what monitoring reads on every scrape.
func (k *Keyring) Cached() Metadata {
	k.mu.RLock()
	defer k.mu.RUnlock()
	md := Metadata{
		KeyID:           k.id,
		Aliases:         slices.Clone(k.doc.Aliases),
		KeyState:        k.doc.keyState(),
		Description:     k.doc.Description,
		DeletionDate:    k.doc.DeletionDate,
		CreatedAt:       k.doc.CreatedAt,
		CurrentVersion:  k.doc.Current,
		Versions:        make([]Version, len(k.versions)),
		RotationEnabled: k.doc.RotationPeriod > 0,
		RotationPeriod:  k.doc.RotationPeriod,
		LastRotatedAt:   k.doc.LastRotatedAt,
		NextRotationAt:  k.doc.NextRotationAt,
		ReadAt:          k.now(),
	}
	for i, v := range k.versions {
		md.Versions[i] = v.Version
	}
	return md
}

// CurrentVersion returns the number of the current version as this handle
// last saw it, without reading the store.
func (k *Keyring) CurrentVersion() uint32 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.doc.Current
}

// NextRotationAt returns when automatic rotation is next due, or the zero
// time when it is off, as this handle last saw it; it does not read the
// store.
func (k *Keyring) NextRotationAt() time.Time {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.doc.NextRotationAt
}
