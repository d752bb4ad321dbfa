package kmsapi

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
)

// Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases.

var aliasNameRE = regexp.MustCompile(`^alias/[A-Za-z0-9/_-]{1,250}$`)

func checkAliasName(name string) error {
	if !aliasNameRE.MatchString(name) {
		return errValidation(fmt.Sprintf("Alias %q must be alias/ followed by 1 to 250 letters, digits, '/', '_' or '-'", truncate(name)))
	}
	if strings.HasPrefix(name, "alias/aws/") {
		return &apiError{Type: "InvalidAliasNameException", Message: "Aliases beginning with alias/aws/ are reserved for AWS managed keys."}
	}
	return nil
}

type aliasInput struct {
	AliasName   string
	TargetKeyId string
}

// target resolves an alias's target, which must be a key ID or key ARN.
func (h *Handler) target(ctx context.Context, c *caller, keyID, action string) (*keyEntry, error) {
	id, _, err := h.parseKeyID(keyID, false)
	if err != nil {
		return nil, err
	}
	e, err := h.entry(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := h.authorize(ctx, c, e, action, nil); err != nil {
		return nil, err
	}
	if e.k.KeyState() == keyring.KeyPendingDeletion {
		return nil, errInvalidState(e.arn + " is pending deletion.")
	}
	return e, nil
}

// aliasOwner returns the key an alias names now, read from the store.
func (h *Handler) aliasOwner(ctx context.Context, c *caller, alias, action string) (*keyEntry, error) {
	h.forgetAlias(alias)
	e, err := h.resolve(ctx, alias)
	if err != nil {
		return nil, err
	}
	if err := h.authorize(ctx, c, e, action, nil); err != nil {
		return nil, err
	}
	return e, nil
}

func (h *Handler) createAlias(ctx context.Context, c *caller, in *aliasInput) (any, error) {
	if err := checkAliasName(in.AliasName); err != nil {
		return nil, err
	}
	// Aliases belong to admins: on AWS the alias side needs an IAM
	// permission that no key policy grants.
	if err := h.requireAdmin(ctx, c, "kms:CreateAlias"); err != nil {
		return nil, err
	}
	e, err := h.target(ctx, c, in.TargetKeyId, "kms:CreateAlias")
	if err != nil {
		return nil, err
	}
	if _, err := h.st.Get(ctx, in.AliasName); err == nil {
		return nil, errAliasExists(h, in.AliasName)
	}
	h.forgetAlias(in.AliasName)
	if err := e.k.AddAlias(ctx, in.AliasName); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, errAliasExists(h, in.AliasName)
		}
		return nil, err
	}
	return nil, nil
}

func errAliasExists(h *Handler, alias string) error {
	return &apiError{Type: "AlreadyExistsException", Message: "An alias with the name " + h.aliasARN(alias) + " already exists"}
}

// updateAlias moves an alias from one key to another: two store records,
// so it removes the alias from the old key, then adds it to the new one,
// and puts it back on the old key if that fails.
func (h *Handler) updateAlias(ctx context.Context, c *caller, in *aliasInput) (any, error) {
	if err := checkAliasName(in.AliasName); err != nil {
		return nil, err
	}
	// Aliases belong to admins: on AWS the alias side needs an IAM
	// permission that no key policy grants.
	if err := h.requireAdmin(ctx, c, "kms:UpdateAlias"); err != nil {
		return nil, err
	}
	from, err := h.aliasOwner(ctx, c, in.AliasName, "kms:UpdateAlias")
	if err != nil {
		return nil, err
	}
	to, err := h.target(ctx, c, in.TargetKeyId, "kms:UpdateAlias")
	if err != nil {
		return nil, err
	}
	if from == to {
		return nil, nil
	}
	defer h.forgetAlias(in.AliasName)
	if err := from.k.RemoveAlias(ctx, in.AliasName); err != nil {
		return nil, err
	}
	if err := to.k.AddAlias(ctx, in.AliasName); err != nil {
		if undo := from.k.AddAlias(ctx, in.AliasName); undo != nil {
			return nil, fmt.Errorf("kmsapi: update alias %s: %w (and restoring it failed: %v)", in.AliasName, err, undo)
		}
		return nil, err
	}
	return nil, nil
}

func (h *Handler) deleteAlias(ctx context.Context, c *caller, in *aliasInput) (any, error) {
	if err := checkAliasName(in.AliasName); err != nil {
		return nil, err
	}
	// Aliases belong to admins: on AWS the alias side needs an IAM
	// permission that no key policy grants.
	if err := h.requireAdmin(ctx, c, "kms:DeleteAlias"); err != nil {
		return nil, err
	}
	e, err := h.aliasOwner(ctx, c, in.AliasName, "kms:DeleteAlias")
	if err != nil {
		return nil, err
	}
	defer h.forgetAlias(in.AliasName)
	return nil, e.k.RemoveAlias(ctx, in.AliasName)
}

type listAliasesInput struct {
	KeyId string
	pageInput
}

type aliasListEntry struct{ AliasName, AliasArn, TargetKeyId string }

type listAliasesOutput struct {
	Aliases    []aliasListEntry
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

func (h *Handler) listAliases(ctx context.Context, _ *caller, in *listAliasesInput) (any, error) {
	var filter string
	if in.KeyId != "" {
		var err error
		if filter, _, err = h.parseKeyID(in.KeyId, false); err != nil {
			return nil, err
		}
	}
	entries, next, err := h.aliasPage(ctx, filter, &in.pageInput)
	if err != nil {
		return nil, err
	}
	out := listAliasesOutput{Aliases: make([]aliasListEntry, len(entries)), NextMarker: next, Truncated: next != ""}
	for i, a := range entries {
		out.Aliases[i] = aliasListEntry{a.Alias, h.aliasARN(a.Alias), a.KeyID}
	}
	return out, nil
}
