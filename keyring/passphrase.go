package keyring

import (
	"bytes"
	"container/list"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/tink-crypto/tink-go/v2/tink"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Argon2Params are the argon2id parameters of a passphrase root key.
type Argon2Params struct {
	Time    uint32 // passes over memory
	Memory  uint32 // KiB
	Threads uint8
}

// DefaultArgon2Params is RFC 9106's second recommended option: 3 passes over
// 64 MiB with 4 lanes.
var DefaultArgon2Params = Argon2Params{Time: 3, Memory: 64 << 10, Threads: 4}

// The creation floor of NewPassphraseRootKey: OWASP's minimum for argon2id,
// 2 passes over 19 MiB.
const (
	MinArgon2Time   = 2
	MinArgon2Memory = 19 << 10 // KiB
)

// Absolute limits on any parameters, the creator's or a ceiling.
const (
	maxArgon2Time   = 64
	maxArgon2Memory = 4 << 20 // 4 GiB
)

// ErrArgon2Params reports a ciphertext whose argon2id parameters exceed
// the ceiling of the passphrase root key asked to open it (its own
// parameters unless WithArgon2Ceiling raised it). The request is refused
// before any derivation.
var ErrArgon2Params = errors.New("keyring: passphrase root key: the ciphertext's argon2id parameters exceed the key's ceiling")

// usable reports whether argon2id can run with p (it panics on zero passes
// or lanes) within the absolute limits.
func (p Argon2Params) usable() bool {
	return p.Time >= 1 && p.Time <= maxArgon2Time && p.Threads >= 1 &&
		p.Memory >= 8*uint32(p.Threads) && p.Memory <= maxArgon2Memory
}

// within reports whether no parameter of p exceeds c's.
func (p Argon2Params) within(c Argon2Params) bool {
	return p.Time <= c.Time && p.Memory <= c.Memory && p.Threads <= c.Threads
}

// passphraseFormat opens every ciphertext of a passphrase root key:
//
//	0x01 || time (uint32) || memory KiB (uint32) || threads (uint8) || salt (16) || nonce (24) || sealed
//
// The parameters and salt travel with each ciphertext, so a store needs
// nothing else to be opened with the passphrase, and they are bound as
// associated data. They are read before they can be authenticated, so a
// reader derives only with parameters up to its ceiling.
const (
	passphraseFormat     = 0x01
	passphraseSaltSize   = 16
	passphraseHeaderSize = 1 + 4 + 4 + 1 + passphraseSaltSize
	// maxDerivedKeys bounds the keys derived for other instances' salts
	// that one instance keeps (a few hundred bytes each).
	maxDerivedKeys = 256
)

// PassphraseOption configures NewPassphraseRootKey.
type PassphraseOption func(*passphraseConfig)

type passphraseConfig struct{ ceiling Argon2Params }

// WithArgon2Ceiling sets the largest argon2id parameters the root key
// derives with to open a ciphertext made by another instance (they travel,
// unauthenticated until derived with, in each ciphertext). The default is
// the key's own parameters: raise it before raising the parameters new
// instances are created with, so that processes still on the old ones can
// open what the new ones wrap. No field may be below the key's own, nor
// above 64 passes and 4 GiB.
func WithArgon2Ceiling(c Argon2Params) PassphraseOption {
	return func(pc *passphraseConfig) { pc.ceiling = c }
}

// argon2IDKey is argon2.IDKey; tests count derivations through it.
var argon2IDKey = argon2.IDKey

// NewPassphraseRootKey returns a root key derived from a passphrase with
// argon2id. The parameters must be at least MinArgon2Time passes over
// MinArgon2Memory KiB (DefaultArgon2Params is recommended); less is refused
// with ErrInvalidArgument.
//
// Each instance draws a random salt and derives its key once, up front;
// ciphertexts carry the salt and parameters they were made with. Decrypting
// one made by another instance (another process, or an earlier run) derives
// its key once and caches it (the 256 most recently used), provided its
// parameters are within the ceiling (WithArgon2Ceiling); otherwise it fails
// at once, without deriving, with ErrArgon2Params. One derivation runs at a
// time per instance, so memory is bounded by one derivation at the ceiling;
// it holds up only the callers that need that key. A wrong passphrase makes
// Load fail with ErrRootKey. The AEAD is safe for concurrent use, and
// prints (fmt, slog, JSON) as its parameters only.
func NewPassphraseRootKey(passphrase []byte, p Argon2Params, opts ...PassphraseOption) (tink.AEAD, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("%w: empty passphrase", ErrInvalidArgument)
	}
	if !p.usable() || p.Time < MinArgon2Time || p.Memory < MinArgon2Memory {
		return nil, fmt.Errorf("%w: argon2id parameters %+v: at least %d passes over %d KiB, at most %d passes over %d KiB",
			ErrInvalidArgument, p, MinArgon2Time, MinArgon2Memory, maxArgon2Time, maxArgon2Memory)
	}
	pc := passphraseConfig{ceiling: p}
	for _, o := range opts {
		o(&pc)
	}
	ceiling := pc.ceiling
	if !ceiling.usable() || !p.within(ceiling) {
		return nil, fmt.Errorf("%w: argon2id ceiling %+v: at least the key's own %+v, at most %d passes over %d KiB",
			ErrInvalidArgument, ceiling, p, maxArgon2Time, maxArgon2Memory)
	}
	return newPassphraseRootKey(passphrase, p, ceiling)
}

