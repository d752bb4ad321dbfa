package k8skms

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmsring/kmsring/internal/format"
	"github.com/kmsring/kmsring/keyring"
	"google.golang.org/grpc"
	kmsv2 "k8s.io/kms/apis/v2"
)

// The KMS v2 protocol's fixed values.
const (
	// APIVersion is what Status answers in its version field.
	APIVersion = "v2"
	// Healthy is what Status answers in its healthz field while the key
	// can encrypt.
	Healthy = "ok"
	// Principal names the API server in audit records.
	Principal = "k8s:kms-plugin"
	// MaxCiphertext is the largest ciphertext the API server stores or
	// sends (its encryptedDEKSourceMaxSize).
	MaxCiphertext = 1024
	// MaxPlaintext is the largest seed Encrypt wraps: its blob still fits
	// in MaxCiphertext. The API server sends 32 bytes.
	MaxPlaintext = MaxCiphertext - format.BlobHeaderSize - format.BlobTagSize
)

// Context is the encryption context bound to every blob the plugin makes
// and required of every blob it opens. To unwrap one of its blobs outside
// the plugin (`kmsring decrypt`), pass the same context.
var Context = map[string]string{"kmsring.io/purpose": "kubernetes-kms-v2"}

// defaultRefresh is how old the key's state may be when Status answers.
const defaultRefresh = time.Second

// Service is the KMS v2 gRPC service over one key. Create it with New and
// register it on a grpc.Server with Register; it is safe for concurrent
// use.
type Service struct {
	kmsv2.UnsafeKeyManagementServiceServer

	k       *keyring.Keyring
	clock   keyring.Clock
	refresh time.Duration
	logger  *slog.Logger
	metrics *metrics
	ctxOpt  keyring.OpOption

	refreshMu   sync.Mutex
	refreshedAt atomic.Int64 // UnixNano on the clock of the last Refresh
	refreshErr  atomic.Pointer[error]

	probeMu sync.Mutex
	probed  uint32 // the current version a probe encryption succeeded under
	probeE  error  // what the last probe of an unprobed version said

	// ids caches the key_id of the version Encrypt last used.
	ids atomic.Pointer[versionID]
}

// versionID is a version number and its key_id.
type versionID struct {
	n  uint32
	id string
}

var _ kmsv2.KeyManagementServiceServer = (*Service)(nil)

// Option configures a Service.
type Option func(*Service)

// WithClock sets the clock that decides when Status reads the key again
// and that Run sleeps on; pass the keyring's clock. Default: the real one.
func WithClock(c keyring.Clock) Option { return func(s *Service) { s.clock = c } }

// WithRefreshInterval sets how old the key's state may be when Status
// answers (default one second) and how often Run reads it. It must be
// positive; 5 seconds or less keeps the contract that a rotation made by
// another process shows within 5 seconds.
func WithRefreshInterval(d time.Duration) Option { return func(s *Service) { s.refresh = d } }

// WithLogger sets where the service logs failed calls and health changes.
// Default: slog.Default().
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.logger = l } }

// New returns the KMS v2 service over k. Give k the auditors that should
// record the API server's calls (keyring.WithAuditor) when loading it. New
// fails with keyring.ErrInvalidArgument for a nil key or a bad option.
func New(k *keyring.Keyring, opts ...Option) (*Service, error) {
	if k == nil {
		return nil, fmt.Errorf("%w: k8skms: nil keyring", keyring.ErrInvalidArgument)
	}
	s := &Service{k: k, clock: keyring.RealClock(), refresh: defaultRefresh, logger: slog.Default(),
		ctxOpt: keyring.WithEncryptionContext(Context), metrics: newMetrics()}
	for _, o := range opts {
		o(s)
	}
	switch {
	case s.clock == nil:
		return nil, fmt.Errorf("%w: k8skms: nil clock", keyring.ErrInvalidArgument)
	case s.refresh <= 0:
		return nil, fmt.Errorf("%w: k8skms: refresh interval must be positive, not %v", keyring.ErrInvalidArgument, s.refresh)
	case s.logger == nil:
		return nil, fmt.Errorf("%w: k8skms: nil logger", keyring.ErrInvalidArgument)
	}
	s.refreshedAt.Store(s.clock.Now().UnixNano())
	return s, nil
}

