package leaktest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/rotation"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// spyRootKey records the version material it wraps: the secrets a store
// must never see in the clear, and nothing may print.
type spyRootKey struct {
	tink.AEAD
	mu       sync.Mutex
	material [][]byte
}

func (s *spyRootKey) Encrypt(pt, ad []byte) ([]byte, error) {
	s.mu.Lock()
	s.material = append(s.material, bytes.Clone(pt))
	s.mu.Unlock()
	return s.AEAD.Encrypt(pt, ad)
}

// collector gathers every string the library produces.
type collector struct {
	mu  sync.Mutex
	out strings.Builder
}

func (c *collector) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

// verbs are the fmt verbs every value is printed with.
var verbs = []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"}

// add prints every value in every way a program might: each fmt verb, its
// Error text, encoding/json, and slog's text and JSON handlers.
func (c *collector) add(v ...any) {
	text := slog.New(slog.NewTextHandler(c, nil))
	js := slog.New(slog.NewJSONHandler(c, nil))
	for _, x := range v {
		if err, ok := x.(error); ok && err != nil {
			fmt.Fprintln(c, err.Error())
		}
		for _, verb := range verbs {
			fmt.Fprintf(c, verb+"\n", x)
		}
		if b, err := json.Marshal(x); err == nil {
			c.Write(append(b, '\n'))
		} else {
			fmt.Fprintln(c, "json:", err)
		}
		text.Info("value", "v", x)
		js.Info("value", "v", x)
	}
}

// forms returns the ways a secret could appear in text.
func forms(secret []byte) []string {
	part := secret[:min(len(secret), 12)]
	return []string{
		string(part),
		hex.EncodeToString(part),
		strings.ToUpper(hex.EncodeToString(part)),
		base64.StdEncoding.EncodeToString(secret)[:12],
		base64.RawURLEncoding.EncodeToString(secret)[:12],
		strings.Trim(fmt.Sprint(part), "[]"),
		fmt.Sprintf("%q", part)[1:12],
	}
}

// scan fails t for every form of every secret found in text, showing the
// line it is on.
func scan(t *testing.T, text string, secrets [][]byte) {
	t.Helper()
	for _, secret := range secrets {
		for _, f := range forms(secret) {
			if i := strings.Index(text, f); i >= 0 {
				line := text[strings.LastIndexByte(text[:i], '\n')+1:]
				line, _, _ = strings.Cut(line, "\n")
				t.Errorf("a secret (%q) appears in output, errors, logs, audit records or formatting:\n%.600s", f, line)
			}
		}
	}
}

