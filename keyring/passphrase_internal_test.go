package keyring

import (
	"github.com/kmsring/kmsring/internal/fipsmode"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Parameters below the creation floor, so that these tests, which make
// hundreds of keys, stay fast. Only tests may bypass the floor.
var cheapArgon2 = Argon2Params{Time: 1, Memory: 64, Threads: 1}

func cheapPassphraseKey(t *testing.T) *passphraseRootKey {
	t.Helper()
	r, err := newPassphraseRootKey([]byte("correct horse"), cheapArgon2, passphraseConfig{ceiling: cheapArgon2, pbkdf2Ceiling: DefaultPBKDF2Iterations})
	require.NoError(t, err)
	return r
}

// countDerivations replaces argon2id for the test and returns the number
// of derivations since.
func countDerivations(t *testing.T, hook func(salt []byte)) *atomic.Int32 {
	var n atomic.Int32
	orig := argon2IDKey
	argon2IDKey = func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
		n.Add(1)
		if hook != nil {
			hook(salt)
		}
		return orig(password, salt, time, memory, threads, keyLen)
	}
	t.Cleanup(func() { argon2IDKey = orig })
	return &n
}

// A store holding versions wrapped by many instances (one salt each) must
// not make every unwrap derive again: the old cache held 16 keys and was
// cleared when full, so 17 salts re-derived on every use.
func TestDerivedKeysAreCached(t *testing.T) {
	if fipsmode.Enabled() {
		t.Skip("FIPS 140-3 mode: argon2id")
	}
	reader := cheapPassphraseKey(t)
	var cts [][]byte
	for range 40 {
		ct, err := cheapPassphraseKey(t).Encrypt([]byte("material"), nil)
		require.NoError(t, err)
		cts = append(cts, ct)
	}
	n := countDerivations(t, nil)
	for range 3 {
		for _, ct := range cts {
			_, err := reader.Decrypt(ct, nil)
			require.NoError(t, err)
		}
	}
	assert.Equal(t, int32(len(cts)), n.Load(), "each of 40 salts derived once over three rounds")
}

// The cache is bounded: a store with more salts than it holds evicts the
// least recently used.
func TestDerivedKeyCacheBounded(t *testing.T) {
	if fipsmode.Enabled() {
		t.Skip("FIPS 140-3 mode: argon2id")
	}
	reader := cheapPassphraseKey(t)
	var first []byte
	for i := range maxDerivedKeys + 8 {
		ct, err := cheapPassphraseKey(t).Encrypt([]byte("material"), nil)
		require.NoError(t, err)
		if i == 0 {
			first = ct
		}
		_, err = reader.Decrypt(ct, nil)
		require.NoError(t, err)
		_, err = reader.Decrypt(first, nil) // keep the first one recently used
		require.NoError(t, err)
	}
	reader.mu.Lock()
	assert.Len(t, reader.derived, maxDerivedKeys, "no more than maxDerivedKeys are held")
	reader.mu.Unlock()
	n := countDerivations(t, nil)
	_, err := reader.Decrypt(first, nil)
	require.NoError(t, err)
	assert.Zero(t, n.Load(), "the most recently used key was kept")
}

// A derivation in progress (hundreds of milliseconds at real parameters)
// holds up only the callers that need that derived key.
func TestDerivationDoesNotBlockOthers(t *testing.T) {
	if fipsmode.Enabled() {
		t.Skip("FIPS 140-3 mode: argon2id")
	}
	reader := cheapPassphraseKey(t)
	cached, err := cheapPassphraseKey(t).Encrypt([]byte("a"), nil)
	require.NoError(t, err)
	_, err = reader.Decrypt(cached, nil)
	require.NoError(t, err)
	slow, err := cheapPassphraseKey(t).Encrypt([]byte("b"), nil)
	require.NoError(t, err)

	entered, release := make(chan struct{}), make(chan struct{})
	countDerivations(t, func([]byte) {
		close(entered)
		<-release
	})
	done := make(chan error)
	go func() {
		_, err := reader.Decrypt(slow, nil)
		done <- err
	}()
	<-entered
	pt, err := reader.Decrypt(cached, nil) // would deadlock if the derivation held the cache lock
	require.NoError(t, err)
	assert.Equal(t, "a", string(pt))
	own, err := reader.Encrypt([]byte("c"), nil)
	require.NoError(t, err)
	_, err = reader.Decrypt(own, nil)
	require.NoError(t, err)
	close(release)
	require.NoError(t, <-done)
}
