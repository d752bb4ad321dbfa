package compat

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go-awskms/v3/integration/awskms"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// tinkAEAD returns Tink's AWS KMS AEAD for keyURI, talking to the server.
func tinkAEAD(t *testing.T, s *server, keyURI string) tink.AEAD {
	client, err := awskms.NewClientWithOptions(context.Background(), "aws-kms://arn:aws:kms:"+region+":",
		awskms.WithKMS(s.client(s.admin)))
	require.NoError(t, err)
	a, err := client.GetAEAD(keyURI)
	require.NoError(t, err)
	return a
}

// Tink's AWS KMS client, unchanged, uses a kmsring key as an AEAD (by key
// ARN and alias ARN) and for Tink's envelope encryption.
func TestTinkAWSKMSAEAD(t *testing.T) {
	ctx := context.Background()
	s := startServer(t)
	k, err := s.client(s.admin).CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	id := aws.ToString(k.KeyMetadata.KeyId)
	_, err = s.client(s.admin).CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/tink"), TargetKeyId: aws.String(id)})
	require.NoError(t, err)

	for _, uri := range []string{"aws-kms://" + keyARN(id), "aws-kms://arn:aws:kms:" + region + ":" + account + ":alias/tink"} {
		a := tinkAEAD(t, s, uri)
		ct, err := a.Encrypt([]byte("tink plaintext"), []byte("associated data"))
		require.NoError(t, err, uri)
		pt, err := a.Decrypt(ct, []byte("associated data"))
		require.NoError(t, err, uri)
		assert.Equal(t, "tink plaintext", string(pt))
		_, err = a.Decrypt(ct, []byte("other data"))
		assert.Error(t, err, "the associated data is bound (as the encryption context)")
		ct, err = a.Encrypt([]byte("no ad"), nil)
		require.NoError(t, err)
		pt, err = a.Decrypt(ct, nil)
		require.NoError(t, err)
		assert.Equal(t, "no ad", string(pt))
	}

	env := aead.NewKMSEnvelopeAEAD2(aead.AES256GCMKeyTemplate(), tinkAEAD(t, s, "aws-kms://"+keyARN(id)))
	ct, err := env.Encrypt([]byte("a large record"), []byte("row 7"))
	require.NoError(t, err)
	pt, err := env.Decrypt(ct, []byte("row 7"))
	require.NoError(t, err)
	assert.Equal(t, "a large record", string(pt))
}

// A kmsring store whose root key is a key of another kmsring, reached
// through Tink's AWS KMS client: the version material of the second store
// is wrapped by the endpoint.
func TestTinkAWSKMSAsRootKey(t *testing.T) {
	ctx := context.Background()
	s := startServer(t)
	k, err := s.client(s.admin).CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("root key of store two")})
	require.NoError(t, err)
	rk := tinkAEAD(t, s, "aws-kms://"+aws.ToString(k.KeyMetadata.Arn))

	path := filepath.Join(t.TempDir(), "two.db")
	st, err := boltstore.Open(path)
	require.NoError(t, err)
	inner, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithAlias("alias/inner"))
	require.NoError(t, err)
	dk, err := inner.GenerateDataKey(ctx)
	require.NoError(t, err)
	_, err = inner.Rotate(ctx)
	require.NoError(t, err)
	require.NoError(t, st.Close())

	// A restart: the store opens again only through the endpoint.
	st, err = boltstore.Open(path)
	require.NoError(t, err)
	defer st.Close()
	again, err := keyring.Load(ctx, st, "alias/inner", keyring.WithRootKey(rk))
	require.NoError(t, err)
	pt, err := again.Decrypt(ctx, dk.Ciphertext)
	require.NoError(t, err)
	assert.Equal(t, dk.Plaintext, pt)

	// With the outer key disabled, the inner store's material cannot be
	// unwrapped.
	_, err = s.client(s.admin).DisableKey(ctx, &kms.DisableKeyInput{KeyId: k.KeyMetadata.KeyId})
	require.NoError(t, err)
	_, err = keyring.Load(ctx, st, "alias/inner", keyring.WithRootKey(rk))
	assert.ErrorIs(t, err, keyring.ErrRootKey)
}
