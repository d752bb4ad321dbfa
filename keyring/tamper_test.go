package keyring_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// These tests play someone who can write the store (a database
// administrator, a restored backup, a compromised replica) but does not hold
// the root key. Every change they make to what a key does must fail the
// load with ErrTampered naming the key, not silently take effect.

func newRootKey(t *testing.T, b byte) tink.AEAD {
	t.Helper()
	rk, err := keyring.NewRootKey(bytes.Repeat([]byte{b}, keyring.RootKeySize))
	require.NoError(t, err)
	return rk
}

// storedKey makes a key with three versions in a fresh store: version 1
// disabled, version 2 destroyed, version 3 current.
func storedKey(t *testing.T) (durable, tink.AEAD, *keyring.Keyring, *clockwork.FakeClock) {
	t.Helper()
	ctx := t.Context()
	st := durable{memstore.New()}
	rk := newRootKey(t, 1)
	clk := clockwork.NewFakeClockAt(epoch)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithClock(clk),
		keyring.WithAlias("alias/tenant-a"), keyring.WithRotationPeriod(90*24*time.Hour))
	require.NoError(t, err)
	for range 2 {
		_, err = k.Rotate(ctx)
		require.NoError(t, err)
	}
	require.NoError(t, k.DisableVersion(ctx, 1))
	_, err = k.ScheduleVersionDestruction(ctx, 2, 0)
	require.NoError(t, err)
	clk.Advance(31 * 24 * time.Hour)
	_, err = k.DestroyDueVersions(ctx)
	require.NoError(t, err)
	return st, rk, k, clk
}

// editDoc rewrites fields of a key record's JSON document, keeping its tag,
// as someone without the store key must.
func editDoc(t *testing.T, data []byte, edit func(map[string]any)) []byte {
	t.Helper()
	doc, tag := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	var m map[string]any
	require.NoError(t, json.Unmarshal(doc, &m))
	edit(m)
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return append(b, tag...)
}

// editVersion rewrites fields of a version record.
func editVersion(t *testing.T, data []byte, edit func(map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	edit(m)
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

// write stores rec (with versions) over whatever the store holds, as a
// store writer can.
func write(t *testing.T, st store.Store, rec store.Record, versions ...store.Version) {
	t.Helper()
	cur, err := st.Get(t.Context(), rec.KeyID)
	require.NoError(t, err)
	rec.Revision = cur.Revision
	_, err = st.Update(t.Context(), rec, versions)
	require.NoError(t, err)
}

func version(t *testing.T, st store.Store, id string, n uint32) store.Version {
	t.Helper()
	vs, err := st.Versions(t.Context(), id, n-1)
	require.NoError(t, err)
	require.NotEmpty(t, vs)
	return vs[0]
}

func requireTampered(t *testing.T, err error, id, what string) {
	t.Helper()
	t.Logf("%s: %v", what, err)
	require.ErrorIs(t, err, keyring.ErrTampered, what)
	assert.Contains(t, err.Error(), id, "the error names the key")
}

func TestTamperedKeyRecordFailsLoad(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(map[string]any)
	}{
		{"current version rolled back", func(m map[string]any) { m["current_version"] = 1 }},
		{"current version 2^32-1", func(m map[string]any) { m["current_version"] = uint32(1<<32 - 1) }},
		{"schedule moved", func(m map[string]any) { m["next_rotation_at"] = "2100-01-01T00:00:00Z" }},
		{"rotation disabled", func(m map[string]any) { delete(m, "rotation_period_ns"); delete(m, "next_rotation_at") }},
		{"key state changed", func(m map[string]any) { m["key_state"] = "Disabled" }},
		{"alias added", func(m map[string]any) { m["aliases"] = []string{"alias/tenant-a", "alias/tenant-b"} }},
		{"policy replaced", func(m map[string]any) { m["policy"] = `{"Statement":[]}` }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, rk, k, _ := storedKey(t)
			rec, err := st.Get(t.Context(), k.ID())
			require.NoError(t, err)
			rec.Data = editDoc(t, rec.Data, tc.edit)
			write(t, st, rec)
			_, err = keyring.Load(t.Context(), st, k.ID(), keyring.WithRootKey(rk))
			requireTampered(t, err, k.ID(), "Load of an edited key record")
			requireTampered(t, k.Refresh(t.Context()), k.ID(), "reload of an edited key record")
			_, err = k.GenerateDataKey(t.Context())
			require.NoError(t, err, "the handle keeps working with what it authenticated")
		})
	}
}

