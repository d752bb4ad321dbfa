package compat

import (
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"
)

// boto3Script uses boto3 as a Python service would, changed only by
// endpoint_url: a data key, a decryption under its context, a refused
// context, and an access key the endpoint does not know.
const boto3Script = `
import os, sys
import boto3, botocore
kms = boto3.client("kms", endpoint_url=os.environ["KMS_ENDPOINT"], region_name="us-east-1")
key = os.environ["KEY_ARN"]
dk = kms.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext={"tenant": "acme"})
assert len(dk["Plaintext"]) == 32
back = kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"tenant": "acme"})
assert back["Plaintext"] == dk["Plaintext"]
assert back["KeyId"] == key
try:
    kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"tenant": "other"})
    sys.exit("decrypted under another context")
except kms.exceptions.InvalidCiphertextException:
    pass
aliases = kms.list_aliases()["Aliases"]
bad = boto3.client("kms", endpoint_url=os.environ["KMS_ENDPOINT"], region_name="us-east-1",
                   aws_access_key_id="AKIAAAAAAAAAAAAAAAAA", aws_secret_access_key="x" * 40)
try:
    bad.list_keys()
    sys.exit("an unknown access key was accepted")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "UnrecognizedClientException", e.response
print("boto3 ok")
`

// TestBoto3 drives the endpoint with boto3 (endpoint_url), where python3
// with boto3 is installed, and says so where not.
func TestBoto3(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("skipped: python3 is not on PATH")
	}
	if err := exec.Command(python, "-c", "import boto3").Run(); err != nil {
		t.Skip("skipped: boto3 is not installed (pip install boto3)")
	}
	s := startServer(t)
	key, err := s.client(s.admin).CreateKey(t.Context(), nil)
	require.NoError(t, err)
	cmd := exec.CommandContext(t.Context(), python, "-c", boto3Script)
	cmd.Env = append(os.Environ(),
		"KMS_ENDPOINT="+s.URL, "KEY_ARN="+*key.KeyMetadata.Arn,
		"AWS_ACCESS_KEY_ID="+s.admin.ID, "AWS_SECRET_ACCESS_KEY="+s.admin.SecretAccessKey(),
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "boto3 ok")
}
