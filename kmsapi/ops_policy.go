package kmsapi

import "context"

// Key policies: GetKeyPolicy, PutKeyPolicy.

const defaultPolicyName = "default"

// DefaultPolicy returns the policy GetKeyPolicy shows for a key that has
// none: AWS's default key policy, which lets the account's IAM policies
// decide. There are no IAM policies here, so it lets only admin principals
// use the key, which is exactly what having no policy means.
func DefaultPolicy(account string) string {
	return `{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "arn:aws:iam::` + account + `:root"
    },
    "Action" : "kms:*",
    "Resource" : "*"
  } ]
}`
}

func checkPolicyName(name string) error {
	if name != "" && name != defaultPolicyName {
		return errNotFound("the only key policy name is \"default\"")
	}
	return nil
}

type getKeyPolicyInput struct {
	KeyId      string
	PolicyName string
}

type getKeyPolicyOutput struct {
	Policy     string
	PolicyName string
}

func (h *Handler) getKeyPolicy(ctx context.Context, c *caller, in *getKeyPolicyInput) (any, error) {
	if err := checkPolicyName(in.PolicyName); err != nil {
		return nil, err
	}
	e, err := h.authorized(ctx, c, in.KeyId, "kms:GetKeyPolicy", nil)
	if err != nil {
		return nil, err
	}
	if err := e.k.Refresh(ctx); err != nil {
		return nil, err
	}
	p := e.k.KeyPolicy()
	if p == "" {
		p = DefaultPolicy(h.account)
	}
	return getKeyPolicyOutput{p, defaultPolicyName}, nil
}

type putKeyPolicyInput struct {
	KeyId                          string
	PolicyName                     string
	Policy                         string
	BypassPolicyLockoutSafetyCheck bool
}

func (h *Handler) putKeyPolicy(ctx context.Context, c *caller, in *putKeyPolicyInput) (any, error) {
	if err := checkPolicyName(in.PolicyName); err != nil {
		return nil, err
	}
	p, err := parsePolicy(in.Policy)
	if err != nil {
		return nil, err
	}
	e, err := h.authorized(ctx, c, in.KeyId, "kms:PutKeyPolicy", nil)
	if err != nil {
		return nil, err
	}
	// AWS's lockout safety check: a caller may not put a policy that
	// would stop it from putting the next one. Admins are never locked out.
	if !c.key.Admin && !in.BypassPolicyLockoutSafetyCheck &&
		!p.allows(accessRequest{principal: c.arn, account: h.account, action: "kms:PutKeyPolicy", resource: e.arn}) {
		return nil, &apiError{Type: "MalformedPolicyDocumentException",
			Message: "The new key policy will not allow you to update the key policy in the future."}
	}
	return nil, e.k.PutKeyPolicy(ctx, in.Policy)
}
