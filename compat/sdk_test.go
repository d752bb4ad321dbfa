package compat

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/kmsring/kmsring/audit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The seed's rotation runbook with aws-sdk-go-v2, step by step, with the
// typed errors a client branches on.
func TestSDKRunbook(t *testing.T) {
	ctx := context.Background()
	s := startServer(t)
	c := s.client(s.admin)

	created, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("orders")})
	require.NoError(t, err)
	md := created.KeyMetadata
	id := aws.ToString(md.KeyId)
	assert.Equal(t, keyARN(id), aws.ToString(md.Arn))
	assert.Equal(t, types.KeyStateEnabled, md.KeyState)
	assert.Equal(t, types.KeySpecSymmetricDefault, md.KeySpec)
	assert.Equal(t, types.KeyUsageTypeEncryptDecrypt, md.KeyUsage)
	assert.False(t, aws.ToTime(md.CreationDate).IsZero())

	_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/orders"), TargetKeyId: aws.String(id)})
	require.NoError(t, err)
	_, err = c.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: aws.String("alias/orders"), RotationPeriodInDays: aws.Int32(90)})
	require.NoError(t, err)
	st, err := c.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String("alias/orders")})
	require.NoError(t, err)
	assert.True(t, st.KeyRotationEnabled)
	assert.Equal(t, int32(90), aws.ToInt32(st.RotationPeriodInDays))
	assert.WithinDuration(t, aws.ToTime(md.CreationDate).AddDate(0, 0, 90), aws.ToTime(st.NextRotationDate), 5*60e9)

	dk, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String("alias/orders"), KeySpec: types.DataKeySpecAes256,
		EncryptionContext: map[string]string{"order": "1001"}})
	require.NoError(t, err)
	assert.Len(t, dk.Plaintext, 32)
	assert.Equal(t, keyARN(id), aws.ToString(dk.KeyId))

	rot, err := c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String("alias/orders")})
	require.NoError(t, err)
	assert.Equal(t, id, aws.ToString(rot.KeyId))
	var rotations []types.RotationsListEntry
	p := kms.NewListKeyRotationsPaginator(c, &kms.ListKeyRotationsInput{KeyId: aws.String("alias/orders")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		require.NoError(t, err)
		rotations = append(rotations, page.Rotations...)
	}
	require.Len(t, rotations, 1)
	assert.Equal(t, types.RotationTypeOnDemand, rotations[0].RotationType)
	assert.Equal(t, id, aws.ToString(rotations[0].KeyId))

	d, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/orders")})
	require.NoError(t, err)
	assert.Equal(t, "orders", aws.ToString(d.KeyMetadata.Description))

	// Data keys from before the rotation still decrypt; ReEncrypt moves them
	// to the current version; Encrypt and Decrypt of small secrets.
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: map[string]string{"order": "1001"}})
	require.NoError(t, err)
	assert.Equal(t, dk.Plaintext, dec.Plaintext)
	re, err := c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: dk.CiphertextBlob, SourceEncryptionContext: map[string]string{"order": "1001"},
		DestinationKeyId: aws.String("alias/orders"), DestinationEncryptionContext: map[string]string{"order": "1001"}})
	require.NoError(t, err)
	assert.Equal(t, keyARN(id), aws.ToString(re.SourceKeyId))
	dec, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: re.CiphertextBlob, EncryptionContext: map[string]string{"order": "1001"}, KeyId: aws.String(id)})
	require.NoError(t, err)
	assert.Equal(t, dk.Plaintext, dec.Plaintext)
	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/orders"), Plaintext: []byte("db password")})
	require.NoError(t, err)
	dec, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	require.NoError(t, err)
	assert.Equal(t, "db password", string(dec.Plaintext))

	_, err = c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes256})
	var disabled *types.DisabledException
	require.True(t, errors.As(err, &disabled), "%v", err)
	_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(id)})
	require.NoError(t, err)

	sched, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(id), PendingWindowInDays: aws.Int32(7)})
	require.NoError(t, err)
	assert.Equal(t, types.KeyStatePendingDeletion, sched.KeyState)
	assert.Equal(t, int32(7), aws.ToInt32(sched.PendingWindowInDays))
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	var invalidState *types.KMSInvalidStateException
	require.True(t, errors.As(err, &invalidState), "%v", err)
	_, err = c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	d, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	assert.Equal(t, types.KeyStateDisabled, d.KeyMetadata.KeyState, "CancelKeyDeletion leaves the key disabled, as AWS does")

	// Every step above is in the audit log under the caller's ARN.
	require.NoError(t, s.audit.Flush(ctx))
	recs, _, err := audit.LookupEvents(ctx, s.st, audit.Query{KeyID: id})
	require.NoError(t, err)
	require.NotEmpty(t, recs)
	for _, r := range recs {
		assert.Equal(t, "arn:aws:iam::"+account+":user/ops", r.Principal, r.Operation)
	}
}

