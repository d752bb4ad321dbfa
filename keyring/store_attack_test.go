package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// Attacks by someone who can write the store but does not hold the root key
// (DESIGN.md, "Security requirements": the store is less trusted than the
// root key; nothing read from a store can crash the process or make it
// allocate or compute without bound).

// TestAttackReplayDuringVersionChangeMustNotPanic: the store writer puts
// back an older, authentic key record (out of reach to detect, as
// documented) while a handle is changing a version's state. The handle's
// compare-and-swap conflicts, mutate reloads the older record (fewer
// versions) and runs the change again against it. The promise that nothing
// read from a store crashes the process still holds for replayed records:
// the change must fail with an error, not index past the versions it has.
func TestAttackReplayDuringVersionChangeMustNotPanic(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(ctx context.Context, k *keyring.Keyring) error
	}{
		{"DisableVersion", func(ctx context.Context, k *keyring.Keyring) error { return k.DisableVersion(ctx, 4) }},
		{"ScheduleVersionDestruction", func(ctx context.Context, k *keyring.Keyring) error {
			_, err := k.ScheduleVersionDestruction(ctx, 4, 0)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			st := durable{memstore.New()}
			rk := newRootKey(t, 1)
			k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
			require.NoError(t, err)
			for range 2 {
				_, err = k.Rotate(ctx)
				require.NoError(t, err)
			}
			old, err := st.Get(ctx, k.ID()) // authentic record, current version 3
			require.NoError(t, err)
			for range 2 {
				_, err = k.Rotate(ctx)
				require.NoError(t, err)
			}
			require.Equal(t, uint32(5), k.CurrentVersion())

			// The store writer puts the old record back; versions 1..3 are
			// unchanged since, so it authenticates. The handle still holds
			// five versions and the store revision moved.
			write(t, st, old)

			var err2 error
			panicked := func() (p any) {
				defer func() { p = recover() }()
				err2 = tc.change(ctx, k)
				return nil
			}()
			require.Nil(t, panicked, "a replayed record made %s panic: %v", tc.name, panicked)
			assert.Error(t, err2, "version 4 is not in the record the store now holds")
		})
	}
}

// countingStore counts the reads a keyring makes of a store.
type countingStore struct {
	store.Store
	gets, versions atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, id string) (store.Record, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, id)
}

func (c *countingStore) Versions(ctx context.Context, id string, after uint32) ([]store.Version, error) {
	c.versions.Add(1)
	return c.Store.Versions(ctx, id, after)
}

// TestAttackJunkVersionsBeyondCurrentAreReadOnEveryLoad: version entries
// numbered beyond the record's current version are ignored ("a concurrent
// rotation's"), but Store.Versions has no upper bound, so a store writer
// who appends junk entries there makes every Load and every Refresh read
// and allocate all of them. DESIGN.md: nothing read from a store can make
// the process allocate without bound.
func TestAttackJunkVersionsBeyondCurrentAreReadOnEveryLoad(t *testing.T) {
	ctx := t.Context()
	st := durable{memstore.New()}
	rk := newRootKey(t, 1)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)

	// 64 junk entries of 1 MiB after the current version (64 MiB).
	rec, err := st.Get(ctx, k.ID())
	require.NoError(t, err)
	junk := bytes.Repeat([]byte("x"), 1<<20)
	var vs []store.Version
	for n := uint32(2); n < 66; n++ {
		vs = append(vs, store.Version{Number: n, Data: junk})
	}
	_, err = st.Update(ctx, rec, vs)
	require.NoError(t, err)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l, err := keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(rk))
	runtime.ReadMemStats(&after)
	require.NoError(t, err, "the junk is beyond the current version: the key loads")
	assert.Equal(t, uint32(1), l.CurrentVersion())
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("Load allocated %d MiB with 64 MiB of junk version entries beyond the current version", alloc>>20)
	assert.Less(t, alloc, uint64(8<<20), "Load must not read what lies beyond the current version (it allocated %d MiB)", alloc>>20)

	// And again on every reload after any change made with the root key.
	require.NoError(t, k.SetDescription(ctx, "moved the revision"))
	runtime.GC()
	runtime.ReadMemStats(&before)
	require.NoError(t, l.Refresh(ctx))
	runtime.ReadMemStats(&after)
	alloc = after.TotalAlloc - before.TotalAlloc
	t.Logf("Refresh after a description change allocated %d MiB", alloc>>20)
	assert.Less(t, alloc, uint64(8<<20), "Refresh must not read what lies beyond the current version (it allocated %d MiB)", alloc>>20)
}

