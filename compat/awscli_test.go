package compat

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// awsCLI runs `aws kms ...` against a server with an access key, from a
// temporary HOME, and logs a transcript.
type awsCLI struct {
	t        *testing.T
	bin      string
	env      []string
	dir      string
	endpoint string
}

func newAWSCLI(t *testing.T, s *server) *awsCLI {
	bin, err := exec.LookPath("aws")
	if err != nil {
		t.Skip("skipped: the AWS CLI (aws) is not on PATH")
	}
	home := t.TempDir()
	env := []string{
		"HOME=" + home,
		"PATH=" + os.Getenv("PATH"),
		"AWS_ACCESS_KEY_ID=" + s.admin.ID,
		"AWS_SECRET_ACCESS_KEY=" + s.admin.SecretAccessKey(),
		"AWS_DEFAULT_REGION=" + region,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_MAX_ATTEMPTS=1",
		"AWS_PAGER=",
	}
	// A pyenv shim finds its Python under PYENV_ROOT, by default under
	// HOME, which the test replaces.
	if root, ok := os.LookupEnv("PYENV_ROOT"); ok {
		env = append(env, "PYENV_ROOT="+root)
	} else if resolved, err := filepath.EvalSymlinks(bin); err == nil && strings.Contains(resolved, "/.pyenv/shims/") {
		env = append(env, "PYENV_ROOT="+resolved[:strings.Index(resolved, "/shims/")])
	}
	c := &awsCLI{t: t, bin: bin, env: env, dir: home, endpoint: s.URL}
	c.run(false, "--version")
	return c
}

// run runs aws with args, failing the test unless it exits as wantOK says;
// it returns standard output, or standard error on failure.
func (c *awsCLI) run(wantFail bool, args ...string) string {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env, cmd.Dir = c.env, c.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := strings.TrimSpace(stdout.String() + stderr.String())
	c.t.Logf("$ aws %s\n%s", strings.Join(args, " "), out)
	if wantFail {
		require.Error(c.t, err, "aws %s must fail", args)
	} else {
		require.NoError(c.t, err, "aws %s: %s", args, out)
	}
	return out
}

// kms runs `aws kms CMD ... --endpoint-url URL` and decodes its JSON output.
func (c *awsCLI) kms(args ...string) map[string]any {
	c.t.Helper()
	out := c.run(false, append(append([]string{"kms"}, args...), "--endpoint-url", c.endpoint)...)
	var m map[string]any
	if out != "" {
		require.NoError(c.t, json.Unmarshal([]byte(out), &m), out)
	}
	return m
}

// kmsFail runs a command that must fail and returns its error output.
func (c *awsCLI) kmsFail(args ...string) string {
	c.t.Helper()
	return c.run(true, append(append([]string{"kms"}, args...), "--endpoint-url", c.endpoint)...)
}

// writeBlob writes a base64 field of a response to a file for fileb://.
func (c *awsCLI) writeBlob(name string, b64 any) string {
	b, err := base64.StdEncoding.DecodeString(b64.(string))
	require.NoError(c.t, err)
	path := filepath.Join(c.dir, name)
	require.NoError(c.t, os.WriteFile(path, b, 0o600))
	return "fileb://" + path
}

// The seed's rotation runbook with the AWS CLI, `aws kms ... --endpoint-url`.
func TestAWSCLIRunbook(t *testing.T) {
	s := startServer(t)
	c := newAWSCLI(t, s)

	md := c.kms("create-key", "--description", "orders")["KeyMetadata"].(map[string]any)
	id := md["KeyId"].(string)
	assert.Equal(t, "Enabled", md["KeyState"])
	c.kms("create-alias", "--alias-name", "alias/orders", "--target-key-id", id)
	c.kms("enable-key-rotation", "--key-id", "alias/orders", "--rotation-period-in-days", "90")
	st := c.kms("get-key-rotation-status", "--key-id", "alias/orders")
	assert.Equal(t, true, st["KeyRotationEnabled"])
	assert.Equal(t, float64(90), st["RotationPeriodInDays"])

	dk := c.kms("generate-data-key", "--key-id", "alias/orders", "--key-spec", "AES_256", "--encryption-context", "order=1001")
	dkBlob := c.writeBlob("dk.bin", dk["CiphertextBlob"])

	assert.Equal(t, id, c.kms("rotate-key-on-demand", "--key-id", "alias/orders")["KeyId"])
	rots := c.kms("list-key-rotations", "--key-id", "alias/orders")["Rotations"].([]any)
	require.Len(t, rots, 1)
	assert.Equal(t, "ON_DEMAND", rots[0].(map[string]any)["RotationType"])
	assert.Equal(t, keyARN(id), c.kms("describe-key", "--key-id", "alias/orders")["KeyMetadata"].(map[string]any)["Arn"])

	dec := c.kms("decrypt", "--ciphertext-blob", dkBlob, "--encryption-context", "order=1001")
	assert.Equal(t, dk["Plaintext"], dec["Plaintext"], "a data key from before the rotation")
	re := c.kms("re-encrypt", "--ciphertext-blob", dkBlob, "--source-encryption-context", "order=1001",
		"--destination-key-id", "alias/orders", "--destination-encryption-context", "order=1001")
	dec = c.kms("decrypt", "--ciphertext-blob", c.writeBlob("re.bin", re["CiphertextBlob"]), "--encryption-context", "order=1001")
	assert.Equal(t, dk["Plaintext"], dec["Plaintext"])

	secret := filepath.Join(c.dir, "secret.txt")
	require.NoError(t, os.WriteFile(secret, []byte("db password"), 0o600))
	enc := c.kms("encrypt", "--key-id", "alias/orders", "--plaintext", "fileb://"+secret)
	encBlob := c.writeBlob("enc.bin", enc["CiphertextBlob"])
	dec = c.kms("decrypt", "--ciphertext-blob", encBlob)
	assert.Equal(t, base64.StdEncoding.EncodeToString([]byte("db password")), dec["Plaintext"])

	c.kms("disable-key", "--key-id", id)
	assert.Contains(t, c.kmsFail("generate-data-key", "--key-id", id, "--key-spec", "AES_256"), "DisabledException")
	c.kms("enable-key", "--key-id", id)
	del := c.kms("schedule-key-deletion", "--key-id", id, "--pending-window-in-days", "7")
	assert.Equal(t, "PendingDeletion", del["KeyState"])
	assert.Contains(t, c.kmsFail("decrypt", "--ciphertext-blob", encBlob), "KMSInvalidStateException")
	c.kms("cancel-key-deletion", "--key-id", id)
	assert.Equal(t, "Disabled", c.kms("describe-key", "--key-id", id)["KeyMetadata"].(map[string]any)["KeyState"])
	c.kms("enable-key", "--key-id", id)

	assert.Len(t, c.kms("list-keys")["Keys"], 1)
	assert.Len(t, c.kms("list-aliases")["Aliases"], 1)
	policy := filepath.Join(c.dir, "policy.json")
	require.NoError(t, os.WriteFile(policy, []byte(`{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
	  "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "kms:Decrypt", "Resource": "*"}]}`), 0o600))
	c.kms("put-key-policy", "--key-id", id, "--policy-name", "default", "--policy", "file://"+policy)
	assert.Contains(t, c.kms("get-key-policy", "--key-id", id, "--policy-name", "default")["Policy"], "user/alice")
	assert.Contains(t, c.kmsFail("create-grant", "--key-id", id, "--grantee-principal", "arn:aws:iam::111122223333:user/alice",
		"--operations", "Decrypt"), "UnsupportedOperationException")
}