func TestNothingLeaks(t *testing.T) {
	ctx := audit.WithPrincipal(context.Background(), "tester")
	c := &collector{}
	slog.SetDefault(slog.New(slog.NewTextHandler(c, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(slog.New(slog.NewTextHandler(discard{}, nil)))

	localKey := randomKey()
	local, err := keyring.NewRootKey(localKey)
	require.NoError(t, err)
	rk := &spyRootKey{AEAD: local}
	st := memstore.New()
	clk := clockwork.NewFakeClockAt(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	mac, err := keyring.AuditMAC(ctx, st, rk) // the spy sees the store key
	require.NoError(t, err)
	logger := audit.New(audit.WithStore(st), audit.WithMAC(mac), audit.WithSlog(slog.Default()))
	bus := audit.NewBus()
	metrics := audit.NewCollector()
	sub := bus.Subscribe(audit.Filter{}, 100)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithClock(clk),
		keyring.WithAlias("alias/leak"), keyring.WithAuditor(logger), keyring.WithAuditor(bus), keyring.WithAuditor(metrics), keyring.WithRotationPeriod(time.Hour))
	require.NoError(t, err)
	other, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)

	secrets := [][]byte{localKey}
	plaintext := []byte("PLAINTEXT-MUST-NOT-LEAK-0123456789")
	secrets = append(secrets, plaintext)

	// Every built-in kind of root key, as itself, behind tink.AEAD and in
	// the containers a program might print or log.
	passphrase := []byte("correct horse battery staple, never printed")
	pp, err := keyring.NewPassphraseRootKey(passphrase, cheapArgon2)
	require.NoError(t, err)
	filePath := filepath.Join(t.TempDir(), "root.key")
	file, err := keyring.RootKeyFile(filePath)
	require.NoError(t, err)
	fileKey, err := os.ReadFile(filePath)
	require.NoError(t, err)
	secrets = append(secrets, passphrase, fileKey)
	for _, a := range []tink.AEAD{local, file, pp, keyring.RootKeys(pp, local, file)} {
		c.add(a, &a, []tink.AEAD{a}, struct{ RootKey tink.AEAD }{a}, map[string]tink.AEAD{"root_key": a})
	}
	// A keyring under the passphrase, loaded by another process (its own
	// salt), and refused a wrong passphrase.
	ppst := memstore.New() // a store holds keys under one root key
	ppk, err := keyring.New(ctx, keyring.WithStore(ppst), keyring.WithRootKey(pp))
	require.NoError(t, err)
	pp2, err := keyring.NewPassphraseRootKey(passphrase, cheapArgon2)
	require.NoError(t, err)
	ppl, err := keyring.Load(ctx, ppst, ppk.ID(), keyring.WithRootKey(pp2))
	require.NoError(t, err)
	wrongPP, err := keyring.NewPassphraseRootKey([]byte("incorrect horse"), cheapArgon2)
	require.NoError(t, err)
	_, err = keyring.Load(ctx, ppst, ppk.ID(), keyring.WithRootKey(wrongPP))
	c.add(err, ppk, ppl, keyring.NewSet(k, ppk))
	ec := map[string]string{"tenant": "acme"}

	dk, err := k.GenerateDataKey(ctx, keyring.WithEncryptionContext(ec))
	require.NoError(t, err)
	secrets = append(secrets, dk.Plaintext)
	c.add(dk, *dk)
	_, err = k.Decrypt(ctx, dk.Ciphertext)
	c.add(err)
	_, err = other.Decrypt(ctx, dk.Ciphertext, keyring.WithEncryptionContext(ec))
	c.add(err)
	bad := bytes.Clone(dk.Ciphertext)
	bad[len(bad)-1] ^= 1
	_, err = k.Decrypt(ctx, bad, keyring.WithEncryptionContext(ec))
	c.add(err)
	_, err = k.Encrypt(ctx, make([]byte, 5000))
	c.add(err)

	blob, err := k.Encrypt(ctx, plaintext)
	require.NoError(t, err)
	_, err = k.ReEncrypt(ctx, blob, keyring.WithDestinationEncryptionContext(ec))
	require.NoError(t, err)
	sealed, err := envelope.Seal(ctx, k, plaintext, envelope.WithEncryptionContext(ec))
	require.NoError(t, err)
	for i := range len(sealed) * 8 {
		b := bytes.Clone(sealed)
		b[i/8] ^= 1 << (i % 8)
		_, err := envelope.Open(ctx, k, b)
		c.add(err)
	}
	_, err = envelope.Open(ctx, k, sealed, envelope.WithEncryptionContext(map[string]string{"tenant": "x"}))
	c.add(err)
	h, err := envelope.Inspect(sealed)
	require.NoError(t, err)
	c.add(h)
	secrets = append(secrets, dataKey(t, k, sealed))

	clk.Advance(time.Hour)
	s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(slog.Default()), rotation.WithOverdue(0, bus.Overdue))
	s.Add(k)
	events, err := s.RunOnce(ctx)
	require.NoError(t, err)
	c.add(events, s)
	require.NoError(t, k.DisableVersion(ctx, 1))
	_, err = k.Decrypt(ctx, dk.Ciphertext, keyring.WithEncryptionContext(ec))
	c.add(err)
	md, err := k.Describe(ctx)
	require.NoError(t, err)
	c.add(md, k.Cached())
	_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(local), keyring.WithAlias("alias/x"))
	c.add(err)
	wrong, err := keyring.NewRootKey(bytes.Repeat([]byte{8}, 32))
	require.NoError(t, err)
	_, err = keyring.Load(ctx, st, k.ID(), keyring.WithRootKey(wrong))
	c.add(err)

	require.NoError(t, logger.Close())
	recs, _, err := audit.LookupEvents(ctx, st, audit.Query{})
	require.NoError(t, err)
	require.NotEmpty(t, recs)
	c.add(recs, logger, bus, sub, metrics)
	verified, err := audit.Verify(ctx, st, audit.VerifyWithMAC(mac))
	require.NoError(t, err)
	c.add(verified)
	sub.Close()
	for e := range sub.Events() {
		c.add(e)
	}
	// The store itself: material only wrapped.
	ids, err := st.List(ctx)
	require.NoError(t, err)
	for _, id := range ids {
		rec, err := st.Get(ctx, id)
		require.NoError(t, err)
		vs, err := st.Versions(ctx, id, 0)
		require.NoError(t, err)
		c.add(rec)
		for _, v := range vs {
			fmt.Fprintln(c, string(v.Data))
		}
	}

	rk.mu.Lock()
	secrets = append(secrets, rk.material...)
	rk.mu.Unlock()
	require.Greater(t, len(rk.material), 2, "the spy saw the version material")
	text := c.out.String()
	require.Greater(t, len(text), 10000, "the scan has material to scan")
	scan(t, text, secrets)
	t.Logf("scanned %d bytes of output for %d secrets in %d forms each", len(text), len(secrets), len(forms(secrets[0])))
}

