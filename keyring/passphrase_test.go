package keyring_test

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"github.com/kmsring/kmsring/internal/fipsmode"
	"github.com/kmsring/kmsring/internal/testvec"
	"github.com/tink-crypto/tink-go/v2/tink"
	"runtime"
	"testing"
	"time"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tamperArgon2 returns ct with the argon2id parameters in its header
// replaced: format (1) || time (4) || memory KiB (4) || threads (1) || salt.
func tamperArgon2(ct []byte, p keyring.Argon2Params) []byte {
	out := append([]byte(nil), ct...)
	binary.BigEndian.PutUint32(out[1:], p.Time)
	binary.BigEndian.PutUint32(out[5:], p.Memory)
	out[9] = p.Threads
	return out
}

// measure returns the bytes f allocates and the time it takes, for the
// log (no test asserts on time).
func measure(f func()) (allocated uint64, elapsed time.Duration) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	f()
	elapsed = time.Since(start)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, elapsed
}

// A store writer who edits the parameters in a wrapped version's header
// must not make a process derive with them: the request is refused before
// any derivation, in constant memory.
func TestPassphraseRejectsCostlyParams(t *testing.T) {
	testvec.SkipInFIPSMode(t, "argon2id passphrase root keys")
	rk, err := keyring.NewPassphraseRootKey([]byte("correct horse"), testArgon2)
	require.NoError(t, err)
	ad := []byte("key 1 version 1")
	ct, err := rk.Encrypt(make([]byte, 32), ad)
	require.NoError(t, err)

	for _, p := range []keyring.Argon2Params{
		{Time: 64, Memory: 4 << 20, Threads: 255}, // 4 GiB, the old absolute limit
		{Time: 1, Memory: 256 << 10, Threads: 1},  // more memory than the key's own
		{Time: testArgon2.Time + 1, Memory: testArgon2.Memory, Threads: 1},
		{Time: testArgon2.Time, Memory: testArgon2.Memory, Threads: 2},
	} {
		t.Run(fmt.Sprintf("t=%d,m=%dKiB,p=%d", p.Time, p.Memory, p.Threads), func(t *testing.T) {
			bad := tamperArgon2(ct, p)
			var err error
			allocated, elapsed := measure(func() { _, err = rk.Decrypt(bad, ad) })
			require.Error(t, err, "parameters above the key's own are refused")
			t.Logf("refused in %v, %d bytes allocated: %v", elapsed, allocated, err)
			assert.Less(t, allocated, uint64(64<<10), "nothing near the requested memory is allocated")
			allocs := testing.AllocsPerRun(10, func() { _, _ = rk.Decrypt(bad, ad) })
			assert.Zero(t, allocs, "the refusal allocates nothing")
		})
	}
}

// The floor: OWASP's minimum for argon2id, 19 MiB and 2 passes.
func TestPassphraseFloor(t *testing.T) {
	testvec.SkipInFIPSMode(t, "argon2id passphrase root keys")
	assert.Equal(t, keyring.Argon2Params{Time: 3, Memory: 64 << 10, Threads: 4}, keyring.DefaultArgon2Params, "the defaults are unchanged")
	for _, p := range []keyring.Argon2Params{
		{Time: 1, Memory: 8, Threads: 1},
		{Time: 1, Memory: 64 << 10, Threads: 4},
		{Time: 2, Memory: 19<<10 - 1, Threads: 1},
		{Time: 2, Memory: 19 << 10, Threads: 0},
	} {
		_, err := keyring.NewPassphraseRootKey([]byte("x"), p)
		assert.ErrorIs(t, err, keyring.ErrInvalidArgument, "%+v is below the floor", p)
	}
	_, err := keyring.NewPassphraseRootKey([]byte("x"), keyring.Argon2Params{Time: keyring.MinArgon2Time, Memory: keyring.MinArgon2Memory, Threads: 1})
	assert.NoError(t, err, "the floor itself is accepted")
}

