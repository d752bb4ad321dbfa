package keyring

import (
	"context"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/kmsring/kmsring/internal/format"
)

// Set holds several keyrings and decrypts a blob with the one whose key ID
// the blob names, so that a reader of many keys' data needs no routing of its
// own. *Set satisfies envelope.Opener. A Set is safe for concurrent use; the
// zero value is an empty set.
type Set struct {
	mu sync.RWMutex
	m  map[string]*Keyring
}

// NewSet returns a set holding ks.
func NewSet(ks ...*Keyring) *Set {
	s := &Set{}
	for _, k := range ks {
		s.Add(k)
	}
	return s
}

// Add adds k to the set, replacing any keyring with the same key ID.
func (s *Set) Add(k *Keyring) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]*Keyring)
	}
	s.m[k.ID()] = k
}

// Get returns the keyring with the given key ID, if the set holds it.
func (s *Set) Get(keyID string) (*Keyring, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.m[keyID]
	return k, ok
}

// Decrypt decrypts blob with the keyring whose ID it names, as
// Keyring.Decrypt does. It fails with ErrKeyNotFound if the set has no such
// keyring.
func (s *Set) Decrypt(ctx context.Context, blob []byte, opts ...OpOption) ([]byte, error) {
	bl, err := format.ParseBlob(blob)
	if err != nil {
		return nil, err
	}
	k, err := s.byBinaryID(bl.KeyID)
	if err != nil {
		return nil, err
	}
	return k.Decrypt(ctx, blob, opts...)
}

// byBinaryID returns the keyring of the set with the given binary key ID,
// without allocating, or ErrKeyNotFound.
func (s *Set) byBinaryID(id [16]byte) (*Keyring, error) {
	var buf [36]byte
	hex.Encode(buf[0:8], id[0:4])
	hex.Encode(buf[9:13], id[4:6])
	hex.Encode(buf[14:18], id[6:8])
	hex.Encode(buf[19:23], id[8:10])
	hex.Encode(buf[24:], id[10:])
	buf[8], buf[13], buf[18], buf[23] = '-', '-', '-', '-'
	s.mu.RLock()
	k, ok := s.m[string(buf[:])]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s is not in the set", ErrKeyNotFound, string(buf[:]))
	}
	return k, nil
}
