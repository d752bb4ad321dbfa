package keyring

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/kmsring/kmsring/store"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// The store key is a random 32-byte key, one per store, kept in the store's
// reserved record storeRecordID wrapped under the root key. It
// authenticates what a store holds besides wrapped material: key records,
// version states, aliases (the record MAC) and the audit log (the audit
// chain key). Someone who can write the store but does not hold the root key
// cannot compute either, so every change they make to a key's metadata is
// detected when the key is loaded. It is unwrapped once per process and
// store (not per record), so a remote root key is called once.

// ReservedPrefix begins the key IDs of store records that are not keys: the
// store key ("kmsring:store") and records other packages keep beside the
// keys (the KMS endpoint's access keys, for one). List skips them and Load
// refuses them.
const ReservedPrefix = "kmsring:"

const (
	storeRecordID    = ReservedPrefix + "store"
	storeKeySize     = 32
	storeKeyAD       = "kmsring v1 store key"
	recordMACInfo    = "kmsring v1 record mac"
	auditChainInfo   = "kmsring v1 audit chain"
	maxStoreRecord   = 64 << 10
	storeKeyCacheMax = 64
)

// ErrTampered reports a stored record that fails authentication under the
// store key: a key record, a version's state, the current version, the
// schedule, the key state, an alias or the set of versions was changed by
// someone without the root key, or a record was copied from another key or
// another store. The error names the key and what did not match.
var ErrTampered = errors.New("keyring: stored key record fails authentication (tampered store?)")

// storeDoc is the stored form of the store key record.
type storeDoc struct {
	Format    int       `json:"format"`
	CreatedAt time.Time `json:"created_at"`
	// Key is the store key wrapped under the root key (associated data
	// storeKeyAD).
	Key []byte `json:"key"`
}

// storeKeys are the keys derived from one store key.
type storeKeys struct {
	recordMAC []byte // HMAC-SHA256 key for key records
	auditMAC  []byte // HMAC-SHA256 key for the audit chain
}

// String keeps the keys out of every fmt verb.
func (*storeKeys) String() string { return "keyring.storeKeys{redacted}" }

func newStoreKeys(sk []byte) (*storeKeys, error) {
	rm, err := hkdf.Key(sha256.New, sk, nil, recordMACInfo, sha256.Size)
	if err != nil {
		return nil, err
	}
	am, err := hkdf.Key(sha256.New, sk, nil, auditChainInfo, sha256.Size)
	if err != nil {
		return nil, err
	}
	return &storeKeys{recordMAC: rm, auditMAC: am}, nil
}

// storeKeyCache holds unwrapped store keys by (store, root key), so that a
// process unwraps each store's key once. Entries are few (one per store and
// root key a process uses); the cache is cleared if it ever grows past
// storeKeyCacheMax.
var storeKeyCache struct {
	sync.Mutex
	m map[storeKeyID]*storeKeys
}

type storeKeyID struct {
	st store.Store
	rk tink.AEAD
}

// cacheable reports whether v can be a map key: comparable dynamic type.
func cacheable(v any) bool { return v != nil && reflect.TypeOf(v).Comparable() }

// loadStoreKeys returns st's store keys, unwrapped with rk. If st has no
// store key and create is set, it makes one, provided st holds no keys (a
// store with keys but no store key has lost it, or was not written by this
// release); concurrent creators agree on one. It fails with ErrRootKey if rk
// cannot unwrap the store key and ErrTampered if the store has keys but no
// store key.
func loadStoreKeys(ctx context.Context, st store.Store, rk tink.AEAD, create bool) (*storeKeys, error) {
	id := storeKeyID{st, rk}
	useCache := cacheable(st) && cacheable(rk)
	if useCache {
		storeKeyCache.Lock()
		sk := storeKeyCache.m[id]
		storeKeyCache.Unlock()
		if sk != nil {
			return sk, nil
		}
	}
	rec, err := st.Get(ctx, storeRecordID)
	if errors.Is(err, store.ErrNotFound) {
		if err = checkNoKeys(ctx, st); err == nil && create {
			rec, err = createStoreKey(ctx, st, rk)
		} else if err == nil {
			err = fmt.Errorf("%w: the store holds no keys", ErrKeyNotFound)
		}
	}
	if err != nil {
		return nil, err
	}
	sk, err := unwrapStoreKey(rec, rk)
	if err != nil {
		return nil, err
	}
	if useCache {
		storeKeyCache.Lock()
		if storeKeyCache.m == nil || len(storeKeyCache.m) >= storeKeyCacheMax {
			storeKeyCache.m = make(map[storeKeyID]*storeKeys)
		}
		storeKeyCache.m[id] = sk
		storeKeyCache.Unlock()
	}
	return sk, nil
}

// checkNoKeys returns nil if st holds no keys, and ErrTampered if it holds
// keys: a store with keys but no store key has lost it.
func checkNoKeys(ctx context.Context, st store.Store) error {
	ids, err := List(ctx, st)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	return fmt.Errorf("%w: the store holds %d keys but no store key record (%s): it was deleted, or the store was not written by this release", ErrTampered, len(ids), storeRecordID)
}

