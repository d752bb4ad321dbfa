package keyring

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// The stored form of a keyring: keyDoc in store.Record.Data, versionDoc in
// store.Version.Data (docs/FORMAT.md, "Stored records").
//
// The store is trusted less than the root key. A key record is its JSON
// document followed by an HMAC-SHA256 tag under the store's record MAC key
// (storekey.go), computed over the key ID and the document; the document
// holds everything that decides what the key does (current version,
// schedule, key state, aliases, policy) and the digest of its versions: a
// hash chain over every version record's exact bytes, in order. A version
// record therefore needs no tag of its own, and a changed, restored,
// dropped or added version record fails the digest. Appending a version
// extends the chain in constant time, so rotation cost does not grow with
// the number of versions.

const recordFormat = 1

// Bounds on what is read from a store, checked before anything is
// allocated or computed from it.
const (
	// maxKeyRecord bounds a key record read from a store: the document
	// (policy included) and its tag. It is well above maxKeyRecordWrite,
	// so that a record an older release wrote past the write bound (up
	// to 192 KB of JSON-escaped policy was seen) still loads and can be
	// repaired.
	maxKeyRecord = 1 << 20
	// MaxKeyRecordSize bounds the stored size of a key record a mutation
	// writes (ErrRecordTooLarge). AWS's documented maxima together (a
	// 32 KiB policy of any characters, an 8192-character description,
	// 100 aliases of 256 characters) stay below it.
	MaxKeyRecordSize = 256 << 10
	// maxVersionRecord bounds a version record: its metadata and wrapped
	// material (a remote root key's ciphertext included).
	maxVersionRecord = 16 << 10
	// MaxPolicySize bounds a key policy, as AWS KMS does.
	MaxPolicySize = 32 << 10
	// MaxDescriptionSize bounds a key description, as AWS KMS does.
	MaxDescriptionSize = 8192
	// maxAliases bounds the aliases of one key.
	maxAliases = 100
)

type keyDoc struct {
	Format int `json:"format"`
	// Seq counts the changes to the key: 1 at creation, one more with
	// every update. Authenticated, unlike the store's revision, it orders
	// records: a handle never installs an older one than it has seen.
	Seq            uint64        `json:"seq"`
	CreatedAt      time.Time     `json:"created_at"`
	Current        uint32        `json:"current_version"`
	RotationPeriod time.Duration `json:"rotation_period_ns,omitempty"`
	NextRotationAt time.Time     `json:"next_rotation_at,omitzero"`
	LastRotatedAt  time.Time     `json:"last_rotated_at,omitzero"`
	// StateChanges counts changes to existing versions (their state or
	// wrapping), so that a reload fetches only new versions when it has
	// not moved.
	StateChanges uint64 `json:"state_changes,omitempty"`
	// State is the key state's name; DeletionDate is set while the key is
	// pending deletion and once it is deleted.
	State        string    `json:"key_state"`
	DeletionDate time.Time `json:"deletion_date,omitzero"`
	Description  string    `json:"description,omitempty"`
	Policy       string    `json:"policy,omitempty"`
	// Aliases are the key's aliases, sorted: the authenticated copy of
	// store.Record.Aliases.
	Aliases []string `json:"aliases,omitempty"`
	// Versions is the digest of the version records 1..Current.
	Versions digest `json:"versions_digest"`
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

// mustJSON marshals a record type, which cannot fail.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("keyring: marshal record: " + err.Error())
	}
	return b
}

// keyRecordDomain opens the input of a key record's tag.
const keyRecordDomain = "kmsring v1 key record\x00"

// keyRecordTag is the tag of a key record: HMAC-SHA256 under the record
// MAC key of domain || key ID || document. The key ID binds the document to
// its key, so a record copied to another key fails.
func keyRecordTag(sk *storeKeys, id [16]byte, doc []byte) []byte {
	m := hmac.New(sha256.New, sk.recordMAC)
	m.Write([]byte(keyRecordDomain))
	m.Write(id[:])
	m.Write(doc)
	return m.Sum(nil)
}

// seal returns the stored bytes of d: its JSON document and its tag. The
// document is encoded without HTML escaping: a policy of '<' characters
// costs a byte each, not six.
func (d *keyDoc) seal(sk *storeKeys, id [16]byte) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		panic("keyring: marshal record: " + err.Error())
	}
	doc := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return append(doc, keyRecordTag(sk, id, doc)...)
}

