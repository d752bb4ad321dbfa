package k8skms_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/k8skms"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	kmsv2 "k8s.io/kms/apis/v2"
)

var epoch = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// failing is a store whose Get fails with err once set: a database gone
// away.
type failing struct {
	store.Store
	err atomic.Pointer[error]
}

func (f *failing) Get(ctx context.Context, idOrAlias string) (store.Record, error) {
	if err := f.err.Load(); err != nil {
		return store.Record{}, *err
	}
	return f.Store.Get(ctx, idOrAlias)
}

// recorder is an Auditor that keeps every event with the principal its
// context named.
type recorder struct {
	mu     sync.Mutex
	events []keyring.AuditEvent
	by     []string
}

func (r *recorder) Audit(ctx context.Context, e keyring.AuditEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	r.by = append(r.by, keyring.PrincipalFrom(ctx))
	return nil
}

// fixture is a key in a store, a second handle on it (another process),
// the plugin over the first, and the clock.
type fixture struct {
	st    *failing
	rk    keyring.Option
	key   *keyring.Keyring
	other *keyring.Keyring
	svc   *k8skms.Service
	clock *clockwork.FakeClock
	audit *recorder
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	rk, err := keyring.NewRootKey(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	f := &fixture{st: &failing{Store: memstore.New()}, rk: keyring.WithRootKey(rk), clock: clockwork.NewFakeClockAt(epoch), audit: &recorder{}}
	created, err := keyring.New(ctx, keyring.WithStore(f.st), f.rk, keyring.WithClock(f.clock))
	require.NoError(t, err)
	f.key, err = keyring.Load(ctx, f.st, created.ID(), f.rk, keyring.WithClock(f.clock), keyring.WithAuditor(f.audit))
	require.NoError(t, err)
	f.other, err = keyring.Load(ctx, f.st, created.ID(), f.rk, keyring.WithClock(f.clock))
	require.NoError(t, err)
	f.svc, err = k8skms.New(f.key, k8skms.WithClock(f.clock))
	require.NoError(t, err)
	return f
}

func (f *fixture) status(t *testing.T) *kmsv2.StatusResponse {
	t.Helper()
	resp, err := f.svc.Status(context.Background(), &kmsv2.StatusRequest{})
	require.NoError(t, err, "Status never fails; health goes in healthz")
	return resp
}

func (f *fixture) encrypt(t *testing.T, seed []byte) *kmsv2.EncryptResponse {
	t.Helper()
	resp, err := f.svc.Encrypt(context.Background(), &kmsv2.EncryptRequest{Plaintext: seed, Uid: "u-1"})
	require.NoError(t, err)
	return resp
}

func (f *fixture) decrypt(ct []byte, keyID string) ([]byte, error) {
	resp, err := f.svc.Decrypt(context.Background(), &kmsv2.DecryptRequest{Ciphertext: ct, KeyId: keyID, Uid: "u-2"})
	return resp.GetPlaintext(), err
}

func seed(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestStatusNamesKeyAndVersion(t *testing.T) {
	f := newFixture(t)
	resp := f.status(t)
	assert.Equal(t, "v2", resp.Version)
	assert.Equal(t, "ok", resp.Healthz)
	md := f.key.Cached()
	assert.Equal(t, k8skms.KeyID(f.key.ID(), md.Versions[0]), resp.KeyId)
	assert.True(t, strings.HasPrefix(resp.KeyId, f.key.ID()+"/v1/"), "key_id %q names the key and version 1", resp.KeyId)
	assert.LessOrEqual(t, len(resp.KeyId), 1024, "the API server refuses a key_id over 1 KiB")
}

func TestKeyIDChangesWhenAndOnlyWhenTheKeyRotates(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first := f.status(t).KeyId
	require.NoError(t, f.key.EnableRotation(ctx, 90*24*time.Hour))
	require.NoError(t, f.key.SetDescription(ctx, "secrets"))
	f.clock.Advance(time.Hour)
	assert.Equal(t, first, f.status(t).KeyId, "changes other than a rotation keep the key_id")

	_, err := f.key.Rotate(ctx)
	require.NoError(t, err)
	second := f.status(t).KeyId
	assert.NotEqual(t, first, second, "a rotation changes the key_id")
	assert.Contains(t, second, "/v2/")
	require.NoError(t, f.key.DisableVersion(ctx, 1))
	f.clock.Advance(time.Hour)
	assert.Equal(t, second, f.status(t).KeyId, "disabling an old version keeps the key_id")

	f.clock.Advance(90 * 24 * time.Hour)
	_, due, err := f.key.RotateIfDue(ctx)
	require.NoError(t, err)
	require.True(t, due)
	third := f.status(t).KeyId
	assert.NotEqual(t, second, third, "an automatic rotation changes the key_id")
	assert.NotEqual(t, first, third)
}

func TestRotationByAnotherProcessShowsWithinTheRefreshInterval(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	before := f.status(t).KeyId
	_, err := f.other.Rotate(ctx)
	require.NoError(t, err)
	f.clock.Advance(time.Second)
	after := f.status(t).KeyId
	assert.NotEqual(t, before, after, "a rotation by another handle shows one refresh interval (1 s) later")
	assert.Equal(t, after, f.encrypt(t, seed(1)).KeyId, "and Encrypt uses the new version")
}

func TestRunPicksUpRotationsBetweenStatusCalls(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.svc.Run(ctx) }()
	_, err := f.other.Rotate(ctx)
	require.NoError(t, err)
	require.NoError(t, f.clock.BlockUntilContext(ctx, 1))
	f.clock.Advance(time.Second)
	require.Eventually(t, func() bool { return f.key.CurrentVersion() == 2 }, 10*time.Second, time.Millisecond,
		"Run reloads the key every refresh interval")
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
}

func TestEncryptAndDecrypt(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	st := f.status(t)
	enc := f.encrypt(t, seed(1))
	assert.Equal(t, st.KeyId, enc.KeyId, "Encrypt reports the key_id Status did")
	assert.LessOrEqual(t, len(enc.Ciphertext), k8skms.MaxCiphertext)
	assert.Empty(t, enc.Annotations)
	assert.NotContains(t, string(enc.Ciphertext), string(seed(1)))

	pt, err := f.decrypt(enc.Ciphertext, enc.KeyId)
	require.NoError(t, err)
	assert.Equal(t, seed(1), pt)

	_, err = f.key.Rotate(ctx)
	require.NoError(t, err)
	enc2 := f.encrypt(t, seed(2))
	assert.NotEqual(t, enc.KeyId, enc2.KeyId)
	for _, keyID := range []string{enc.KeyId, enc2.KeyId, "", "something else"} {
		pt, err := f.decrypt(enc.Ciphertext, keyID)
		require.NoError(t, err, "an old version's blob opens whatever key_id comes with it (%q)", keyID)
		assert.Equal(t, seed(1), pt)
	}
	// The blob is a kmsring data key blob naming its version.
	id, v, err := keyring.ParseCiphertext(enc2.Ciphertext)
	require.NoError(t, err)
	assert.Equal(t, f.key.ID(), id)
	assert.Equal(t, uint32(2), v)
	// It opens outside the plugin with the plugin's encryption context.
	pt, err = f.other.Decrypt(ctx, enc2.Ciphertext, keyring.WithEncryptionContext(k8skms.Context))
	require.NoError(t, err)
	assert.Equal(t, seed(2), pt)
}

func TestEveryCallIsAuditedAsThePlugin(t *testing.T) {
	f := newFixture(t)
	enc := f.encrypt(t, seed(1))
	_, err := f.decrypt(enc.Ciphertext, enc.KeyId)
	require.NoError(t, err)
	_, err = f.decrypt([]byte("nonsense"), enc.KeyId)
	require.Error(t, err)
	f.audit.mu.Lock()
	defer f.audit.mu.Unlock()
	var ops []keyring.Operation
	for i, e := range f.audit.events {
		ops = append(ops, e.Operation)
		assert.Equal(t, k8skms.Principal, f.audit.by[i], "event %d (%s) names the plugin", i, e.Operation)
		assert.Equal(t, k8skms.Context, e.EncryptionContext)
	}
	assert.Equal(t, []keyring.Operation{keyring.OpEncrypt, keyring.OpDecrypt, keyring.OpDecrypt}, ops)
	assert.Error(t, f.audit.events[2].Err, "the failed Decrypt is recorded as failed")
}

func TestBadInput(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	good := f.encrypt(t, seed(1)).Ciphertext

	otherKey, err := keyring.New(ctx, keyring.WithStore(f.st), f.rk)
	require.NoError(t, err)
	fromOtherKey, err := otherKey.Encrypt(ctx, seed(1), keyring.WithEncryptionContext(k8skms.Context))
	require.NoError(t, err)
	otherStoreKey, err := keyring.New(ctx)
	require.NoError(t, err)
	fromOtherStore, err := otherStoreKey.Encrypt(ctx, seed(1), keyring.WithEncryptionContext(k8skms.Context))
	require.NoError(t, err)
	noContext, err := f.key.Encrypt(ctx, seed(1))
	require.NoError(t, err)
	truncated := good[:len(good)-1]
	trailing := append(bytes.Clone(good), 0)

	for _, tc := range []struct {
		name, msg string
		ct        []byte
	}{
		{"empty", "empty ciphertext", nil},
		{"oversized", "ciphertext of 1025 bytes", make([]byte, 1025)},
		{"not a blob", "malformed", []byte("k8s:enc:kms:v2:other:garbage")},
		{"another key", "another key", fromOtherKey},
		{"another store", "another key", fromOtherStore},
		{"the key's blob for another purpose", "decryption failed", noContext},
		{"truncated", "", truncated},
		{"trailing byte", "", trailing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.decrypt(tc.ct, "")
			require.Error(t, err)
			st, ok := status.FromError(err)
			require.True(t, ok, "a gRPC status")
			assert.Equal(t, codes.InvalidArgument, st.Code(), "message: %s", st.Message())
			assert.True(t, strings.HasPrefix(st.Message(), "k8skms: Decrypt: "), "message: %s", st.Message())
			assert.Contains(t, st.Message(), tc.msg)
		})
	}
	// Every single-bit flip fails, without a panic: InvalidArgument, or
	// NotFound when the flip names a version the key does not have.
	for i := range len(good) * 8 {
		b := bytes.Clone(good)
		b[i/8] ^= 1 << (i % 8)
		_, err := f.decrypt(b, "")
		code := status.Code(err)
		require.True(t, code == codes.InvalidArgument || code == codes.NotFound, "bit %d: got %v (%v)", i, code, err)
	}
	for _, pt := range [][]byte{nil, make([]byte, k8skms.MaxPlaintext+1)} {
		_, err := f.svc.Encrypt(ctx, &kmsv2.EncryptRequest{Plaintext: pt})
		assert.Equal(t, codes.InvalidArgument, status.Code(err), "Encrypt of %d bytes: %v", len(pt), err)
	}
	enc, err := f.svc.Encrypt(ctx, &kmsv2.EncryptRequest{Plaintext: make([]byte, k8skms.MaxPlaintext)})
	require.NoError(t, err)
	assert.Len(t, enc.Ciphertext, k8skms.MaxCiphertext, "the largest seed fits the API server's limit exactly")
}

