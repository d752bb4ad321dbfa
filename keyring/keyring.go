// Package keyring is a versioned key for envelope encryption, after AWS KMS
// keys with automatic rotation, run in process.
//
// A [Keyring] is one logical key with a stable key ID (a UUID) and optional
// aliases. It holds an ordered list of versions of 256-bit key material;
// rotation adds a version and keeps the old ones, so everything ever
// encrypted still decrypts. The newest version is the current one and the
// only one that encrypts unless a caller asks for an older enabled one with
// [WithVersion].
//
// # Data keys
//
// [Keyring.GenerateDataKey] returns a fresh data key in plaintext and wrapped
// under the current version. The wrapped form, the data key blob, names the
// key ID and version that wrapped it, so [Keyring.Decrypt] needs neither. An
// encryption context ([WithEncryptionContext]) is bound to the blob as
// associated data in a canonical encoding and must match exactly on Decrypt.
// The blob format is specified byte by byte in docs/FORMAT.md; blobs written
// by this format open in every later release.
//
// Blobs are sealed with XChaCha20-Poly1305 under a key derived from the
// version material, with a random 192-bit nonce: there is no limit on the
// number of blobs one version may wrap that a service could reach.
//
// # Rotation
//
// [Keyring.Rotate] adds a version on demand. [Keyring.EnableRotation] sets a
// period; [Keyring.RotateIfDue], which the rotation package's scheduler
// calls, adds a version when the period has passed. After downtime spanning
// many periods a key rotates once, not once per missed period. Time comes
// from a [Clock], so tests drive rotation with a fake clock.
//
// # Storage and root keys
//
// A keyring lives in a [store.Store]: in memory by default, or a persistent
// backend given with [WithStore] (store/boltstore for one embedded file).
// [Load] finds a stored key by ID or alias. Version material reaches the
// store only wrapped under a root key ([WithRootKey]): any tink.AEAD, so
// Tink's KMS clients plug in, or the built-in [RootKeyFile], [NewRootKey]
// and [NewPassphraseRootKey]. A persistent store without a root key is
// refused. [RotateRootKey] moves a store to a new root key.
//
// # Concurrency
//
// Several Keyring values, in one process or many, may share a store: every
// change is a compare-and-swap, so concurrent rotations never lose a version
// and numbers stay dense. The hot path (GenerateDataKey, Encrypt, Decrypt of
// a loaded version) never touches the store; a blob of a version this handle
// has not loaded triggers a rate-limited reload ([WithReloadInterval]). A
// Keyring is safe for concurrent use.
package keyring

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/kmsring/kmsring/internal/format"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// Keyring is one key and its versions. Create one with New or Load.
type Keyring struct {
	id             string
	bid            [16]byte
	st             store.Store
	root           tink.AEAD
	clock          Clock
	reloadInterval time.Duration
	auditors       []Auditor

	mu       sync.RWMutex
	rec      store.Record
	doc      keyDoc
	versions []*version // versions[i] has number i+1

	reloadMu   sync.Mutex // one unknown-version reload at a time
	lastReload time.Time

	watchMu  sync.Mutex
	watchers map[*chan<- struct{}]struct{}
}

// version is a loaded version: its metadata, its stored bytes (to notice
// changes on reload) and, unless destroyed, its material wrapped under the
// root key. The material is unwrapped on first use (see wrapAEAD), so that
// loading a key with many versions under a remote root key costs one root
// key call for the current version, not one per version.
type version struct {
	Version
	data    []byte
	wrapped []byte // nil once destroyed

	once sync.Once
	aead cipher.AEAD // set by once
	err  error       // set by once
}

