package kmsapi

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/kmsring/kmsring/keyring"
)

// Key management: CreateKey, DescribeKey, ListKeys, UpdateKeyDescription,
// EnableKey, DisableKey, ScheduleKeyDeletion, CancelKeyDeletion.

const (
	symmetricDefault = "SYMMETRIC_DEFAULT"
	encryptDecrypt   = "ENCRYPT_DECRYPT"
)

type keyMetadata struct {
	AWSAccountId          string
	KeyId                 string
	Arn                   string
	CreationDate          *epoch `json:",omitempty"`
	Enabled               bool
	Description           string
	KeyUsage              string
	KeyState              string
	DeletionDate          *epoch `json:",omitempty"`
	Origin                string
	KeyManager            string
	CustomerMasterKeySpec string
	KeySpec               string
	EncryptionAlgorithms  []string
	MultiRegion           bool
}

func (h *Handler) metadata(md keyring.Metadata) keyMetadata {
	return keyMetadata{
		AWSAccountId:          h.account,
		KeyId:                 md.KeyID,
		Arn:                   h.keyARN(md.KeyID),
		CreationDate:          epochOf(md.CreatedAt),
		Enabled:               md.KeyState == keyring.KeyEnabled,
		Description:           md.Description,
		KeyUsage:              encryptDecrypt,
		KeyState:              md.KeyState.String(),
		DeletionDate:          epochOf(md.DeletionDate),
		Origin:                "AWS_KMS",
		KeyManager:            "CUSTOMER",
		CustomerMasterKeySpec: symmetricDefault,
		KeySpec:               symmetricDefault,
		EncryptionAlgorithms:  []string{symmetricDefault},
	}
}

type keyMetadataOutput struct{ KeyMetadata keyMetadata }

type createKeyInput struct {
	Description                    string
	KeyUsage                       string
	KeySpec                        string
	CustomerMasterKeySpec          string
	Origin                         string
	Policy                         *string
	BypassPolicyLockoutSafetyCheck bool
	MultiRegion                    bool
	CustomKeyStoreId               string
	XksKeyId                       string
	Tags                           []struct{ TagKey, TagValue string }
}

func (h *Handler) createKey(ctx context.Context, c *caller, in *createKeyInput) (any, error) {
	if err := authorizeAdmin(c, "kms:CreateKey"); err != nil {
		return nil, err
	}
	switch {
	case in.KeyUsage != "" && in.KeyUsage != encryptDecrypt:
		return nil, errUnsupported("only KeyUsage ENCRYPT_DECRYPT is supported")
	case in.KeySpec != "" && in.KeySpec != symmetricDefault, in.CustomerMasterKeySpec != "" && in.CustomerMasterKeySpec != symmetricDefault:
		return nil, errUnsupported("only KeySpec SYMMETRIC_DEFAULT is supported")
	case in.Origin != "" && in.Origin != "AWS_KMS":
		return nil, errUnsupported("only Origin AWS_KMS is supported")
	case in.MultiRegion:
		return nil, errUnsupported("multi-Region keys are not supported")
	case in.CustomKeyStoreId != "" || in.XksKeyId != "":
		return nil, errUnsupported("custom key stores are not supported")
	case len(in.Tags) > 0:
		return nil, errUnsupported("tags are not supported")
	}
	if in.Policy != nil {
		if err := ValidatePolicy(*in.Policy); err != nil {
			return nil, err
		}
	}
	opts := append(h.keyOptions(), keyring.WithStore(h.st))
	if in.Description != "" {
		opts = append(opts, keyring.WithDescription(in.Description))
	}
	if in.Policy != nil {
		opts = append(opts, keyring.WithKeyPolicy(*in.Policy))
	}
	k, err := keyring.New(ctx, opts...)
	if err != nil {
		return nil, err
	}
	noteKey(ctx, k.ID())
	h.cache(k)
	return keyMetadataOutput{h.metadata(k.Cached())}, nil
}

type keyIDInput struct {
	KeyId       string
	GrantTokens []string
}

func (h *Handler) describeKey(ctx context.Context, c *caller, in *keyIDInput) (any, error) {
	e, err := h.authorized(ctx, c, in.KeyId, "kms:DescribeKey", nil)
	if err != nil {
		return nil, err
	}
	md, err := e.k.Describe(ctx)
	if err != nil {
		return nil, err
	}
	return keyMetadataOutput{h.metadata(md)}, nil
}

type pageInput struct {
	Limit  *int
	Marker string
}