func TestDisabledVersionsAndKeys(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old := f.encrypt(t, seed(1)).Ciphertext
	_, err := f.key.Rotate(ctx)
	require.NoError(t, err)
	require.NoError(t, f.key.DisableVersion(ctx, 1))
	_, err = f.decrypt(old, "")
	assert.Equal(t, codes.FailedPrecondition, status.Code(err))
	assert.Contains(t, err.Error(), "version 1")
	assert.Equal(t, "ok", f.status(t).Healthz, "the current version still encrypts")

	_, err = f.key.ScheduleVersionDestruction(ctx, 1, 24*time.Hour)
	require.NoError(t, err)
	f.clock.Advance(25 * time.Hour)
	_, err = f.key.DestroyDueVersions(ctx)
	require.NoError(t, err)
	_, err = f.decrypt(old, "")
	assert.Equal(t, codes.FailedPrecondition, status.Code(err))
	assert.Contains(t, err.Error(), "destroyed")

	// The key disabled by another process: unhealthy at the next Status,
	// with a message; calls fail.
	require.NoError(t, f.other.DisableKey(ctx))
	f.clock.Advance(time.Second)
	resp := f.status(t)
	assert.NotEqual(t, "ok", resp.Healthz)
	assert.Contains(t, resp.Healthz, "Disabled")
	assert.Equal(t, "v2", resp.Version)
	assert.Contains(t, resp.KeyId, "/v2/", "the key_id stays while unhealthy")
	_, err = f.svc.Encrypt(ctx, &kmsv2.EncryptRequest{Plaintext: seed(1)})
	assert.Equal(t, codes.FailedPrecondition, status.Code(err))

	require.NoError(t, f.other.EnableKey(ctx))
	f.clock.Advance(time.Second)
	assert.Equal(t, "ok", f.status(t).Healthz)

	_, err = f.other.ScheduleKeyDeletion(ctx, 7*24*time.Hour)
	require.NoError(t, err)
	f.clock.Advance(time.Second)
	assert.Contains(t, f.status(t).Healthz, "PendingDeletion")
}

