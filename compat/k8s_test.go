package compat

// The Kubernetes API server's own KMS v2 code (k8s.io/apiserver: the
// EncryptionConfiguration loader and the kmsv2 envelope transformer, with
// its gRPC client) against kmsring's plugin (package k8skms) on a unix
// socket.

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/k8skms"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/tink"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apiserver/pkg/server/options/encryptionconfig"
	"k8s.io/apiserver/pkg/storage/value"
	"k8s.io/apiserver/pkg/storage/value/encrypt/envelope/kmsv2"
	kmstypes "k8s.io/apiserver/pkg/storage/value/encrypt/envelope/kmsv2/v2"
	kmsservice "k8s.io/kms/pkg/service"
)

// docsSocket is the socket docs/KUBERNETES.md names; the tests put theirs
// in its place.
const docsSocket = "unix:///var/run/kmsring/kms.sock"

var secrets = schema.GroupResource{Resource: "secrets"}

// farFuture is when the test API server's seed stops encrypting: never.
var farFuture = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)

// plugin is kmsring's KMS v2 plugin as `kmsring kms-plugin` runs it: an
// embedded store and root key file in a directory, the audit log, the
// service on an owner-only socket.
type plugin struct {
	dir, endpoint string
	rk            tink.AEAD
	keyID         string

	st  *boltstore.Store
	log *audit.Logger
	key *keyring.Keyring
	svc *k8skms.Service
	g   *grpc.Server
	wg  sync.WaitGroup
}

// newPlugin creates a key in a new store and starts the plugin over it.
func newPlugin(t testing.TB) *plugin {
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o700))
	rk, err := keyring.RootKeyFile(filepath.Join(dir, "kmsring.key"))
	require.NoError(t, err)
	st, err := boltstore.Open(filepath.Join(dir, "kmsring.db"))
	require.NoError(t, err)
	k, err := keyring.New(t.Context(), keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithAlias("alias/k8s-secrets"))
	require.NoError(t, err)
	require.NoError(t, st.Close())
	p := &plugin{dir: dir, endpoint: "unix://" + filepath.Join(dir, "kms.sock"), rk: rk, keyID: k.ID()}
	p.start(t)
	t.Cleanup(p.stop)
	return p
}

// start opens the store, loads the key and serves the plugin.
func (p *plugin) start(t testing.TB) {
	var err error
	p.st, err = boltstore.Open(filepath.Join(p.dir, "kmsring.db"))
	require.NoError(t, err)
	mac, err := keyring.AuditMAC(t.Context(), p.st, p.rk)
	require.NoError(t, err)
	p.log = audit.New(audit.WithStore(p.st), audit.WithMAC(mac))
	p.key, err = keyring.Load(t.Context(), p.st, "alias/k8s-secrets", keyring.WithRootKey(p.rk), keyring.WithAuditor(p.log))
	require.NoError(t, err)
	p.svc, err = k8skms.New(p.key)
	require.NoError(t, err)
	ln, err := k8skms.Listen(p.endpoint)
	require.NoError(t, err)
	p.g = grpc.NewServer()
	p.svc.Register(p.g)
	p.wg.Go(func() { p.g.Serve(ln) })
}

// stop stops the plugin gracefully and closes the store.
func (p *plugin) stop() {
	if p.g == nil {
		return
	}
	p.g.GracefulStop()
	p.wg.Wait()
	p.log.Close()
	p.st.Close()
	p.g = nil
}

// apiServer is an API server's storage encryption: the
// EncryptionConfiguration of docs/KUBERNETES.md, pointed at the plugin,
// loaded by the API server's code.
type apiServer struct {
	cfg *encryptionconfig.EncryptionConfiguration
	tr  value.Transformer
}

