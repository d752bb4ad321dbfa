package kmsapi

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/internal/pgtest"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/kmsring/kmsring/store/pgstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const alicePolicy = `{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "alice uses the key for tenant acme", "Effect": "Allow",
     "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"},
     "Action": ["kms:GenerateDataKey*", "kms:Decrypt", "kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy"],
     "Resource": "*",
     "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "acme"}}},
    {"Sid": "alice describes and reads the policy", "Effect": "Allow",
     "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"},
     "Action": ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy"], "Resource": "*"},
    {"Sid": "never legacy", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
     "Condition": {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "legacy"}}}
  ]
}`

func TestPolicyAuthorization(t *testing.T) {
	e := newEnv(t)
	a, alice := e.admin, e.alice
	id, _ := a.createKey(obj{})

	// No policy: only admins.
	msg := alice.fail("DescribeKey", obj{"KeyId": id}, "AccessDeniedException")
	assert.Contains(t, msg, "arn:aws:iam::111122223333:user/alice is not authorized to perform: kms:DescribeKey")
	alice.fail("CreateKey", obj{}, "AccessDeniedException")
	assert.Equal(t, DefaultPolicy(testAccount), a.do("GetKeyPolicy", obj{"KeyId": id})["Policy"])

	a.fail("PutKeyPolicy", obj{"KeyId": id, "Policy": `{"Statement": []}`}, "MalformedPolicyDocumentException")
	a.fail("PutKeyPolicy", obj{"KeyId": id, "Policy": alicePolicy, "PolicyName": "other"}, "NotFoundException")
	a.do("PutKeyPolicy", obj{"KeyId": id, "Policy": alicePolicy})
	assert.Equal(t, alicePolicy, alice.do("GetKeyPolicy", obj{"KeyId": id, "PolicyName": "default"})["Policy"])
	alice.do("DescribeKey", obj{"KeyId": id})

	acme := obj{"tenant": "acme"}
	dk := alice.do("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256", "EncryptionContext": acme})
	alice.do("Decrypt", obj{"CiphertextBlob": dk["CiphertextBlob"], "EncryptionContext": acme})
	alice.fail("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256", "EncryptionContext": obj{"tenant": "other"}}, "AccessDeniedException")
	alice.fail("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256"}, "AccessDeniedException")
	alice.fail("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256", "EncryptionContext": obj{"tenant": "acme", "legacy": "1"}}, "AccessDeniedException")
	alice.fail("Encrypt", obj{"KeyId": id, "Plaintext": b64([]byte("x")), "EncryptionContext": acme}, "AccessDeniedException")
	alice.fail("DisableKey", obj{"KeyId": id}, "AccessDeniedException")
	alice.fail("ReEncrypt", obj{"CiphertextBlob": dk["CiphertextBlob"], "SourceEncryptionContext": acme, "DestinationKeyId": id}, "AccessDeniedException")

	// The lockout safety check, and its bypass.
	selfLock := `{"Statement": {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "kms:Decrypt", "Resource": "*"}}`
	alice.fail("PutKeyPolicy", obj{"KeyId": id, "Policy": selfLock}, "MalformedPolicyDocumentException")
	alice.do("PutKeyPolicy", obj{"KeyId": id, "Policy": selfLock, "BypassPolicyLockoutSafetyCheck": true})
	alice.fail("DescribeKey", obj{"KeyId": id}, "AccessDeniedException")
	a.do("DescribeKey", obj{"KeyId": id}) // admins are never locked out
}

// Another process sharing the store: keys, aliases, policies and access
// keys it makes work here at once.
func TestSharedStoreFreshness(t *testing.T) {
	t.Run("memstore", func(t *testing.T) {
		st := memstore.New()
		testSharedStore(t, st, st)
	})
	t.Run("pgstore", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		open := func() store.Store {
			st, err := pgstore.Open(context.Background(), dsn)
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			return st
		}
		testSharedStore(t, open(), open())
	})
}

// testSharedStore runs a handler on here and another, as another process
// would, on there: the same store.
func testSharedStore(t *testing.T, here, there store.Store) {
	e := newEnvOn(t, here)
	other := e.handlerOn(there)
	adminThere := e.admin.via(other)

	// A key and alias made elsewhere: a cache miss loads them.
	id, _ := adminThere.createKey(obj{})
	adminThere.do("CreateAlias", obj{"AliasName": "alias/fresh", "TargetKeyId": id})
	e.admin.do("DescribeKey", obj{"KeyId": "alias/fresh"})

	// This handler caches the key and denies alice; a policy put elsewhere
	// takes effect on the next request without waiting for a refresh.
	e.alice.fail("DescribeKey", obj{"KeyId": id}, "AccessDeniedException")
	e.clk.Advance(DefaultRefreshInterval) // the last denial refreshed; let the next one too
	adminThere.do("PutKeyPolicy", obj{"KeyId": id, "Policy": alicePolicy})
	e.alice.do("DescribeKey", obj{"KeyId": id})

	// Denials refresh at most once per interval; an access key made after
	// the handler started works at once.
	bob := e.client(e.h, "bob", false)
	e.clk.Advance(DefaultRefreshInterval)
	bob.fail("DescribeKey", obj{"KeyId": id}, "AccessDeniedException")
	adminThere.do("PutKeyPolicy", obj{"KeyId": id, "Policy": `{"Statement": {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/bob"}, "Action": "kms:*", "Resource": "*"}}`})
	bob.fail("DescribeKey", obj{"KeyId": id}, "AccessDeniedException")
	e.clk.Advance(DefaultRefreshInterval)
	bob.do("DescribeKey", obj{"KeyId": id})

	// A key disabled elsewhere is seen disabled within the refresh interval.
	e.admin.do("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256"})
	adminThere.do("DisableKey", obj{"KeyId": id})
	e.clk.Advance(DefaultRefreshInterval)
	e.admin.fail("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256"}, "DisabledException")

	// An alias moved elsewhere is followed once the cached resolution ages.
	id2, _ := adminThere.createKey(obj{})
	adminThere.do("UpdateAlias", obj{"AliasName": "alias/fresh", "TargetKeyId": id2})
	e.clk.Advance(DefaultRefreshInterval)
	assert.Equal(t, id2, e.admin.do("DescribeKey", obj{"KeyId": "alias/fresh"})["KeyMetadata"].(obj)["KeyId"])
}

