package keyring

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Origin says how a version came to be.
type Origin uint8

// Origins of a version.
const (
	// OriginInitial is version 1, made when the key was created.
	OriginInitial Origin = iota + 1
	// OriginAutomatic is a version made by scheduled rotation (RotateIfDue).
	OriginAutomatic
	// OriginOnDemand is a version made by Rotate.
	OriginOnDemand
)

var originNames = map[Origin]string{
	OriginInitial:   "initial",
	OriginAutomatic: "automatic",
	OriginOnDemand:  "on-demand",
}

// String returns "initial", "automatic" or "on-demand".
func (o Origin) String() string {
	if s, ok := originNames[o]; ok {
		return s
	}
	return fmt.Sprintf("Origin(%d)", uint8(o))
}

// VersionState is the lifecycle state of a version.
type VersionState uint8

// States of a version.
const (
	// VersionEnabled versions decrypt, and the current one encrypts.
	VersionEnabled VersionState = iota + 1
	// VersionDisabled versions neither encrypt nor decrypt until enabled.
	VersionDisabled
	// VersionPendingDestruction versions are disabled and will be destroyed
	// at the end of their waiting period unless the destruction is cancelled.
	VersionPendingDestruction
	// VersionDestroyed versions have had their material erased; only their
	// metadata remains.
	VersionDestroyed
)

var stateNames = map[VersionState]string{
	VersionEnabled:            "enabled",
	VersionDisabled:           "disabled",
	VersionPendingDestruction: "pending-destruction",
	VersionDestroyed:          "destroyed",
}

// String returns "enabled", "disabled", "pending-destruction" or
// "destroyed".
func (s VersionState) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("VersionState(%d)", uint8(s))
}

// Version describes one version of a key. It never holds key material.
type Version struct {
	// Number is the version number; versions are numbered 1, 2, 3, ...
	// without gaps, and a number is never reused.
	Number    uint32
	CreatedAt time.Time
	Origin    Origin
	State     VersionState
	// DestroyAt is when a version pending destruction will be destroyed,
	// or when a destroyed version was; zero otherwise.
	DestroyAt time.Time
}

// Metadata describes a key, as Describe returns it.
type Metadata struct {
	KeyID     string
	Aliases   []string
	CreatedAt time.Time
	// CurrentVersion is the newest version, the one that encrypts.
	CurrentVersion uint32
	// Versions lists every version, oldest first.
	Versions []Version
	// RotationEnabled reports whether automatic rotation is on;
	// RotationPeriod is zero when it is off.
	RotationEnabled bool
	RotationPeriod  time.Duration
	// LastRotatedAt is the time of the newest rotation, automatic or on
	// demand; zero before the first. NextRotationAt is when automatic
	// rotation is next due; zero when rotation is off.
	LastRotatedAt, NextRotationAt time.Time
	// KeyState is the state of the key as a whole; DeletionDate is when a
	// key pending deletion will be deleted, or when a deleted key was, and
	// zero otherwise.
	KeyState     KeyState
	DeletionDate time.Time
	// Description is the key's description (WithDescription,
	// SetDescription).
	Description string
	// ReadAt is the keyring clock's time when Describe or Cached returned
	// this metadata: what a check made on it (an overdue alarm) is dated.
	ReadAt time.Time
}

// KeySpec selects the size of a generated data key.
type KeySpec uint8

// Data key specs.
const (
	// AES256 is a 32-byte data key, the default.
	AES256 KeySpec = iota
	// AES128 is a 16-byte data key.
	AES128
)

func (s KeySpec) size() int {
	if s == AES128 {
		return 16
	}
	return 32
}

// DataKey is a data key returned by GenerateDataKey: the plaintext key to
// encrypt with, and the same key wrapped under a version of the keyring, to
// store beside the data. Formatting a DataKey with fmt never prints the
// plaintext key.
type DataKey struct {
	// KeyID and Version name the key version that wrapped Ciphertext.
	KeyID   string
	Version uint32
	// Plaintext is the data key; nil from GenerateDataKeyWithoutPlaintext.
	Plaintext []byte
	// Ciphertext is the data key blob; Decrypt returns Plaintext from it.
	Ciphertext []byte
}

// Destroy overwrites the plaintext data key with zeros and drops it. Go may
// have copied the key elsewhere (the garbage collector moves nothing, but
// callers' copies and registers are out of reach), so this limits exposure
// rather than guaranteeing erasure.
func (d *DataKey) Destroy() {
	clear(d.Plaintext)
	d.Plaintext = nil
}

// String describes the data key without its plaintext.
func (d DataKey) String() string {
	pt := "nil"
	if d.Plaintext != nil {
		pt = fmt.Sprintf("[%d bytes redacted]", len(d.Plaintext))
	}
	return fmt.Sprintf("DataKey{KeyID: %s, Version: %d, Plaintext: %s, Ciphertext: [%d bytes]}",
		d.KeyID, d.Version, pt, len(d.Ciphertext))
}

// GoString is String, so %#v does not print the plaintext either.
func (d DataKey) GoString() string { return d.String() }

// Format writes String for every verb, so no verb prints the plaintext.
func (d DataKey) Format(f fmt.State, _ rune) { io.WriteString(f, d.String()) }

// MarshalJSON encodes KeyID, Version and Ciphertext (base64), never
// Plaintext: {"KeyID":...,"Version":...,"Ciphertext":...}. Unmarshalling
// it gives a DataKey without Plaintext, which Decrypt of Ciphertext
// restores.
func (d DataKey) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		KeyID      string
		Version    uint32
		Ciphertext []byte
	}{d.KeyID, d.Version, d.Ciphertext})
}

// LogValue is what slog records for a data key: its key ID, version and
// the sizes of its parts, never the plaintext.
func (d DataKey) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("key_id", d.KeyID),
		slog.Any("version", d.Version),
		slog.Int("plaintext_bytes", len(d.Plaintext)),
		slog.Int("ciphertext_bytes", len(d.Ciphertext)),
	)
}

// String describes the keyring by its key ID: "keyring.Keyring{KeyID:
// ...}". A Keyring prints (fmt, slog) only this, never its root key or
// loaded versions.
func (k *Keyring) String() string { return "keyring.Keyring{KeyID: " + k.id + "}" }

// GoString is String, so %#v prints nothing else.
func (k *Keyring) GoString() string { return k.String() }

// Format writes String for every verb.
func (k *Keyring) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// LogValue is what slog records for a keyring: its key ID.
func (k *Keyring) LogValue() slog.Value { return slog.GroupValue(slog.String("key_id", k.id)) }
