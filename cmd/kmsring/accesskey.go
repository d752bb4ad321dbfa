package main

import (
	"context"
	"regexp"

	"github.com/kmsring/kmsring/kmsapi"
	"github.com/spf13/cobra"
)

type (
	// accessKeyOutput is IAM's CreateAccessKey response (UserName,
	// AccessKeyId, Status, SecretAccessKey, CreateDate), plus the
	// principal's ARN, which key policies name, and whether it is an admin.
	accessKeyOutput struct {
		UserName        string
		AccessKeyId     string
		Status          string
		SecretAccessKey string
		CreateDate      awsTime
		Arn             string
		Admin           bool
	}
	createAccessKeyOutput struct{ AccessKey accessKeyOutput }
)

func (a *app) createAccessKeyCommand() *cobra.Command {
	var principal string
	var admin bool
	c := &cobra.Command{
		Use:   "create-access-key",
		Short: "Make credentials for the endpoint (serve); the secret is shown once",
		Long: `Make an access key for kmsring serve: the AWS credentials (access key ID and
secret access key) a client signs its requests with, for the principal
arn:aws:iam::ACCOUNT:user/NAME, which key policies name and audit records
show. Prints them as aws iam create-access-key does. The secret is shown only
here: it is stored wrapped under the root key and cannot be read back.

An --admin principal may call every operation on every key; any other only
what a key's policy allows (put-key-policy). The access key belongs to the
store and root key it was made with: create-key makes them first. A serve
sharing the store accepts the key at once.`,
		Example: `  kmsring create-access-key --principal ops --admin
  kmsring create-access-key --principal orders-service > orders-service.json
  export AWS_ACCESS_KEY_ID=$(jq -r .AccessKey.AccessKeyId orders-service.json)
  export AWS_SECRET_ACCESS_KEY=$(jq -r .AccessKey.SecretAccessKey orders-service.json)`,
		GroupID: "endpoint",
		Args:    cobra.NoArgs,
	}
	c.Flags().StringVar(&principal, "principal", "", "the IAM user name the key authenticates as (1 to 64 of A-Z a-z 0-9 +=,.@_-)")
	c.Flags().BoolVar(&admin, "admin", false, "let the principal call everything, whatever key policies say")
	c.MarkFlagRequired("principal")
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, _ []string) error {
		if !principalRE.MatchString(principal) {
			return usageError("--principal %q is not an IAM user name (1 to 64 of A-Z a-z 0-9 +=,.@_-)", principal)
		}
		// On first use the store and its root key are created, as
		// create-key creates them: serve then answers with this key.
		if err := a.open(ctx, true); err != nil {
			return err
		}
		ak, err := kmsapi.CreateAccessKey(ctx, a.st, a.rk, principal, admin)
		a.record(ctx, "CreateAccessKey", "", err)
		if err != nil {
			a.discardCreated()
			return err
		}
		a.keepCreated()
		return a.print(createAccessKeyOutput{accessKeyOutput{
			UserName:        ak.Principal,
			AccessKeyId:     ak.ID,
			Status:          "Active",
			SecretAccessKey: ak.SecretAccessKey(),
			CreateDate:      awsTime(ak.CreatedAt),
			Arn:             ak.ARN(a.account),
			Admin:           ak.Admin,
		}})
	})
	return c
}

// principalRE is IAM's user name syntax, as kmsapi checks it.
var principalRE = regexp.MustCompile(`^[A-Za-z0-9+=,.@_-]{1,64}$`)

type (
	// accessKeyMetadata is an element of IAM's ListAccessKeys response,
	// plus whether the principal is an admin.
	accessKeyMetadata struct {
		UserName    string
		AccessKeyId string
		Status      string
		CreateDate  awsTime
		Admin       bool
	}
	listAccessKeysOutput struct{ AccessKeyMetadata []accessKeyMetadata }
)

func (a *app) accessKeyCommands() []*cobra.Command {
	return []*cobra.Command{a.createAccessKeyCommand(), a.listAccessKeysCommand(), a.updateAccessKeyCommand(), a.deleteAccessKeyCommand()}
}

