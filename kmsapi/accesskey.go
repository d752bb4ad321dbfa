package kmsapi

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// AccessKey is an access key of the endpoint: the credentials an AWS client
// signs its requests with, and the principal they authenticate as.
//
// Formatting an AccessKey with fmt or encoding/json never shows its secret;
// only SecretAccessKey returns it.
type AccessKey struct {
	// ID is the access key ID, 20 characters beginning with "AKIA".
	ID string
	// Principal is the IAM user name the key authenticates as; the
	// principal's ARN is arn:aws:iam::ACCOUNT:user/PRINCIPAL.
	Principal string
	// Admin principals may call every operation on every key, whatever
	// the key's policy says.
	Admin     bool
	CreatedAt time.Time
	// Status is AccessKeyActive or AccessKeyInactive; an inactive key is
	// refused as an unknown one is (UnrecognizedClientException).
	Status AccessKeyStatus
	secret string
}

// AccessKeyStatus is an access key's status, as IAM names it.
type AccessKeyStatus string

// The statuses of an access key.
const (
	AccessKeyActive   AccessKeyStatus = "Active"
	AccessKeyInactive AccessKeyStatus = "Inactive"
)

// SecretAccessKey returns the secret access key (40 characters). Show it
// once, to the person the key is for; it is stored only wrapped under the
// root key.
func (a AccessKey) SecretAccessKey() string { return a.secret }

// ARN returns the principal's IAM user ARN in account.
func (a AccessKey) ARN(account string) string { return principalARN(account, a.Principal) }

func principalARN(account, user string) string {
	return "arn:aws:iam::" + account + ":user/" + user
}

// String describes the key without its secret.
func (a AccessKey) String() string {
	return fmt.Sprintf("AccessKey{ID: %s, Principal: %s, Admin: %t, Status: %s, CreatedAt: %s, SecretAccessKey: [redacted]}",
		a.ID, a.Principal, a.Admin, a.Status, a.CreatedAt.Format(time.RFC3339))
}

// GoString is String, so %#v does not print the secret either.
func (a AccessKey) GoString() string { return a.String() }

// Format writes String for every verb, so no verb prints the secret.
func (a AccessKey) Format(f fmt.State, _ rune) { io.WriteString(f, a.String()) }

// MarshalJSON writes the key's ID, principal, admin flag and creation time,
// never its secret.
func (a AccessKey) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		AccessKeyID string          `json:"AccessKeyId"`
		UserName    string          `json:"UserName"`
		Status      AccessKeyStatus `json:"Status"`
		Admin       bool            `json:"Admin"`
		CreateDate  time.Time       `json:"CreateDate"`
	}{a.ID, a.Principal, a.Status, a.Admin, a.CreatedAt})
}

// Access keys are store records under reserved key IDs, which keyring.List
// and keyring.Load skip.
const accessKeyRecordPrefix = keyring.ReservedPrefix + "access-key:"

const (
	accessKeyIDPrefix = "AKIA"
	accessKeyIDSize   = 20
	secretSize        = 40
	accessKeyFormat   = 1
)

var (
	accessKeyIDRE = regexp.MustCompile(`^AKIA[A-Z2-7]{16}$`)
	// principalRE is IAM's user name syntax.
	principalRE = regexp.MustCompile(`^[A-Za-z0-9+=,.@_-]{1,64}$`)
)

// ErrInvalidPrincipal reports a principal name that is not an IAM user name
// (1 to 64 letters, digits and "+=,.@_-").
var ErrInvalidPrincipal = errors.New("kmsapi: invalid principal name")

// ErrAccessKeyNotFound reports an access key ID with no stored key, or
// one that was deleted (errors.Is). The endpoint answers a request signed
// with it, or with an inactive key, with UnrecognizedClientException.
var ErrAccessKeyNotFound = errors.New("kmsapi: access key not found")

// errUnknownAccessKey is what the verifier treats as an unknown key.
var errUnknownAccessKey = ErrAccessKeyNotFound

// errInactiveAccessKey reports an access key whose status is Inactive.
var errInactiveAccessKey = fmt.Errorf("%w: the access key is inactive", ErrAccessKeyNotFound)

// accessKeyDoc is the stored form of an access key. Secret is the secret
// wrapped under the root key, with the ID, principal and admin flag bound
// as associated data (accessKeyAD), so that a store writer can neither
// grant admin nor move a secret to another principal undetected.
//
// An inactive key's secret is wrapped with its status bound too, so that
// a store writer cannot reactivate it. A deleted key keeps a tombstone
// (Deleted, no secret): the store has no delete, and a tombstone makes
// every process that cached the key see the deletion as a change.
type accessKeyDoc struct {
	Format    int       `json:"format"`
	Principal string    `json:"principal"`
	Admin     bool      `json:"admin"`
	CreatedAt time.Time `json:"created_at"`
	Inactive  bool      `json:"inactive,omitempty"`
	Deleted   bool      `json:"deleted,omitempty"`
	Secret    []byte    `json:"secret,omitempty"`
}