func TestTamperedVersionFailsLoad(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    uint32
		edit func(t *testing.T, st durable, id string, v store.Version) []store.Version
	}{
		{"disabled version enabled", 1, func(t *testing.T, _ durable, _ string, v store.Version) []store.Version {
			v.Data = editVersion(t, v.Data, func(m map[string]any) { m["state"] = "enabled" })
			return []store.Version{v}
		}},
		{"version record dropped", 3, func(t *testing.T, st durable, id string, v store.Version) []store.Version {
			return []store.Version{{Number: 3, Data: version(t, st, id, 2).Data}}
		}},
		{"version added", 4, func(t *testing.T, st durable, id string, v store.Version) []store.Version {
			return []store.Version{{Number: 4, Data: version(t, st, id, 3).Data}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, rk, k, _ := storedKey(t)
			rec, err := st.Get(t.Context(), k.ID())
			require.NoError(t, err)
			n := min(tc.n, 3)
			write(t, st, rec, tc.edit(t, st, k.ID(), version(t, st, k.ID(), n))...)
			l, err := keyring.Load(t.Context(), st, k.ID(), keyring.WithRootKey(rk))
			if tc.n == 4 {
				// A version beyond the current one is ignored (it may be a
				// concurrent rotation's), so the key loads unchanged.
				require.NoError(t, err)
				assert.Equal(t, uint32(3), l.CurrentVersion())
				return
			}
			requireTampered(t, err, k.ID(), "Load with an edited version record")
		})
	}
}

func TestRestoredDestroyedVersionFailsLoad(t *testing.T) {
	ctx := t.Context()
	st := durable{memstore.New()}
	rk := newRootKey(t, 1)
	clk := clockwork.NewFakeClockAt(epoch)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithClock(clk))
	require.NoError(t, err)
	old, err := k.Encrypt(ctx, []byte("sealed under version 1"))
	require.NoError(t, err)
	_, err = k.Rotate(ctx)
	require.NoError(t, err)
	backup := version(t, st, k.ID(), 1) // version 1 with its material
	_, err = k.ScheduleVersionDestruction(ctx, 1, 0)
	require.NoError(t, err)
	clk.Advance(30 * 24 * time.Hour)
	_, err = k.DestroyDueVersions(ctx)
	require.NoError(t, err)

	rec, err := st.Get(ctx, k.ID())
	require.NoError(t, err)
	write(t, st, rec, backup)
	l, err := keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(rk))
	requireTampered(t, err, k.ID(), "a destroyed version restored from a backup")
	assert.Nil(t, l)
	_, err = k.Decrypt(ctx, old)
	require.ErrorIs(t, err, keyring.ErrVersionDestroyed, "the handle never sees the restored material")
}

