package keyring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kmsring/kmsring/store"
)

// Refresh reloads the key from its store, picking up versions and changes
// made through other handles or processes, and authenticates what it reads
// (ErrTampered). Unchanged versions are not unwrapped again.
func (k *Keyring) Refresh(ctx context.Context) error {
	rec, err := k.get(ctx)
	if err != nil {
		return err
	}
	return k.apply(ctx, rec)
}

// get reads the key's record.
func (k *Keyring) get(ctx context.Context) (store.Record, error) {
	rec, err := k.st.Get(ctx, k.id)
	if errors.Is(err, store.ErrNotFound) {
		return rec, fmt.Errorf("%w: %s", ErrKeyNotFound, k.id)
	}
	if err != nil {
		return rec, fmt.Errorf("keyring: reload %s: %w", k.id, err)
	}
	if rec.KeyID != k.id {
		return rec, tampered(k.bid, "the store returned the record of %q for it", rec.KeyID)
	}
	return rec, nil
}

// readVersions returns the versions of keyID numbered after+1 through
// through, from stores that can read a range, or after+1 on otherwise.
func readVersions(ctx context.Context, st store.Store, keyID string, after, through uint32) ([]store.Version, error) {
	if vr, ok := st.(store.VersionRanger); ok {
		return vr.VersionRange(ctx, keyID, after, through)
	}
	return st.Versions(ctx, keyID, after)
}

// errRace reports versions that do not match the record read before them
// because a writer changed the key in between.
var errRace = errors.New("keyring: key changed while loading")

// maxLoadAttempts bounds the reloads of one apply that a concurrent writer
// can cause.
const maxLoadAttempts = 10

// apply authenticates rec, a record read from the store, and installs it
// with its versions, unless the handle already holds that revision or a
// newer one.
func (k *Keyring) apply(ctx context.Context, rec store.Record) error {
	for attempt := 1; ; attempt++ {
		err := k.applyOnce(ctx, rec)
		if !errors.Is(err, errRace) {
			return err
		}
		// The versions did not match the record: a writer changed the key
		// after rec was read (its revision moved), or the store was
		// tampered with (it did not).
		again, gerr := k.get(ctx)
		if gerr != nil {
			return gerr
		}
		if again.Revision == rec.Revision || attempt == maxLoadAttempts {
			detail := strings.TrimPrefix(err.Error(), errRace.Error()+": ")
			return tampered(k.bid, "its version records do not match its key record (%s)", detail)
		}
		rec = again
	}
}