// page returns the page of items after in.Marker (an item's key, compared
// by keyOf) and the marker of the next page, or "" if there is none.
func page[T any](in *pageInput, items []T, keyOf func(T) string, def int) ([]T, string, error) {
	limit, err := in.limit(def)
	if err != nil {
		return nil, "", err
	}
	start := 0
	if in.Marker != "" {
		i, found := slices.BinarySearchFunc(items, in.Marker, func(t T, m string) int {
			switch k := keyOf(t); {
			case k < m:
				return -1
			case k > m:
				return 1
			}
			return 0
		})
		if found {
			i++
		}
		start = i
	}
	items = items[start:]
	if len(items) > limit {
		return items[:limit], keyOf(items[limit-1]), nil
	}
	return items, "", nil
}

type listKeysInput struct{ pageInput }

type keyListEntry struct{ KeyId, KeyArn string }

type listKeysOutput struct {
	Keys       []keyListEntry
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

func (h *Handler) listKeys(ctx context.Context, _ *caller, in *listKeysInput) (any, error) {
	limit, err := in.limit(1000)
	if err != nil {
		return nil, err
	}
	if in.Marker != "" {
		if _, _, err := checkKeyID(in.Marker, in.Marker); err != nil {
			return nil, errInvalidMarker()
		}
	}
	ids, more, err := keyring.ListPage(ctx, h.st, in.Marker, limit)
	if err != nil {
		return nil, err
	}
	next := ""
	if more {
		next = ids[len(ids)-1]
	}
	out := listKeysOutput{Keys: make([]keyListEntry, len(ids)), NextMarker: next, Truncated: next != ""}
	for i, id := range ids {
		out.Keys[i] = keyListEntry{id, h.keyARN(id)}
	}
	return out, nil
}

type updateKeyDescriptionInput struct {
	KeyId       string
	Description string
}

func (h *Handler) updateKeyDescription(ctx context.Context, c *caller, in *updateKeyDescriptionInput) (any, error) {
	return h.keyAction(ctx, c, in.KeyId, "kms:UpdateKeyDescription", func(k *keyring.Keyring) error {
		return k.SetDescription(ctx, in.Description)
	})
}

func (h *Handler) enableKey(ctx context.Context, c *caller, in *keyIDInput) (any, error) {
	return h.keyAction(ctx, c, in.KeyId, "kms:EnableKey", func(k *keyring.Keyring) error { return k.EnableKey(ctx) })
}

func (h *Handler) disableKey(ctx context.Context, c *caller, in *keyIDInput) (any, error) {
	return h.keyAction(ctx, c, in.KeyId, "kms:DisableKey", func(k *keyring.Keyring) error { return k.DisableKey(ctx) })
}

// keyAction authorizes action on the key and runs fn on it, for the
// operations whose output is empty.
func (h *Handler) keyAction(ctx context.Context, c *caller, keyID, action string, fn func(k *keyring.Keyring) error) (any, error) {
	e, err := h.authorized(ctx, c, keyID, action, nil)
	if err != nil {
		return nil, err
	}
	return nil, fn(e.k)
}

type scheduleKeyDeletionInput struct {
	KeyId               string
	PendingWindowInDays *int
}

type scheduleKeyDeletionOutput struct {
	KeyId               string
	DeletionDate        *epoch
	KeyState            string
	PendingWindowInDays int
}

func (h *Handler) scheduleKeyDeletion(ctx context.Context, c *caller, in *scheduleKeyDeletionInput) (any, error) {
	days := 30
	if in.PendingWindowInDays != nil {
		days = *in.PendingWindowInDays
	}
	if days < 7 || days > 30 {
		return nil, errValidation("PendingWindowInDays must be between 7 and 30")
	}
	e, err := h.authorized(ctx, c, in.KeyId, "kms:ScheduleKeyDeletion", nil)
	if err != nil {
		return nil, err
	}
	at, err := e.k.ScheduleKeyDeletion(ctx, time.Duration(days)*24*time.Hour)
	if err != nil {
		return nil, err
	}
	return scheduleKeyDeletionOutput{e.arn, epochOf(at), keyring.KeyPendingDeletion.String(), days}, nil
}

type keyIDOutput struct{ KeyId string }

func (h *Handler) cancelKeyDeletion(ctx context.Context, c *caller, in *keyIDInput) (any, error) {
	e, err := h.authorized(ctx, c, in.KeyId, "kms:CancelKeyDeletion", nil)
	if err != nil {
		return nil, err
	}
	if err := e.k.CancelKeyDeletion(ctx); err != nil {
		if errors.Is(err, keyring.ErrInvalidArgument) {
			return nil, errInvalidState(e.arn + " is not pending deletion.")
		}
		return nil, err
	}
	return keyIDOutput{e.arn}, nil
}