func startAPIServer(t testing.TB, p *plugin, name string) *apiServer {
	path := filepath.Join(t.TempDir(), "enc.yaml")
	require.NoError(t, os.WriteFile(path, []byte(strings.ReplaceAll(docsEncryptionConfig(t), docsSocket, p.endpoint)), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg, err := encryptionconfig.LoadEncryptionConfig(ctx, path, false, name)
	require.NoError(t, err)
	return &apiServer{cfg: cfg, tr: cfg.Transformers[secrets]}
}

// docsEncryptionConfig is the first EncryptionConfiguration in
// docs/KUBERNETES.md.
func docsEncryptionConfig(t testing.TB) string {
	doc, err := os.ReadFile("../docs/KUBERNETES.md")
	require.NoError(t, err)
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		if strings.Contains(m[1], "kind: EncryptionConfiguration") {
			require.Contains(t, m[1], docsSocket)
			return m[1]
		}
	}
	t.Fatal("no EncryptionConfiguration in docs/KUBERNETES.md")
	return ""
}

func (a *apiServer) healthy(t testing.TB) error {
	req, err := http.NewRequest(http.MethodGet, "/healthz", nil)
	require.NoError(t, err)
	return a.cfg.HealthChecks[0].Check(req)
}

// secretValue is a Secret as etcd holds it: a few KiB of serialized object.
func secretValue(name string) []byte {
	return append([]byte(`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"`+name+`","namespace":"default"},"data":{"tls.key":"`),
		append(bytes.Repeat([]byte("QUJDRA=="), 512), `"},"type":"kubernetes.io/tls"}`...)...)
}

func etcdKey(name string) value.Context {
	return value.DefaultContext("/registry/secrets/default/" + name)
}

// storedPrefix starts a value the API server stored with the docs'
// configuration (provider name kmsring).
const storedPrefix = "k8s:enc:kms:v2:kmsring:"

// keyIDOf returns the key_id stored in an encrypted value, with or
// without the configuration's prefix (the bare envelope transformer adds
// none).
func keyIDOf(t testing.TB, stored []byte) string {
	var o kmstypes.EncryptedObject
	require.NoError(t, proto.Unmarshal(bytes.TrimPrefix(stored, []byte(storedPrefix)), &o))
	require.NotEmpty(t, o.KeyID)
	return o.KeyID
}

func TestAPIServerStoresSecretsThroughThePlugin(t *testing.T) {
	p := newPlugin(t)
	api := startAPIServer(t, p, "apiserver-1")
	require.NoError(t, api.healthy(t), "the API server's KMS health check passes")
	ctx := context.Background()

	want := secretValue("db-password")
	stored, err := api.tr.TransformToStorage(ctx, want, etcdKey("db-password"))
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(stored, []byte(storedPrefix)), "etcd's value starts with %s", storedPrefix)
	assert.NotContains(t, string(stored), string(want[:64]), "etcd holds no plaintext")
	keyID := keyIDOf(t, stored)
	assert.True(t, strings.HasPrefix(keyID, p.keyID+"/v1/"), "key_id %q", keyID)

	got, stale, err := api.tr.TransformFromStorage(ctx, stored, etcdKey("db-password"))
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.False(t, stale)
	_, _, err = api.tr.TransformFromStorage(ctx, stored, etcdKey("other"))
	assert.Error(t, err, "the value is bound to its etcd key")

	// A second API server (an HA peer, or this one restarted) reads it,
	// unwrapping the seed through the plugin.
	api2 := startAPIServer(t, p, "apiserver-2")
	got, stale, err = api2.tr.TransformFromStorage(ctx, stored, etcdKey("db-password"))
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.False(t, stale)

	// Every call is in the audit log under the plugin's principal.
	require.NoError(t, p.log.Flush(ctx))
	recs, _, err := audit.LookupEvents(ctx, p.st, audit.Query{KeyID: p.keyID, Limit: 1000})
	require.NoError(t, err)
	var ops []string
	for _, r := range recs {
		if r.Operation == "Encrypt" || r.Operation == "Decrypt" {
			ops = append(ops, r.Operation)
			assert.Equal(t, k8skms.Principal, r.Principal)
		}
	}
	assert.Contains(t, ops, "Encrypt")
	assert.Contains(t, ops, "Decrypt")
}

func TestAPIServerAfterRotation(t *testing.T) {
	p := newPlugin(t)
	ctx := context.Background()
	api := startAPIServer(t, p, "apiserver-1")
	old, err := api.tr.TransformToStorage(ctx, secretValue("a"), etcdKey("a"))
	require.NoError(t, err)
	t.Logf("wrote secret a (%d bytes in etcd) under key_id %s", len(old), keyIDOf(t, old))

	v, err := p.key.Rotate(ctx)
	require.NoError(t, err)
	t.Logf("rotated on demand to version %d", v.Number)
	// The API server notices at its next Status; loading the configuration
	// again does that now.
	api = startAPIServer(t, p, "apiserver-1")
	require.NoError(t, api.healthy(t))
	got, stale, err := api.tr.TransformFromStorage(ctx, old, etcdKey("a"))
	require.NoError(t, err, "a value under the old version still reads")
	assert.Equal(t, secretValue("a"), got)
	assert.True(t, stale, "and is reported stale, for the storage migration")
	t.Logf("read secret a: stale=%v", stale)

	fresh, err := api.tr.TransformToStorage(ctx, got, etcdKey("a"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(keyIDOf(t, fresh), p.keyID+"/v2/"), "a rewrite uses the new key_id")
	assert.NotEqual(t, keyIDOf(t, old), keyIDOf(t, fresh))
	_, stale, err = api.tr.TransformFromStorage(ctx, fresh, etcdKey("a"))
	require.NoError(t, err)
	assert.False(t, stale)
	t.Logf("rewrote secret a under key_id %s; read it again: stale=%v", keyIDOf(t, fresh), stale)
}

// statusLoop is the API server's KMS v2 state machine in small: the kmsv2
// gRPC client, Status, a new seed from GenerateTransformer when the key_id
// changes, and the envelope transformer over that state, so a test
// decides when the API server polls.
type statusLoop struct {
	svc   kmsservice.Service
	mu    sync.Mutex
	state kmsv2.State
}

func newStatusLoop(t testing.TB, endpoint string) (*statusLoop, value.Transformer) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	svc, err := kmsv2.NewGRPCService(ctx, endpoint, "kmsring", 3*time.Second)
	require.NoError(t, err)
	l := &statusLoop{svc: svc}
	tr := kmsv2.NewEnvelopeTransformer(svc, "kmsring", func() (kmsv2.State, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.state, nil
	}, "apiserver-loop")
	return l, tr
}