// Register registers the service on g. Serve g on a unix socket (Listen
// makes a safe one).
func (s *Service) Register(g *grpc.Server) { kmsv2.RegisterKeyManagementServiceServer(g, s) }

// Run keeps the key fresh until ctx ends, then returns ctx.Err(): it reads
// the key again every refresh interval, and at once when the store reports
// a change (keyring.Keyring.Watch). Running it is optional: Status reads
// the key itself when what it holds is older than the refresh interval.
func (s *Service) Run(ctx context.Context) error {
	return s.k.Watch(ctx, s.refresh)
}

// KeyID is the key_id Status and Encrypt report for version v of the key
// keyID: the key ID, the version number and the version's creation time
// in nanoseconds, as "KEYID/vN/NANOS". Version numbers are never reused;
// the creation time keeps the key_id unique even for a store restored
// from a backup and rotated again.
func KeyID(keyID string, v keyring.Version) string {
	return keyID + "/v" + strconv.FormatUint(uint64(v.Number), 10) + "/" + strconv.FormatInt(v.CreatedAt.UnixNano(), 10)
}

// keyIDOf returns the key_id of version n of the service's key, from the
// cache when it is the version last asked for.
func (s *Service) keyIDOf(n uint32) string {
	if c := s.ids.Load(); c != nil && c.n == n {
		return c.id
	}
	md := s.k.Cached()
	id := s.k.ID() + "/v" + strconv.FormatUint(uint64(n), 10)
	if n >= 1 && int(n) <= len(md.Versions) {
		id = KeyID(s.k.ID(), md.Versions[n-1])
	}
	s.ids.Store(&versionID{n: n, id: id})
	return id
}

// Status reports the plugin's health and the key_id of the key's current
// version. It never fails: an unusable key is reported in healthz.
func (s *Service) Status(ctx context.Context, _ *kmsv2.StatusRequest) (*kmsv2.StatusResponse, error) {
	start := time.Now()
	ctx = keyring.ContextWithPrincipal(ctx, Principal)
	herr := s.freshen(ctx)
	n := s.k.CurrentVersion()
	if herr == nil {
		herr = s.health(ctx, n)
	}
	resp := &kmsv2.StatusResponse{Version: APIVersion, Healthz: Healthy, KeyId: s.keyIDOf(n)}
	if herr != nil {
		resp.Healthz = "unhealthy: " + herr.Error()
	}
	s.metrics.observe("Status", nil, start)
	return resp, nil
}

// freshen reads the key again if what the handle holds is older than the
// refresh interval, one reader at a time, and returns the error of the
// last read.
func (s *Service) freshen(ctx context.Context) error {
	if s.stale() {
		s.refreshMu.Lock()
		if s.stale() {
			// A call that ended (the API server's timeout) says nothing
			// about the store: the next Status reads again.
			switch err := s.k.Refresh(ctx); {
			case ctx.Err() != nil:
			case err != nil:
				s.refreshErr.Store(&err)
				s.refreshedAt.Store(s.clock.Now().UnixNano())
			default:
				s.refreshErr.Store(nil)
				s.refreshedAt.Store(s.clock.Now().UnixNano())
			}
		}
		s.refreshMu.Unlock()
	}
	if p := s.refreshErr.Load(); p != nil {
		return fmt.Errorf("cannot read the key from its store: %w", *p)
	}
	return nil
}

func (s *Service) stale() bool {
	return s.clock.Now().UnixNano()-s.refreshedAt.Load() >= int64(s.refresh)
}

