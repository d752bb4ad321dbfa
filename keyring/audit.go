package keyring

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Operation names an audited operation, as AWS CloudTrail names KMS API
// calls: AWS's API name wherever AWS has one (an alias added is
// "CreateAlias", however it was asked for), so that the library, the
// command and the endpoint record one operation under one name. A rotation,
// automatic or on demand, is "RotateKey", the event CloudTrail records for
// the rotation itself, with its origin. The rest (version states, root key
// rotation) have no AWS counterpart and are named in AWS's style.
type Operation string

// Audited operations.
const (
	OpCreateKey                       Operation = "CreateKey"
	OpGenerateDataKey                 Operation = "GenerateDataKey"
	OpGenerateDataKeyWithoutPlaintext Operation = "GenerateDataKeyWithoutPlaintext"
	OpEncrypt                         Operation = "Encrypt"
	OpDecrypt                         Operation = "Decrypt"
	OpReEncrypt                       Operation = "ReEncrypt"
	// OpRotateKey is a rotation; AuditEvent.Origin says automatic or on
	// demand.
	OpRotateKey                  Operation = "RotateKey"
	OpEnableKeyRotation          Operation = "EnableKeyRotation"
	OpDisableKeyRotation         Operation = "DisableKeyRotation"
	OpDisableVersion             Operation = "DisableKeyVersion"
	OpEnableVersion              Operation = "EnableKeyVersion"
	OpScheduleVersionDestruction Operation = "ScheduleKeyVersionDestruction"
	OpCancelVersionDestruction   Operation = "CancelKeyVersionDestruction"
	OpDestroyVersion             Operation = "DestroyKeyVersion"
	OpAddAlias                   Operation = "CreateAlias"
	OpRemoveAlias                Operation = "DeleteAlias"
	OpRotateRootKey              Operation = "RotateRootKey"
	OpDisableKey                 Operation = "DisableKey"
	OpEnableKey                  Operation = "EnableKey"
	OpScheduleKeyDeletion        Operation = "ScheduleKeyDeletion"
	OpCancelKeyDeletion          Operation = "CancelKeyDeletion"
	// OpDeleteKey is the deletion of a key at its deletion date.
	OpDeleteKey            Operation = "DeleteKey"
	OpUpdateKeyDescription Operation = "UpdateKeyDescription"
	OpPutKeyPolicy         Operation = "PutKeyPolicy"
)

// AuditEvent describes one operation for an Auditor. It never holds key
// material or plaintext.
type AuditEvent struct {
	Time      time.Time
	Operation Operation
	KeyID     string
	// Version is the version the operation used or acted on; for a
	// rotation, the new version, and PreviousVersion the one it replaced.
	Version         uint32
	PreviousVersion uint32
	// Origin is set for rotations.
	Origin Origin
	// Alias is set for alias changes.
	Alias string
	// DestroyAt is set when a version's destruction is scheduled (when it
	// will happen) or carried out (when it did).
	DestroyAt time.Time
	// EncryptionContext is the context the operation was given; for a
	// ReEncrypt, the destination context. An Auditor must not modify it.
	EncryptionContext map[string]string
	// SourceEncryptionContext is set for a ReEncrypt: the context the
	// source blob was opened with. An Auditor must not modify it.
	SourceEncryptionContext map[string]string
	// Err is nil if the operation succeeded.
	Err error
}

// Auditor receives an AuditEvent for every operation of the keyrings it is
// given to with WithAuditor, after the operation and from the caller's
// goroutine: it must be safe for concurrent use and should return quickly.
// If it returns an error, the operation fails with it (the fail-closed
// choice): a data key or plaintext is not returned, but a change to the key
// (a rotation, a state change) has already been stored, as after a network
// failure, and Describe shows it. An Auditor that must never fail an
// operation returns nil and deals with its own failures. Package audit has
// the implementations.
type Auditor interface {
	Audit(ctx context.Context, e AuditEvent) error
}

// WithAuditor adds an Auditor to the keyring. Several may be added; each
// sees every event, in the order given.
func WithAuditor(a Auditor) Option {
	return func(c *config) {
		if a == nil {
			c.fail("nil auditor")
		}
		c.auditors = append(c.auditors, a)
	}
}

// ErrAudit wraps the error of an Auditor that refused an operation.
var ErrAudit = errors.New("keyring: audit record not written")

// audit sends e to the keyring's auditors, filling in its time and key ID,
// and returns the error the operation should return: e.Err, or the first
// auditor's error if the operation itself succeeded.
func (k *Keyring) audit(ctx context.Context, e AuditEvent) error {
	if len(k.auditors) == 0 {
		return e.Err
	}
	e.Time = k.now()
	e.KeyID = k.id
	var first error
	for _, a := range k.auditors {
		if err := a.Audit(ctx, e); err != nil && first == nil {
			first = err
		}
	}
	if e.Err != nil || first == nil {
		return e.Err
	}
	return fmt.Errorf("%w: %s: %w", ErrAudit, e.Operation, first)
}