// The exceptions a client branches on, as the SDK's typed errors.
func TestSDKTypedErrors(t *testing.T) {
	ctx := context.Background()
	s := startServer(t)
	c := s.client(s.admin)
	k1, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	k2, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	id1, id2 := aws.ToString(k1.KeyMetadata.KeyId), aws.ToString(k2.KeyMetadata.KeyId)
	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id1), Plaintext: []byte("x"), EncryptionContext: map[string]string{"a": "b"}})
	require.NoError(t, err)

	check := func(name string, err error, target any) {
		t.Helper()
		assert.True(t, errors.As(err, target), "%s: want %T, got %v", name, target, err)
	}
	_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/missing")})
	check("unknown alias", err, new(*types.NotFoundException))
	_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("9f0c0a4e-2d1b-4c6e-8f3a-0b1c2d3e4f50")})
	check("unknown key", err, new(*types.NotFoundException))
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, KeyId: aws.String(id2), EncryptionContext: map[string]string{"a": "b"}})
	check("other key's blob", err, new(*types.IncorrectKeyException))
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"a": "c"}})
	check("wrong context", err, new(*types.InvalidCiphertextException))
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: []byte("garbage")})
	check("garbage", err, new(*types.InvalidCiphertextException))
	_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id1), Plaintext: []byte("x"), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
	check("asymmetric algorithm", err, new(*types.InvalidKeyUsageException))
	_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/a"), TargetKeyId: aws.String(id1)})
	require.NoError(t, err)
	_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/a"), TargetKeyId: aws.String(id2)})
	check("alias taken", err, new(*types.AlreadyExistsException))
	_, err = c.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(id1), Policy: aws.String(`{"Statement": {"Effect": "Allow"}}`)})
	check("bad policy", err, new(*types.MalformedPolicyDocumentException))
	_, err = c.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(id1), GranteePrincipal: aws.String("x"), Operations: []types.GrantOperation{types.GrantOperationDecrypt}})
	check("grants", err, new(*types.UnsupportedOperationException))
	_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id1), Plaintext: []byte("x"), DryRun: aws.Bool(true)})
	check("dry run", err, new(*types.DryRunOperationException))
	_, err = c.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(id1), Marker: aws.String("x")})
	check("bad marker", err, new(*types.InvalidMarkerException))
	_, err = c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(id2)})
	require.NoError(t, err)
	_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(id2)})
	check("pending deletion", err, new(*types.KMSInvalidStateException))

	// Exceptions the SDK does not model are API errors with AWS's codes.
	_, err = s.client(s.alice).Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id1), Plaintext: []byte("x")})
	requireAPIError(t, err, "AccessDeniedException")
	_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id1)})
	requireAPIError(t, err, "ValidationException")
	_, err = s.clientWith(s.admin.ID, "forged"+s.admin.SecretAccessKey()[6:], region).ListKeys(ctx, &kms.ListKeysInput{})
	requireAPIError(t, err, "InvalidSignatureException")
	_, err = s.clientWith("AKIAAAAAAAAAAAAAAAAA", s.admin.SecretAccessKey(), region).ListKeys(ctx, &kms.ListKeysInput{})
	requireAPIError(t, err, "UnrecognizedClientException")
	_, err = s.clientWith(s.admin.ID, s.admin.SecretAccessKey(), "eu-west-1").ListKeys(ctx, &kms.ListKeysInput{})
	requireAPIError(t, err, "InvalidSignatureException")
}

