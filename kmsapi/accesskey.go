package kmsapi

import (
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
	secret    string
}

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
	return fmt.Sprintf("AccessKey{ID: %s, Principal: %s, Admin: %t, CreatedAt: %s, SecretAccessKey: [redacted]}",
		a.ID, a.Principal, a.Admin, a.CreatedAt.Format(time.RFC3339))
}

// GoString is String, so %#v does not print the secret either.
func (a AccessKey) GoString() string { return a.String() }

// Format writes String for every verb, so no verb prints the secret.
func (a AccessKey) Format(f fmt.State, _ rune) { io.WriteString(f, a.String()) }

// MarshalJSON writes the key's ID, principal, admin flag and creation time,
// never its secret.
func (a AccessKey) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		AccessKeyID string    `json:"AccessKeyId"`
		UserName    string    `json:"UserName"`
		Admin       bool      `json:"Admin"`
		CreateDate  time.Time `json:"CreateDate"`
	}{a.ID, a.Principal, a.Admin, a.CreatedAt})
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

// errUnknownAccessKey reports an access key ID with no stored key.
var errUnknownAccessKey = errors.New("kmsapi: unknown access key")

// accessKeyDoc is the stored form of an access key. Secret is the secret
// wrapped under the root key, with the ID, principal and admin flag bound
// as associated data (accessKeyAD), so that a store writer can neither
// grant admin nor move a secret to another principal undetected.
type accessKeyDoc struct {
	Format    int       `json:"format"`
	Principal string    `json:"principal"`
	Admin     bool      `json:"admin"`
	CreatedAt time.Time `json:"created_at"`
	Secret    []byte    `json:"secret"`
}

// accessKeyAD is the associated data binding a wrapped secret to its key:
// a label, then the ID, principal and admin flag, each length-prefixed.
func accessKeyAD(id, principal string, admin bool) []byte {
	ad := []byte("kmsring access key v1\x00")
	for _, s := range []string{id, principal} {
		ad = binary.BigEndian.AppendUint16(ad, uint16(len(s)))
		ad = append(ad, s...)
	}
	if admin {
		return append(ad, 1)
	}
	return append(ad, 0)
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
		secret:    base64.StdEncoding.EncodeToString(raw[10:]),
	}
	wrapped, err := rk.Encrypt([]byte(a.secret), accessKeyAD(a.ID, principal, admin))
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
func unwrapAccessKey(rk tink.AEAD, id string, data []byte) (*AccessKey, error) {
	var doc accessKeyDoc
	if err := json.Unmarshal(data, &doc); err != nil || doc.Format != accessKeyFormat {
		return nil, fmt.Errorf("kmsapi: corrupt access key record %s", id)
	}
	secret, err := rk.Decrypt(doc.Secret, accessKeyAD(id, doc.Principal, doc.Admin))
	if err != nil || len(secret) != secretSize || !principalRE.MatchString(doc.Principal) {
		return nil, fmt.Errorf("kmsapi: access key %s fails authentication under the root key (tampered store or wrong root key)", id)
	}
	return &AccessKey{ID: id, Principal: doc.Principal, Admin: doc.Admin, CreatedAt: doc.CreatedAt, secret: string(secret)}, nil
}

// accessKeys caches unwrapped access keys. A miss reads the store, so a key
// made by another process sharing the store works at once.
type accessKeys struct {
	st store.Store
	rk tink.AEAD

	mu    sync.RWMutex
	cache map[string]*AccessKey
	// failed remembers, by the SHA-256 of their bytes, the stored records
	// that did not unwrap, so that a record planted in the store costs one
	// root key call (one argon2id derivation, one remote KMS call), not
	// one per request that names it.
	failed map[string][sha256.Size]byte
}

// maxAccessKeyRecord bounds an access key record read from the store
// (a few hundred bytes; a remote root key's ciphertext included), checked
// as it is read, before it is hashed or parsed.
const maxAccessKeyRecord = 16 << 10

// maxCachedAccessKeys bounds the cache; it is emptied when full.
const maxCachedAccessKeys = 10000

func newAccessKeys(st store.Store, rk tink.AEAD) *accessKeys {
	return &accessKeys{st: st, rk: rk, cache: make(map[string]*AccessKey), failed: make(map[string][sha256.Size]byte)}
}

func (c *accessKeys) get(ctx context.Context, id string) (*AccessKey, error) {
	c.mu.RLock()
	a, ok := c.cache[id]
	c.mu.RUnlock()
	if ok {
		return a, nil
	}
	data, err := readAccessKey(ctx, c.st, id)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	c.mu.RLock()
	bad, seen := c.failed[id]
	c.mu.RUnlock()
	if seen && bad == sum {
		return nil, fmt.Errorf("kmsapi: access key %s fails authentication under the root key (tampered store or wrong root key)", id)
	}
	a, err = unwrapAccessKey(c.rk, id, data)
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
	c.cache[id] = a
	delete(c.failed, id)
	return a, nil
}
