package keyring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// KeyState is the state of a key as a whole (AWS KMS's KeyState), as
// opposed to the state of one of its versions.
//
//	Enabled --DisableKey--> Disabled --EnableKey--> Enabled
//	Enabled or Disabled --ScheduleKeyDeletion--> PendingDeletion
//	PendingDeletion --CancelKeyDeletion--> Disabled
//	PendingDeletion --(deletion date; DeleteIfDue)--> Deleted
//
// Only an enabled key encrypts, decrypts, generates data keys and rotates.
// A deleted key is a tombstone: every version's material and every alias is
// erased, and what remains (its ID, dates and version metadata) lets audit
// records and Describe still name it.
type KeyState uint8

// Key states.
const (
	KeyEnabled KeyState = iota + 1
	KeyDisabled
	KeyPendingDeletion
	KeyDeleted
)

var keyStateNames = map[KeyState]string{
	KeyEnabled:         "Enabled",
	KeyDisabled:        "Disabled",
	KeyPendingDeletion: "PendingDeletion",
	KeyDeleted:         "Deleted",
}

// String returns AWS KMS's name of the state: "Enabled", "Disabled",
// "PendingDeletion", or "Deleted".
func (s KeyState) String() string {
	if n, ok := keyStateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("KeyState(%d)", uint8(s))
}

// Errors of key state.
var (
	// ErrKeyDisabled reports a cryptographic operation or rotation on a
	// disabled key.
	ErrKeyDisabled = errors.New("keyring: key disabled")
	// ErrKeyPendingDeletion reports an operation on a key that is pending
	// deletion: only Describe and CancelKeyDeletion are allowed.
	ErrKeyPendingDeletion = errors.New("keyring: key pending deletion")
)

// Deletion waiting periods, as AWS KMS allows them.
const (
	MinDeletionWindow     = 7 * 24 * time.Hour
	MaxDeletionWindow     = 30 * 24 * time.Hour
	DefaultDeletionWindow = MaxDeletionWindow
)

func (d *keyDoc) keyState() KeyState {
	s, _ := lookupName(keyStateNames, d.State)
	return s
}

// keyStateError returns why a key in state s cannot be used: nil when enabled.
func (k *Keyring) keyStateError(s KeyState) error {
	switch s {
	case KeyEnabled:
		return nil
	case KeyDisabled:
		return fmt.Errorf("%w: key %s", ErrKeyDisabled, k.id)
	case KeyPendingDeletion:
		return fmt.Errorf("%w: key %s", ErrKeyPendingDeletion, k.id)
	default:
		return fmt.Errorf("%w: key %s was deleted", ErrKeyNotFound, k.id)
	}
}

// keyUsable reports why the key cannot be used for a cryptographic
// operation, if it cannot; it reads the state this handle last saw, without
// a lock.
func (k *Keyring) keyUsable() error {
	return k.keyStateError(KeyState(k.state.Load()))
}

// changeable reports why the key's settings cannot be changed in doc's
// state: a key pending deletion or deleted only allows cancelling or
// describing.
func (k *Keyring) changeable(doc *keyDoc) error {
	if s := doc.keyState(); s == KeyPendingDeletion || s == KeyDeleted {
		return k.keyStateError(s)
	}
	return nil
}

// setKeyState applies a key state transition and audits it.
func (k *Keyring) setKeyState(ctx context.Context, op Operation, fn func(doc *keyDoc, now time.Time) error) error {
	err := k.mutate(ctx, string(op), func(doc *keyDoc, _ []*version, now time.Time) ([]*version, error) {
		return nil, fn(doc, now)
	})
	if err == errNoChange {
		err = nil
	}
	return k.audit(ctx, AuditEvent{Operation: op, Err: err})
}

// DisableKey disables the key: until EnableKey, every cryptographic
// operation fails with ErrKeyDisabled and automatic rotation pauses (a key
// whose rotation fell due meanwhile rotates when it is enabled again, as in
// AWS KMS). Disabling a disabled key does nothing. Other handles, in this
// process or others, see the change when they reload (Describe, Refresh,
// Watch).
func (k *Keyring) DisableKey(ctx context.Context) error {
	return k.setKeyState(ctx, OpDisableKey, func(doc *keyDoc, _ time.Time) error {
		switch doc.keyState() {
		case KeyDisabled:
			return errNoChange
		case KeyEnabled:
			doc.State = KeyDisabled.String()
			return nil
		}
		return k.changeable(doc)
	})
}

