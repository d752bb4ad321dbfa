package keyring

import (
	"crypto/rand"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestAttackForgedPassphraseSaltsDeriveEveryTime: a passphrase root key
// derives with the parameters and salt a ciphertext carries (within its
// ceiling) before it can authenticate it, and remembers 256 derived keys.
// Ciphertexts forged by a store writer, each with its own salt, therefore
// cost one argon2id derivation per use once there are more than 256 of
// them: with kmsapi's access key lookup (see kmsapi's
// TestAttackPlantedAccessKeyCostsRootKeyCallPerRequest) that is one
// derivation, 64 MiB with the default parameters, per anonymous request.
func TestAttackForgedPassphraseSaltsDeriveEveryTime(t *testing.T) {
	r := cheapPassphraseKey(t)
	const forged = maxDerivedKeys + 44
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