// A non-admin principal under key policies with encryption context
// conditions, allowing and denying.
func TestSDKPolicies(t *testing.T) {
	ctx := context.Background()
	s := startServer(t)
	admin, alice := s.client(s.admin), s.client(s.alice)
	k, err := admin.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(`{
	  "Version": "2012-10-17",
	  "Statement": [
	    {"Sid": "tenant acme", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"},
	     "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*",
	     "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "acme"}}},
	    {"Sid": "describe", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"},
	     "Action": "kms:Describe*", "Resource": "*"},
	    {"Sid": "no exports", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
	     "Condition": {"StringLike": {"kms:EncryptionContext:purpose": "export*"}}}
	  ]}`)})
	require.NoError(t, err)
	id := k.KeyMetadata.KeyId

	_, err = alice.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: id})
	require.NoError(t, err)
	acme := map[string]string{"tenant": "acme"}
	dk, err := alice.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: id, KeySpec: types.DataKeySpecAes256, EncryptionContext: acme})
	require.NoError(t, err)
	_, err = alice.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: acme})
	require.NoError(t, err)

	for name, ec := range map[string]map[string]string{
		"other tenant": {"tenant": "globex"}, "no context": nil, "explicit deny": {"tenant": "acme", "purpose": "export-2026"},
	} {
		_, err = alice.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: id, KeySpec: types.DataKeySpecAes256, EncryptionContext: ec})
		requireAPIError(t, err, "AccessDeniedException")
		t.Log(name, "denied")
	}
	_, err = alice.Encrypt(ctx, &kms.EncryptInput{KeyId: id, Plaintext: []byte("x"), EncryptionContext: acme})
	requireAPIError(t, err, "AccessDeniedException")
	_, err = alice.DisableKey(ctx, &kms.DisableKeyInput{KeyId: id})
	requireAPIError(t, err, "AccessDeniedException")
	_, err = alice.CreateKey(ctx, &kms.CreateKeyInput{})
	requireAPIError(t, err, "AccessDeniedException")

	// Admins bypass key policies, a Deny included.
	_, err = admin.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: id, KeySpec: types.DataKeySpecAes256, EncryptionContext: map[string]string{"purpose": "export"}})
	require.NoError(t, err)

	pol, err := alice.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: id})
	requireAPIError(t, err, "AccessDeniedException")
	assert.Nil(t, pol)
	pol, err = admin.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: id, PolicyName: aws.String("default")})
	require.NoError(t, err)
	assert.Contains(t, aws.ToString(pol.Policy), "tenant acme")
}

// The SDK's paginators over ListKeys, ListAliases and ListKeyRotations.
func TestSDKPaginators(t *testing.T) {
	ctx := context.Background()
	s := startServer(t)
	c := s.client(s.admin)
	var ids []string
	for i := range 3 {
		k, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
		require.NoError(t, err)
		ids = append(ids, aws.ToString(k.KeyMetadata.KeyId))
		_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/k" + string(rune('a'+i))), TargetKeyId: k.KeyMetadata.KeyId})
		require.NoError(t, err)
	}
	for range 5 {
		_, err := c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(ids[0])})
		require.NoError(t, err)
	}

	var keys []string
	pk := kms.NewListKeysPaginator(c, &kms.ListKeysInput{Limit: aws.Int32(2)})
	for pk.HasMorePages() {
		page, err := pk.NextPage(ctx)
		require.NoError(t, err)
		assert.LessOrEqual(t, len(page.Keys), 2)
		for _, k := range page.Keys {
			keys = append(keys, aws.ToString(k.KeyId))
		}
	}
	assert.ElementsMatch(t, ids, keys)

	var aliases []string
	pa := kms.NewListAliasesPaginator(c, &kms.ListAliasesInput{Limit: aws.Int32(1)})
	for pa.HasMorePages() {
		page, err := pa.NextPage(ctx)
		require.NoError(t, err)
		for _, a := range page.Aliases {
			aliases = append(aliases, aws.ToString(a.AliasName))
		}
	}
	assert.Equal(t, []string{"alias/ka", "alias/kb", "alias/kc"}, aliases)

	var rotations []types.RotationsListEntry
	pages := 0
	pr := kms.NewListKeyRotationsPaginator(c, &kms.ListKeyRotationsInput{KeyId: aws.String("alias/ka"), Limit: aws.Int32(2)})
	for pr.HasMorePages() {
		page, err := pr.NextPage(ctx)
		require.NoError(t, err)
		pages++
		rotations = append(rotations, page.Rotations...)
	}
	assert.Equal(t, 3, pages)
	require.Len(t, rotations, 5)
	for i, r := range rotations {
		assert.Equal(t, types.RotationTypeOnDemand, r.RotationType)
		if i > 0 {
			assert.False(t, aws.ToTime(r.RotationDate).Before(aws.ToTime(rotations[i-1].RotationDate)))
		}
	}
}