// EnableKey enables a disabled key. Enabling an enabled key does nothing; a
// key pending deletion must have its deletion cancelled first.
func (k *Keyring) EnableKey(ctx context.Context) error {
	return k.setKeyState(ctx, OpEnableKey, func(doc *keyDoc, _ time.Time) error {
		switch doc.keyState() {
		case KeyEnabled:
			return errNoChange
		case KeyDisabled:
			doc.State = KeyEnabled.String()
			return nil
		}
		return k.changeable(doc)
	})
}

// ScheduleKeyDeletion schedules the key for deletion after window (7 to 30
// days; zero means DefaultDeletionWindow) and returns the deletion date.
// Meanwhile the key is PendingDeletion: no cryptographic operation succeeds
// (ErrKeyPendingDeletion, each refusal audited), automatic rotation pauses,
// and CancelKeyDeletion restores it, disabled. At the deletion date the
// rotation scheduler (DeleteIfDue) erases every version's material and the
// key's aliases; data encrypted under the key can never be decrypted again.
// Scheduling a key already pending deletion fails with
// ErrKeyPendingDeletion.
func (k *Keyring) ScheduleKeyDeletion(ctx context.Context, window time.Duration) (time.Time, error) {
	if window == 0 {
		window = DefaultDeletionWindow
	}
	var at time.Time
	err := k.mutate(ctx, string(OpScheduleKeyDeletion), func(doc *keyDoc, _ []*version, now time.Time) ([]*version, error) {
		if window < MinDeletionWindow || window > MaxDeletionWindow {
			return nil, fmt.Errorf("%w: deletion window %v is outside 7 to 30 days", ErrInvalidArgument, window)
		}
		if err := k.changeable(doc); err != nil {
			return nil, err
		}
		at = now.Add(window)
		doc.State, doc.DeletionDate = KeyPendingDeletion.String(), at
		return nil, nil
	})
	if err = k.audit(ctx, AuditEvent{Operation: OpScheduleKeyDeletion, DestroyAt: at, Err: err}); err != nil {
		return time.Time{}, err
	}
	return at, nil
}

// CancelKeyDeletion cancels the scheduled deletion of the key, which
// becomes Disabled (as in AWS KMS: enable it with EnableKey). It fails with
// ErrInvalidArgument if the key is not pending deletion.
func (k *Keyring) CancelKeyDeletion(ctx context.Context) error {
	return k.setKeyState(ctx, OpCancelKeyDeletion, func(doc *keyDoc, _ time.Time) error {
		if s := doc.keyState(); s != KeyPendingDeletion {
			if s == KeyDeleted {
				return k.keyStateError(s)
			}
			return fmt.Errorf("%w: key %s is %s, not pending deletion", ErrInvalidArgument, k.id, s)
		}
		doc.State, doc.DeletionDate = KeyDisabled.String(), time.Time{}
		return nil
	})
}

// DeleteIfDue deletes the key if it is pending deletion and its deletion
// date has come at the keyring clock's time, and reports whether it did:
// every version's material is erased from the store, the aliases are
// removed (and free for other keys), and the key becomes a Deleted
// tombstone. The rotation scheduler calls it. Of several handles or
// processes calling it at once, one deletes; the others reload.
func (k *Keyring) DeleteIfDue(ctx context.Context) (bool, error) {
	err := k.mutateAliases(ctx, string(OpDeleteKey), func(aliases *[]string, doc *keyDoc, vs []*version, now time.Time) ([]*version, error) {
		if doc.keyState() != KeyPendingDeletion || now.Before(doc.DeletionDate) {
			return nil, errNoChange
		}
		var put []*version
		for _, v := range vs {
			if v.State != VersionDestroyed {
				put = append(put, v.withState(VersionDestroyed, now))
			}
		}
		*aliases = nil
		doc.State = KeyDeleted.String()
		doc.StateChanges++
		doc.RotationPeriod, doc.NextRotationAt = 0, time.Time{}
		return put, nil
	})
	if err == errNoChange {
		return false, nil
	}
	if err = k.audit(ctx, AuditEvent{Operation: OpDeleteKey, Err: err}); err != nil {
		return false, err
	}
	return true, nil
}

