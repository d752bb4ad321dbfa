package compat

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestJavaScriptClients runs compat/js/run.mjs against the endpoint: the
// AWS SDK for JavaScript v3 (KMSClient with endpoint) and the AWS
// Encryption SDK for JavaScript (KMS keyring, discovery keyring and
// caching materials manager, with getClient(KMS, {endpoint})). It runs
// where node is on PATH and compat/js has its packages (npm ci in
// compat/js, from package-lock.json), and says so where not.
func TestJavaScriptClients(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("skipped: node is not on PATH (the JavaScript clients need Node.js 18 or later)")
	}
	if _, err := os.Stat(filepath.Join("js", "node_modules", "@aws-crypto", "client-node")); err != nil {
		t.Skip("skipped: compat/js has no packages installed: run `npm ci` in compat/js")
	}
	s := startServer(t)
	key, err := s.client(s.admin).CreateKey(t.Context(), nil)
	require.NoError(t, err)
	cmd := exec.CommandContext(t.Context(), node, "run.mjs")
	cmd.Dir = "js"
	cmd.Env = append(os.Environ(),
		"KMS_ENDPOINT="+s.URL, "KEY_ARN="+*key.KeyMetadata.Arn,
		"AWS_ACCESS_KEY_ID="+s.admin.ID, "AWS_SECRET_ACCESS_KEY="+s.admin.SecretAccessKey(),
		"AWS_REGION="+region)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), `"caching":"ok"`)
}