// New creates a key with version 1 in the configured store and returns it.
// It fails with ErrInvalidArgument for a bad option and with an error
// wrapping store.ErrExists if an alias is taken.
func New(ctx context.Context, opts ...Option) (*Keyring, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if c.store == nil {
		c.store = memstore.New()
	}
	if err := checkRootKey(c, c.store); err != nil {
		return nil, err
	}
	u, err := uuid.NewRandom()
	if err != nil {
		return nil, fmt.Errorf("keyring: generate key ID: %w", err)
	}
	k := newKeyring(u, c)
	now := k.now()
	k.doc = keyDoc{Format: recordFormat, CreatedAt: now, Current: 1}
	if c.period > 0 {
		k.doc.RotationPeriod = c.period
		k.doc.NextRotationAt = now.Add(c.period)
	}
	v1, err := k.newVersion(1, OriginInitial, now)
	if err != nil {
		return nil, err
	}
	rec := store.Record{KeyID: k.id, Aliases: slices.Clone(c.aliases), Data: k.doc.marshal()}
	k.rec, err = c.store.Create(ctx, rec, []store.Version{{Number: 1, Data: v1.data}})
	if err != nil {
		return nil, k.audit(ctx, AuditEvent{Operation: OpCreateKey, Err: fmt.Errorf("keyring: create key: %w", err)})
	}
	k.versions = []*version{v1}
	if err := k.audit(ctx, AuditEvent{Operation: OpCreateKey, Version: 1, Origin: OriginInitial}); err != nil {
		return nil, err
	}
	return k, nil
}

// Load returns the key whose ID or alias is idOrAlias from st, with every
// version. It fails with ErrKeyNotFound if there is none, ErrRootKey if the
// root key cannot unwrap the material, and ErrInvalidArgument if given a
// creation-only option (WithStore, WithAlias, WithRotationPeriod).
func Load(ctx context.Context, st store.Store, idOrAlias string, opts ...Option) (*Keyring, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if len(c.creationOnly) > 0 {
		return nil, fmt.Errorf("%w: %s applies only when creating a key", ErrInvalidArgument, c.creationOnly[0])
	}
	if st == nil {
		return nil, fmt.Errorf("%w: nil store", ErrInvalidArgument)
	}
	c.store = st
	if err := checkRootKey(c, st); err != nil {
		return nil, err
	}
	rec, err := st.Get(ctx, idOrAlias)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %q", ErrKeyNotFound, idOrAlias)
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: load %q: %w", idOrAlias, err)
	}
	u, err := keyIDBytes(rec.KeyID)
	if err != nil {
		return nil, err
	}
	k := newKeyring(u, c)
	if err := k.apply(ctx, rec); err != nil {
		return nil, err
	}
	return k, nil
}

// keyIDBytes parses a stored key ID.
func keyIDBytes(id string) ([16]byte, error) {
	u, err := uuid.Parse(id)
	if err != nil || u.String() != id {
		return u, fmt.Errorf("keyring: corrupt key record: key ID %q", id)
	}
	return u, nil
}

// List returns the IDs of every key in st, sorted.
func List(ctx context.Context, st store.Store) ([]string, error) {
	ids, err := st.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("keyring: list keys: %w", err)
	}
	return ids, nil
}

// checkRootKey refuses the process-local default root key with a store that
// outlives the process.
func checkRootKey(c *config, st store.Store) error {
	if c.rootKey != nil {
		return nil
	}
	if v, ok := st.(store.Volatile); ok && v.Volatile() {
		c.rootKey = ephemeralRootKey()
		return nil
	}
	return fmt.Errorf("%w: a persistent store needs a root key (WithRootKey): without one, its key material could never be read again", ErrInvalidArgument)
}

func newKeyring(u uuid.UUID, c *config) *Keyring {
	return &Keyring{
		id:             u.String(),
		bid:            u,
		st:             c.store,
		root:           c.rootKey,
		clock:          c.clock,
		reloadInterval: c.reloadInterval,
		auditors:       c.auditors,
	}
}

// now is the keyring clock's time in UTC without a monotonic reading, as it
// is stored.
func (k *Keyring) now() time.Time { return k.clock.Now().UTC().Round(0) }

// ID returns the key ID, a UUID string that never changes.
func (k *Keyring) ID() string { return k.id }

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
		Aliases:         slices.Clone(k.rec.Aliases),
		CreatedAt:       k.doc.CreatedAt,
		CurrentVersion:  k.doc.Current,
		Versions:        make([]Version, len(k.versions)),
		RotationEnabled: k.doc.RotationPeriod > 0,
		RotationPeriod:  k.doc.RotationPeriod,
		LastRotatedAt:   k.doc.LastRotatedAt,
		NextRotationAt:  k.doc.NextRotationAt,
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

// errNoChange ends a mutation without writing.
var errNoChange = errors.New("no change")

