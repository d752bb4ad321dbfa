package keyring

import (
	"bytes"
	"container/list"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/kmsring/kmsring/internal/fipsmode"
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

// passphraseFormat opens every argon2id ciphertext of a passphrase root
// key, pbkdf2Format every PBKDF2 one (the approved format):
//
//	0x01 || time (uint32) || memory KiB (uint32) || threads (uint8) || salt (16) || nonce (24) || XChaCha20-Poly1305 sealed
//	0x10 || iterations (uint32) || salt (16) || nonce (12) || AES-256-GCM sealed
//
// The parameters and salt travel with each ciphertext, so a store needs
// nothing else to be opened with the passphrase, and they are bound as
// associated data. They are read before they can be authenticated, so a
// reader derives only with parameters up to its ceiling.
const (
	passphraseFormat     = 0x01
	pbkdf2Format         = 0x10
	passphraseSaltSize   = 16
	passphraseHeaderSize = 1 + 4 + 4 + 1 + passphraseSaltSize
	pbkdf2HeaderSize     = 1 + 4 + passphraseSaltSize
	// maxDerivedKeys bounds the keys derived for other instances' salts
	// that one instance keeps (a few hundred bytes each).
	maxDerivedKeys = 256
)

// PassphraseOption configures NewPassphraseRootKey.
type PassphraseOption func(*passphraseConfig)

type passphraseConfig struct {
	ceiling          Argon2Params
	pbkdf2Ceiling    int
	allowNonApproved bool
}

// PassphraseAllowNonApproved lets a passphrase root key open argon2id
// ciphertexts in FIPS 140-3 mode, for a migration (RotateRootKey to a
// NewPBKDF2RootKey). Outside the mode it changes nothing.
func PassphraseAllowNonApproved() PassphraseOption {
	return func(pc *passphraseConfig) { pc.allowNonApproved = true }
}

// WithPBKDF2Ceiling sets the most PBKDF2 iterations the root key runs to
// open a ciphertext made by another instance, as WithArgon2Ceiling does
// for argon2id. The default is the key's own iterations
// (DefaultPBKDF2Iterations for an argon2id key); it may not be below them
// nor above MaxPBKDF2Iterations.
func WithPBKDF2Ceiling(iterations int) PassphraseOption {
	return func(pc *passphraseConfig) { pc.pbkdf2Ceiling = iterations }
}

// PBKDF2 iterations of a passphrase root key (NewPBKDF2RootKey): OWASP's
// recommendation for PBKDF2-HMAC-SHA-256 is the floor and the default;
// MaxPBKDF2Iterations bounds any ceiling (about a minute of CPU).
const (
	MinPBKDF2Iterations     = 600_000
	DefaultPBKDF2Iterations = MinPBKDF2Iterations
	MaxPBKDF2Iterations     = 100_000_000
)

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
//
// argon2id is not approved in FIPS 140-3: in FIPS mode NewPassphraseRootKey
// returns what NewPBKDF2RootKey(passphrase, DefaultPBKDF2Iterations, opts...)
// does (after checking p as always; p then only bounds the argon2id
// ciphertexts it reads, with PassphraseAllowNonApproved).
func NewPassphraseRootKey(passphrase []byte, p Argon2Params, opts ...PassphraseOption) (tink.AEAD, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("%w: empty passphrase", ErrInvalidArgument)
	}
	if !p.usable() || p.Time < MinArgon2Time || p.Memory < MinArgon2Memory {
		return nil, fmt.Errorf("%w: argon2id parameters %+v: at least %d passes over %d KiB, at most %d passes over %d KiB",
			ErrInvalidArgument, p, MinArgon2Time, MinArgon2Memory, maxArgon2Time, maxArgon2Memory)
	}
	pc := passphraseConfig{ceiling: p, pbkdf2Ceiling: DefaultPBKDF2Iterations}
	for _, o := range opts {
		o(&pc)
	}
	if err := pc.check(p, DefaultPBKDF2Iterations); err != nil {
		return nil, err
	}
	if fipsmode.Enabled() {
		return newPBKDF2RootKey(passphrase, DefaultPBKDF2Iterations, pc)
	}
	return newPassphraseRootKey(passphrase, p, pc)
}

