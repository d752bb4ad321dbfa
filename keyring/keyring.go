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
// and [NewPassphraseRootKey]; in production read a key file with
// [ReadRootKeyFile], which never creates one. A persistent store without a
// root key is refused. [RotateRootKey] moves a store to a new root key.
//
// # An untrusted store
//
// The store is trusted less than the root key. A store key, wrapped under
// the root key and unwrapped once per process, authenticates every key
// record: its current version, schedule, key state, aliases, policy and the
// exact bytes of every version entry. Someone who can write the store but
// does not hold the root key can neither read material nor change what a
// key does: enabling a disabled or destroyed version, rolling back the
// current version, moving the schedule, pointing an alias at another key,
// copying a record from another key or store all fail [Load] and Refresh
// with [ErrTampered], naming the key. One store has one root key: New and
// Load under another fail with [ErrRootKey]. Replaying a whole older record
// is not detected (see docs/FORMAT.md, "Stored records").
//
// # Key state
//
// A key as a whole is enabled, disabled ([Keyring.DisableKey]), pending
// deletion ([Keyring.ScheduleKeyDeletion], 7 to 30 days) or deleted, as in
// AWS KMS; see [KeyState]. Only an enabled key encrypts, decrypts and
// rotates. Other handles see a change when they reload.
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
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
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
	sk             *storeKeys
	clock          Clock
	reloadInterval time.Duration
	auditors       []Auditor
	logger         *slog.Logger // nil: slog.Default()
	approved       bool         // WithApprovedAlgorithms

	mu       sync.RWMutex
	rec      store.Record
	doc      keyDoc
	versions []*version    // versions[i] has number i+1
	chain    []digest      // chain[i] is the digest of versions 1..i+1
	state    atomic.Uint32 // doc's KeyState, for the hot path
	// rolledBack is set when the store was found holding an older or a
	// forked record than this handle has seen, and cleared when a newer
	// one is installed: meanwhile the handle does not encrypt, since the
	// store may no longer hold the version it would encrypt under.
	rolledBack atomic.Bool

	reloadMu   sync.Mutex // one unknown-version reload at a time
	lastReload time.Time

	watchMu  sync.Mutex
	watchers map[*chan<- struct{}]struct{}
}

// version is a loaded version: its metadata, its stored bytes (to notice
// changes on reload) and, unless destroyed, its material wrapped under the
// root key. The material is unwrapped on first use (see versionKeys), so that
// loading a key with many versions under a remote root key costs one root
// key call for the current version, not one per version.
type version struct {
	Version
	data    []byte
	wrapped []byte // nil once destroyed

	mu   sync.Mutex                  // held while the material is unwrapped
	keys atomic.Pointer[versionKeys] // set once the material is unwrapped
}

// New creates a key with version 1 in the configured store and returns it.
// The first key created in a store also creates the store key (see
// ErrTampered), wrapped under the root key; a store whose keys are under
// another root key refuses New with ErrRootKey. New fails with
// ErrInvalidArgument for a bad option and with an error wrapping
// store.ErrExists if an alias is taken.
func New(ctx context.Context, opts ...Option) (*Keyring, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if c.maxLoaded != 0 {
		return nil, errSetOnly
	}
	if c.store == nil {
		c.store = memstore.New()
	}
	if err := checkRootKey(c, c.store); err != nil {
		return nil, err
	}
	sk, err := loadStoreKeys(ctx, c.store, c.rootKey, true)
	if err != nil {
		return nil, err
	}
	u, err := uuid.NewRandom()
	if err != nil {
		return nil, fmt.Errorf("keyring: generate key ID: %w", err)
	}
	k := newKeyring(u, c, sk)
	now := k.now()
	doc := keyDoc{
		Format: recordFormat, Seq: 1, CreatedAt: now, Current: 1, State: KeyEnabled.String(),
		Description: c.description, Policy: c.policy, Aliases: sortedAliases(c.aliases),
	}
	if c.period > 0 {
		doc.RotationPeriod = c.period
		doc.NextRotationAt = now.Add(c.period)
	}
	v1, err := k.newVersion(1, OriginInitial, now)
	if err != nil {
		return nil, err
	}
	chain := []digest{chainNext(chainStart(k.bid), 1, v1.data)}
	doc.Versions = chain[0]
	rec := store.Record{KeyID: k.id, Aliases: doc.Aliases, Data: doc.seal(sk, k.bid), Due: doc.due(nil, []*version{v1})}
	if err := checkRecordSize(k.bid, len(rec.Data), 0); err != nil {
		return nil, k.audit(ctx, AuditEvent{Operation: OpCreateKey, Err: fmt.Errorf("keyring: create key: %w", err)})
	}
	rec, err = c.store.Create(ctx, rec, []store.Version{{Number: 1, Data: v1.data}})
	if err != nil {
		return nil, k.audit(ctx, AuditEvent{Operation: OpCreateKey, Err: fmt.Errorf("keyring: create key: %w", err)})
	}
	k.install(rec, doc, []*version{v1}, chain)
	if err := k.audit(ctx, AuditEvent{Operation: OpCreateKey, Version: 1, Origin: OriginInitial}); err != nil {
		return nil, err
	}
	return k, nil
}

