package main

import (
	"context"
	"errors"
	"fmt"

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
		if err := a.openExisting(ctx, "an access key belongs to the store whose keys it uses"); err != nil {
			return err
		}
		ak, err := kmsapi.CreateAccessKey(ctx, a.st, a.rk, principal, admin)
		a.record(ctx, "CreateAccessKey", "", err)
		if errors.Is(err, kmsapi.ErrInvalidPrincipal) {
			return usageError("--principal %q is not an IAM user name (1 to 64 of A-Z a-z 0-9 +=,.@_-)", principal)
		}
		if err != nil {
			return err
		}
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

// openExisting opens the store for a command that needs one to exist
// (serve, create-access-key): it never creates a store or a root key, and
// says why when there is none.
func (a *app) openExisting(ctx context.Context, why string) error {
	err := a.open(ctx, false)
	if errors.Is(err, errNoStore) {
		return fmt.Errorf("%w; %s", err, why)
	}
	return err
}