// createStoreKey stores a fresh store key wrapped under rk, or returns the
// one a concurrent creator stored first.
func createStoreKey(ctx context.Context, st store.Store, rk tink.AEAD) (store.Record, error) {
	sk := randomBytes(storeKeySize)
	defer clear(sk)
	wrapped, err := rk.Encrypt(sk, []byte(storeKeyAD))
	if err != nil {
		return store.Record{}, fmt.Errorf("keyring: wrap the store key under the root key: %w", err)
	}
	doc := storeDoc{Format: recordFormat, CreatedAt: time.Now().UTC().Round(0), Key: wrapped}
	rec, err := st.Create(ctx, store.Record{KeyID: storeRecordID, Data: mustJSON(doc)}, nil)
	if errors.Is(err, store.ErrExists) {
		rec, err = st.Get(ctx, storeRecordID)
	}
	if err != nil {
		return store.Record{}, fmt.Errorf("keyring: store key: %w", err)
	}
	return rec, nil
}

// unwrapStoreKey parses a store key record and unwraps its key with rk.
func unwrapStoreKey(rec store.Record, rk tink.AEAD) (*storeKeys, error) {
	doc, err := parseStoreDoc(rec)
	if err != nil {
		return nil, err
	}
	sk, err := rk.Decrypt(doc.Key, []byte(storeKeyAD))
	if err != nil {
		return nil, fmt.Errorf("%w: the store's key is wrapped under another root key (or its record %s was altered): %w", ErrRootKey, storeRecordID, err)
	}
	defer clear(sk)
	if len(sk) != storeKeySize {
		return nil, fmt.Errorf("%w: store key record %s holds a key of %d bytes", ErrTampered, storeRecordID, len(sk))
	}
	return newStoreKeys(sk)
}

func parseStoreDoc(rec store.Record) (storeDoc, error) {
	var doc storeDoc
	if len(rec.Data) > maxStoreRecord {
		return doc, fmt.Errorf("%w: store key record %s of %d bytes", ErrTampered, storeRecordID, len(rec.Data))
	}
	if err := json.Unmarshal(rec.Data, &doc); err != nil {
		return doc, fmt.Errorf("%w: store key record %s: %v", ErrTampered, storeRecordID, err)
	}
	if doc.Format != recordFormat {
		return doc, fmt.Errorf("keyring: store key record format %d is not supported (want %d)", doc.Format, recordFormat)
	}
	return doc, nil
}

// rewrapStoreKey moves st's store key from the root key from to the root
// key to (resumable: a record to already unwraps is left alone).
func rewrapStoreKey(ctx context.Context, st store.Store, from, to tink.AEAD) (bool, error) {
	for attempt := 1; ; attempt++ {
		rec, err := st.Get(ctx, storeRecordID)
		if err != nil {
			return false, fmt.Errorf("keyring: rotate root key: store key: %w", err)
		}
		doc, err := parseStoreDoc(rec)
		if err != nil {
			return false, err
		}
		if sk, err := to.Decrypt(doc.Key, []byte(storeKeyAD)); err == nil {
			clear(sk)
			return false, nil
		}
		sk, err := from.Decrypt(doc.Key, []byte(storeKeyAD))
		if err != nil {
			return false, fmt.Errorf("%w: the store key (record %s): %w", ErrRootKey, storeRecordID, err)
		}
		doc.Key, err = to.Encrypt(sk, []byte(storeKeyAD))
		clear(sk)
		if err != nil {
			return false, fmt.Errorf("keyring: rotate root key: store key: %w", err)
		}
		rec.Data = mustJSON(doc)
		_, err = st.Update(ctx, rec, nil)
		if errors.Is(err, store.ErrConflict) && attempt < maxAttempts {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("keyring: rotate root key: store key: %w", err)
		}
		return true, nil
	}
}

// AuditMAC returns a constructor of HMAC-SHA256 hashes under the audit
// chain key of st: a key derived from the store key, which only the root key
// rk unwraps, so that someone who can rewrite the store's audit log cannot
// recompute its links. If st has no store key yet (and no keys), one is
// created. It fails with ErrRootKey if rk is not the store's root key.
func AuditMAC(ctx context.Context, st store.Store, rk tink.AEAD) (func() hash.Hash, error) {
	if st == nil || rk == nil {
		return nil, fmt.Errorf("%w: AuditMAC needs a store and a root key", ErrInvalidArgument)
	}
	sk, err := loadStoreKeys(ctx, st, rk, true)
	if err != nil {
		return nil, err
	}
	return func() hash.Hash { return hmac.New(sha256.New, sk.auditMAC) }, nil
}

// isReserved reports whether id names a store record that is not a key.
func isReserved(id string) bool { return strings.HasPrefix(id, ReservedPrefix) }