// Load returns the key whose ID or alias is idOrAlias from st, with every
// version. It authenticates what it reads (see ErrTampered) and fails with
// ErrKeyNotFound if there is no such key, ErrRootKey if the root key cannot
// unwrap the store key or the current version's material, ErrTampered if a
// record was changed without the root key, and ErrInvalidArgument if given
// a creation-only option (WithStore, WithAlias, WithRotationPeriod,
// WithDescription). A deleted key loads as its tombstone.
func Load(ctx context.Context, st store.Store, idOrAlias string, opts ...Option) (*Keyring, error) {
	c, err := loadConfig(st, opts, false)
	if err != nil {
		return nil, err
	}
	return load(ctx, c, idOrAlias)
}

// errSetOnly refuses WithMaxLoaded outside OpenSet.
var errSetOnly = fmt.Errorf("%w: WithMaxLoaded applies only to OpenSet", ErrInvalidArgument)

// loadConfig checks the options of Load (or OpenSet) and the store, and
// settles the root key.
func loadConfig(st store.Store, opts []Option, forSet bool) (*config, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if c.maxLoaded != 0 && !forSet {
		return nil, errSetOnly
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
	return c, nil
}

// load is Load with its options checked; c is only read.
func load(ctx context.Context, c *config, idOrAlias string) (*Keyring, error) {
	st := c.store
	if isReserved(idOrAlias) {
		return nil, fmt.Errorf("%w: %q", ErrKeyNotFound, idOrAlias)
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
	byAlias := strings.HasPrefix(idOrAlias, "alias/")
	if !byAlias && rec.KeyID != idOrAlias {
		return nil, tampered(u, "the store returned it for key ID %q", idOrAlias)
	}
	sk, err := loadStoreKeys(ctx, st, c.rootKey, false)
	if err != nil {
		return nil, fmt.Errorf("keyring: load %q: %w", idOrAlias, err)
	}
	k := newKeyring(u, c, sk)
	if err := k.apply(ctx, rec); err != nil {
		return nil, err
	}
	if byAlias && !k.HasAlias(idOrAlias) {
		return nil, tampered(u, "the store maps alias %s to it, but the key does not have that alias", idOrAlias)
	}
	return k, nil
}

// keyIDBytes parses a stored key ID.
func keyIDBytes(id string) ([16]byte, error) {
	u, err := uuid.Parse(id)
	if err != nil || u.String() != id {
		return u, fmt.Errorf("%w: key ID %q is not a UUID", ErrTampered, id)
	}
	return u, nil
}

// keyIDString formats a binary key ID.
func keyIDString(id [16]byte) string { return uuid.UUID(id).String() }

// List returns the IDs of every key in st, sorted, deleted keys included.
// Records that are not keys (ReservedPrefix) are left out.
func List(ctx context.Context, st store.Store) ([]string, error) {
	ids, err := st.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("keyring: list keys: %w", err)
	}
	return slices.DeleteFunc(ids, isReserved), nil
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

func newKeyring(u uuid.UUID, c *config, sk *storeKeys) *Keyring {
	return &Keyring{
		id:             u.String(),
		bid:            u,
		st:             c.store,
		root:           c.rootKey,
		sk:             sk,
		clock:          c.clock,
		reloadInterval: c.reloadInterval,
		approved:       c.approved,
		auditors:       c.auditors,
		logger:         c.logger,
	}
}

// now is the keyring clock's time in UTC without a monotonic reading, as it
// is stored.
func (k *Keyring) now() time.Time { return k.clock.Now().UTC().Round(0) }

// ID returns the key ID, a UUID string that never changes.
func (k *Keyring) ID() string { return k.id }
