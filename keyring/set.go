package keyring

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kmsring/kmsring/internal/format"
	"github.com/kmsring/kmsring/internal/lru"
	"github.com/kmsring/kmsring/store"
)

// Set holds several keyrings and decrypts a blob with the one whose key ID
// the blob names, so that a reader of many keys' data needs no routing of its
// own. *Set satisfies envelope.Opener. A Set is safe for concurrent use; the
// zero value is an empty set.
//
// A set made by NewSet holds the keyrings it is given. A set made by
// OpenSet stands for every key in a store: it loads a key on its first use
// and keeps at most WithMaxLoaded of them, dropping the least recently used.
type Set struct {
	mu sync.RWMutex
	m  map[string]*Keyring

	// open is set by OpenSet.
	open *openSet
}

// openSet is the state of a set over a store.
type openSet struct {
	c      *config // Load's options; only read
	loaded *lru.Cache[*Keyring]
}

// DefaultMaxLoaded is how many keys a set made by OpenSet keeps loaded
// unless WithMaxLoaded says otherwise: about 16 MiB of keyrings of a few
// versions each.
const DefaultMaxLoaded = 10000

// WithMaxLoaded bounds the keys a set made by OpenSet keeps loaded to n
// (at least 1; default DefaultMaxLoaded): loading one more drops the least
// recently used. A dropped keyring that a caller still holds keeps
// working; the set loads the key again on its next use. OpenSet only; New
// and Load reject it.
func WithMaxLoaded(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.fail("WithMaxLoaded needs at least 1, not %d", n)
		}
		c.maxLoaded = n
	}
}

// NewSet returns a set holding ks.
func NewSet(ks ...*Keyring) *Set {
	s := &Set{}
	for _, k := range ks {
		s.Add(k)
	}
	return s
}

// OpenSet returns a set over every key in st: Decrypt (and so
// envelope.Open and NewReader) of a blob of any key in the store works,
// loading that key (as Load does, with opts) on its first use, and the set
// keeps at most WithMaxLoaded keys loaded, dropping the least recently
// used. OpenSet itself reads no key: it returns at once however many keys
// the store holds. Concurrent first uses of one key wait for one load;
// first uses of different keys load concurrently.
//
// opts are Load's options (WithRootKey, WithClock, WithAuditor, ...) plus
// WithMaxLoaded; creation-only options are refused with ErrInvalidArgument,
// as by Load. A key whose record fails authentication fails its use with
// ErrTampered, naming it, and is not kept; a blob naming a key the store
// does not hold fails with ErrKeyNotFound.
func OpenSet(ctx context.Context, st store.Store, opts ...Option) (*Set, error) {
	c, err := loadConfig(st, opts, true)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// A root key that cannot open the store fails here rather than on
	// the first use (an empty store has no store key yet: nothing to check).
	if _, err := loadStoreKeys(ctx, st, c.rootKey, false); err != nil && !errors.Is(err, ErrKeyNotFound) {
		return nil, err
	}
	n := c.maxLoaded
	if n == 0 {
		n = DefaultMaxLoaded
	}
	return &Set{open: &openSet{c: c, loaded: lru.New[*Keyring](n)}}, nil
}

// Add adds k to the set, replacing any keyring with the same key ID. In a
// set made by OpenSet, k counts as loaded (and may be dropped as the least
// recently used); it should be a key of the set's store.
func (s *Set) Add(k *Keyring) {
	if s.open != nil {
		s.open.loaded.Replace(k.ID(), k)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]*Keyring)
	}
	s.m[k.ID()] = k
}