// maxAttempts bounds the compare-and-swap retries of one mutation.
const maxAttempts = 1000

// mutate applies fn to the latest known state and writes the result with a
// compare-and-swap, reloading and retrying on conflict. fn changes doc in
// place and returns the versions to add or replace; it may run several
// times. If fn returns errNoChange, mutate returns it without writing.
func (k *Keyring) mutate(ctx context.Context, op string, fn func(doc *keyDoc, vs []*version, now time.Time) ([]*version, error)) error {
	return k.mutateAliases(ctx, op, func(_ *[]string, doc *keyDoc, vs []*version, now time.Time) ([]*version, error) {
		return fn(doc, vs, now)
	})
}

// mutateAliases is mutate for a change that may also edit the aliases.
func (k *Keyring) mutateAliases(ctx context.Context, op string, fn func(aliases *[]string, doc *keyDoc, vs []*version, now time.Time) ([]*version, error)) error {
	for attempt := 1; ; attempt++ {
		k.mu.RLock()
		rec, doc, vs := k.rec, k.doc, k.versions
		k.mu.RUnlock()
		rec.Aliases = slices.Clone(rec.Aliases)
		put, err := fn(&rec.Aliases, &doc, vs, k.now())
		if err != nil {
			return err
		}
		rec.Data = doc.marshal()
		svs := make([]store.Version, len(put))
		for i, v := range put {
			svs[i] = store.Version{Number: v.Number, Data: v.data}
		}
		newRec, err := k.st.Update(ctx, rec, svs)
		if errors.Is(err, store.ErrConflict) && attempt < maxAttempts {
			if err := k.Refresh(ctx); err != nil {
				return fmt.Errorf("keyring: %s: %w", op, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("keyring: %s: %w", op, err)
		}
		k.mu.Lock()
		changed := false
		if newRec.Revision > k.rec.Revision {
			changed = !k.doc.NextRotationAt.Equal(doc.NextRotationAt)
			// k.versions is still vs: its revision has not moved. Appends
			// share the backing array (readers never look past their own
			// length); a replacement copies it.
			nvs := vs
			for _, v := range put {
				if i := int(v.Number) - 1; i < len(nvs) {
					nvs = slices.Clone(nvs)
					nvs[i] = v
				} else {
					nvs = append(nvs, v)
				}
			}
			k.rec, k.doc, k.versions = newRec, doc, nvs
		}
		k.mu.Unlock()
		if changed {
			k.notifyWatchers()
		}
		return nil
	}
}

// NotifyScheduleChange arranges for a value to be sent on c, without
// blocking, whenever this handle sees the key's next rotation time change:
// when rotation is enabled, disabled or carried out, or a reload finds it
// changed elsewhere. The rotation scheduler uses it to wake early. Call stop
// to end the notifications.
func (k *Keyring) NotifyScheduleChange(c chan<- struct{}) (stop func()) {
	k.watchMu.Lock()
	defer k.watchMu.Unlock()
	if k.watchers == nil {
		k.watchers = make(map[*chan<- struct{}]struct{})
	}
	p := &c
	k.watchers[p] = struct{}{}
	return func() {
		k.watchMu.Lock()
		defer k.watchMu.Unlock()
		delete(k.watchers, p)
	}
}

func (k *Keyring) notifyWatchers() {
	k.watchMu.Lock()
	defer k.watchMu.Unlock()
	for p := range k.watchers {
		select {
		case *p <- struct{}{}:
		default:
		}
	}
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

// usable reports why v cannot be used, if it cannot.
func (k *Keyring) usable(v *version) error {
	switch v.State {
	case VersionEnabled:
		return nil
	case VersionDestroyed:
		return fmt.Errorf("%w: key %s version %d", ErrVersionDestroyed, k.id, v.Number)
	case VersionPendingDestruction:
		return fmt.Errorf("%w: key %s version %d is pending destruction", ErrVersionDisabled, k.id, v.Number)
	default:
		return fmt.Errorf("%w: key %s version %d", ErrVersionDisabled, k.id, v.Number)
	}
}

// encryptingVersion returns version n, or the current version if n is 0,
// if it may encrypt.
func (k *Keyring) encryptingVersion(ctx context.Context, n uint32) (*version, error) {
	var v *version
	if n == 0 {
		k.mu.RLock()
		v = k.versions[len(k.versions)-1]
		k.mu.RUnlock()
	} else {
		var err error
		if v, err = k.lookup(ctx, n); err != nil {
			return nil, err
		}
	}
	return v, k.usable(v)
}

// seal wraps plaintext under v into a data key blob bound to ec.
func (k *Keyring) seal(v *version, plaintext []byte, ec map[string]string) ([]byte, error) {
	aead, err := k.wrapAEAD(v)
	if err != nil {
		return nil, err
	}
	// One allocation holds the blob and, past its capacity, the associated
	// data (the blob header and the encoded context).
	n := format.BlobHeaderSize + len(plaintext) + format.BlobTagSize
	buf := make([]byte, n, n+format.BlobHeaderSize+format.ContextSize(ec))
	bl := format.Blob{KeyID: k.bid, Version: v.Number}
	hdr := bl.AppendHeader(buf[:0])
	nonce := hdr[format.BlobHeaderSize-format.BlobNonceSize:]
	rand.Read(nonce)
	aad, err := format.AppendContext(append(buf[n:], hdr...), ec)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	out := aead.Seal(hdr, nonce, plaintext, aad)
	return out[:n:n], nil
}

// GenerateDataKey returns a fresh random data key (32 bytes, or 16 with
// WithKeySpec(AES128)) and its blob under the current version, or the
// version WithVersion names. Call DataKey.Destroy when done with it.
func (k *Keyring) GenerateDataKey(ctx context.Context, opts ...OpOption) (*DataKey, error) {
	return k.generateDataKey(ctx, OpGenerateDataKey, opts)
}

func (k *Keyring) generateDataKey(ctx context.Context, op Operation, opts []OpOption) (*DataKey, error) {
	c := newOpConfig(opts)
	v, err := k.encryptingVersion(ctx, c.version)
	if err != nil {
		return nil, k.audit(ctx, AuditEvent{Operation: op, Version: c.version, EncryptionContext: c.ec, Err: err})
	}
	dk := &DataKey{KeyID: k.id, Version: v.Number, Plaintext: randomBytes(c.spec.size())}
	dk.Ciphertext, err = k.seal(v, dk.Plaintext, c.ec)
	if err = k.audit(ctx, AuditEvent{Operation: op, Version: v.Number, EncryptionContext: c.ec, Err: err}); err != nil {
		dk.Destroy()
		return nil, err
	}
	if op == OpGenerateDataKeyWithoutPlaintext {
		dk.Destroy()
	}
	return dk, nil
}

// GenerateDataKeyWithoutPlaintext is GenerateDataKey for a caller that will
// only store the blob and decrypt it later; Plaintext is nil.
func (k *Keyring) GenerateDataKeyWithoutPlaintext(ctx context.Context, opts ...OpOption) (*DataKey, error) {
	return k.generateDataKey(ctx, OpGenerateDataKeyWithoutPlaintext, opts)
}

// Encrypt wraps a small plaintext (1 to 4096 bytes, like AWS KMS Encrypt)
// directly under the current version, or the version WithVersion names. Its
// result has the data key blob format and opens with Decrypt. Larger data
// belongs in an envelope (package envelope).
func (k *Keyring) Encrypt(ctx context.Context, plaintext []byte, opts ...OpOption) ([]byte, error) {
	if len(plaintext) == 0 || len(plaintext) > format.MaxBlobPlaintext {
		err := fmt.Errorf("%w: plaintext of %d bytes (want 1 to %d)", ErrInvalidArgument, len(plaintext), format.MaxBlobPlaintext)
		return nil, k.audit(ctx, AuditEvent{Operation: OpEncrypt, Err: err})
	}
	c := newOpConfig(opts)
	v, err := k.encryptingVersion(ctx, c.version)
	if err != nil {
		return nil, k.audit(ctx, AuditEvent{Operation: OpEncrypt, Version: c.version, EncryptionContext: c.ec, Err: err})
	}
	blob, err := k.seal(v, plaintext, c.ec)
	if err = k.audit(ctx, AuditEvent{Operation: OpEncrypt, Version: v.Number, EncryptionContext: c.ec, Err: err}); err != nil {
		return nil, err
	}
	return blob, nil
}

// Decrypt returns the plaintext of a blob from GenerateDataKey or Encrypt,
// given the same encryption context. The version is taken from the blob. It
// fails with ErrMalformed for bytes that are not a blob, ErrWrongKey for a
// blob of another key, ErrUnknownVersion, ErrVersionDisabled or
// ErrVersionDestroyed for a version that cannot decrypt, and ErrDecrypt for
// every authentication failure, a wrong context included.
func (k *Keyring) Decrypt(ctx context.Context, blob []byte, opts ...OpOption) ([]byte, error) {
	c := newOpConfig(opts)
	pt, n, err := k.open(ctx, blob, c.ec)
	if err = k.audit(ctx, AuditEvent{Operation: OpDecrypt, Version: n, EncryptionContext: c.ec, Err: err}); err != nil {
		clear(pt)
		return nil, err
	}
	return pt, nil
}

// open decrypts blob and returns its plaintext and the version it named
// (0 if it does not parse).
func (k *Keyring) open(ctx context.Context, blob []byte, ec map[string]string) ([]byte, uint32, error) {
	bl, err := format.ParseBlob(blob)
	if err != nil {
		return nil, 0, err
	}
	pt, err := k.openBlob(ctx, blob, bl, ec)
	return pt, bl.Version, err
}

// openBlob decrypts blob, which parsed as bl.
func (k *Keyring) openBlob(ctx context.Context, blob []byte, bl format.Blob, ec map[string]string) ([]byte, error) {
	if bl.KeyID != k.bid {
		return nil, fmt.Errorf("%w: blob names key %s, this is %s", ErrWrongKey, uuid.UUID(bl.KeyID), k.id)
	}
	v, err := k.lookup(ctx, bl.Version)
	if err != nil {
		return nil, err
	}
	if err := k.usable(v); err != nil {
		return nil, err
	}
	aead, err := k.wrapAEAD(v)
	if err != nil {
		return nil, err
	}
	// One allocation holds the plaintext and, past its capacity, the
	// associated data. The nonce is read in place from the blob.
	n := len(bl.Sealed) - format.BlobTagSize
	buf := make([]byte, n, n+format.BlobHeaderSize+format.ContextSize(ec))
	aad, err := format.AppendContext(append(buf[n:], blob[:format.BlobHeaderSize]...), ec)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	nonce := blob[format.BlobHeaderSize-format.BlobNonceSize : format.BlobHeaderSize]
	pt, err := aead.Open(buf[:0:n], nonce, bl.Sealed, aad)
	if err != nil {
		clear(buf)
		return nil, ErrDecrypt
	}
	return pt, nil
}

// ReEncrypt decrypts blob (with the source context WithEncryptionContext
// gives) and wraps its plaintext under the current version, or the version
// WithVersion names, without returning the plaintext. The new blob keeps the
// source context unless WithDestinationEncryptionContext names another.
func (k *Keyring) ReEncrypt(ctx context.Context, blob []byte, opts ...OpOption) ([]byte, error) {
	c := newOpConfig(opts)
	ec := c.ec
	if c.hasDestEC {
		ec = c.destEC
	}
	pt, from, err := k.open(ctx, blob, c.ec)
	if err != nil {
		return nil, k.audit(ctx, AuditEvent{Operation: OpReEncrypt, PreviousVersion: from, EncryptionContext: ec, Err: err})
	}
	defer clear(pt)
	v, err := k.encryptingVersion(ctx, c.version)
	if err != nil {
		return nil, k.audit(ctx, AuditEvent{Operation: OpReEncrypt, PreviousVersion: from, Version: c.version, EncryptionContext: ec, Err: err})
	}
	out, err := k.seal(v, pt, ec)
	if err = k.audit(ctx, AuditEvent{Operation: OpReEncrypt, PreviousVersion: from, Version: v.Number, EncryptionContext: ec, Err: err}); err != nil {
		return nil, err
	}
	return out, nil
}

// ParseCiphertext returns the key ID and version named by a data key blob
// without decrypting it. It fails with ErrMalformed.
func ParseCiphertext(blob []byte) (keyID string, version uint32, err error) {
	bl, err := format.ParseBlob(blob)
	if err != nil {
		return "", 0, err
	}
	return uuid.UUID(bl.KeyID).String(), bl.Version, nil
}