func TestUnreachableStoreIsUnhealthy(t *testing.T) {
	f := newFixture(t)
	require.Equal(t, "ok", f.status(t).Healthz)
	down := errors.New("connection refused")
	f.st.err.Store(&down)
	f.clock.Advance(time.Second)
	resp := f.status(t)
	assert.Contains(t, resp.Healthz, "cannot read the key from its store")
	assert.Contains(t, resp.Healthz, "connection refused")
	enc := f.encrypt(t, seed(1))
	_, err := f.decrypt(enc.Ciphertext, "")
	assert.NoError(t, err, "the loaded versions keep working meanwhile")
	f.st.err.Store(nil)
	f.clock.Advance(time.Second)
	assert.Equal(t, "ok", f.status(t).Healthz)
}

func TestStatusProbesEachVersionOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for range 3 {
		f.status(t)
		f.clock.Advance(time.Minute)
	}
	_, err := f.key.Rotate(ctx)
	require.NoError(t, err)
	f.status(t)
	f.status(t)
	f.audit.mu.Lock()
	defer f.audit.mu.Unlock()
	var encrypts []uint32
	for _, e := range f.audit.events {
		if e.Operation == keyring.OpEncrypt {
			encrypts = append(encrypts, e.Version)
		}
	}
	assert.Equal(t, []uint32{1, 2}, encrypts, "one probe encryption per current version, not per Status")
}