// accessKeyAD is the associated data binding a wrapped secret to its key:
// a label, then the ID, principal and admin flag, each length-prefixed,
// and for an inactive key a final 'i'.
func accessKeyAD(id, principal string, admin, inactive bool) []byte {
	ad := []byte("kmsring access key v1\x00")
	for _, s := range []string{id, principal} {
		ad = binary.BigEndian.AppendUint16(ad, uint16(len(s)))
		ad = append(ad, s...)
	}
	if admin {
		ad = append(ad, 1)
	} else {
		ad = append(ad, 0)
	}
	if inactive {
		ad = append(ad, 'i')
	}
	return ad
}

// CreateAccessKey makes an access key for principal (an IAM user name, 1 to
// 64 of "A-Za-z0-9+=,.@_-") with a random ID and secret from crypto/rand,
// and stores it in st with the secret wrapped under the root key rk (the
// root key the endpoint's handler is given). admin lets the principal call
// everything regardless of key policies. It is safe for concurrent use; an
// endpoint sharing st accepts the key at once.
//
// It fails with ErrInvalidPrincipal for a bad name, and with the store's
// or root key's error otherwise. The returned key's SecretAccessKey is the
// only copy of the secret in the clear.
func CreateAccessKey(ctx context.Context, st store.Store, rk tink.AEAD, principal string, admin bool) (AccessKey, error) {
	if !principalRE.MatchString(principal) {
		return AccessKey{}, fmt.Errorf("%w: %q", ErrInvalidPrincipal, truncate(principal))
	}
	if st == nil || rk == nil {
		return AccessKey{}, errors.New("kmsapi: create access key: nil store or root key")
	}
	var raw [10 + 30]byte
	rand.Read(raw[:])
	a := AccessKey{
		ID:        accessKeyIDPrefix + base32.StdEncoding.EncodeToString(raw[:10]),
		Principal: principal,
		Admin:     admin,
		CreatedAt: time.Now().UTC().Round(0).Truncate(time.Second),
		Status:    AccessKeyActive,
		secret:    base64.StdEncoding.EncodeToString(raw[10:]),
	}
	wrapped, err := rk.Encrypt([]byte(a.secret), accessKeyAD(a.ID, principal, admin, false))
	if err != nil {
		return AccessKey{}, fmt.Errorf("kmsapi: wrap access key secret under the root key: %w", err)
	}
	doc := accessKeyDoc{Format: accessKeyFormat, Principal: principal, Admin: admin, CreatedAt: a.CreatedAt, Secret: wrapped}
	data, err := json.Marshal(doc)
	if err != nil {
		return AccessKey{}, fmt.Errorf("kmsapi: create access key: %w", err)
	}
	if _, err := st.Create(ctx, store.Record{KeyID: accessKeyRecordPrefix + a.ID, Data: data}, nil); err != nil {
		return AccessKey{}, fmt.Errorf("kmsapi: create access key: %w", err)
	}
	return a, nil
}

// loadAccessKey reads and unwraps the access key id from st.
func loadAccessKey(ctx context.Context, st store.Store, rk tink.AEAD, id string) (*AccessKey, error) {
	data, err := readAccessKey(ctx, st, id)
	if err != nil {
		return nil, err
	}
	return unwrapAccessKey(rk, id, data)
}

// readAccessKey reads the stored record of access key id.
func readAccessKey(ctx context.Context, st store.Store, id string) ([]byte, error) {
	if !accessKeyIDRE.MatchString(id) {
		return nil, errUnknownAccessKey
	}
	rec, err := st.Get(ctx, accessKeyRecordPrefix+id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errUnknownAccessKey
	}
	if err != nil {
		return nil, fmt.Errorf("kmsapi: load access key %s: %w", id, err)
	}
	if rec.KeyID != accessKeyRecordPrefix+id {
		return nil, fmt.Errorf("kmsapi: corrupt access key record %s", id)
	}
	if len(rec.Data) > maxAccessKeyRecord {
		return nil, fmt.Errorf("kmsapi: corrupt access key record %s (%d bytes)", id, len(rec.Data))
	}
	return rec.Data, nil
}

