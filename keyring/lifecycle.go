package keyring

import (
	"context"
	"fmt"
	"time"
)

// DefaultDestructionWait is the waiting period ScheduleVersionDestruction
// applies when given zero: 30 days, as AWS KMS and Cloud KMS default to.
const DefaultDestructionWait = 30 * 24 * time.Hour

// withState returns a copy of v in state s, sharing v's material (and its
// unwrapped AEAD if v has one), or without material if s is destroyed.
func (v *version) withState(s VersionState, destroyAt time.Time) *version {
	nv := &version{Version: v.Version, wrapped: v.wrapped}
	nv.State, nv.DestroyAt = s, destroyAt
	if s == VersionDestroyed {
		nv.wrapped = nil
	}
	nv.data = nv.marshal(nv.wrapped)
	return nv
}

// withMaterial returns a copy of v whose material is wrapped as wrapped.
func (v *version) withMaterial(wrapped []byte) *version {
	nv := &version{Version: v.Version, wrapped: wrapped}
	nv.data = nv.marshal(wrapped)
	return nv
}

// changeVersion applies fn to version n in a compare-and-swap update and
// returns the changed version. fn returns the new state and destruction
// time, or errNoChange to leave the version as it is.
func (k *Keyring) changeVersion(ctx context.Context, op Operation, n uint32, fn func(v *version, current bool, now time.Time) (VersionState, time.Time, error)) (Version, error) {
	if _, err := k.lookup(ctx, n); err != nil {
		return Version{}, k.audit(ctx, AuditEvent{Operation: op, Version: n, Err: err})
	}
	var out Version
	err := k.mutate(ctx, string(op), func(doc *keyDoc, vs []*version, now time.Time) ([]*version, error) {
		if err := k.changeable(doc); err != nil {
			return nil, err
		}
		if int(n) > len(vs) {
			return nil, fmt.Errorf("%w: key %s has no version %d", ErrUnknownVersion, k.id, n)
		}
		v := vs[n-1]
		out = v.Version
		state, at, err := fn(v, n == doc.Current, now)
		if err != nil {
			return nil, err
		}
		nv := v.withState(state, at)
		out = nv.Version
		doc.StateChanges++
		return []*version{nv}, nil
	})
	if err == errNoChange {
		err = nil
	}
	return out, k.audit(ctx, AuditEvent{Operation: op, Version: n, DestroyAt: out.DestroyAt, Err: err})
}

func (k *Keyring) stateError(v *version, want string) error {
	if v.State == VersionDestroyed {
		return fmt.Errorf("%w: key %s version %d", ErrVersionDestroyed, k.id, v.Number)
	}
	return fmt.Errorf("%w: key %s version %d is %s; %s", ErrInvalidArgument, k.id, v.Number, v.State, want)
}

// DisableVersion disables version n: until EnableVersion, nothing encrypts
// or decrypts under it (ErrVersionDisabled). The current version cannot be
// disabled; rotate first. Disabling a disabled version does nothing.
func (k *Keyring) DisableVersion(ctx context.Context, n uint32) error {
	_, err := k.changeVersion(ctx, OpDisableVersion, n, func(v *version, current bool, _ time.Time) (VersionState, time.Time, error) {
		switch {
		case current:
			return 0, time.Time{}, fmt.Errorf("%w: version %d is the current version of key %s; rotate before disabling it", ErrInvalidArgument, n, k.id)
		case v.State == VersionDisabled:
			return 0, time.Time{}, errNoChange
		case v.State != VersionEnabled:
			return 0, time.Time{}, k.stateError(v, "only an enabled version can be disabled")
		}
		return VersionDisabled, time.Time{}, nil
	})
	return err
}

// EnableVersion re-enables a disabled version n. Enabling an enabled
// version does nothing; a version pending destruction must have its
// destruction cancelled first.
func (k *Keyring) EnableVersion(ctx context.Context, n uint32) error {
	_, err := k.changeVersion(ctx, OpEnableVersion, n, func(v *version, _ bool, _ time.Time) (VersionState, time.Time, error) {
		switch v.State {
		case VersionEnabled:
			return 0, time.Time{}, errNoChange
		case VersionDisabled:
			return VersionEnabled, time.Time{}, nil
		}
		return 0, time.Time{}, k.stateError(v, "cancel its destruction first")
	})
	return err
}