func TestMetrics(t *testing.T) {
	f := newFixture(t)
	f.status(t)
	enc := f.encrypt(t, seed(1))
	_, err := f.decrypt(enc.Ciphertext, "")
	require.NoError(t, err)
	_, err = f.decrypt(nil, "")
	require.Error(t, err)
	c := f.svc.Collector()
	assert.Equal(t, 4+3, testutil.CollectAndCount(c), "4 method/code pairs, 3 histograms")
	assert.Equal(t, 3, testutil.CollectAndCount(c, "kmsring_kms_plugin_request_duration_seconds"), "one histogram a method")
}

func TestNewRejectsBadOptions(t *testing.T) {
	k, err := keyring.New(context.Background())
	require.NoError(t, err)
	_, err = k8skms.New(nil)
	assert.ErrorIs(t, err, keyring.ErrInvalidArgument)
	_, err = k8skms.New(k, k8skms.WithRefreshInterval(0))
	assert.ErrorIs(t, err, keyring.ErrInvalidArgument)
	_, err = k8skms.New(k, k8skms.WithClock(nil))
	assert.ErrorIs(t, err, keyring.ErrInvalidArgument)
}

func TestCode(t *testing.T) {
	assert.Equal(t, codes.OK, k8skms.Code(nil))
	assert.Equal(t, codes.InvalidArgument, k8skms.Code(keyring.ErrDecrypt))
	assert.Equal(t, codes.FailedPrecondition, k8skms.Code(keyring.ErrKeyDisabled))
	assert.Equal(t, codes.Unavailable, k8skms.Code(keyring.ErrAudit))
	assert.Equal(t, codes.DeadlineExceeded, k8skms.Code(context.DeadlineExceeded))
	assert.Equal(t, codes.Internal, k8skms.Code(errors.New("something else")))
}