// TestAttackForgedVersionNumbersDoNotHammerStore: blobs naming versions
// that do not exist reload the key at most once per reload interval.
func TestAttackForgedVersionNumbersDoNotHammerStore(t *testing.T) {
	ctx := t.Context()
	cs := &countingStore{Store: durable{memstore.New()}}
	rk := newRootKey(t, 1)
	clk := clockwork.NewFakeClockAt(epoch)
	k, err := keyring.New(ctx, keyring.WithStore(cs), keyring.WithRootKey(rk))
	require.NoError(t, err)
	l, err := keyring.Load(ctx, cs, k.ID(), keyring.WithRootKey(rk), keyring.WithClock(clk))
	require.NoError(t, err)
	blob, err := l.Encrypt(ctx, []byte("secret"))
	require.NoError(t, err)
	g0, v0 := cs.gets.Load(), cs.versions.Load()
	for n := uint32(2); n < 1002; n++ {
		forged := bytes.Clone(blob)
		forged[17], forged[18], forged[19], forged[20] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		_, err := l.Decrypt(ctx, forged)
		require.ErrorIs(t, err, keyring.ErrUnknownVersion)
	}
	assert.LessOrEqual(t, cs.gets.Load()-g0, int64(1), "one reload for 1000 forged versions")
	assert.LessOrEqual(t, cs.versions.Load()-v0, int64(1))
}

// TestAttackBlobTamperErrorsAreDocumented: every single-bit flip and every
// truncation of a blob fails with one of the errors Decrypt's godoc lists
// for tampered input, never a panic and never plaintext.
func TestAttackBlobTamperErrorsAreDocumented(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	k, err := keyring.New(ctx, keyring.WithStore(st))
	require.NoError(t, err)
	_, err = k.Rotate(ctx)
	require.NoError(t, err)
	require.NoError(t, k.DisableVersion(ctx, 1))
	ec := map[string]string{"tenant": "a"}
	blob, err := k.Encrypt(ctx, []byte("attack at dawn"), keyring.WithEncryptionContext(ec))
	require.NoError(t, err)
	listed := []error{keyring.ErrMalformed, keyring.ErrWrongKey, keyring.ErrUnknownVersion,
		keyring.ErrVersionDisabled, keyring.ErrVersionDestroyed, keyring.ErrDecrypt}
	check := func(what string, b []byte) {
		pt, err := k.Decrypt(ctx, b, keyring.WithEncryptionContext(ec))
		require.Error(t, err, what)
		assert.Nil(t, pt, what)
		ok := false
		for _, e := range listed {
			ok = ok || errors.Is(err, e)
		}
		assert.True(t, ok, "%s: undocumented error %v", what, err)
	}
	for i := range len(blob) * 8 {
		b := bytes.Clone(blob)
		b[i/8] ^= 1 << (i % 8)
		check(fmt.Sprintf("bit %d flipped", i), b)
	}
	for n := range len(blob) {
		check(fmt.Sprintf("cut to %d bytes", n), blob[:n])
	}
	check("one byte appended", append(bytes.Clone(blob), 0))
}

