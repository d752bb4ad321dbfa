// Package testvec reads and writes the golden test vectors in testdata/ and
// loads the keyring they were made with.
//
// A vector file is a text header of "name: value" lines, an empty line, and
// the vector's bytes (after age's testkit files). Header fields:
//
//	expect: success | malformed | decrypt | truncated | context mismatch | wrong key | unknown version
//	encryption context: JSON object (the context to open with; for an
//	envelope, the context Open is told to expect)
//	plaintext: hex (success only)
//	comment: free text
package testvec

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/internal/fipsmode"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/require"
)

// Expectations.
const (
	Success   = "success"
	Malformed = "malformed"
	// Decrypt is any authentication failure (keyring.ErrDecrypt);
	// Truncated and ContextMismatch are the two that envelope names
	// (envelope.ErrTruncated, envelope.ErrContextMismatch), and they
	// are ErrDecrypt too.
	Decrypt         = "decrypt"
	Truncated       = "truncated"
	ContextMismatch = "context mismatch"
	WrongKey        = "wrong key"
	UnknownVersion  = "unknown version"
)

var expectations = map[string]error{
	Malformed:       keyring.ErrMalformed,
	Decrypt:         keyring.ErrDecrypt,
	Truncated:       envelope.ErrTruncated,
	ContextMismatch: envelope.ErrContextMismatch,
	WrongKey:        keyring.ErrWrongKey,
	UnknownVersion:  keyring.ErrUnknownVersion,
}

// Vector is one golden vector.
type Vector struct {
	Name      string
	Expect    string
	Context   map[string]string
	Plaintext []byte
	Comment   string
	Data      []byte
}

// Marshal returns the vector's file contents.
func (v *Vector) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "expect: %s\n", v.Expect)
	if v.Context != nil {
		ec, _ := json.Marshal(v.Context)
		fmt.Fprintf(&b, "encryption context: %s\n", ec)
	}
	if v.Expect == Success {
		fmt.Fprintf(&b, "plaintext: %x\n", v.Plaintext)
	}
	if v.Comment != "" {
		fmt.Fprintf(&b, "comment: %s\n", v.Comment)
	}
	b.WriteString("\n")
	b.Write(v.Data)
	return b.Bytes()
}

// Parse parses a vector file.
func Parse(name string, file []byte) (*Vector, error) {
	head, data, ok := bytes.Cut(file, []byte("\n\n"))
	if !ok {
		return nil, fmt.Errorf("%s: no empty line after the header", name)
	}
	v := &Vector{Name: name, Data: data}
	for line := range strings.Lines(string(head) + "\n") {
		key, val, ok := strings.Cut(strings.TrimSuffix(line, "\n"), ": ")
		if !ok {
			return nil, fmt.Errorf("%s: bad header line %q", name, line)
		}
		switch key {
		case "expect":
			v.Expect = val
		case "encryption context":
			if err := json.Unmarshal([]byte(val), &v.Context); err != nil {
				return nil, fmt.Errorf("%s: %v", name, err)
			}
		case "plaintext":
			pt, err := hex.DecodeString(val)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", name, err)
			}
			v.Plaintext = pt
		case "comment":
			v.Comment = val
		default:
			return nil, fmt.Errorf("%s: unknown header %q", name, key)
		}
	}
	if _, ok := expectations[v.Expect]; !ok && v.Expect != Success {
		return nil, fmt.Errorf("%s: unknown expectation %q", name, v.Expect)
	}
	return v, nil
}

// ReadDir returns every vector in dir, sorted by name.
func ReadDir(dir string) ([]*Vector, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var vs []*Vector
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		v, err := Parse(e.Name(), b)
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("no vectors in %s", dir)
	}
	return vs, nil
}

// Fixture is the keyring the vectors were made with, as it sits in a store:
// the store key record, the key's record (its JSON document and tag), its
// versions, and the root key that wraps the store key and the material.
type Fixture struct {
	RootKey  []byte           `json:"root_key"`
	StoreKey json.RawMessage  `json:"store_key"`
	KeyID    string           `json:"key_id"`
	Record   []byte           `json:"record"`
	Versions []FixtureVersion `json:"versions"`
}