func TestRedirectedAliasFailsLoad(t *testing.T) {
	ctx := t.Context()
	st := durable{memstore.New()}
	rk := newRootKey(t, 1)
	a, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithAlias("alias/tenant-a"))
	require.NoError(t, err)
	b, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithAlias("alias/tenant-b"))
	require.NoError(t, err)

	// Move alias/tenant-a from A's record to B's, as the store's alias
	// index sees it.
	ra, err := st.Get(ctx, a.ID())
	require.NoError(t, err)
	ra.Aliases = nil
	write(t, st, ra)
	rb, err := st.Get(ctx, b.ID())
	require.NoError(t, err)
	rb.Aliases = append(rb.Aliases, "alias/tenant-a")
	write(t, st, rb)

	_, err = keyring.Load(ctx, st, "alias/tenant-a", keyring.WithRootKey(rk))
	requireTampered(t, err, b.ID(), "an alias pointed at another key")
	_, err = keyring.Load(ctx, st, a.ID(), keyring.WithRootKey(rk))
	requireTampered(t, err, a.ID(), "a key whose alias was removed behind its back")
}

func TestSplicedRecordFailsLoad(t *testing.T) {
	ctx := t.Context()
	st := durable{memstore.New()}
	rk := newRootKey(t, 1)
	a, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)
	b, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)
	rb, err := st.Get(ctx, b.ID())
	require.NoError(t, err)
	ra, err := st.Get(ctx, a.ID())
	require.NoError(t, err)
	ra.Data = rb.Data
	write(t, st, ra, version(t, st, b.ID(), 1))
	_, err = keyring.Load(ctx, st, a.ID(), keyring.WithRootKey(rk))
	requireTampered(t, err, a.ID(), "another key's record copied over this one")
}

func TestOtherStoresKeyFailsLoad(t *testing.T) {
	ctx := t.Context()
	rk := newRootKey(t, 1)
	st1, st2 := durable{memstore.New()}, durable{memstore.New()}
	_, err := keyring.New(ctx, keyring.WithStore(st1), keyring.WithRootKey(rk))
	require.NoError(t, err)
	b, err := keyring.New(ctx, keyring.WithStore(st2), keyring.WithRootKey(rk))
	require.NoError(t, err)
	// Copy key B, record and versions, from store 2 into store 1: same
	// root key, another store key.
	rb, err := st2.Get(ctx, b.ID())
	require.NoError(t, err)
	vs, err := st2.Versions(ctx, b.ID(), 0)
	require.NoError(t, err)
	_, err = st1.Create(ctx, store.Record{KeyID: rb.KeyID, Data: rb.Data}, vs)
	require.NoError(t, err)
	_, err = keyring.Load(ctx, st1, b.ID(), keyring.WithRootKey(rk))
	requireTampered(t, err, b.ID(), "a key copied from another store")
}

func TestStoreUnderOneRootKey(t *testing.T) {
	ctx := t.Context()
	st := durable{memstore.New()}
	a := newRootKey(t, 1)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(a))
	require.NoError(t, err)
	b := newRootKey(t, 2)
	_, err = keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(b))
	require.ErrorIs(t, err, keyring.ErrRootKey, "New under another root key would leave the store mixed")
	_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(b))
	require.ErrorIs(t, err, keyring.ErrRootKey)
	ids, err := keyring.List(ctx, st)
	require.NoError(t, err)
	assert.Equal(t, []string{k.ID()}, ids, "nothing was added, and the store key record is not listed")
	_, err = keyring.Load(ctx, st, keyring.ReservedPrefix+"store", keyring.WithRootKey(a))
	require.ErrorIs(t, err, keyring.ErrKeyNotFound, "reserved records are not keys")
}

func TestDeletedStoreKeyFailsLoad(t *testing.T) {
	ctx := t.Context()
	st := durable{memstore.New()}
	rk := newRootKey(t, 1)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)
	// memstore cannot delete; a copy of the store without the store key
	// record is what deleting it leaves.
	bare := durable{memstore.New()}
	rec, err := st.Get(ctx, k.ID())
	require.NoError(t, err)
	vs, err := st.Versions(ctx, k.ID(), 0)
	require.NoError(t, err)
	_, err = bare.Create(ctx, rec, vs)
	require.NoError(t, err)
	_, err = keyring.Load(ctx, bare, k.ID(), keyring.WithRootKey(rk))
	require.ErrorIs(t, err, keyring.ErrTampered)
	_, err = keyring.New(ctx, keyring.WithStore(bare), keyring.WithRootKey(rk))
	require.ErrorIs(t, err, keyring.ErrTampered, "New must not create a new store key beside existing keys")
}

