package kmsapi

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/kmsring/kmsring/keyring"
)

// Key rotation: EnableKeyRotation, DisableKeyRotation,
// GetKeyRotationStatus, RotateKeyOnDemand, ListKeyRotations.

const (
	day                = 24 * time.Hour
	defaultRotationDay = 365
	minRotationDays    = 90
	maxRotationDays    = 2560
)

// usableForRotation refuses keys AWS refuses rotation changes on: a
// disabled key (DisabledException) and one pending deletion.
func usableForRotation(e *keyEntry) error {
	switch e.k.KeyState() {
	case keyring.KeyDisabled:
		return &apiError{Type: "DisabledException", Message: e.arn + " is disabled."}
	case keyring.KeyPendingDeletion:
		return errInvalidState(e.arn + " is pending deletion.")
	}
	return nil
}

type enableKeyRotationInput struct {
	KeyId                string
	RotationPeriodInDays *int
}

func (h *Handler) enableKeyRotation(ctx context.Context, c *caller, in *enableKeyRotationInput) (any, error) {
	days := defaultRotationDay
	if in.RotationPeriodInDays != nil {
		days = *in.RotationPeriodInDays
	}
	if days < minRotationDays || days > maxRotationDays {
		return nil, errValidation(fmt.Sprintf("RotationPeriodInDays must be between %d and %d", minRotationDays, maxRotationDays))
	}
	return h.rotationAction(ctx, c, in.KeyId, "kms:EnableKeyRotation", func(k *keyring.Keyring) error {
		return k.EnableRotation(ctx, time.Duration(days)*day)
	})
}

func (h *Handler) disableKeyRotation(ctx context.Context, c *caller, in *keyIDInput) (any, error) {
	return h.rotationAction(ctx, c, in.KeyId, "kms:DisableKeyRotation", func(k *keyring.Keyring) error {
		return k.DisableRotation(ctx)
	})
}

func (h *Handler) rotationAction(ctx context.Context, c *caller, keyID, action string, fn func(k *keyring.Keyring) error) (any, error) {
	e, err := h.authorized(ctx, c, keyID, action, nil)
	if err != nil {
		return nil, err
	}
	if err := usableForRotation(e); err != nil {
		return nil, err
	}
	return nil, fn(e.k)
}

type rotationStatusOutput struct {
	KeyRotationEnabled   bool
	KeyId                string
	RotationPeriodInDays int    `json:",omitempty"`
	NextRotationDate     *epoch `json:",omitempty"`
}

// periodDays is a rotation period in whole days, at least 1 (the library
// allows any period; AWS speaks in days).
func periodDays(d time.Duration) int {
	return max(1, int((d+day/2)/day))
}

func (h *Handler) getKeyRotationStatus(ctx context.Context, c *caller, in *keyIDInput) (any, error) {
	e, err := h.authorized(ctx, c, in.KeyId, "kms:GetKeyRotationStatus", nil)
	if err != nil {
		return nil, err
	}
	md, err := e.k.Describe(ctx)
	if err != nil {
		return nil, err
	}
	out := rotationStatusOutput{KeyRotationEnabled: md.RotationEnabled, KeyId: e.arn}
	if md.RotationEnabled {
		out.RotationPeriodInDays = periodDays(md.RotationPeriod)
		out.NextRotationDate = epochOf(md.NextRotationAt)
	}
	return out, nil
}

func (h *Handler) rotateKeyOnDemand(ctx context.Context, c *caller, in *keyIDInput) (any, error) {
	e, err := h.authorized(ctx, c, in.KeyId, "kms:RotateKeyOnDemand", nil)
	if err != nil {
		return nil, err
	}
	if err := usableForRotation(e); err != nil {
		return nil, err
	}
	if _, err := e.k.Rotate(ctx); err != nil {
		return nil, err
	}
	return keyIDOutput{e.k.ID()}, nil
}

type listKeyRotationsInput struct {
	KeyId string
	pageInput
}

type rotation struct {
	KeyId        string
	RotationDate *epoch
	RotationType string
}

type listKeyRotationsOutput struct {
	Rotations  []rotation
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

func (h *Handler) listKeyRotations(ctx context.Context, c *caller, in *listKeyRotationsInput) (any, error) {
	limit := 100
	if in.Limit != nil {
		if *in.Limit < 1 || *in.Limit > 1000 {
			return nil, errValidation("Limit must be between 1 and 1000")
		}
		limit = *in.Limit
	}
	var after uint32
	if in.Marker != "" {
		n, err := strconv.ParseUint(in.Marker, 10, 32)
		if err != nil {
			return nil, &apiError{Type: "InvalidMarkerException", Message: "the marker is not one this endpoint returned"}
		}
		after = uint32(n)
	}
	e, err := h.authorized(ctx, c, in.KeyId, "kms:ListKeyRotations", nil)
	if err != nil {
		return nil, err
	}
	vs, err := e.k.ListRotations(ctx, after, limit+1)
	if err != nil {
		return nil, err
	}
	out := listKeyRotationsOutput{Rotations: []rotation{}}
	if len(vs) > limit {
		vs = vs[:limit]
		out.Truncated = true
		out.NextMarker = strconv.FormatUint(uint64(vs[limit-1].Number), 10)
	}
	for _, v := range vs {
		typ := "AUTOMATIC"
		if v.Origin == keyring.OriginOnDemand {
			typ = "ON_DEMAND"
		}
		out.Rotations = append(out.Rotations, rotation{e.k.ID(), epochOf(v.CreatedAt), typ})
	}
	return out, nil
}
