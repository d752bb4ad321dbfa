package keyring

import (
	"bytes"
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"time"

	"github.com/kmsring/kmsring/store"
)

// Refresh reloads the key from its store, picking up versions and changes
// made through other handles or processes. Unchanged versions are not
// unwrapped again.
func (k *Keyring) Refresh(ctx context.Context) error {
	rec, err := k.st.Get(ctx, k.id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %s", ErrKeyNotFound, k.id)
		}
		return fmt.Errorf("keyring: reload %s: %w", k.id, err)
	}
	return k.apply(ctx, rec)
}

// apply installs rec, a record read from the store, with its versions,
// unless the handle already holds that revision or a newer one.
func (k *Keyring) apply(ctx context.Context, rec store.Record) error {
	doc, err := parseKeyDoc(rec.Data)
	if err != nil {
		return err
	}
	k.mu.RLock()
	have, haveDoc, haveRev := k.versions, k.doc, k.rec.Revision
	k.mu.RUnlock()
	if have != nil && rec.Revision <= haveRev {
		return nil
	}
	var after uint32
	if have != nil && doc.StateChanges == haveDoc.StateChanges && len(have) <= int(doc.Current) {
		after = uint32(len(have))
	}
	svs, err := k.st.Versions(ctx, k.id, after)
	if err != nil {
		return fmt.Errorf("keyring: load versions of %s: %w", k.id, err)
	}
	vs := make([]*version, after, doc.Current)
	copy(vs, have)
	for _, sv := range svs {
		if sv.Number > doc.Current {
			break // written after rec was read; the next reload takes it
		}
		if int(sv.Number) != len(vs)+1 {
			return fmt.Errorf("keyring: corrupt store: key %s lacks version %d", k.id, len(vs)+1)
		}
		if i := int(sv.Number) - 1; i < len(have) && bytes.Equal(have[i].data, sv.Data) {
			vs = append(vs, have[i])
			continue
		}
		v, err := k.decodeVersion(sv)
		if err != nil {
			return err
		}
		vs = append(vs, v)
	}
	if uint32(len(vs)) != doc.Current {
		return fmt.Errorf("keyring: corrupt store: key %s has %d of %d versions", k.id, len(vs), doc.Current)
	}
	// Unwrap the current version now: a wrong root key fails here, by
	// name, rather than on the first encryption.
	if _, err := k.wrapAEAD(vs[len(vs)-1]); err != nil && !errors.Is(err, ErrVersionDestroyed) {
		return err
	}
	k.mu.Lock()
	if k.versions != nil && rec.Revision <= k.rec.Revision {
		k.mu.Unlock()
		return nil
	}
	changed := !k.doc.NextRotationAt.Equal(doc.NextRotationAt)
	k.rec, k.doc, k.versions = rec, doc, vs
	k.mu.Unlock()
	if changed {
		k.notifyWatchers()
	}
	return nil
}

func (k *Keyring) decodeVersion(sv store.Version) (*version, error) {
	d, origin, state, err := parseVersionDoc(sv.Data)
	if err != nil {
		return nil, fmt.Errorf("%w (key %s version %d)", err, k.id, sv.Number)
	}
	return &version{
		Version: Version{Number: sv.Number, CreatedAt: d.CreatedAt, Origin: origin, State: state, DestroyAt: d.DestroyAt},
		data:    sv.Data,
		wrapped: d.Material,
	}, nil
}

// wrapAEAD returns the AEAD that seals data key blobs under v, unwrapping
// v's material with the root key on first use. It fails with ErrRootKey if
// the root key cannot unwrap it.
func (k *Keyring) wrapAEAD(v *version) (cipher.AEAD, error) {
	v.once.Do(func() {
		if v.wrapped == nil {
			v.err = fmt.Errorf("%w: key %s version %d", ErrVersionDestroyed, k.id, v.Number)
			return
		}
		material, err := k.root.Decrypt(v.wrapped, materialAD(k.bid, v.Number))
		if err != nil {
			v.err = fmt.Errorf("%w: key %s version %d", ErrRootKey, k.id, v.Number)
			return
		}
		defer clear(material)
		if len(material) != materialSize {
			v.err = fmt.Errorf("keyring: corrupt version record: key %s version %d", k.id, v.Number)
			return
		}
		v.aead, v.err = newWrapAEAD(material)
	})
	return v.aead, v.err
}

// newVersion makes version n with fresh material, wrapped under the root
// key for the store.
func (k *Keyring) newVersion(n uint32, origin Origin, now time.Time) (*version, error) {
	material := randomBytes(materialSize)
	defer clear(material)
	wrapped, err := k.root.Encrypt(material, materialAD(k.bid, n))
	if err != nil {
		return nil, fmt.Errorf("keyring: wrap version %d under the root key: %w", n, err)
	}
	v := &version{Version: Version{Number: n, CreatedAt: now, Origin: origin, State: VersionEnabled}, wrapped: wrapped}
	aead, err := newWrapAEAD(material)
	if err != nil {
		return nil, err
	}
	v.once.Do(func() { v.aead = aead })
	v.data = v.marshal(wrapped)
	return v, nil
}

func (v *version) marshal(wrapped []byte) []byte {
	d := versionDoc{
		Format:    recordFormat,
		CreatedAt: v.CreatedAt,
		Origin:    v.Origin.String(),
		State:     v.State.String(),
		DestroyAt: v.DestroyAt,
		Material:  wrapped,
	}
	return mustJSON(d)
}

// lookup returns version n, reloading from the store (rate-limited) if this
// handle does not have it.
func (k *Keyring) lookup(ctx context.Context, n uint32) (*version, error) {
	if v := k.cached(n); v != nil {
		return v, nil
	}
	if err := k.reloadForUnknown(ctx, n); err != nil {
		return nil, err
	}
	if v := k.cached(n); v != nil {
		return v, nil
	}
	return nil, fmt.Errorf("%w: key %s has no version %d", ErrUnknownVersion, k.id, n)
}

func (k *Keyring) cached(n uint32) *version {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if n == 0 || int(n) > len(k.versions) {
		return nil
	}
	return k.versions[n-1]
}

func (k *Keyring) reloadForUnknown(ctx context.Context, n uint32) error {
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	if k.cached(n) != nil {
		return nil // loaded while this call waited
	}
	now := k.clock.Now()
	if !k.lastReload.IsZero() && now.Sub(k.lastReload) < k.reloadInterval {
		return nil
	}
	k.lastReload = now
	return k.Refresh(ctx)
}