// Ciphertexts made with larger parameters than a key's own open only when
// the caller raises the ceiling.
func TestPassphraseCeiling(t *testing.T) {
	testvec.SkipInFIPSMode(t, "argon2id passphrase root keys")
	big := keyring.Argon2Params{Time: 3, Memory: testArgon2.Memory, Threads: 1}
	maker, err := keyring.NewPassphraseRootKey([]byte("correct horse"), big)
	require.NoError(t, err)
	ct, err := maker.Encrypt([]byte("material"), nil)
	require.NoError(t, err)

	def, err := keyring.NewPassphraseRootKey([]byte("correct horse"), testArgon2)
	require.NoError(t, err)
	_, err = def.Decrypt(ct, nil)
	assert.ErrorIs(t, err, keyring.ErrArgon2Params, "by default the ceiling is the key's own parameters")

	raised, err := keyring.NewPassphraseRootKey([]byte("correct horse"), testArgon2, keyring.WithArgon2Ceiling(big))
	require.NoError(t, err)
	pt, err := raised.Decrypt(ct, nil)
	require.NoError(t, err, "a raised ceiling admits them")
	assert.Equal(t, "material", string(pt))

	_, err = keyring.NewPassphraseRootKey([]byte("x"), big, keyring.WithArgon2Ceiling(testArgon2))
	assert.ErrorIs(t, err, keyring.ErrInvalidArgument, "a ceiling below the key's own parameters")
	_, err = keyring.NewPassphraseRootKey([]byte("x"), testArgon2, keyring.WithArgon2Ceiling(keyring.Argon2Params{Time: 65, Memory: 5 << 20, Threads: 1}))
	assert.ErrorIs(t, err, keyring.ErrInvalidArgument, "a ceiling past the absolute limits")
}

// The attack through the store: the store key record, wrapped under a
// passphrase root key, edited to ask for 1 GiB (or 4 GiB, 255 lanes, 64
// passes) of argon2id. It is read before anything in the store can be
// authenticated. Another process's Load fails at once, in memory that does
// not depend on the request.
func TestLoadTamperedArgon2Params(t *testing.T) {
	testvec.SkipInFIPSMode(t, "argon2id passphrase root keys")
	for _, p := range []keyring.Argon2Params{
		{Time: 1, Memory: 1 << 20, Threads: 1},
		{Time: 64, Memory: 4 << 20, Threads: 255},
	} {
		t.Run(fmt.Sprintf("t=%d,m=%dKiB,p=%d", p.Time, p.Memory, p.Threads), func(t *testing.T) {
			ctx := t.Context()
			st := durable{memstore.New()}
			rk, err := keyring.NewPassphraseRootKey([]byte("correct horse"), testArgon2)
			require.NoError(t, err)
			k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
			require.NoError(t, err)

			rec, err := st.Get(ctx, keyring.ReservedPrefix+"store")
			require.NoError(t, err)
			var doc map[string]any
			require.NoError(t, json.Unmarshal(rec.Data, &doc))
			wrapped, err := base64.StdEncoding.DecodeString(doc["key"].(string))
			require.NoError(t, err)
			doc["key"] = tamperArgon2(wrapped, p)
			rec.Data, err = json.Marshal(doc)
			require.NoError(t, err)
			_, err = st.Update(ctx, rec, nil)
			require.NoError(t, err)

			// Another process: the same passphrase, its own salt.
			other, err := keyring.NewPassphraseRootKey([]byte("correct horse"), testArgon2)
			require.NoError(t, err)
			allocated, elapsed := measure(func() { _, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(other)) })
			require.ErrorIs(t, err, keyring.ErrRootKey, "the store key does not unwrap")
			require.ErrorIs(t, err, keyring.ErrArgon2Params, "and the cause says why")
			t.Logf("Load failed in %v having allocated %d bytes: %v", elapsed, allocated, err)
			assert.Less(t, allocated, uint64(1<<20), "Load allocates nothing like the requested memory")
		})
	}
}

// testPassphraseRootKey is a cheap passphrase root key for tests that need
// one: argon2id, or PBKDF2 at its floor in FIPS 140-3 mode.
func testPassphraseRootKey(t testing.TB, pass []byte) tink.AEAD {
	t.Helper()
	var rk tink.AEAD
	var err error
	if fipsmode.Enabled() {
		rk, err = keyring.NewPBKDF2RootKey(pass, keyring.MinPBKDF2Iterations)
	} else {
		rk, err = keyring.NewPassphraseRootKey(pass, testArgon2)
	}
	require.NoError(t, err)
	return rk
}
