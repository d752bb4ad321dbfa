package keyring

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Rotate adds a new version on demand and makes it current. It sets
// LastRotatedAt but neither enables automatic rotation nor moves
// NextRotationAt (as AWS KMS and Cloud KMS do). Concurrent rotations through
// any number of handles on one store each get their own version; numbers
// stay dense.
func (k *Keyring) Rotate(ctx context.Context) (Version, error) {
	v, err := k.rotate(ctx, OriginOnDemand)
	if err != nil {
		return Version{}, k.audit(ctx, AuditEvent{Operation: OpRotateKey, Origin: OriginOnDemand, Err: err})
	}
	if err := k.audit(ctx, AuditEvent{Operation: OpRotateKey, Origin: OriginOnDemand, Version: v.Number, PreviousVersion: v.Number - 1}); err != nil {
		return Version{}, err
	}
	return v.Version, nil
}

// RotateIfDue adds a version if automatic rotation is enabled and due at the
// keyring clock's current time, and reports whether it did. It returns the
// current version either way. The next rotation is then due one period after
// the previous due time, or one period from now if that time has also
// passed, so downtime over many periods yields one catch-up rotation. Of
// several handles or processes calling it at once, exactly one rotates; the
// others reload and report false.
func (k *Keyring) RotateIfDue(ctx context.Context) (Version, bool, error) {
	v, err := k.rotate(ctx, OriginAutomatic)
	if errors.Is(err, errNoChange) {
		k.mu.RLock()
		cur := k.versions[len(k.versions)-1].Version
		k.mu.RUnlock()
		return cur, false, nil
	}
	if err != nil {
		return Version{}, false, k.audit(ctx, AuditEvent{Operation: OpRotateKey, Origin: OriginAutomatic, Err: err})
	}
	if err := k.audit(ctx, AuditEvent{Operation: OpRotateKey, Origin: OriginAutomatic, Version: v.Number, PreviousVersion: v.Number - 1}); err != nil {
		return v.Version, true, err
	}
	return v.Version, true, nil
}

func (k *Keyring) rotate(ctx context.Context, origin Origin) (*version, error) {
	var nv *version
	err := k.mutate(ctx, "rotate", func(doc *keyDoc, _ []*version, now time.Time) ([]*version, error) {
		if s := doc.keyState(); s != KeyEnabled {
			if origin == OriginAutomatic {
				return nil, errNoChange // paused; due again once enabled
			}
			return nil, k.keyStateError(s)
		}
		if origin == OriginAutomatic {
			if doc.RotationPeriod == 0 || now.Before(doc.NextRotationAt) {
				return nil, errNoChange
			}
			next := doc.NextRotationAt.Add(doc.RotationPeriod)
			if !next.After(now) {
				next = now.Add(doc.RotationPeriod)
			}
			doc.NextRotationAt = next
		}
		if doc.Current == math.MaxUint32 {
			return nil, fmt.Errorf("keyring: key %s has the maximum number of versions", k.id)
		}
		v, err := k.newVersion(doc.Current+1, origin, now)
		if err != nil {
			return nil, err
		}
		doc.Current++
		doc.LastRotatedAt = now
		nv = v
		return []*version{v}, nil
	})
	return nv, err
}

// EnableRotation turns on automatic rotation with period d, which must be
// positive: the next rotation is due d from now. Calling it again restarts
// the schedule with the new period. Any positive period is accepted; AWS KMS
// allows 90 to 2560 days.
func (k *Keyring) EnableRotation(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		err := fmt.Errorf("%w: rotation period must be positive, not %v", ErrInvalidArgument, d)
		return k.audit(ctx, AuditEvent{Operation: OpEnableKeyRotation, Err: err})
	}
	err := k.mutate(ctx, "enable rotation", func(doc *keyDoc, _ []*version, now time.Time) ([]*version, error) {
		if s := doc.keyState(); s != KeyEnabled {
			return nil, k.keyStateError(s)
		}
		doc.RotationPeriod = d
		doc.NextRotationAt = now.Add(d)
		return nil, nil
	})
	return k.audit(ctx, AuditEvent{Operation: OpEnableKeyRotation, Err: err})
}

// DisableRotation turns off automatic rotation; the period and next rotation
// time read zero afterwards, and the key is never overdue.
func (k *Keyring) DisableRotation(ctx context.Context) error {
	err := k.mutate(ctx, "disable rotation", func(doc *keyDoc, _ []*version, _ time.Time) ([]*version, error) {
		if s := doc.keyState(); s != KeyEnabled {
			return nil, k.keyStateError(s)
		}
		doc.RotationPeriod = 0
		doc.NextRotationAt = time.Time{}
		return nil, nil
	})
	return k.audit(ctx, AuditEvent{Operation: OpDisableKeyRotation, Err: err})
}