// check checks the ceilings against the key's own parameters.
func (pc *passphraseConfig) check(p Argon2Params, iterations int) error {
	if !pc.ceiling.usable() || !p.within(pc.ceiling) {
		return fmt.Errorf("%w: argon2id ceiling %+v: at least the key's own %+v, at most %d passes over %d KiB",
			ErrInvalidArgument, pc.ceiling, p, maxArgon2Time, maxArgon2Memory)
	}
	if pc.pbkdf2Ceiling < iterations || pc.pbkdf2Ceiling > MaxPBKDF2Iterations {
		return fmt.Errorf("%w: PBKDF2 ceiling %d: at least the key's own %d, at most %d", ErrInvalidArgument, pc.pbkdf2Ceiling, iterations, MaxPBKDF2Iterations)
	}
	return nil
}

// NewPBKDF2RootKey returns a root key derived from a passphrase with
// PBKDF2-HMAC-SHA-256 (SP 800-132) and sealing with AES-256-GCM under a
// nonce the cryptographic module draws: every algorithm approved in FIPS
// 140-3, so it works in FIPS mode (and in every other). iterations must be
// at least MinPBKDF2Iterations; the salt is 128 random bits per instance.
// Like NewPassphraseRootKey it derives once up front, opens ciphertexts of
// other instances within its ceilings (WithPBKDF2Ceiling, and
// WithArgon2Ceiling for argon2id ones, which in FIPS mode need
// PassphraseAllowNonApproved too), caches their keys, and fails with
// ErrPBKDF2Params, before deriving, for a ciphertext that asks for more
// iterations than its ceiling. PBKDF2 is weaker than argon2id against
// attackers with GPUs: choose a long passphrase.
func NewPBKDF2RootKey(passphrase []byte, iterations int, opts ...PassphraseOption) (tink.AEAD, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("%w: empty passphrase", ErrInvalidArgument)
	}
	if iterations < MinPBKDF2Iterations || iterations > MaxPBKDF2Iterations {
		return nil, fmt.Errorf("%w: %d PBKDF2 iterations: at least %d, at most %d", ErrInvalidArgument, iterations, MinPBKDF2Iterations, MaxPBKDF2Iterations)
	}
	pc := passphraseConfig{ceiling: DefaultArgon2Params, pbkdf2Ceiling: iterations}
	for _, o := range opts {
		o(&pc)
	}
	if err := pc.check(Argon2Params{Time: 1, Memory: 8, Threads: 1}, iterations); err != nil {
		return nil, err
	}
	return newPBKDF2RootKey(passphrase, iterations, pc)
}

// ErrPBKDF2Params reports a ciphertext whose PBKDF2 iterations exceed the
// ceiling of the passphrase root key asked to open it.
var ErrPBKDF2Params = errors.New("keyring: passphrase root key: the ciphertext's PBKDF2 iterations exceed the key's ceiling")

// newPassphraseRootKey is NewPassphraseRootKey without the floor, for
// tests.
func newPassphraseRootKey(passphrase []byte, p Argon2Params, pc passphraseConfig) (*passphraseRootKey, error) {
	r := newPassphraseBase(passphrase, pc, fmt.Sprintf("keyring.PassphraseRootKey(argon2id t=%d m=%dKiB p=%d)", p.Time, p.Memory, p.Threads))
	r.header = append(r.header, passphraseFormat)
	r.header = binary.BigEndian.AppendUint32(r.header, p.Time)
	r.header = binary.BigEndian.AppendUint32(r.header, p.Memory)
	r.header = append(r.header, p.Threads)
	r.header = append(r.header, randomBytes(passphraseSaltSize)...)
	r.aead = r.derive(r.header)
	return r, nil
}

// newPBKDF2RootKey is NewPBKDF2RootKey without the floor, for tests.
func newPBKDF2RootKey(passphrase []byte, iterations int, pc passphraseConfig) (*passphraseRootKey, error) {
	r := newPassphraseBase(passphrase, pc, fmt.Sprintf("keyring.PassphraseRootKey(PBKDF2-HMAC-SHA-256 i=%d)", iterations))
	r.header = append(r.header, pbkdf2Format)
	r.header = binary.BigEndian.AppendUint32(r.header, uint32(iterations))
	r.header = append(r.header, randomBytes(passphraseSaltSize)...)
	r.aead = r.derive(r.header)
	return r, nil
}

func newPassphraseBase(passphrase []byte, pc passphraseConfig, name string) *passphraseRootKey {
	return &passphraseRootKey{
		redacted:         redacted{name},
		passphrase:       bytes.Clone(passphrase),
		ceiling:          pc.ceiling,
		pbkdf2Ceiling:    pc.pbkdf2Ceiling,
		allowNonApproved: pc.allowNonApproved,
		derivation:       make(chan struct{}, 1),
		derived:          make(map[string]*derivedKey),
	}
}