// TestAttackSplicedVersionEntries: version entries copied between keys,
// swapped between numbers, duplicated or dropped fail the load.
func TestAttackSplicedVersionEntries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		splice func(t *testing.T, st store.Store, a, b string) []store.Version
	}{
		{"version 2 of another key", func(t *testing.T, st store.Store, a, b string) []store.Version {
			return []store.Version{{Number: 2, Data: version(t, st, b, 2).Data}}
		}},
		{"versions 1 and 2 swapped", func(t *testing.T, st store.Store, a, _ string) []store.Version {
			return []store.Version{{Number: 1, Data: version(t, st, a, 2).Data}, {Number: 2, Data: version(t, st, a, 1).Data}}
		}},
		{"version 1 duplicated into 2", func(t *testing.T, st store.Store, a, _ string) []store.Version {
			return []store.Version{{Number: 2, Data: version(t, st, a, 1).Data}}
		}},
		{"version 3 emptied", func(t *testing.T, st store.Store, a, _ string) []store.Version {
			return []store.Version{{Number: 3, Data: nil}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			st := durable{memstore.New()}
			rk := newRootKey(t, 1)
			var ids []string
			for range 2 {
				k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
				require.NoError(t, err)
				for range 2 {
					_, err = k.Rotate(ctx)
					require.NoError(t, err)
				}
				ids = append(ids, k.ID())
			}
			rec, err := st.Get(ctx, ids[0])
			require.NoError(t, err)
			write(t, st, rec, tc.splice(t, st, ids[0], ids[1])...)
			_, err = keyring.Load(ctx, st, ids[0], keyring.WithRootKey(rk))
			requireTampered(t, err, ids[0], tc.name)
		})
	}
}

// TestAttackGarbageStoreKeyRecord: a store key record that is deep, huge,
// mistyped or foreign fails New, Load and AuditMAC with an error, never a
// panic. A fresh root key value bypasses the process's store key cache, as
// a new process would.
func TestAttackGarbageStoreKeyRecord(t *testing.T) {
	for name, data := range map[string][]byte{
		"deep JSON":      []byte(strings.Repeat("[", 60000)),
		"huge":           bytes.Repeat([]byte(" "), 10<<20),
		"key not base64": []byte(`{"format":1,"key":"!!!"}`),
		"key a number":   []byte(`{"format":1,"key":12}`),
		"empty key":      []byte(`{"format":1,"key":""}`),
		"format 2":       []byte(`{"format":2,"key":"AAAA"}`),
		"null":           []byte(`null`),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			st := durable{memstore.New()}
			k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(newRootKey(t, 1)))
			require.NoError(t, err)
			rec, err := st.Get(ctx, "kmsring:store")
			require.NoError(t, err)
			rec.Data = data
			_, err = st.Update(ctx, rec, nil)
			require.NoError(t, err)
			fresh := newRootKey(t, 1)
			_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(fresh))
			assert.Error(t, err)
			_, err = keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(fresh))
			assert.Error(t, err)
			_, err = keyring.AuditMAC(ctx, st, fresh)
			assert.Error(t, err)
		})
	}
}

// TestAttackReservedIDsAreNotKeys: Load refuses the reserved records by ID
// and a store writer cannot make one load as a key.
func TestAttackReservedIDsAreNotKeys(t *testing.T) {
	ctx := t.Context()
	st := durable{memstore.New()}
	rk := newRootKey(t, 1)
	_, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)
	for _, id := range []string{"kmsring:store", "kmsring:access-key:AKIAAAAAAAAAAAAAAAAA", "KMSRING:store"} {
		_, err := keyring.Load(ctx, st, id, keyring.WithRootKey(rk))
		assert.ErrorIs(t, err, keyring.ErrKeyNotFound, id)
	}
}