func (a *app) listAccessKeysCommand() *cobra.Command {
	var principal string
	c := &cobra.Command{
		Use:   "list-access-keys",
		Short: "List the endpoint's access keys (never their secrets)",
		Long: `List the access keys of kmsring serve, as aws iam list-access-keys does:
{"AccessKeyMetadata": [{"UserName", "AccessKeyId", "Status", "CreateDate",
"Admin"}]}, ordered by user name and creation date. --principal lists one
principal's keys. Deleted keys are not listed; secrets never are.`,
		Example: `  kmsring list-access-keys
  kmsring list-access-keys --principal orders-service --output text`,
		GroupID: "endpoint",
		Args:    cobra.NoArgs,
	}
	c.Flags().StringVar(&principal, "principal", "", "list only this IAM user name's keys")
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, _ []string) error {
		if principal != "" && !principalRE.MatchString(principal) {
			return usageError("--principal %q is not an IAM user name (1 to 64 of A-Z a-z 0-9 +=,.@_-)", principal)
		}
		out := listAccessKeysOutput{AccessKeyMetadata: []accessKeyMetadata{}}
		err := a.open(ctx, false)
		if a.emptyStore(err) {
			return a.print(out)
		}
		if err != nil {
			return err
		}
		keys, err := kmsapi.ListAccessKeys(ctx, a.st, a.rk, principal)
		a.record(ctx, "ListAccessKeys", "", err)
		if err != nil {
			return err
		}
		for _, k := range keys {
			out.AccessKeyMetadata = append(out.AccessKeyMetadata, accessKeyMetadata{
				UserName: k.Principal, AccessKeyId: k.ID, Status: string(k.Status), CreateDate: awsTime(k.CreatedAt), Admin: k.Admin,
			})
		}
		return a.print(out)
	})
	return c
}

func (a *app) updateAccessKeyCommand() *cobra.Command {
	var id, status string
	c := &cobra.Command{
		Use:   "update-access-key",
		Short: "Make an access key Inactive (revoke it) or Active again",
		Long: `Set an access key's status, as aws iam update-access-key does. An Inactive key
is refused (UnrecognizedClientException) by every kmsring serve sharing the
store within a second (at once on PostgreSQL, which notifies changes, and on
an embedded store that serve holds). Active restores it. Prints nothing.`,
		Example: `  kmsring update-access-key --access-key-id AKIA... --status Inactive`,
		GroupID: "endpoint",
		Args:    cobra.NoArgs,
	}
	c.Flags().StringVar(&id, "access-key-id", "", "the access key ID (AKIA...)")
	c.Flags().StringVar(&status, "status", "", "Active or Inactive")
	c.MarkFlagRequired("access-key-id")
	c.MarkFlagRequired("status")
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, _ []string) error {
		st := kmsapi.AccessKeyStatus(status)
		if st != kmsapi.AccessKeyActive && st != kmsapi.AccessKeyInactive {
			return usageError("--status must be Active or Inactive, not %q", status)
		}
		return a.changeAccessKey(ctx, "UpdateAccessKey", func() error { return kmsapi.UpdateAccessKey(ctx, a.st, a.rk, id, st) })
	})
	return c
}

func (a *app) deleteAccessKeyCommand() *cobra.Command {
	var id string
	c := &cobra.Command{
		Use:   "delete-access-key",
		Short: "Delete an access key for good",
		Long: `Delete an access key, as aws iam delete-access-key does: its secret is erased
and every kmsring serve sharing the store refuses it (UnrecognizedClientException)
within a second. Prints nothing.`,
		Example: `  kmsring delete-access-key --access-key-id AKIA...`,
		GroupID: "endpoint",
		Args:    cobra.NoArgs,
	}
	c.Flags().StringVar(&id, "access-key-id", "", "the access key ID (AKIA...)")
	c.MarkFlagRequired("access-key-id")
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, _ []string) error {
		return a.changeAccessKey(ctx, "DeleteAccessKey", func() error { return kmsapi.DeleteAccessKey(ctx, a.st, a.rk, id) })
	})
	return c
}

// changeAccessKey opens the store and runs fn, an audited change of an
// access key.
func (a *app) changeAccessKey(ctx context.Context, op string, fn func() error) error {
	if err := a.open(ctx, false); err != nil {
		return err
	}
	err := fn()
	a.record(ctx, op, "", err)
	return err
}
