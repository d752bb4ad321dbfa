package keyring

import (
	"crypto/rand"
	"encoding/binary"
	"github.com/kmsring/kmsring/internal/fipsmode"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestAttackForgedPassphraseSaltsDeriveEveryTime: a passphrase root key
// derives with the parameters and salt a ciphertext carries (within its
// ceiling) before it can authenticate it, and remembers maxDerivedKeys
// derived keys, so a forged salt used again costs no second derivation
// while the cache holds it. Past that bound (a memory bound), what keeps a
// planted ciphertext from costing a derivation per use is its callers:
// version material is authenticated by the key record's digest before it
// is unwrapped, the store key is unwrapped once per process, and kmsapi
// remembers an access key record that failed (see kmsapi's
// TestAttackPlantedAccessKeyCostsRootKeyCallPerRequest).
func TestAttackForgedPassphraseSaltsDeriveEveryTime(t *testing.T) {
	if fipsmode.Enabled() {
		t.Skip("FIPS 140-3 mode: argon2id")
	}
	r := cheapPassphraseKey(t)
	const forged = maxDerivedKeys
	cts := make([][]byte, forged)
	for i := range cts {
		ct := []byte{passphraseFormat}
		ct = binary.BigEndian.AppendUint32(ct, cheapArgon2.Time)
		ct = binary.BigEndian.AppendUint32(ct, cheapArgon2.Memory)
		ct = append(ct, cheapArgon2.Threads)
		junk := make([]byte, passphraseSaltSize+24+16+40)
		rand.Read(junk)
		cts[i] = append(ct, junk...)
	}
	n := countDerivations(t, nil)
	for range 2 {
		for _, ct := range cts {
			_, err := r.Decrypt(ct, nil)
			assert.Error(t, err)
		}
	}
	t.Logf("%d uses of %d forged ciphertexts derived %d keys", 2*forged, forged, n.Load())
	assert.LessOrEqual(t, int(n.Load()), forged, "a forged salt must not cost a derivation on every use")
}