// unwrapAccessKey parses a stored access key record (of at most
// maxAccessKeyRecord bytes, as readAccessKey returns it) and unwraps its
// secret under the root key, which authenticates the ID, principal and admin flag.
// A deleted key's tombstone fails with ErrAccessKeyNotFound.
func unwrapAccessKey(rk tink.AEAD, id string, data []byte) (*AccessKey, error) {
	var doc accessKeyDoc
	if err := json.Unmarshal(data, &doc); err != nil || doc.Format != accessKeyFormat {
		return nil, fmt.Errorf("kmsapi: corrupt access key record %s", id)
	}
	if doc.Deleted {
		return nil, fmt.Errorf("%w: %s was deleted", ErrAccessKeyNotFound, id)
	}
	secret, err := rk.Decrypt(doc.Secret, accessKeyAD(id, doc.Principal, doc.Admin, doc.Inactive))
	if err != nil || len(secret) != secretSize || !principalRE.MatchString(doc.Principal) {
		return nil, fmt.Errorf("kmsapi: access key %s fails authentication under the root key (tampered store or wrong root key)", id)
	}
	status := AccessKeyActive
	if doc.Inactive {
		status = AccessKeyInactive
	}
	return &AccessKey{ID: id, Principal: doc.Principal, Admin: doc.Admin, CreatedAt: doc.CreatedAt, Status: status, secret: string(secret)}, nil
}

// ListAccessKeys returns the access keys in st, authenticated under the
// root key rk, ordered by principal and creation time; with principal
// non-empty, only that principal's. Deleted keys are left out. A record
// that fails authentication fails the listing.
func ListAccessKeys(ctx context.Context, st store.Store, rk tink.AEAD, principal string) ([]AccessKey, error) {
	if st == nil || rk == nil {
		return nil, errors.New("kmsapi: list access keys: nil store or root key")
	}
	ids, err := st.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("kmsapi: list access keys: %w", err)
	}
	out := []AccessKey{}
	for _, rid := range ids {
		id, ok := strings.CutPrefix(rid, accessKeyRecordPrefix)
		if !ok {
			continue
		}
		a, err := loadAccessKey(ctx, st, rk, id)
		if errors.Is(err, ErrAccessKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if principal == "" || a.Principal == principal {
			out = append(out, *a)
		}
	}
	slices.SortFunc(out, func(x, y AccessKey) int {
		return cmp.Or(strings.Compare(x.Principal, y.Principal), x.CreatedAt.Compare(y.CreatedAt), strings.Compare(x.ID, y.ID))
	})
	return out, nil
}

// UpdateAccessKey sets the status of access key id in st: AccessKeyInactive
// revokes it (every endpoint sharing st refuses it within its refresh
// interval, at once where the store notifies changes), AccessKeyActive
// restores it. The status is bound under the root key rk, so a store
// writer cannot reactivate a key. It fails with ErrAccessKeyNotFound for
// an unknown or deleted key.
func UpdateAccessKey(ctx context.Context, st store.Store, rk tink.AEAD, id string, status AccessKeyStatus) error {
	if status != AccessKeyActive && status != AccessKeyInactive {
		return fmt.Errorf("kmsapi: access key status must be %s or %s, not %q", AccessKeyActive, AccessKeyInactive, truncate(string(status)))
	}
	return updateAccessKey(ctx, st, rk, id, func(a *AccessKey) (accessKeyDoc, error) {
		doc := accessKeyDoc{Format: accessKeyFormat, Principal: a.Principal, Admin: a.Admin, CreatedAt: a.CreatedAt, Inactive: status == AccessKeyInactive}
		var err error
		doc.Secret, err = rk.Encrypt([]byte(a.secret), accessKeyAD(a.ID, a.Principal, a.Admin, doc.Inactive))
		return doc, err
	})
}

// DeleteAccessKey deletes access key id from st for good: its secret is
// erased from the record, which remains as a tombstone. Every endpoint
// sharing st refuses it as UpdateAccessKey's Inactive does. It fails with
// ErrAccessKeyNotFound for an unknown or deleted key.
func DeleteAccessKey(ctx context.Context, st store.Store, rk tink.AEAD, id string) error {
	return updateAccessKey(ctx, st, rk, id, func(a *AccessKey) (accessKeyDoc, error) {
		return accessKeyDoc{Format: accessKeyFormat, Principal: a.Principal, Admin: a.Admin, CreatedAt: a.CreatedAt, Deleted: true}, nil
	})
}