// newPassphraseRootKey is NewPassphraseRootKey without the floor, for
// tests.
func newPassphraseRootKey(passphrase []byte, p, ceiling Argon2Params) (*passphraseRootKey, error) {
	r := &passphraseRootKey{
		redacted:   redacted{fmt.Sprintf("keyring.PassphraseRootKey(argon2id t=%d m=%dKiB p=%d)", p.Time, p.Memory, p.Threads)},
		passphrase: bytes.Clone(passphrase),
		ceiling:    ceiling,
		derivation: make(chan struct{}, 1),
		derived:    make(map[string]*derivedKey),
	}
	r.header = append(r.header, passphraseFormat)
	r.header = binary.BigEndian.AppendUint32(r.header, p.Time)
	r.header = binary.BigEndian.AppendUint32(r.header, p.Memory)
	r.header = append(r.header, p.Threads)
	r.header = append(r.header, randomBytes(passphraseSaltSize)...)
	r.aead = r.derive(p, r.header[passphraseHeaderSize-passphraseSaltSize:])
	return r, nil
}

type passphraseRootKey struct {
	redacted
	passphrase []byte
	ceiling    Argon2Params
	header     []byte // this instance's format, parameters and salt
	aead       cipher.AEAD

	derivation chan struct{} // a token per running derivation (capacity 1)

	mu      sync.Mutex
	derived map[string]*derivedKey // by header, for other instances' ciphertexts
	lru     list.List              // of *derivedKey, most recently used first
}

// derivedKey is the key for one other instance's header; ready is closed
// once aead is set.
type derivedKey struct {
	header string
	elem   *list.Element
	ready  chan struct{}
	aead   cipher.AEAD
}

func (r *passphraseRootKey) derive(p Argon2Params, salt []byte) cipher.AEAD {
	key := argon2IDKey(r.passphrase, salt, p.Time, p.Memory, p.Threads, chacha20poly1305.KeySize)
	defer clear(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		panic("keyring: " + err.Error()) // a 32-byte key cannot fail
	}
	return aead
}

func (r *passphraseRootKey) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	out := make([]byte, passphraseHeaderSize+chacha20poly1305.NonceSizeX, passphraseHeaderSize+chacha20poly1305.NonceSizeX+len(plaintext)+chacha20poly1305.Overhead)
	copy(out, r.header)
	nonce := out[passphraseHeaderSize:]
	rand.Read(nonce)
	ad := append(bytes.Clone(r.header), associatedData...)
	return r.aead.Seal(out, nonce, plaintext, ad), nil
}

func (r *passphraseRootKey) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	if len(ciphertext) < passphraseHeaderSize+chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead || ciphertext[0] != passphraseFormat {
		return nil, errRootOpen
	}
	header := ciphertext[:passphraseHeaderSize]
	aead := r.aead
	if !bytes.Equal(header, r.header) {
		p := Argon2Params{
			Time:    binary.BigEndian.Uint32(header[1:]),
			Memory:  binary.BigEndian.Uint32(header[5:]),
			Threads: header[9],
		}
		if !p.usable() {
			return nil, errRootOpen
		}
		if !p.within(r.ceiling) {
			return nil, ErrArgon2Params
		}
		aead = r.derivedFor(header, p)
	}
	nonce := ciphertext[passphraseHeaderSize : passphraseHeaderSize+chacha20poly1305.NonceSizeX]
	ad := append(bytes.Clone(header), associatedData...)
	pt, err := aead.Open(nil, nonce, ciphertext[passphraseHeaderSize+chacha20poly1305.NonceSizeX:], ad)
	if err != nil {
		return nil, errRootOpen
	}
	return pt, nil
}

// derivedFor returns the key for header, deriving it with p on first use.
// The cache lock is never held while deriving: callers of other keys go
// on, callers of this one wait for its derivation only.
func (r *passphraseRootKey) derivedFor(header []byte, p Argon2Params) cipher.AEAD {
	r.mu.Lock()
	if d, ok := r.derived[string(header)]; ok {
		r.lru.MoveToFront(d.elem)
		r.mu.Unlock()
		<-d.ready
		return d.aead
	}
	d := &derivedKey{header: string(header), ready: make(chan struct{})}
	d.elem = r.lru.PushFront(d)
	r.derived[d.header] = d
	if r.lru.Len() > maxDerivedKeys {
		old := r.lru.Remove(r.lru.Back()).(*derivedKey)
		delete(r.derived, old.header)
	}
	r.mu.Unlock()

	r.derivation <- struct{}{}
	d.aead = r.derive(p, header[passphraseHeaderSize-passphraseSaltSize:])
	<-r.derivation
	close(d.ready)
	return d.aead
}
