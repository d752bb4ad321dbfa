package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/kmsapi"
	"github.com/spf13/cobra"
)

// policyName is the name of a key's policy: AWS KMS keys have one, named
// "default".
const policyName = "default"

type getKeyPolicyOutput struct{ Policy, PolicyName string }

// policyNameFlag adds --policy-name, which takes only "default", as AWS.
func policyNameFlag(c *cobra.Command, v *string) {
	c.Flags().StringVar(v, "policy-name", policyName, `the policy's name; a key has one policy, named "default"`)
	c.RegisterFlagCompletionFunc("policy-name", cobra.FixedCompletions([]string{policyName}, cobra.ShellCompDirectiveNoFileComp))
	c.PreRunE = func(*cobra.Command, []string) error {
		if *v != policyName {
			return usageError("--policy-name must be %q, the name of a key's only policy, not %q", policyName, *v)
		}
		return nil
	}
}

func (a *app) policyCommands() []*cobra.Command {
	var name, doc string
	var bypass bool
	put := &cobra.Command{
		Use:   "put-key-policy",
		Short: "Set the key policy the endpoint (serve) enforces",
		Long: `Set a key's policy: who, besides --admin principals, may use the key through
kmsring serve, and how. The policy is checked first, and refused as
MalformedPolicyDocumentException (nothing changed) if it is not in the subset
of the AWS key policy language the endpoint enforces: Allow and Deny
statements, IAM user principals arn:aws:iam::ACCOUNT:user/NAME, kms: actions
with wildcards, and conditions on kms:EncryptionContext:KEY and
kms:EncryptionContextKeys. This command works on the store directly, as an
admin: the lockout safety check does not apply to it.

--policy takes file://PATH or the JSON itself. Prints nothing, as aws.`,
		Example: `  kmsring put-key-policy --key-id alias/orders --policy file://orders-policy.json
  kmsring put-key-policy --key-id alias/orders --policy-name default --policy '{"Version":"2012-10-17","Statement":[...]}'`,
		GroupID: "endpoint",
	}
	put.Flags().StringVar(&doc, "policy", "", "the policy: file://PATH or the JSON text")
	put.Flags().BoolVar(&bypass, "bypass-policy-lockout-safety-check", false, "accepted, as aws; this command is never locked out")
	put.MarkFlagRequired("policy")
	policyNameFlag(put, &name)
	a.keyCommand("PutKeyPolicy", put, func(ctx context.Context, k *keyring.Keyring) (any, error) {
		text, err := policyText(doc)
		if err != nil {
			return nil, err
		}
		if err := kmsapi.ValidatePolicy(text); err != nil {
			a.record(ctx, "PutKeyPolicy", k.ID(), err)
			return nil, err
		}
		return nil, k.PutKeyPolicy(ctx, text)
	})

	var getName string
	get := &cobra.Command{
		Use:   "get-key-policy",
		Short: "Show the key policy the endpoint (serve) enforces",
		Long: `Show a key's policy as aws kms get-key-policy does: the policy text as a JSON
string. A key without a policy shows AWS's default key policy, which grants
nothing here: only --admin principals may use such a key.`,
		Example: `  kmsring get-key-policy --key-id alias/orders
  kmsring get-key-policy --key-id alias/orders --policy-name default | jq -r .Policy`,
		GroupID: "endpoint",
	}
	policyNameFlag(get, &getName)
	a.keyCommand("GetKeyPolicy", get, func(ctx context.Context, k *keyring.Keyring) (any, error) {
		a.record(ctx, "GetKeyPolicy", k.ID(), nil)
		p := k.KeyPolicy()
		if p == "" {
			p = kmsapi.DefaultPolicy(a.account)
		}
		if a.output == "table" && a.query == nil {
			// The policy is many lines of JSON: show it as it is.
			_, err := fmt.Fprintf(a.stdout, "PolicyName  %s\nPolicy\n%s\n", policyName, strings.TrimRight(p, "\n"))
			return nil, err
		}
		return getKeyPolicyOutput{Policy: p, PolicyName: policyName}, nil
	})
	return []*cobra.Command{put, get}
}

// policyText reads --policy: file://PATH is the file's text, anything else
// the policy itself.
func policyText(v string) (string, error) {
	if path, ok := strings.CutPrefix(v, "file://"); ok {
		b, err := readFileArg(path)
		return string(b), err
	}
	if strings.TrimSpace(v) == "" {
		return "", usageError("--policy must not be empty")
	}
	return v, nil
}