type passphraseRootKey struct {
	redacted
	passphrase       []byte
	ceiling          Argon2Params
	pbkdf2Ceiling    int
	allowNonApproved bool
	header           []byte // this instance's format, parameters and salt
	aead             cipher.AEAD

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

// derive derives the AEAD of header (a format byte, parameters and salt
// that were checked).
func (r *passphraseRootKey) derive(header []byte) cipher.AEAD {
	salt := header[len(header)-passphraseSaltSize:]
	if header[0] == pbkdf2Format {
		key, err := pbkdf2.Key(sha256.New, string(r.passphrase), salt, int(binary.BigEndian.Uint32(header[1:])), 32)
		if err != nil {
			panic("keyring: " + err.Error()) // approved hash, 128-bit salt, 256-bit key
		}
		defer clear(key)
		b, err := aes.NewCipher(key)
		if err != nil {
			panic("keyring: " + err.Error())
		}
		g, err := cipher.NewGCMWithRandomNonce(b)
		if err != nil {
			panic("keyring: " + err.Error())
		}
		return g
	}
	p := argon2Params(header)
	key := argon2IDKey(r.passphrase, salt, p.Time, p.Memory, p.Threads, chacha20poly1305.KeySize)
	defer clear(key)
	var aead cipher.AEAD
	var err error
	fipsmode.Legacy(func() { aead, err = chacha20poly1305.NewX(key) }) // opted in, in FIPS mode
	if err != nil {
		panic("keyring: " + err.Error()) // a 32-byte key cannot fail
	}
	return aead
}

func argon2Params(header []byte) Argon2Params {
	return Argon2Params{
		Time:    binary.BigEndian.Uint32(header[1:]),
		Memory:  binary.BigEndian.Uint32(header[5:]),
		Threads: header[9],
	}
}

func (r *passphraseRootKey) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	ad := append(bytes.Clone(r.header), associatedData...)
	if r.header[0] == pbkdf2Format {
		out := make([]byte, len(r.header), len(r.header)+len(plaintext)+r.aead.Overhead())
		copy(out, r.header)
		return r.aead.Seal(out, nil, plaintext, ad), nil
	}
	out := make([]byte, passphraseHeaderSize+chacha20poly1305.NonceSizeX, passphraseHeaderSize+chacha20poly1305.NonceSizeX+len(plaintext)+chacha20poly1305.Overhead)
	copy(out, r.header)
	nonce := out[passphraseHeaderSize:]
	rand.Read(nonce)
	return r.aead.Seal(out, nonce, plaintext, ad), nil
}

func (r *passphraseRootKey) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	if len(ciphertext) == 0 {
		return nil, errRootOpen
	}
	hlen, nonceSize, overhead := passphraseHeaderSize, chacha20poly1305.NonceSizeX, chacha20poly1305.Overhead
	switch ciphertext[0] {
	case pbkdf2Format:
		hlen, nonceSize, overhead = pbkdf2HeaderSize, 0, 12+16
	case passphraseFormat:
		if err := checkApproved(false, r.allowNonApproved, "a passphrase root key ciphertext under argon2id and XChaCha20-Poly1305"); err != nil {
			return nil, err
		}
	default:
		return nil, errRootOpen
	}
	if len(ciphertext) < hlen+nonceSize+overhead {
		return nil, errRootOpen
	}
	header := ciphertext[:hlen]
	aead := r.aead
	if !bytes.Equal(header, r.header) {
		if header[0] == pbkdf2Format {
			iter := binary.BigEndian.Uint32(header[1:])
			if iter < 1 {
				return nil, errRootOpen
			}
			if uint64(iter) > uint64(r.pbkdf2Ceiling) {
				return nil, ErrPBKDF2Params
			}
		} else {
			p := argon2Params(header)
			if !p.usable() {
				return nil, errRootOpen
			}
			if !p.within(r.ceiling) {
				return nil, ErrArgon2Params
			}
		}
		aead = r.derivedFor(header)
	}
	var nonce []byte
	if nonceSize > 0 {
		nonce = ciphertext[hlen : hlen+nonceSize]
	}
	ad := append(bytes.Clone(header), associatedData...)
	pt, err := aead.Open(nil, nonce, ciphertext[hlen+nonceSize:], ad)
	if err != nil {
		return nil, errRootOpen
	}
	return pt, nil
}

// derivedFor returns the key for header, deriving it on first use.
// The cache lock is never held while deriving: callers of other keys go
// on, callers of this one wait for its derivation only.
func (r *passphraseRootKey) derivedFor(header []byte) cipher.AEAD {
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
	d.aead = r.derive(header)
	<-r.derivation
	close(d.ready)
	return d.aead
}