// cheapArgon2 is the creation floor: the fastest passphrase key allowed.
var cheapArgon2 = keyring.Argon2Params{Time: keyring.MinArgon2Time, Memory: keyring.MinArgon2Memory, Threads: 1}

func randomKey() []byte {
	b := make([]byte, keyring.RootKeySize)
	rand.Read(b)
	return b
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// dataKey returns the data key of a sealed envelope.
func dataKey(t *testing.T, k *keyring.Keyring, sealed []byte) []byte {
	h, err := envelope.Inspect(sealed)
	require.NoError(t, err)
	dek, err := k.Decrypt(t.Context(), h.DataKeyBlob, keyring.WithEncryptionContext(h.EncryptionContext))
	require.NoError(t, err)
	return dek
}

// The envelope values that hold secrets: a data key cache holds data keys,
// a stream writer the plaintext of its current segment, a reader the
// plaintext not yet read. Printing them must show none of it.
func TestEnvelopeValuesPrintNoSecrets(t *testing.T) {
	ctx := t.Context()
	k, err := keyring.New(ctx)
	require.NoError(t, err)
	plaintext := []byte("PLAINTEXT-MUST-NOT-LEAK-0123456789")
	c := &collector{}

	cache, err := envelope.NewCache()
	require.NoError(t, err)
	sealed, err := envelope.Seal(ctx, k, plaintext, envelope.WithCache(cache))
	require.NoError(t, err)
	c.add(cache)

	var streamed bytes.Buffer
	w, err := envelope.NewWriter(ctx, k, &streamed)
	require.NoError(t, err)
	_, err = w.Write(plaintext) // held in the writer's buffer
	require.NoError(t, err)
	c.add(w)
	require.NoError(t, w.Close())
	r, err := envelope.NewReader(ctx, k, bytes.NewReader(streamed.Bytes()))
	require.NoError(t, err)
	_, err = r.Read(make([]byte, 1)) // the rest waits in the reader
	require.NoError(t, err)
	c.add(r)

	for _, v := range []any{cache, w, r} {
		_, ok := v.(fmt.Formatter)
		require.True(t, ok, "%T prints its fields (data keys, plaintext) without a Format method", v)
	}
	var text, js bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&text, nil), slog.NewJSONHandler(&js, nil)} {
		slog.New(h).Info("values", "cache", cache, "writer", w, "reader", r)
	}
	c.add(text.String(), js.String())
	scan(t, c.out.String(), [][]byte{plaintext, dataKey(t, k, sealed), dataKey(t, k, streamed.Bytes())})
}