// ScheduleVersionDestruction schedules version n, which must not be the
// current version, for destruction after wait (DefaultDestructionWait if
// zero; negative is ErrInvalidArgument) and returns when that will be.
// Meanwhile the version is unusable (ErrVersionDisabled) and
// CancelVersionDestruction restores it, disabled. At the end of the wait
// DestroyDueVersions, which the rotation scheduler calls, erases the
// material from the store; the version's metadata stays, and decrypting
// under it fails with ErrVersionDestroyed for good.
func (k *Keyring) ScheduleVersionDestruction(ctx context.Context, n uint32, wait time.Duration) (time.Time, error) {
	if wait < 0 {
		return time.Time{}, fmt.Errorf("%w: negative destruction wait %v", ErrInvalidArgument, wait)
	}
	if wait == 0 {
		wait = DefaultDestructionWait
	}
	v, err := k.changeVersion(ctx, OpScheduleVersionDestruction, n, func(v *version, current bool, now time.Time) (VersionState, time.Time, error) {
		switch {
		case current:
			return 0, time.Time{}, fmt.Errorf("%w: version %d is the current version of key %s; rotate before destroying it", ErrInvalidArgument, n, k.id)
		case v.State == VersionEnabled, v.State == VersionDisabled:
			return VersionPendingDestruction, now.Add(wait), nil
		}
		return 0, time.Time{}, k.stateError(v, "it is already scheduled or destroyed")
	})
	if err != nil {
		return time.Time{}, err
	}
	return v.DestroyAt, nil
}

// CancelVersionDestruction cancels the scheduled destruction of version n,
// which becomes disabled (enable it with EnableVersion).
func (k *Keyring) CancelVersionDestruction(ctx context.Context, n uint32) error {
	_, err := k.changeVersion(ctx, OpCancelVersionDestruction, n, func(v *version, _ bool, _ time.Time) (VersionState, time.Time, error) {
		if v.State != VersionPendingDestruction {
			return 0, time.Time{}, k.stateError(v, "only a version pending destruction can be cancelled")
		}
		return VersionDisabled, time.Time{}, nil
	})
	return err
}

// DestroyDueVersions destroys every version whose destruction is due at the
// keyring clock's time: its material is erased from the store (the root-key
// wrapped copy is deleted; the version record keeps only metadata) and
// from this handle. It returns the versions it destroyed.
func (k *Keyring) DestroyDueVersions(ctx context.Context) ([]Version, error) {
	var destroyed []Version
	err := k.mutate(ctx, string(OpDestroyVersion), func(doc *keyDoc, vs []*version, now time.Time) ([]*version, error) {
		destroyed = destroyed[:0]
		var put []*version
		for _, v := range vs {
			if v.State == VersionPendingDestruction && !now.Before(v.DestroyAt) {
				nv := v.withState(VersionDestroyed, now)
				put = append(put, nv)
				destroyed = append(destroyed, nv.Version)
			}
		}
		if len(put) == 0 {
			return nil, errNoChange
		}
		doc.StateChanges++
		return put, nil
	})
	if err == errNoChange {
		return nil, nil
	}
	if err != nil {
		return nil, k.audit(ctx, AuditEvent{Operation: OpDestroyVersion, Err: err})
	}
	for _, v := range destroyed {
		if aerr := k.audit(ctx, AuditEvent{Operation: OpDestroyVersion, Version: v.Number, DestroyAt: v.DestroyAt}); aerr != nil {
			err = aerr
		}
	}
	return destroyed, err
}

// NextDestructionAt returns the earliest time a version pending destruction
// is due, or the zero time if none is, as this handle last saw it.
func (k *Keyring) NextDestructionAt() time.Time {
	k.mu.RLock()
	defer k.mu.RUnlock()
	var next time.Time
	for _, v := range k.versions {
		if v.State == VersionPendingDestruction && (next.IsZero() || v.DestroyAt.Before(next)) {
			next = v.DestroyAt
		}
	}
	return next
}

// ListRotations returns the key's rotations (the versions made by automatic
// or on-demand rotation, with their dates and origins) after version after,
// oldest first, at most limit of them (all if limit <= 0), reading through
// to the store. To page, pass the last Number returned as after.
func (k *Keyring) ListRotations(ctx context.Context, after uint32, limit int) ([]Version, error) {
	if err := k.Refresh(ctx); err != nil {
		return nil, err
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	var out []Version
	for _, v := range k.versions[min(int(after), len(k.versions)):] {
		if v.Origin == OriginInitial {
			continue
		}
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, v.Version)
	}
	return out, nil
}