// recordSlack is how much a change may grow a record that is already
// over MaxKeyRecordSize: room for its state, counters and dates to
// change, none for a longer policy, description or alias list.
const recordSlack = 1 << 10

// checkRecordSize refuses a key record of size bytes to be written over
// one of old bytes (0 for a new key): over MaxKeyRecordSize, unless the
// old record was already over it (written by an older release) and the
// change does not grow it by more than recordSlack, so that the key stays
// usable and can be repaired.
func checkRecordSize(id [16]byte, size, old int) error {
	if size <= MaxKeyRecordSize || (old > MaxKeyRecordSize && size <= old+recordSlack && size <= maxKeyRecord) {
		return nil
	}
	return fmt.Errorf("%w: key %s: the record would be %d bytes, over %d (shorten the policy or description, or remove aliases)",
		ErrRecordTooLarge, keyIDString(id), size, MaxKeyRecordSize)
}

// openKeyDoc authenticates and parses a stored key record of key id. It
// fails with ErrTampered, naming the key, for anything the record's author
// could not have written.
func openKeyDoc(sk *storeKeys, id [16]byte, b []byte) (keyDoc, error) {
	var d keyDoc
	if len(b) < sha256.Size || len(b) > maxKeyRecord {
		return d, tampered(id, "key record of %d bytes", len(b))
	}
	doc, tag := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if !hmac.Equal(tag, keyRecordTag(sk, id, doc)) {
		return d, tampered(id, "key record does not authenticate under this store's key (edited, or copied from another key or store)")
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return d, tampered(id, "key record: %v", err)
	}
	if d.Format != recordFormat {
		return d, fmt.Errorf("keyring: key %s: key record format %d is not supported (want %d)", keyIDString(id), d.Format, recordFormat)
	}
	if _, ok := lookupName(keyStateNames, d.State); !ok || d.Current == 0 || d.RotationPeriod < 0 {
		return d, tampered(id, "key record: state %q, current version %d, rotation period %v", d.State, d.Current, d.RotationPeriod)
	}
	return d, nil
}

// tampered returns an ErrTampered naming key id and what was wrong.
func tampered(id [16]byte, format string, args ...any) error {
	return fmt.Errorf("%w: key %s: "+format, append([]any{ErrTampered, keyIDString(id)}, args...)...)
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
	if len(b) > maxVersionRecord {
		return d, 0, 0, fmt.Errorf("keyring: corrupt version record of %d bytes", len(b))
	}
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

// digest is a SHA-256 value, stored as hex.
type digest [sha256.Size]byte

func (d digest) MarshalText() ([]byte, error) { return hex.AppendEncode(nil, d[:]), nil }

func (d *digest) UnmarshalText(b []byte) error {
	if len(b) != hex.EncodedLen(len(d)) {
		return fmt.Errorf("digest of %d hex digits", len(b))
	}
	_, err := hex.Decode(d[:], b)
	return err
}

// versionsDomain opens the chain of version records.
const versionsDomain = "kmsring v1 versions\x00"

// chainStart is the digest of no versions of key id.
func chainStart(id [16]byte) digest {
	h := sha256.New()
	h.Write([]byte(versionsDomain))
	h.Write(id[:])
	return digest(h.Sum(nil))
}

// chainNext extends the digest prev of versions 1..n-1 with version n's
// record data: SHA-256(prev || n || len(data) || data). Every field has a
// fixed length or a length prefix, so the encoding is injective, and
// SHA-256's collision resistance makes the final digest bind every record's
// exact bytes in order.
func chainNext(prev digest, n uint32, data []byte) digest {
	var hdr [sha256.Size + 8]byte
	copy(hdr[:], prev[:])
	binary.BigEndian.PutUint32(hdr[sha256.Size:], n)
	binary.BigEndian.PutUint32(hdr[sha256.Size+4:], uint32(len(data)))
	h := sha256.New()
	h.Write(hdr[:])
	h.Write(data)
	return digest(h.Sum(nil))
}

// checkText reports whether s is valid UTF-8 of at most max bytes.
func checkText(s string, max int) bool { return len(s) <= max && utf8.ValidString(s) }