// health says why the key cannot encrypt under version n, if it cannot:
// the key's state, a store gone back in time, or (once per version) a
// probe encryption that fails because the root key cannot unwrap it.
func (s *Service) health(ctx context.Context, n uint32) error {
	if st := s.k.KeyState(); st != keyring.KeyEnabled {
		return fmt.Errorf("key %s is %s", s.k.ID(), st)
	}
	if s.k.Suspect() {
		return fmt.Errorf("key %s: the store went back to an older state than this process saw", s.k.ID())
	}
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	if s.probed == n {
		return nil
	}
	var seed [32]byte
	rand.Read(seed[:])
	if _, err := s.k.Encrypt(ctx, seed[:], s.ctxOpt); err != nil {
		return err
	}
	s.probed = n
	return nil
}

// Encrypt wraps the API server's seed under the key's current version.
func (s *Service) Encrypt(ctx context.Context, req *kmsv2.EncryptRequest) (*kmsv2.EncryptResponse, error) {
	start := time.Now()
	resp, err := s.encrypt(keyring.ContextWithPrincipal(ctx, Principal), req)
	return resp, s.finish(ctx, "Encrypt", req.GetUid(), err, start)
}

func (s *Service) encrypt(ctx context.Context, req *kmsv2.EncryptRequest) (*kmsv2.EncryptResponse, error) {
	pt := req.GetPlaintext()
	if len(pt) == 0 || len(pt) > MaxPlaintext {
		return nil, fmt.Errorf("%w: plaintext of %d bytes (want 1 to %d)", errBadInput, len(pt), MaxPlaintext)
	}
	blob, err := s.k.Encrypt(ctx, pt, s.ctxOpt)
	if err != nil {
		return nil, err
	}
	_, n, err := keyring.ParseCiphertext(blob)
	if err != nil {
		return nil, err
	}
	return &kmsv2.EncryptResponse{Ciphertext: blob, KeyId: s.keyIDOf(n)}, nil
}

// Decrypt opens a blob Encrypt made under any version still enabled. The
// key_id and annotations of the request are not needed: the blob names
// its version.
func (s *Service) Decrypt(ctx context.Context, req *kmsv2.DecryptRequest) (*kmsv2.DecryptResponse, error) {
	start := time.Now()
	resp, err := s.decrypt(keyring.ContextWithPrincipal(ctx, Principal), req)
	return resp, s.finish(ctx, "Decrypt", req.GetUid(), err, start)
}

func (s *Service) decrypt(ctx context.Context, req *kmsv2.DecryptRequest) (*kmsv2.DecryptResponse, error) {
	ct := req.GetCiphertext()
	switch {
	case len(ct) == 0:
		return nil, fmt.Errorf("%w: empty ciphertext", errBadInput)
	case len(ct) > MaxCiphertext:
		return nil, fmt.Errorf("%w: ciphertext of %d bytes (the API server stores at most %d)", errBadInput, len(ct), MaxCiphertext)
	}
	pt, err := s.k.Decrypt(ctx, ct, s.ctxOpt)
	if err != nil {
		return nil, err
	}
	return &kmsv2.DecryptResponse{Plaintext: pt}, nil
}

// finish records a call's outcome in the metrics and the log and returns
// its error as a gRPC status.
func (s *Service) finish(ctx context.Context, method, uid string, err error, start time.Time) error {
	st := grpcStatus(method, err)
	s.metrics.observe(method, st, start)
	if err != nil {
		s.logger.LogAttrs(ctx, slog.LevelWarn, "k8skms: call failed", slog.String("method", method),
			slog.String("uid", shorten(uid)), slog.String("key_id", s.k.ID()), slog.Any("err", err))
		return st.Err()
	}
	return nil
}

// maxLoggedUID bounds the request uid a log line repeats: the API server
// sends a UUID, any other client whatever it likes.
const maxLoggedUID = 64

func shorten(s string) string {
	if len(s) > maxLoggedUID {
		return strconv.QuoteToASCII(s[:maxLoggedUID]) + "..."
	}
	return strconv.QuoteToASCII(s)
}