// DeletionDate returns when the key will be (or was) deleted, or the zero
// time, as this handle last saw it.
func (k *Keyring) DeletionDate() time.Time {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.doc.DeletionDate
}

// WithDescription gives the key a description at creation (at most 8192
// bytes of UTF-8, as AWS KMS allows). New only.
func WithDescription(d string) Option {
	return func(c *config) {
		if !checkText(d, MaxDescriptionSize) {
			c.fail("description must be valid UTF-8 of at most %d bytes", MaxDescriptionSize)
		}
		c.description = d
		c.creationOnly = append(c.creationOnly, "WithDescription")
	}
}

// SetDescription replaces the key's description (UpdateKeyDescription).
func (k *Keyring) SetDescription(ctx context.Context, d string) error {
	if !checkText(d, MaxDescriptionSize) {
		err := fmt.Errorf("%w: description must be valid UTF-8 of at most %d bytes", ErrInvalidArgument, MaxDescriptionSize)
		return k.audit(ctx, AuditEvent{Operation: OpUpdateKeyDescription, Err: err})
	}
	return k.setKeyState(ctx, OpUpdateKeyDescription, func(doc *keyDoc, _ time.Time) error {
		if err := k.changeable(doc); err != nil {
			return err
		}
		if doc.Description == d {
			return errNoChange
		}
		doc.Description = d
		return nil
	})
}

// WithKeyPolicy gives the key a policy at creation, in the same write that
// creates it (see PutKeyPolicy). New only.
func WithKeyPolicy(policy string) Option {
	return func(c *config) {
		if err := checkPolicy(policy); err != nil {
			c.errs = append(c.errs, err)
		}
		c.policy = policy
		c.creationOnly = append(c.creationOnly, "WithKeyPolicy")
	}
}

// checkPolicy reports a policy PutKeyPolicy and WithKeyPolicy refuse.
func checkPolicy(policy string) error {
	if !checkText(policy, MaxPolicySize) || policy != "" && !json.Valid([]byte(policy)) {
		return fmt.Errorf("%w: a key policy must be a JSON document of at most %d bytes", ErrInvalidArgument, MaxPolicySize)
	}
	return nil
}

// PutKeyPolicy stores the key's policy: a JSON document of at most
// MaxPolicySize bytes, kept opaque here and authenticated with the key's
// record (package kmsapi evaluates it). The empty string removes it.
func (k *Keyring) PutKeyPolicy(ctx context.Context, policy string) error {
	if err := checkPolicy(policy); err != nil {
		return k.audit(ctx, AuditEvent{Operation: OpPutKeyPolicy, Err: err})
	}
	return k.setKeyState(ctx, OpPutKeyPolicy, func(doc *keyDoc, _ time.Time) error {
		if err := k.changeable(doc); err != nil {
			return err
		}
		if doc.Policy == policy {
			return errNoChange
		}
		doc.Policy = policy
		return nil
	})
}

// KeyPolicy returns the key's policy as this handle last saw it ("" if
// none is set); Refresh or Describe first to read it through.
func (k *Keyring) KeyPolicy() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.doc.Policy
}

// sortedAliases returns a sorted, duplicate-free copy of aliases.
func sortedAliases(aliases []string) []string {
	a := slices.Clone(aliases)
	slices.Sort(a)
	return slices.Compact(a)
}

// KeyState returns the key's state as this handle last saw it, without
// reading the store.
func (k *Keyring) KeyState() KeyState { return KeyState(k.state.Load()) }

// Suspect reports whether this handle found its store holding an older or
// a forked record than it had seen (see ErrTampered), and so does not
// encrypt until it sees a newer one. Callers that reuse data keys (a cache)
// check it, as they check KeyState.
func (k *Keyring) Suspect() bool { return k.rolledBack.Load() }