// Every audit record names the caller's IAM user ARN.
func TestAuditPrincipal(t *testing.T) {
	st := memstore.New()
	logger := audit.New(audit.WithStore(st))
	defer logger.Close()
	e := newEnv(t)
	e.st = st
	e.h = e.handler(WithAuditor(logger))
	admin := e.client(e.h, "ops", true)
	id, _ := admin.createKey(obj{})
	admin.do("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256"})
	admin.do("RotateKeyOnDemand", obj{"KeyId": id})
	admin.fail("Decrypt", obj{"CiphertextBlob": b64(append([]byte{1}, make([]byte, 80)...))}, "InvalidCiphertextException")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, logger.Flush(ctx))
	recs, _, err := audit.LookupEvents(ctx, st, audit.Query{KeyID: id})
	require.NoError(t, err)
	var ops []string
	for _, r := range recs {
		ops = append(ops, r.Operation)
		assert.Equal(t, "arn:aws:iam::111122223333:user/ops", r.Principal, r.Operation)
	}
	assert.Equal(t, []string{"CreateKey", "GenerateDataKey", "RotateKey"}, ops)
}

// TestAuditDenial: a request the key policy refuses is audited as
// AccessDenied under the caller's principal, as CloudTrail records it.
func TestAuditDenial(t *testing.T) {
	st := memstore.New()
	logger := audit.New(audit.WithStore(st))
	defer logger.Close()
	e := newEnv(t)
	e.st = st
	e.h = e.handler(WithAuditor(logger))
	admin := e.client(e.h, "ops", true)
	id, _ := admin.createKey(obj{})
	bob := e.client(e.h, "bob", false)
	bob.fail("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256"}, "AccessDeniedException")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, logger.Flush(ctx))
	recs, _, err := audit.LookupEvents(ctx, st, audit.Query{KeyID: id, Operation: "GenerateDataKey"})
	require.NoError(t, err)
	require.Len(t, recs, 1, "the denial is recorded")
	assert.Equal(t, "arn:aws:iam::111122223333:user/bob", recs[0].Principal)
	assert.Equal(t, audit.Failure, recs[0].Outcome)
	assert.Equal(t, "AccessDenied", recs[0].ErrorClass)
}