// TestWholeRecordReplayIsNotDetected documents the limit stated in
// docs/FORMAT.md: a whole, older, authentic key record (with its versions)
// is indistinguishable from the current one to a process that never saw a
// newer one. A process that did (its change count is authenticated) refuses
// it and stops encrypting.
func TestWholeRecordReplayIsNotDetected(t *testing.T) {
	ctx := t.Context()
	st := durable{memstore.New()}
	rk := newRootKey(t, 1)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)
	old, err := st.Get(ctx, k.ID())
	require.NoError(t, err)
	_, err = k.Rotate(ctx)
	require.NoError(t, err)
	write(t, st, old)
	l, err := keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(rk))
	require.NoError(t, err, "replaying a whole older record is out of reach without an external counter")
	assert.Equal(t, uint32(1), l.CurrentVersion())

	requireTampered(t, k.Refresh(ctx), k.ID(), "a handle that saw change 2 refuses change 1")
	_, err = k.GenerateDataKey(ctx)
	require.ErrorIs(t, err, keyring.ErrTampered, "and stops encrypting")
	_, err = k.Decrypt(ctx, blobOf(t, l))
	require.NoError(t, err, "decrypting under versions it authenticated goes on")
}

func blobOf(t *testing.T, k *keyring.Keyring) []byte {
	t.Helper()
	b, err := k.Encrypt(t.Context(), []byte("x"))
	require.NoError(t, err)
	return b
}

// TestTamperedLoadIsBounded: a record claiming 2^32-1 versions costs what
// reading it costs, not what it claims.
func TestTamperedLoadIsBounded(t *testing.T) {
	ctx := t.Context()
	st, rk, k, _ := storedKey(t)
	rec, err := st.Get(ctx, k.ID())
	require.NoError(t, err)
	rec.Data = editDoc(t, rec.Data, func(m map[string]any) { m["current_version"] = uint32(1<<32 - 1) })
	write(t, st, rec)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 10 {
		_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(rk))
		require.ErrorIs(t, err, keyring.ErrTampered)
	}
	runtime.ReadMemStats(&after)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "ten loads of the tampered record allocate less than 1 MiB in all")
}

func TestLoadByForeignAliasOrID(t *testing.T) {
	ctx := context.Background()
	st := durable{memstore.New()}
	rk := newRootKey(t, 1)
	_, err := keyring.Load(ctx, st, "alias/none", keyring.WithRootKey(rk))
	require.ErrorIs(t, err, keyring.ErrKeyNotFound, "an empty store has no keys (and no store key yet)")
}

// BenchmarkLoadTampered: the cost of refusing a record that claims 2^32-1
// versions (the out-of-memory record).
//
//	go test ./keyring -run '^$' -bench LoadTampered -benchmem
func BenchmarkLoadTampered(b *testing.B) {
	ctx := context.Background()
	st := durable{memstore.New()}
	rk, err := keyring.NewRootKey(bytes.Repeat([]byte{1}, keyring.RootKeySize))
	require.NoError(b, err)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(b, err)
	rec, err := st.Get(ctx, k.ID())
	require.NoError(b, err)
	doc, tag := rec.Data[:len(rec.Data)-sha256.Size], rec.Data[len(rec.Data)-sha256.Size:]
	doc = bytes.Replace(doc, []byte(`"current_version":1`), []byte(`"current_version":4294967295`), 1)
	rec.Data = append(bytes.Clone(doc), tag...)
	_, err = st.Update(ctx, rec, nil)
	require.NoError(b, err)
	for b.Loop() {
		if _, err := keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(rk)); !errors.Is(err, keyring.ErrTampered) {
			b.Fatal(err)
		}
	}
}