// StoreKeyID is the reserved key ID of the store key record.
const StoreKeyID = keyring.ReservedPrefix + "store"

// FixtureVersion is one stored version of the fixture.
type FixtureVersion struct {
	Number uint32          `json:"number"`
	Data   json.RawMessage `json:"data"`
}

// LoadKeyring puts the fixture in dir/keyring.json into a fresh in-memory
// store and loads it with keyring.Load.
func LoadKeyring(ctx context.Context, dir string) (*keyring.Keyring, error) {
	return LoadFixture(ctx, dir, "keyring.json")
}

// ApprovedFixture is the fixture of the approved formats' vectors: its
// root key ciphertexts are of the approved format too, so that it loads in
// FIPS 140-3 mode without running a golang.org/x/crypto primitive.
const ApprovedFixture = "keyring-approved.json"

// LoadFixture is LoadKeyring of the fixture file name in dir, with the
// root key options given. The fixture of format 1 (keyring.json) was
// written outside FIPS mode: in the mode it loads only with
// keyring.RootKeyAllowNonApproved.
func LoadFixture(ctx context.Context, dir, name string, opts ...keyring.RootKeyOption) (*keyring.Keyring, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	var f Fixture
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	st := memstore.New()
	if _, err := st.Create(ctx, store.Record{KeyID: StoreKeyID, Data: f.StoreKey}, nil); err != nil {
		return nil, err
	}
	vs := make([]store.Version, len(f.Versions))
	for i, v := range f.Versions {
		// The file indents the records; the store holds them compact, as
		// they were written, and the key record's digest covers their
		// exact bytes.
		var data bytes.Buffer
		if err := json.Compact(&data, v.Data); err != nil {
			return nil, err
		}
		vs[i] = store.Version{Number: v.Number, Data: data.Bytes()}
	}
	if _, err := st.Create(ctx, store.Record{KeyID: f.KeyID, Data: f.Record}, vs); err != nil {
		return nil, err
	}
	rk, err := keyring.NewRootKey(f.RootKey, opts...)
	if err != nil {
		return nil, err
	}
	return keyring.Load(ctx, st, f.KeyID, keyring.WithRootKey(rk))
}

// Check asserts that an opening of v returned what v expects.
func (v *Vector) Check(t testing.TB, pt []byte, err error) {
	t.Helper()
	want := expectations[v.Expect]
	if v.Expect == Success {
		require.NoError(t, err, "%s (%s)", v.Name, v.Comment)
		if len(pt) == 0 {
			pt = []byte{}
		}
		require.Equal(t, v.Plaintext, pt, "%s: plaintext", v.Name)
		return
	}
	require.ErrorIs(t, err, want, "%s (%s)", v.Name, v.Comment)
	if v.Expect == Truncated || v.Expect == ContextMismatch {
		require.ErrorIs(t, err, keyring.ErrDecrypt, "%s: %s is a decryption failure too", v.Name, v.Expect)
	}
	require.Nil(t, pt, "%s: no plaintext on failure", v.Name)
}

// Allocated returns the bytes f allocates per call, averaged over 100
// calls so that an allocation elsewhere in the process hardly counts: for
// tests that bound memory by the input.
func Allocated(f func()) uint64 {
	const runs = 100
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / runs
}

// Seed adds the data of every vector in dir to f's seed corpus, failing if
// there are none.
func Seed(f *testing.F, dir string) []*Vector {
	vs, err := ReadDir(dir)
	require.NoError(f, err)
	require.NotEmpty(f, vs, "seed corpus is empty")
	for _, v := range vs {
		f.Add(v.Data)
	}
	return vs
}

// SkipInFIPSMode skips a test of a format that is not approved when the
// process runs in FIPS 140-3 mode, where what it checks cannot be written
// (the approved formats have their own tests, vectors and fuzz seeds).
func SkipInFIPSMode(t testing.TB, why string) {
	t.Helper()
	if fipsmode.Enabled() {
		t.Skip("FIPS 140-3 mode: " + why)
	}
}
