package keyring_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The reproductions: %+v and slog of a passphrase root key printed
// the passphrase; json.Marshal and slog's JSON handler of a *DataKey
// printed the plaintext.
func TestPrintedFormsHoldNoSecrets(t *testing.T) {
	rk, err := testPassphraseRootKey(t, []byte("correct horse")), error(nil)
	require.NoError(t, err)
	var out bytes.Buffer
	fmt.Fprintf(&out, "%+v %s %#v\n", rk, rk, rk)
	slog.New(slog.NewTextHandler(&out, nil)).Info("root key", "rk", rk)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("root key", "rk", rk)
	assert.NotContains(t, out.String(), "correct horse")
	assert.NotContains(t, out.String(), "99 111 114 114 101 99 116", "the passphrase's bytes")
	assert.Contains(t, out.String(), "keyring.PassphraseRootKey(", "its parameters only")

	k, err := keyring.New(t.Context())
	require.NoError(t, err)
	dk, err := k.GenerateDataKey(t.Context())
	require.NoError(t, err)
	b, err := json.Marshal(dk)
	require.NoError(t, err)
	assert.JSONEq(t, fmt.Sprintf(`{"KeyID":%q,"Version":1,"Ciphertext":%q}`, dk.KeyID, base64.StdEncoding.EncodeToString(dk.Ciphertext)), string(b),
		"a data key's JSON carries its key ID, version and blob, never the plaintext")
	var back keyring.DataKey
	require.NoError(t, json.Unmarshal(b, &back))
	pt, err := k.Decrypt(t.Context(), back.Ciphertext)
	require.NoError(t, err)
	assert.Equal(t, dk.Plaintext, pt, "the blob in the JSON decrypts to the plaintext")

	out.Reset()
	slog.New(slog.NewJSONHandler(&out, nil)).Info("data key", "dk", dk)
	assert.NotContains(t, out.String(), base64.StdEncoding.EncodeToString(dk.Plaintext))
	assert.Contains(t, out.String(), `"dk":{"key_id":"`+dk.KeyID+`","version":1,"plaintext_bytes":32,"ciphertext_bytes":`)
}
