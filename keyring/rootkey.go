package keyring

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/tink-crypto/tink-go/v2/tink"
	"golang.org/x/crypto/chacha20poly1305"
)

// RootKeySize is the size of a local root key.
const RootKeySize = chacha20poly1305.KeySize

// NewRootKey returns a root key (a [tink.AEAD]) that wraps version material
// under a local 32-byte key with XChaCha20-Poly1305 and a random 24-byte
// nonce per call, so it has no practical limit on the number of calls. Its
// ciphertext is nonce || sealed. The key is copied. The AEAD is safe for
// concurrent use.
func NewRootKey(key []byte) (tink.AEAD, error) {
	if len(key) != RootKeySize {
		return nil, fmt.Errorf("%w: root key must be %d bytes, not %d", ErrInvalidArgument, RootKeySize, len(key))
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return localRootKey{aead}, nil
}

type localRootKey struct{ aead cipher.AEAD }

func (r localRootKey) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	out := make([]byte, r.aead.NonceSize(), r.aead.NonceSize()+len(plaintext)+r.aead.Overhead())
	rand.Read(out)
	return r.aead.Seal(out, out, plaintext, associatedData), nil
}

var errRootOpen = errors.New("keyring: root key: message authentication failed")

func (r localRootKey) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	if len(ciphertext) < r.aead.NonceSize()+r.aead.Overhead() {
		return nil, errRootOpen
	}
	n := r.aead.NonceSize()
	pt, err := r.aead.Open(nil, ciphertext[:n], ciphertext[n:], associatedData)
	if err != nil {
		return nil, errRootOpen
	}
	return pt, nil
}

// ephemeralRootKey is the root key of keyrings created without WithRootKey:
// random, held only in this process's memory, shared by every such keyring
// so that several handles on one in-memory store can read each other's
// versions.
var ephemeralRootKey = sync.OnceValue(func() tink.AEAD {
	rk, err := NewRootKey(randomBytes(RootKeySize))
	if err != nil {
		panic("keyring: " + err.Error())
	}
	return rk
})

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
