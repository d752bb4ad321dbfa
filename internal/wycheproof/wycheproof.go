// Package wycheproof loads Wycheproof test vectors (github.com/c2sp/wycheproof)
// for the AEAD and KDF tests of the packages that use those primitives.
package wycheproof

import (
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"testing"

	"github.com/c2sp/wycheproof"
	"github.com/stretchr/testify/require"
)

// AEADGroup is a group of AEAD test vectors with one key, IV and tag size.
type AEADGroup struct {
	KeySize int        `json:"keySize"`
	IVSize  int        `json:"ivSize"`
	TagSize int        `json:"tagSize"`
	Tests   []AEADTest `json:"tests"`
}

// AEADTest is one AEAD vector. Result is "valid", "invalid" or
// "acceptable".
type AEADTest struct {
	ID      int    `json:"tcId"`
	Comment string `json:"comment"`
	Key     Hex    `json:"key"`
	IV      Hex    `json:"iv"`
	AAD     Hex    `json:"aad"`
	Msg     Hex    `json:"msg"`
	CT      Hex    `json:"ct"`
	Tag     Hex    `json:"tag"`
	Result  string `json:"result"`
}

// HKDFTest is one HKDF vector.
type HKDFTest struct {
	ID     int    `json:"tcId"`
	IKM    Hex    `json:"ikm"`
	Salt   Hex    `json:"salt"`
	Info   Hex    `json:"info"`
	Size   int    `json:"size"`
	OKM    Hex    `json:"okm"`
	Result string `json:"result"`
}

// Hex is a hex-encoded JSON string.
type Hex []byte

// UnmarshalJSON implements json.Unmarshaler.
func (h *Hex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

// Load reads a vector file (such as "aes_gcm_test.json") into groups of
// type G, failing the test if it has none.
func Load[G any](t testing.TB, name string) []G {
	t.Helper()
	b, err := fs.ReadFile(wycheproof.TestVectors, name)
	require.NoError(t, err)
	var f struct {
		Groups []G `json:"testGroups"`
	}
	require.NoError(t, json.Unmarshal(b, &f))
	require.NotEmpty(t, f.Groups, "%s has test groups", name)
	return f.Groups
}