// Get returns the keyring with the given key ID, if the set holds it (in
// a set made by OpenSet: if it is loaded). It never loads; Load does.
func (s *Set) Get(keyID string) (*Keyring, bool) {
	if s.open != nil {
		return s.open.loaded.Peek(keyID)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.m[keyID]
	return k, ok
}

// Load returns the keyring whose key ID or alias is idOrAlias: in a set
// made by OpenSet, the loaded one or, on its first use, the key read from
// the store (see OpenSet for the errors); in a set made by NewSet, the one
// it holds, or ErrKeyNotFound.
func (s *Set) Load(ctx context.Context, idOrAlias string) (*Keyring, error) {
	if s.open == nil {
		if k, ok := s.Get(idOrAlias); ok {
			return k, nil
		}
		return nil, fmt.Errorf("%w: %s is not in the set", ErrKeyNotFound, idOrAlias)
	}
	if strings.HasPrefix(idOrAlias, "alias/") {
		// An alias may move: resolve it through the store every time, and
		// keep the key under its ID.
		k, err := load(ctx, s.open.c, idOrAlias)
		if err != nil {
			return nil, err
		}
		return s.open.loaded.Put(k.ID(), k), nil
	}
	return s.open.loaded.Get(ctx, idOrAlias, func(ctx context.Context) (*Keyring, error) {
		return load(ctx, s.open.c, idOrAlias)
	})
}

// Loaded returns how many keyrings the set holds (loaded ones, for a set
// made by OpenSet).
func (s *Set) Loaded() int {
	if s.open != nil {
		return s.open.loaded.Len()
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}

// Store returns the store of a set made by OpenSet, or nil.
func (s *Set) Store() store.Store {
	if s.open == nil {
		return nil
	}
	return s.open.c.store
}

// Forget drops the loaded keyring of keyID from a set made by OpenSet, so
// that its next use loads it again; a no-op for other sets.
func (s *Set) Forget(keyID string) {
	if s.open != nil {
		s.open.loaded.Remove(keyID)
	}
}

// Decrypt decrypts blob with the keyring whose ID it names, as
// Keyring.Decrypt does. It fails with ErrKeyNotFound if the set has no such
// keyring (for a set made by OpenSet: if the store has no such key), and
// with what Keyring.Decrypt and OpenSet list otherwise.
func (s *Set) Decrypt(ctx context.Context, blob []byte, opts ...OpOption) ([]byte, error) {
	bl, err := format.ParseBlob(blob)
	if err != nil {
		return nil, err
	}
	k, err := s.byBinaryID(ctx, bl.KeyID)
	if err != nil {
		return nil, err
	}
	return k.Decrypt(ctx, blob, opts...)
}

// byBinaryID returns the keyring of the set with the given binary key ID,
// without allocating when it is held, or ErrKeyNotFound.
func (s *Set) byBinaryID(ctx context.Context, id [16]byte) (*Keyring, error) {
	var buf [36]byte
	hex.Encode(buf[0:8], id[0:4])
	hex.Encode(buf[9:13], id[4:6])
	hex.Encode(buf[14:18], id[6:8])
	hex.Encode(buf[19:23], id[8:10])
	hex.Encode(buf[24:], id[10:])
	buf[8], buf[13], buf[18], buf[23] = '-', '-', '-', '-'
	if s.open != nil {
		if k, ok := s.open.loaded.Peek(string(buf[:])); ok {
			return k, nil
		}
		return s.Load(ctx, string(buf[:]))
	}
	s.mu.RLock()
	k, ok := s.m[string(buf[:])]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s is not in the set", ErrKeyNotFound, string(buf[:]))
	}
	return k, nil
}

// Due returns the keys of a set made by OpenSet that the store's due index
// (store.DueIndex) lists as due through the given time, ordered by due time
// then key ID, beginning after the entry after (zero: from the start), at
// most limit (1..store.MaxPage). The entries are hints read from the store,
// not authenticated: load the key (Load) and ask it (NextDueAt) before
// acting. It fails with ErrInvalidArgument for other sets or a store
// without the index.
func (s *Set) Due(ctx context.Context, through time.Time, after store.DueEntry, limit int) ([]store.DueEntry, error) {
	if s.open == nil {
		return nil, fmt.Errorf("%w: Due needs a set made by OpenSet", ErrInvalidArgument)
	}
	di, ok := s.open.c.store.(store.DueIndex)
	if !ok {
		return nil, fmt.Errorf("%w: the store keeps no due index (store.DueIndex)", ErrInvalidArgument)
	}
	es, err := di.ListDue(ctx, through, after, limit)
	if err != nil {
		return nil, fmt.Errorf("keyring: list due keys: %w", err)
	}
	return es, nil
}

// SyncDue makes the due index entry of a record that is not a key (such
// as the store key; IsReserved) empty, as such records are never due; for
// keys use Keyring.SyncDue. It reports whether it wrote.
func (s *Set) SyncDue(ctx context.Context, id string) (bool, error) {
	if s.open == nil || !isReserved(id) {
		return false, fmt.Errorf("%w: %q is not a reserved record of a set made by OpenSet", ErrInvalidArgument, id)
	}
	rec, err := s.open.c.store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil || rec.Due.IsZero() || rec.KeyID != id {
		return false, err
	}
	rec.Due = time.Time{}
	if _, err := s.open.c.store.Update(ctx, rec, nil); err != nil && !errors.Is(err, store.ErrConflict) {
		return false, fmt.Errorf("keyring: %s: clear its due time: %w", id, err)
	}
	return true, nil
}

// IsReserved reports whether a store record ID names no key but a record
// kmsring keeps beside them (ReservedPrefix).
func IsReserved(id string) bool { return isReserved(id) }