// TestAttackKeyRecordSizes: a key record emptied, cut short, cut by one
// byte or grown huge fails Load and Refresh with ErrTampered naming the
// key, before anything is computed from its contents, and the error does
// not echo the record.
func TestAttackKeyRecordSizes(t *testing.T) {
	for name, edit := range map[string]func([]byte) []byte{
		"empty":             func([]byte) []byte { return nil },
		"shorter than tag":  func(b []byte) []byte { return b[:31] },
		"one byte cut":      func(b []byte) []byte { return b[:len(b)-1] },
		"one byte appended": func(b []byte) []byte { return append(bytes.Clone(b), 0) },
		"10 MiB":            func(b []byte) []byte { return append(bytes.Repeat([]byte(" "), 10<<20), b...) },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			st := durable{memstore.New()}
			rk := newRootKey(t, 1)
			k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
			require.NoError(t, err)
			rec, err := st.Get(ctx, k.ID())
			require.NoError(t, err)
			rec.Data = edit(rec.Data)
			write(t, st, rec)
			_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(rk))
			requireTampered(t, err, k.ID(), "Load of a resized key record")
			assert.Less(t, len(err.Error()), 1024, "the error does not echo the record")
			requireTampered(t, k.Refresh(ctx), k.ID(), "reload of a resized key record")
		})
	}
}

// TestAttackVersionRecordSizes: a version record within the current one
// that is cut by one byte or replaced by 1 MiB of junk fails Load with
// ErrTampered naming the key.
func TestAttackVersionRecordSizes(t *testing.T) {
	for name, edit := range map[string]func([]byte) []byte{
		"one byte cut": func(b []byte) []byte { return b[:len(b)-1] },
		"1 MiB":        func([]byte) []byte { return bytes.Repeat([]byte("x"), 1<<20) },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			st := durable{memstore.New()}
			rk := newRootKey(t, 1)
			k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
			require.NoError(t, err)
			rec, err := st.Get(ctx, k.ID())
			require.NoError(t, err)
			v := version(t, st, k.ID(), 1)
			write(t, st, rec, store.Version{Number: 1, Data: edit(v.Data)})
			_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(rk))
			requireTampered(t, err, k.ID(), "Load with a resized version record")
			assert.Less(t, len(err.Error()), 1024, "the error does not echo the record")
		})
	}
}

// TestAttackTruncatedRootKeyCiphertexts: every truncation of a built-in
// root key's ciphertext (as a store writer may leave a wrapped store key
// or version) fails Decrypt with an error, never a panic or plaintext.
func TestAttackTruncatedRootKeyCiphertexts(t *testing.T) {
	pass, err := testPassphraseRootKey(t, []byte("correct horse")), error(nil)
	require.NoError(t, err)
	local := newRootKey(t, 1)
	for name, rk := range map[string]tink.AEAD{
		"local":      local,
		"passphrase": pass,
		"list":       keyring.RootKeys(newRootKey(t, 2), local),
	} {
		t.Run(name, func(t *testing.T) {
			ad := []byte("associated data")
			ct, err := rk.Encrypt([]byte("thirty-two bytes of key material"), ad)
			require.NoError(t, err)
			for n := range len(ct) {
				pt, err := rk.Decrypt(ct[:n], ad)
				require.Error(t, err, "cut to %d bytes", n)
				assert.Nil(t, pt, "cut to %d bytes", n)
				assert.NotContains(t, err.Error(), "thirty-two", "cut to %d bytes", n)
			}
		})
	}
}

// TestAttackHugeRootKeyFile: a root key file grown to 1 MiB is refused
// with ErrInvalidArgument, without printing its bytes.
func TestAttackHugeRootKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root.key")
	require.NoError(t, os.WriteFile(path, bytes.Repeat([]byte("k"), 1<<20), 0o600))
	_, err := keyring.ReadRootKeyFile(path)
	require.ErrorIs(t, err, keyring.ErrInvalidArgument)
	assert.NotContains(t, err.Error(), "kkkk", "the error does not print the file")
	_, err = keyring.RootKeyFile(path)
	require.ErrorIs(t, err, keyring.ErrInvalidArgument)
}