// updateAccessKey replaces the record of access key id with what next
// makes of the key, by compare-and-swap, retrying on a conflict.
func updateAccessKey(ctx context.Context, st store.Store, rk tink.AEAD, id string, next func(*AccessKey) (accessKeyDoc, error)) error {
	if st == nil || rk == nil {
		return errors.New("kmsapi: update access key: nil store or root key")
	}
	for range 5 {
		if !accessKeyIDRE.MatchString(id) {
			return fmt.Errorf("%w: %q", ErrAccessKeyNotFound, truncate(id))
		}
		rec, err := st.Get(ctx, accessKeyRecordPrefix+id)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %s", ErrAccessKeyNotFound, id)
		}
		if err != nil {
			return fmt.Errorf("kmsapi: update access key %s: %w", id, err)
		}
		if rec.KeyID != accessKeyRecordPrefix+id || len(rec.Data) > maxAccessKeyRecord {
			return fmt.Errorf("kmsapi: corrupt access key record %s", id)
		}
		a, err := unwrapAccessKey(rk, id, rec.Data)
		if err != nil {
			return err
		}
		doc, err := next(a)
		if err != nil {
			return fmt.Errorf("kmsapi: update access key %s: %w", id, err)
		}
		if rec.Data, err = json.Marshal(doc); err != nil {
			return fmt.Errorf("kmsapi: update access key %s: %w", id, err)
		}
		_, err = st.Update(ctx, rec, nil)
		if !errors.Is(err, store.ErrConflict) {
			if err != nil {
				return fmt.Errorf("kmsapi: update access key %s: %w", id, err)
			}
			return nil
		}
	}
	return fmt.Errorf("kmsapi: update access key %s: %w", id, store.ErrConflict)
}

// AccessKeyRecord reports whether a store record's key ID is an access
// key's, and which: the change notifications of a store name records so.
func AccessKeyRecord(recordID string) (id string, ok bool) {
	return strings.CutPrefix(recordID, accessKeyRecordPrefix)
}

// accessKeys caches unwrapped access keys. A miss reads the store, so a key
// made by another process sharing the store works at once. A hit older
// than recheck reads the record again (one store read, no root key call
// when the record is unchanged), so that a key revoked by another process
// is refused within recheck; forget drops an entry at once, when the store
// notifies a change.
type accessKeys struct {
	st      store.Store
	rk      tink.AEAD
	clock   keyring.Clock
	recheck time.Duration

	mu    sync.RWMutex
	cache map[string]*cachedAccessKey
	// failed remembers, by the SHA-256 of their bytes, the stored records
	// that did not unwrap, so that a record planted in the store costs one
	// root key call (one argon2id derivation, one remote KMS call), not
	// one per request that names it.
	failed map[string][sha256.Size]byte
}

type cachedAccessKey struct {
	a   *AccessKey // nil: inactive
	sum [sha256.Size]byte
	at  time.Time
}

// maxAccessKeyRecord bounds an access key record read from the store
// (a few hundred bytes; a remote root key's ciphertext included), checked
// as it is read, before it is hashed or parsed.
const maxAccessKeyRecord = 16 << 10

// maxCachedAccessKeys bounds the cache; it is emptied when full.
const maxCachedAccessKeys = 10000

func newAccessKeys(st store.Store, rk tink.AEAD, clock keyring.Clock, recheck time.Duration) *accessKeys {
	return &accessKeys{st: st, rk: rk, clock: clock, recheck: recheck,
		cache: make(map[string]*cachedAccessKey), failed: make(map[string][sha256.Size]byte)}
}

// forget drops the cached key id, or every cached key if id is empty.
func (c *accessKeys) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id == "" {
		clear(c.cache)
		return
	}
	delete(c.cache, id)
}

// get returns the active access key id, or errUnknownAccessKey.
func (c *accessKeys) get(ctx context.Context, id string) (*AccessKey, error) {
	now := c.clock.Now()
	c.mu.RLock()
	ce, ok := c.cache[id]
	c.mu.RUnlock()
	if ok && now.Sub(ce.at) < c.recheck {
		return ce.result()
	}
	data, err := readAccessKey(ctx, c.st, id)
	if errors.Is(err, errUnknownAccessKey) {
		c.forget(id)
	}
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	if ok && ce.sum == sum {
		c.mu.Lock()
		c.cache[id] = &cachedAccessKey{a: ce.a, sum: sum, at: now}
		c.mu.Unlock()
		return ce.result()
	}
	c.mu.RLock()
	bad, seen := c.failed[id]
	c.mu.RUnlock()
	if seen && bad == sum {
		return nil, fmt.Errorf("kmsapi: access key %s fails authentication under the root key (tampered store or wrong root key)", id)
	}
	a, err := unwrapAccessKey(c.rk, id, data)
	if errors.Is(err, ErrAccessKeyNotFound) { // deleted
		c.forget(id)
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if len(c.failed) >= maxCachedAccessKeys {
			clear(c.failed)
		}
		c.failed[id] = sum
		return nil, err
	}
	if len(c.cache) >= maxCachedAccessKeys {
		clear(c.cache)
	}
	ne := &cachedAccessKey{a: a, sum: sum, at: now}
	if a.Status != AccessKeyActive {
		ne.a = nil
	}
	c.cache[id] = ne
	delete(c.failed, id)
	return ne.result()
}

func (ce *cachedAccessKey) result() (*AccessKey, error) {
	if ce.a == nil {
		return nil, errInactiveAccessKey
	}
	return ce.a, nil
}
