package keyring

import (
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/kmsring/kmsring/store"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// Option configures New and Load.
type Option func(*config)

type config struct {
	store          store.Store
	rootKey        tink.AEAD
	clock          Clock
	period         time.Duration
	aliases        []string
	description    string
	policy         string
	reloadInterval time.Duration
	auditors       []Auditor
	logger         *slog.Logger
	approved       bool
	// creationOnly names the creation-only options given; Load rejects them.
	creationOnly []string
	// maxLoaded is OpenSet's bound (WithMaxLoaded); New and Load reject it.
	maxLoaded int
	errs      []error
}

func (c *config) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...))
}

// DefaultReloadInterval is how often, at most, a keyring reloads from its
// store because it was asked for a version it does not have.
const DefaultReloadInterval = time.Second

// WithStore sets the store the key is created in. The default is a fresh
// in-memory store (store/memstore). New only; Load takes the store as an
// argument.
func WithStore(st store.Store) Option {
	return func(c *config) {
		if st == nil {
			c.fail("nil store")
		}
		c.store = st
		c.creationOnly = append(c.creationOnly, "WithStore")
	}
}

// WithRootKey sets the root key that wraps version material before it
// reaches the store. Any tink.AEAD works: NewRootKey's local key, or Tink's
// AWS KMS, GCP KMS and Vault clients, NewRootKey, RootKeyFile,
// NewPassphraseRootKey. Without it, a random key held only in this process's
// memory is used, and only a volatile store (store/memstore) is accepted;
// New and Load refuse a persistent store. Loading a key requires the root key
// it was created with (or RootKeys listing it).
func WithRootKey(rk tink.AEAD) Option {
	return func(c *config) {
		if rk == nil {
			c.fail("nil root key")
		}
		c.rootKey = rk
	}
}

// WithClock sets the clock that stamps versions and decides when rotation is
// due. The default is the wall clock.
func WithClock(clk Clock) Option {
	return func(c *config) {
		if clk == nil {
			c.fail("nil clock")
		}
		c.clock = clk
	}
}

// WithRotationPeriod enables automatic rotation with period d at creation:
// the first rotation is due d after the key is created. d must be positive.
// New only.
func WithRotationPeriod(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.fail("rotation period must be positive, not %v", d)
		}
		c.period = d
		c.creationOnly = append(c.creationOnly, "WithRotationPeriod")
	}
}

var aliasRE = regexp.MustCompile(`^alias/[A-Za-z0-9/_-]{1,250}$`)

// checkAlias reports why name is not a valid alias, if it is not.
func checkAlias(name string) error {
	switch {
	case !aliasRE.MatchString(name):
		return fmt.Errorf("%w: invalid alias %q: an alias is alias/ followed by 1 to 250 letters, digits, '/', '_' or '-'", ErrInvalidArgument, name)
	case strings.HasPrefix(name, "alias/aws/"):
		return fmt.Errorf("%w: invalid alias %q: alias/aws/ is reserved, as in AWS KMS", ErrInvalidArgument, name)
	}
	return nil
}

// WithAlias gives the key an alias at creation, such as "alias/orders". An
// alias is "alias/" followed by 1 to 250 letters, digits, '/', '_' or '-',
// and is unique in its store; "alias/aws/..." is reserved, as in AWS KMS.
// New only.
func WithAlias(name string) Option {
	return func(c *config) {
		if err := checkAlias(name); err != nil {
			c.errs = append(c.errs, err)
		}
		c.aliases = append(c.aliases, name)
		c.creationOnly = append(c.creationOnly, "WithAlias")
	}
}

// WithReloadInterval sets how often, at most, the keyring reloads from its
// store when asked to decrypt under a version it has not loaded (one reload
// runs at a time; default DefaultReloadInterval). This bounds the load that
// blobs with forged version numbers can put on the store.
func WithReloadInterval(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.fail("negative reload interval %v", d)
		}
		c.reloadInterval = d
	}
}

// WithLogger sets the logger the keyring reports to (today: reloads that
// Watch could not make). The default is slog.Default() at the time of
// logging.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l == nil {
			c.fail("nil logger")
		}
		c.logger = l
	}
}

func newConfig(opts []Option) (*config, error) {
	c := &config{clock: realClock{}, reloadInterval: DefaultReloadInterval}
	for _, o := range opts {
		o(c)
	}
	if len(c.errs) > 0 {
		return nil, c.errs[0]
	}
	return c, nil
}

// OpOption configures one operation. It is a plain value (no closure), so
// passing options allocates nothing.
type OpOption struct {
	kind    opKind
	ec      map[string]string
	version uint32
	spec    KeySpec
	size    int
}

type opKind uint8

const (
	opNone opKind = iota
	opEC
	opDestEC
	opVersion
	opSpec
	opSize
	opAllowNonApproved
)

type opConfig struct {
	allowNonApproved bool
	ec               map[string]string
	destEC           map[string]string
	hasDestEC        bool
	version          uint32
	spec             KeySpec
	size             int // 0: spec's size
}

func newOpConfig(opts []OpOption) opConfig {
	var c opConfig
	for _, o := range opts {
		switch o.kind {
		case opEC:
			c.ec = o.ec
		case opDestEC:
			c.destEC, c.hasDestEC = o.ec, true
		case opVersion:
			c.version = o.version
		case opSpec:
			c.spec, c.size = o.spec, 0
		case opSize:
			c.size = o.size
		case opAllowNonApproved:
			c.allowNonApproved = true
		}
	}
	return c
}

// WithEncryptionContext sets the encryption context: non-secret key-value
// pairs bound to the ciphertext as associated data. Decrypt needs exactly the
// context that encryption used. For ReEncrypt it is the source context.
func WithEncryptionContext(ec map[string]string) OpOption {
	return OpOption{kind: opEC, ec: ec}
}

// WithDestinationEncryptionContext sets the context ReEncrypt binds the new
// blob to. Without it, ReEncrypt keeps the source context.
func WithDestinationEncryptionContext(ec map[string]string) OpOption {
	return OpOption{kind: opDestEC, ec: ec}
}

// WithVersion makes an encrypting operation use version n, which must be
// enabled, instead of the current version.
func WithVersion(n uint32) OpOption {
	return OpOption{kind: opVersion, version: n}
}

// WithKeySpec selects the size of the data key GenerateDataKey makes.
func WithKeySpec(s KeySpec) OpOption {
	return OpOption{kind: opSpec, spec: s}
}

// MaxDataKeySize is the largest data key WithNumberOfBytes asks for, as AWS
// KMS's NumberOfBytes allows.
const MaxDataKeySize = 1024

// WithNumberOfBytes makes GenerateDataKey return a data key of n bytes (1
// to MaxDataKeySize) instead of a KeySpec's size, as AWS KMS's
// NumberOfBytes does: for keys of other algorithms, or secrets to wrap.
// The last of WithKeySpec and WithNumberOfBytes given wins.
func WithNumberOfBytes(n int) OpOption {
	return OpOption{kind: opSize, size: n}
}