func (k *Keyring) applyOnce(ctx context.Context, rec store.Record) error {
	doc, err := openKeyDoc(k.sk, k.bid, rec.Data)
	if err != nil {
		return err
	}

	if !slices.Equal(sortedAliases(rec.Aliases), doc.Aliases) {
		return tampered(k.bid, "the store lists aliases %q, the key record %q", rec.Aliases, doc.Aliases)
	}
	k.mu.RLock()
	have, haveChain, haveDoc, haveData := k.versions, k.chain, k.doc, k.rec.Data
	k.mu.RUnlock()
	if len(rec.Data) > MaxKeyRecordSize && len(rec.Data) != len(haveData) {
		// Written by an older release: reported once per handle and size.
		k.log().Warn("kmsring: key record is over the size a change may write; it loads, and a change that shortens it (its policy, description or aliases) is allowed",
			"key_id", k.id, "bytes", len(rec.Data), "bound", MaxKeyRecordSize)
	}
	// The store's revision is not authenticated; the record's change count
	// is. A record older than one this handle has seen is a rollback (a
	// restored backup, a replayed record), and another record with the
	// same count a forked history: both refused. The same record again
	// only brings the store's current revision, for the next update.
	if have != nil {
		switch {
		case doc.Seq < haveDoc.Seq:
			k.rolledBack.Store(true)
			return tampered(k.bid, "the store holds change %d of the key, older than change %d this process has seen (rolled back: a restored backup or a replayed record); this handle stops encrypting until it sees a newer change", doc.Seq, haveDoc.Seq)
		case doc.Seq == haveDoc.Seq && !bytes.Equal(rec.Data, haveData):
			k.rolledBack.Store(true)
			return tampered(k.bid, "the store holds another change %d of the key than the one this process has seen (a forked history: a restored backup, changed since); this handle stops encrypting until it sees a newer change", doc.Seq)
		case doc.Seq == haveDoc.Seq:
			k.mu.Lock()
			if k.doc.Seq == doc.Seq {
				k.rec = rec
			}
			k.mu.Unlock()
			return nil
		}
	}
	// Fetch only new versions when no existing one has changed: the
	// handle's versions 1..len(have) were authenticated before.
	after := 0
	if have != nil && doc.StateChanges == haveDoc.StateChanges && len(have) <= int(doc.Current) {
		after = len(have)
	}
	svs, err := readVersions(ctx, k.st, k.id, uint32(after), doc.Current)
	if err != nil {
		return fmt.Errorf("keyring: load versions of %s: %w", k.id, err)
	}
	// Authenticate the versions before reading them: their number must be
	// the record's current version and their digest the record's. Nothing
	// here is sized by what the store claims, only by what it returned.
	n := min(len(svs), int(doc.Current)-after)
	chain := make([]digest, after, after+n)
	copy(chain, haveChain)
	d := chainStart(k.bid)
	if after > 0 {
		d = chain[after-1]
	}
	for i, sv := range svs[:n] {
		if int(sv.Number) != after+i+1 {
			return fmt.Errorf("%w: version %d where %d belongs", errRace, sv.Number, after+i+1)
		}
		if len(sv.Data) > maxVersionRecord {
			return tampered(k.bid, "version %d record of %d bytes", sv.Number, len(sv.Data))
		}
		d = chainNext(d, sv.Number, sv.Data)
		chain = append(chain, d)
	}
	if len(chain) != int(doc.Current) || d != doc.Versions {
		return fmt.Errorf("%w: %d versions with digest %x..., where the key record says %d with %x...", errRace, len(chain), d[:4], doc.Current, doc.Versions[:4])
	}
	vs := make([]*version, after, len(chain))
	copy(vs, have)
	for _, sv := range svs[:n] {
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
	// Unwrap the current version now: a wrong root key fails here, by
	// name, rather than on the first encryption.
	if _, err := k.versionKeys(vs[len(vs)-1]); err != nil && !errors.Is(err, ErrVersionDestroyed) {
		return err
	}
	k.mu.Lock()
	if k.versions != nil && doc.Seq <= k.doc.Seq {
		k.mu.Unlock()
		return nil
	}
	changed := k.versions != nil && scheduleChanged(&k.doc, &doc)
	k.installLocked(rec, doc, vs, chain)
	k.mu.Unlock()
	if changed {
		k.notifyWatchers()
	}
	return nil
}

// install sets the handle's state.
func (k *Keyring) install(rec store.Record, doc keyDoc, vs []*version, chain []digest) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.installLocked(rec, doc, vs, chain)
}

// installLocked is install with k.mu held.
func (k *Keyring) installLocked(rec store.Record, doc keyDoc, vs []*version, chain []digest) {
	k.rec, k.doc, k.versions, k.chain = rec, doc, vs, chain
	k.state.Store(uint32(doc.keyState()))
	k.rolledBack.Store(false)
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

// versionKeys returns the keys that seal data key blobs under v,
// unwrapping v's material with the root key on first use. It fails with
// ErrRootKey if the root key cannot unwrap it. A failure is not remembered:
// the next use tries again, so that a remote root key that was briefly
// unreachable does not leave the version unusable until the process
// restarts. (The version record is authenticated, so a failure is not a
// forged record; a root key that cannot open the store at all fails at
// Load.)
func (k *Keyring) versionKeys(v *version) (*versionKeys, error) {
	if vk := v.keys.Load(); vk != nil {
		return vk, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if vk := v.keys.Load(); vk != nil {
		return vk, nil
	}
	if v.wrapped == nil {
		return nil, fmt.Errorf("%w: key %s version %d", ErrVersionDestroyed, k.id, v.Number)
	}
	material, err := k.root.Decrypt(v.wrapped, materialAD(k.bid, v.Number))
	if err != nil {
		return nil, rootKeyError(err, "key %s version %d", k.id, v.Number)
	}
	defer clear(material)
	if len(material) != materialSize {
		return nil, fmt.Errorf("keyring: corrupt version record: key %s version %d", k.id, v.Number)
	}
	vk, err := newVersionKeys(material)
	if err != nil {
		return nil, err
	}
	v.keys.Store(vk)
	return vk, nil
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
	vk, err := newVersionKeys(material)
	if err != nil {
		return nil, err
	}
	v.keys.Store(vk)
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