// TestAuditReads: reads the keyring does not audit itself (DescribeKey,
// ListKeys, ...) are recorded with the key they resolved, and an operation
// has one name in the log whether it succeeded or was refused.
func TestAuditReads(t *testing.T) {
	st := memstore.New()
	logger := audit.New(audit.WithStore(st))
	defer logger.Close()
	e := newEnv(t)
	e.st = st
	e.h = e.handler(WithAuditor(logger))
	admin := e.client(e.h, "ops", true)
	id, _ := admin.createKey(obj{})
	admin.do("CreateAlias", obj{"AliasName": "alias/reads", "TargetKeyId": id})
	admin.do("DescribeKey", obj{"KeyId": "alias/reads"})
	admin.do("GetKeyRotationStatus", obj{"KeyId": id})
	admin.do("ListKeyRotations", obj{"KeyId": id})
	admin.do("GetKeyPolicy", obj{"KeyId": id, "PolicyName": "default"})
	admin.do("ListKeys", obj{})
	admin.fail("DescribeKey", obj{"KeyId": "alias/none"}, "NotFoundException")
	bob := e.client(e.h, "bob", false)
	bob.fail("RotateKeyOnDemand", obj{"KeyId": id}, "AccessDeniedException")
	admin.do("RotateKeyOnDemand", obj{"KeyId": id})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, logger.Flush(ctx))
	recs, _, err := audit.LookupEvents(ctx, st, audit.Query{})
	require.NoError(t, err)
	var got []string
	for _, r := range recs {
		got = append(got, r.Operation+"/"+r.Outcome+"/"+strconv.FormatBool(r.KeyID == id))
	}
	assert.Equal(t, []string{
		"CreateKey/success/true", "CreateAlias/success/true", "DescribeKey/success/true",
		"GetKeyRotationStatus/success/true", "ListKeyRotations/success/true", "GetKeyPolicy/success/true",
		"ListKeys/success/false", "DescribeKey/failure/false",
		"RotateKey/failure/true", "RotateKey/success/true",
	}, got)
}

// TestRedirectedAliasRefused: someone who can write the store points
// alias/a at key B in the store's alias index; the endpoint must not
// answer for B when asked for alias/a.
func TestRedirectedAliasRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, _ := e.admin.createKey(obj{})
	b, _ := e.admin.createKey(obj{})
	e.admin.do("CreateAlias", obj{"AliasName": "alias/a", "TargetKeyId": a})
	fresh := e.handler() // another process, nothing cached
	move := func(id string, aliases []string) {
		rec, err := e.st.Get(ctx, id)
		require.NoError(t, err)
		rec.Aliases = aliases
		_, err = e.st.Update(ctx, rec, nil)
		require.NoError(t, err)
	}
	move(a, nil)
	move(b, []string{"alias/a"})
	msg := e.client(fresh, "root2", true).fail("DescribeKey", obj{"KeyId": "alias/a"}, "KMSInternalException")
	assert.NotContains(t, msg, b, "nothing about key B is returned")
}
