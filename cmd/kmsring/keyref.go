package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kmsring/kmsring/keyring"
)

// keyName turns what --key-id accepts (a key ID, a key ARN, an alias name
// or an alias ARN) into what keyring.Load takes: a key ID or an alias. An
// ARN must name this --region and --account.
func (a *app) keyName(ref string) (string, error) {
	if ref == "" {
		return "", usageError("--key-id must not be empty")
	}
	if !strings.HasPrefix(ref, "arn:") {
		return ref, nil
	}
	// arn:PARTITION:kms:REGION:ACCOUNT:key/ID or ...:alias/NAME
	parts := strings.SplitN(ref, ":", 6)
	if len(parts) != 6 || parts[2] != "kms" {
		return "", usageError("%q is not a KMS key or alias ARN", ref)
	}
	if parts[3] != a.region || parts[4] != a.account {
		return "", fmt.Errorf("%w: %s names region %s and account %s, not %s and %s (see --region and --account)", keyring.ErrKeyNotFound, ref, parts[3], parts[4], a.region, a.account)
	}
	res := parts[5]
	switch {
	case strings.HasPrefix(res, "key/"):
		return strings.TrimPrefix(res, "key/"), nil
	case strings.HasPrefix(res, "alias/"):
		return res, nil
	}
	return "", usageError("%q is not a KMS key or alias ARN", ref)
}

// loadKey opens the store and loads the key ref names, with the audit
// logger attached, and brings it up to date with the clock (see maintain).
// Keys loaded once are reused.
func (a *app) loadKey(ctx context.Context, ref string) (*keyring.Keyring, error) {
	name, err := a.keyName(ref)
	if err != nil {
		return nil, err
	}
	if err := a.open(ctx, false); errors.Is(err, errNoStore) {
		return nil, fmt.Errorf("%w: %q (%v)", keyring.ErrKeyNotFound, ref, err)
	} else if err != nil {
		return nil, err
	}
	if k, ok := a.keys[name]; ok {
		return k, nil
	}
	k, err := keyring.Load(ctx, a.st, name, a.keyOptions()...)
	if err != nil {
		return nil, a.explain(err)
	}
	a.maintain(ctx, k)
	if a.keys == nil {
		a.keys = map[string]*keyring.Keyring{}
	}
	a.keys[name], a.keys[k.ID()] = k, k
	return k, nil
}

// keyOptions are the options of every key kmsring loads or creates: the
// root key, the audit logger, and in tests a clock.
func (a *app) keyOptions() []keyring.Option {
	opts := []keyring.Option{keyring.WithRootKey(a.rk), keyring.WithAuditor(a.log)}
	if testClock != nil {
		if c := testClock(); c != nil {
			opts = append(opts, keyring.WithClock(c))
		}
	}
	return opts
}

// testClock, set only by the tests, returns the clock keys run on (nil for
// the real one), so that scripts can see rotations and deletions fall due.
var testClock func() keyring.Clock

// maintain does for the key what the rotation scheduler (RunOnce) would
// have done by now, so that a user of the command alone needs no daemon: a
// deletion whose date has come, a due automatic rotation, due version
// destructions. Each is recorded in the audit log as the scheduler's work
// would be. Failures are left to the operation that follows, which meets
// the same store.
func (a *app) maintain(ctx context.Context, k *keyring.Keyring) {
	if deleted, _ := k.DeleteIfDue(ctx); deleted {
		return
	}
	if k.KeyState() == keyring.KeyEnabled {
		k.RotateIfDue(ctx)
	}
	k.DestroyDueVersions(ctx)
}

// explain rewords errors whose library message does not say what an
// operator should do.
func (a *app) explain(err error) error {
	if err != nil && errors.Is(err, keyring.ErrRootKey) {
		return fmt.Errorf("the root key file %s cannot open the store %s: %w", a.rootKeyPath, a.stDesc, err)
	}
	return err
}

// record writes an audit record for an operation the keyring does not
// record itself: reads (DescribeKey, ListKeys, ...) and requests that
// failed before a key was found, as CloudTrail records them.
func (a *app) record(ctx context.Context, op string, keyID string, err error) {
	if a.log == nil {
		return
	}
	a.log.Audit(ctx, keyring.AuditEvent{Time: time.Now().UTC(), Operation: keyring.Operation(op), KeyID: keyID, Err: err})
}

// describe reads k's metadata through to the store, recording the read as
// op in the audit log.
func (a *app) describe(ctx context.Context, op string, k *keyring.Keyring) (keyring.Metadata, error) {
	md, err := k.Describe(ctx)
	a.record(ctx, op, k.ID(), err)
	return md, err
}
