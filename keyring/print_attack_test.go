package keyring_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// forms returns the ways a secret could show in text: raw, hex (both
// cases), base64 (std and URL), Go's byte-slice and array syntax, and a
// quoted string.
func forms(secret []byte) []string {
	dec := strings.Trim(fmt.Sprint(secret), "[]")
	return []string{
		string(secret), hex.EncodeToString(secret), strings.ToUpper(hex.EncodeToString(secret)),
		base64.StdEncoding.EncodeToString(secret), base64.RawURLEncoding.EncodeToString(secret),
		dec, fmt.Sprintf("%#v", secret)[len("[]byte{"):20], fmt.Sprintf("%q", secret),
	}
}

// printAll renders v with every fmt verb, slog's handlers and JSON.
func printAll(v any) string {
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		fmt.Fprintf(&out, verb+"\n", v)
	}
	slog.New(slog.NewTextHandler(&out, nil)).Info("v", "v", v)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("v", "v", v)
	b, _ := json.Marshal(v)
	out.Write(b)
	return out.String()
}

// TestAttackNothingPrintsSecrets: every value the library returns that
// holds a secret, alone, in a slice, behind a pointer, in a map or in an
// exported struct field, and every error from a failing operation, prints
// neither the root key, the passphrase nor a data key's plaintext.
func TestAttackNothingPrintsSecrets(t *testing.T) {
	ctx := t.Context()
	rootBytes := make([]byte, keyring.RootKeySize)
	rand.Read(rootBytes)
	rk, err := keyring.NewRootKey(rootBytes)
	require.NoError(t, err)
	pass := []byte("Tr0ub4dor&3-passphrase")
	prk, err := testPassphraseRootKey(t, pass), error(nil)
	require.NoError(t, err)
	st := durable{memstore.New()}
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)
	dk, err := k.GenerateDataKey(ctx, keyring.WithEncryptionContext(map[string]string{"a": "b"}))
	require.NoError(t, err)
	dk64, err := k.GenerateDataKey(ctx, keyring.WithNumberOfBytes(64))
	require.NoError(t, err)

	type holder struct {
		DK   keyring.DataKey
		PDK  *keyring.DataKey
		RK   any
		Ring *keyring.Keyring
	}
	values := []any{
		rk, prk, keyring.RootKeys(rk, prk), k, dk, *dk, dk64,
		[]*keyring.DataKey{dk}, []keyring.DataKey{*dk}, map[string]*keyring.DataKey{"k": dk},
		holder{*dk, dk, rk, k}, &holder{*dk, dk, prk, k},
	}
	// Errors from operations that handle the secrets.
	other, err := keyring.NewRootKey(bytes.Repeat([]byte{9}, 32))
	require.NoError(t, err)
	_, e1 := keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(other))
	_, e2 := k.Decrypt(ctx, dk.Ciphertext)
	_, e3 := k.Decrypt(ctx, append(bytes.Clone(dk.Ciphertext), 1))
	_, e4 := keyring.NewRootKey(rootBytes[:31])
	_, e5 := keyring.NewPassphraseRootKey(pass, keyring.Argon2Params{Time: 1, Memory: 8, Threads: 1})
	_, e6 := prk.Decrypt(bytes.Repeat([]byte{1}, 100), nil)
	for _, e := range []error{e1, e2, e3, e4, e5, e6} {
		require.Error(t, e)
		values = append(values, e)
	}

	secrets := map[string][]byte{"root key": rootBytes, "passphrase": pass, "data key": dk.Plaintext, "64-byte data key": dk64.Plaintext}
	for i, v := range values {
		text := printAll(v)
		for name, s := range secrets {
			for _, f := range forms(s) {
				assert.NotContains(t, text, f, "value %d (%T) prints the %s", i, v, name)
			}
		}
	}
}
