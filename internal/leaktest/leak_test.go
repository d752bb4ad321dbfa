package leaktest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
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

func (c *collector) add(v ...any) {
	for _, x := range v {
		if err, ok := x.(error); ok && err != nil {
			fmt.Fprintln(c, err.Error())
			continue
		}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
			fmt.Fprintf(c, verb+"\n", x)
		}
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

func TestNothingLeaks(t *testing.T) {
	ctx := audit.WithPrincipal(context.Background(), "tester")
	c := &collector{}
	slog.SetDefault(slog.New(slog.NewTextHandler(c, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(slog.New(slog.NewTextHandler(discard{}, nil)))

	local, err := keyring.NewRootKey(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	rk := &spyRootKey{AEAD: local}
	st := memstore.New()
	clk := clockwork.NewFakeClockAt(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	logger := audit.New(audit.WithStore(st), audit.WithSlog(slog.Default()))
	bus := audit.NewBus()
	sub := bus.Subscribe(audit.Filter{}, 100)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithClock(clk),
		keyring.WithAlias("alias/leak"), keyring.WithAuditor(logger), keyring.WithAuditor(bus), keyring.WithRotationPeriod(time.Hour))
	require.NoError(t, err)
	other, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)

	var secrets [][]byte
	plaintext := []byte("PLAINTEXT-MUST-NOT-LEAK-0123456789")
	secrets = append(secrets, plaintext)
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
	cache, err := envelope.NewCache()
	require.NoError(t, err)
	_, err = envelope.Seal(ctx, k, plaintext, envelope.WithCache(cache))
	require.NoError(t, err)
	c.add(cache)

	clk.Advance(time.Hour)
	s := rotation.New(rotation.WithClock(clk), rotation.WithLogger(slog.Default()), rotation.WithOverdue(0, bus.Overdue))
	s.Add(k)
	events, err := s.RunOnce(ctx)
	require.NoError(t, err)
	c.add(events)
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
	c.add(recs)
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
	for _, secret := range secrets {
		for _, f := range forms(secret) {
			require.NotContains(t, text, f, "a secret appears in output, errors, logs, audit records or formatting")
		}
	}
	t.Logf("scanned %d bytes of output for %d secrets in %d forms each", len(text), len(secrets), len(forms(secrets[0])))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