// poll calls Status and, when the key_id changed, asks Encrypt for a new
// seed, as the API server does every minute. It returns the Status reply.
func (l *statusLoop) poll(t testing.TB) *kmsservice.StatusResponse {
	ctx := context.Background()
	st, err := l.svc.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, "v2", st.Version)
	l.mu.Lock()
	defer l.mu.Unlock()
	if st.Healthz != "ok" || st.KeyID == l.state.EncryptedObjectKeyID {
		return st
	}
	uid := string(uuid.NewUUID())
	tr, obj, cacheKey, err := kmsv2.GenerateTransformer(ctx, uid, l.svc, true)
	require.NoError(t, err)
	require.Equal(t, st.KeyID, obj.KeyID, "Encrypt answers the key_id Status did")
	l.state = kmsv2.State{
		Transformer: tr, EncryptedObjectKeyID: obj.KeyID, EncryptedObjectEncryptedDEKSource: obj.EncryptedDEKSource,
		EncryptedObjectAnnotations: obj.Annotations, EncryptedObjectEncryptedDEKSourceType: obj.EncryptedDEKSourceType,
		UID: uid, ExpirationTimestamp: farFuture, CacheKey: cacheKey, KMSProviderName: "kmsring",
	}
	return st
}

func TestTransformerRotationRestartAndDisabledKey(t *testing.T) {
	p := newPlugin(t)
	ctx := context.Background()
	loop, tr := newStatusLoop(t, p.endpoint)
	st1 := loop.poll(t)
	require.Equal(t, "ok", st1.Healthz)
	v1, err := tr.TransformToStorage(ctx, secretValue("a"), etcdKey("a"))
	require.NoError(t, err)
	assert.Equal(t, st1.KeyID, keyIDOf(t, v1))

	// No rotation, no change: the API server keeps its seed.
	assert.Equal(t, st1.KeyID, loop.poll(t).KeyID)

	// Rotate: the next Status names the new version; old values read,
	// stale; new ones are written under the new key_id.
	_, err = p.key.Rotate(ctx)
	require.NoError(t, err)
	st2 := loop.poll(t)
	require.NotEqual(t, st1.KeyID, st2.KeyID)
	got, stale, err := tr.TransformFromStorage(ctx, v1, etcdKey("a"))
	require.NoError(t, err)
	assert.Equal(t, secretValue("a"), got)
	assert.True(t, stale)
	v2, err := tr.TransformToStorage(ctx, secretValue("b"), etcdKey("b"))
	require.NoError(t, err)
	assert.Equal(t, st2.KeyID, keyIDOf(t, v2))

	// Plugin restart: the same socket, the store reopened; a fresh API
	// server (no cached seeds) reads both through it.
	p.stop()
	p.start(t)
	_, tr2 := newStatusLoop(t, p.endpoint)
	for name, v := range map[string][]byte{"a": v1, "b": v2} {
		got, _, err := tr2.TransformFromStorage(ctx, v, etcdKey(name))
		require.NoError(t, err, "after a restart %s reads", name)
		assert.Equal(t, secretValue(name), got)
	}
	assert.Equal(t, st2.KeyID, loop.poll(t).KeyID, "the key_id survives a restart")

	// Version 1 disabled: values under it fail clearly; the key is healthy.
	require.NoError(t, p.key.DisableVersion(ctx, 1))
	_, tr3 := newStatusLoop(t, p.endpoint)
	_, _, err = tr3.TransformFromStorage(ctx, v1, etcdKey("a"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "FailedPrecondition")
	assert.Contains(t, err.Error(), "version 1")

	// The key disabled: Status unhealthy with the reason, writes of new
	// seeds fail.
	require.NoError(t, p.key.DisableKey(ctx))
	st := loop.poll(t)
	assert.Contains(t, st.Healthz, "Disabled")
	_, _, _, err = kmsv2.GenerateTransformer(ctx, "u", loop.svc, true)
	assert.ErrorContains(t, err, "FailedPrecondition")
	_, tr4 := newStatusLoop(t, p.endpoint)
	_, _, err = tr4.TransformFromStorage(ctx, v2, etcdKey("b"))
	assert.ErrorContains(t, err, "key disabled")
}
