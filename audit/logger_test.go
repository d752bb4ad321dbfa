package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/internal/pgtest"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/kmsring/kmsring/store/pgstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newLogged(t *testing.T, opts ...audit.Option) (*keyring.Keyring, *memstore.Store, *audit.Logger, *clockwork.FakeClock) {
	t.Helper()
	st := memstore.New()
	l := audit.New(append([]audit.Option{audit.WithStore(st)}, opts...)...)
	t.Cleanup(func() { l.Close() })
	clk := clockwork.NewFakeClockAt(epoch)
	k, err := keyring.New(t.Context(), keyring.WithStore(st), keyring.WithClock(clk), keyring.WithAuditor(l))
	require.NoError(t, err)
	return k, st, l, clk
}

// The verification story: from the audit log alone, show that the version
// GenerateDataKey used changed with the rotation.
func TestRotationVisibleInAuditLog(t *testing.T) {
	k, st, l, clk := newLogged(t)
	ctx := audit.WithPrincipal(t.Context(), "svc-orders")
	_, err := k.GenerateDataKey(ctx, keyring.WithEncryptionContext(map[string]string{"tenant": "acme"}))
	require.NoError(t, err)
	clk.Advance(time.Hour)
	_, err = k.Rotate(ctx)
	require.NoError(t, err)
	_, err = k.GenerateDataKey(ctx)
	require.NoError(t, err)
	require.NoError(t, l.Flush(ctx))

	recs, next, err := audit.LookupEvents(ctx, st, audit.Query{KeyID: k.ID(), Operation: string(keyring.OpGenerateDataKey)})
	require.NoError(t, err)
	assert.Zero(t, next)
	require.Len(t, recs, 2)
	assert.Equal(t, uint32(1), recs[0].Version)
	assert.Equal(t, uint32(2), recs[1].Version, "after the rotation GenerateDataKey used version 2")
	assert.Equal(t, "svc-orders", recs[0].Principal)
	assert.Equal(t, map[string]string{"tenant": "acme"}, recs[0].EncryptionContext)
	assert.Equal(t, audit.Success, recs[0].Outcome)

	rot, _, err := audit.LookupEvents(ctx, st, audit.Query{Operation: string(keyring.OpRotateKey)})
	require.NoError(t, err)
	require.Len(t, rot, 1)
	assert.Equal(t, "on-demand", rot[0].Origin)
	assert.Equal(t, uint32(1), rot[0].PreviousVersion)
	assert.Equal(t, uint32(2), rot[0].Version)
	assert.Equal(t, epoch.Add(time.Hour), rot[0].Time)

	byTime, _, err := audit.LookupEvents(ctx, st, audit.Query{Since: epoch.Add(time.Hour)})
	require.NoError(t, err)
	assert.Len(t, byTime, 2, "the rotation and the second GenerateDataKey")

	v, err := audit.Verify(ctx, st)
	require.NoError(t, err)
	assert.Equal(t, uint64(4), v.Records, "CreateKey, GenerateDataKey, RotateKey, GenerateDataKey")
}

func TestLookupPages(t *testing.T) {
	k, st, l, _ := newLogged(t)
	ctx := t.Context()
	for range 25 {
		_, err := k.Encrypt(ctx, []byte("x"))
		require.NoError(t, err)
	}
	require.NoError(t, l.Flush(ctx))
	var all []audit.Record
	q := audit.Query{Operation: string(keyring.OpEncrypt), Limit: 10}
	for {
		page, next, err := audit.LookupEvents(ctx, st, q)
		require.NoError(t, err)
		all = append(all, page...)
		if next == 0 {
			break
		}
		q.After = next
	}
	assert.Len(t, all, 25)
}

func TestFailuresAndNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	k, st, l, _ := newLogged(t, audit.WithSlog(slog.New(slog.NewJSONHandler(&buf, nil))), audit.WithContextKeysOnly())
	ctx := t.Context()
	dk, err := k.GenerateDataKey(ctx, keyring.WithEncryptionContext(map[string]string{"ssn": "123-45-6789"}))
	require.NoError(t, err)
	_, err = k.Decrypt(ctx, dk.Ciphertext)
	require.ErrorIs(t, err, keyring.ErrDecrypt)
	require.NoError(t, l.Flush(ctx))
	recs, _, err := audit.LookupEvents(ctx, st, audit.Query{Operation: string(keyring.OpDecrypt)})
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, audit.Failure, recs[0].Outcome)
	assert.Equal(t, "DecryptFailed", recs[0].ErrorClass)

	all, _, err := audit.LookupEvents(ctx, st, audit.Query{})
	require.NoError(t, err)
	raw, err := json.Marshal(all)
	require.NoError(t, err)
	for _, out := range []string{string(raw), buf.String()} {
		assert.NotContains(t, out, "123-45-6789", "context values are not recorded with WithContextKeysOnly")
		assert.Contains(t, out, "ssn", "context keys are")
		for _, secret := range [][]byte{dk.Plaintext, dk.Plaintext[:8]} {
			assert.NotContains(t, out, string(secret))
			assert.NotContains(t, out, string(mustJSON(secret)))
		}
	}
	assert.Contains(t, buf.String(), `"msg":"kmsring audit"`)
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

// tamperable is an audit log whose entries a test can edit.
type tamperable struct {
	*memstore.Store
	mu      sync.Mutex
	entries []store.AuditEntry
}

func (t *tamperable) snapshot(ctx context.Context) error {
	es, err := t.Store.ReadAudit(ctx, store.AuditQuery{})
	t.entries = es
	return err
}

func (t *tamperable) ReadAudit(_ context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []store.AuditEntry
	for _, e := range t.entries {
		if e.Seq > q.After && (q.Limit <= 0 || len(out) < q.Limit) && q.Match(e) {
			out = append(out, e)
		}
	}
	return out, nil
}

func TestVerifyDetectsTampering(t *testing.T) {
	k, st, l, _ := newLogged(t)
	ctx := t.Context()
	for range 9 {
		_, err := k.Encrypt(ctx, []byte("x"))
		require.NoError(t, err)
	}
	require.NoError(t, l.Flush(ctx))
	base := &tamperable{Store: st}
	require.NoError(t, base.snapshot(ctx))
	require.Len(t, base.entries, 10)
	v, err := audit.Verify(ctx, base)
	require.NoError(t, err)
	assert.Equal(t, uint64(10), v.Records)

	check := func(name string, edit func(es []store.AuditEntry) []store.AuditEntry, seq uint64) {
		t.Helper()
		tl := &tamperable{Store: st, entries: edit(append([]store.AuditEntry(nil), base.entries...))}
		_, err := audit.Verify(ctx, tl)
		var te *audit.TamperError
		require.ErrorAs(t, err, &te, name)
		assert.ErrorIs(t, err, audit.ErrTampered)
		assert.Equal(t, seq, te.Seq, "%s: first bad record (%s)", name, te.Reason)
	}
	check("deleted record 4", func(es []store.AuditEntry) []store.AuditEntry { return append(es[:3], es[4:]...) }, 4)
	check("deleted and renumbered", func(es []store.AuditEntry) []store.AuditEntry {
		out := append(es[:3:3], es[4:]...)
		for i := 3; i < len(out); i++ {
			out[i].Seq--
		}
		return out
	}, 4)
	check("reordered 5 and 6", func(es []store.AuditEntry) []store.AuditEntry {
		es[4].Data, es[5].Data = es[5].Data, es[4].Data
		return es
	}, 5)
	check("modified record 7", func(es []store.AuditEntry) []store.AuditEntry {
		es[6].Data = bytes.Replace(es[6].Data, []byte(`"version":1`), []byte(`"version":2`), 1)
		return es
	}, 7)
	check("modified indexed key", func(es []store.AuditEntry) []store.AuditEntry {
		es[2].KeyID = "other"
		return es
	}, 3)
}

func TestFailClosed(t *testing.T) {
	ctx := t.Context()
	clk := clockwork.NewFakeClockAt(epoch)
	st := &downStore{Store: memstore.New()}
	l := audit.New(audit.WithStore(st), audit.WithFailClosed(time.Second), audit.WithClock(clk))
	defer l.Close()
	k, err := keyring.New(ctx, keyring.WithStore(st.Store), keyring.WithAuditor(l))
	require.NoError(t, err)
	clk.Advance(time.Second) // retire CreateKey's timer
	generate := func() chan error {
		errc := make(chan error, 1)
		go func() {
			_, err := k.GenerateDataKey(ctx)
			errc <- err
		}()
		return errc
	}

	st.down.Store(true)
	errc := generate()
	require.NoError(t, clk.BlockUntilContext(ctx, 2), "the caller's bound and the writer's retry")
	clk.Advance(time.Second)
	assert.ErrorIs(t, <-errc, keyring.ErrAudit, "no audit record, no data key")

	require.NoError(t, clk.BlockUntilContext(ctx, 1), "the writer waits to retry")
	st.down.Store(false)
	errc = generate()
	require.NoError(t, clk.BlockUntilContext(ctx, 2), "the caller's bound and the writer's retry")
	clk.Advance(time.Second / 2) // the longest wait between retries of a fail-closed Logger
	require.NoError(t, <-errc, "works again once records can be stored")
}

func TestFailOpenNeverBlocks(t *testing.T) {
	st := &downStore{Store: memstore.New()}
	st.down.Store(true)
	l := audit.New(audit.WithStore(st), audit.WithQueue(5))
	k, err := keyring.New(t.Context(), keyring.WithStore(st.Store), keyring.WithAuditor(l))
	require.NoError(t, err)
	for range 100 {
		_, err := k.GenerateDataKey(t.Context())
		require.NoError(t, err, "a failing audit store never fails an operation by default")
	}
	assert.Positive(t, l.Dropped(), "records beyond the queue are dropped and counted")
	st.down.Store(false)
	require.NoError(t, l.Close())
	v, err := audit.Verify(t.Context(), st)
	require.NoError(t, err)
	assert.Equal(t, 101-l.Dropped(), v.Records, "everything not dropped was stored once the store came back")
}

// downStore fails audit appends while down is set.
type downStore struct {
	*memstore.Store
	down atomicBool
}

type atomicBool struct {
	mu sync.Mutex
	v  bool
}

func (b *atomicBool) Store(v bool) { b.mu.Lock(); b.v = v; b.mu.Unlock() }
func (b *atomicBool) Load() bool   { b.mu.Lock(); defer b.mu.Unlock(); return b.v }

func (d *downStore) AppendAudit(ctx context.Context, es []store.AuditEntry) error {
	if d.down.Load() {
		return errors.New("disk full")
	}
	return d.Store.AppendAudit(ctx, es)
}

func (d *downStore) AppendAuditNext(ctx context.Context, es []store.AuditEntry) (uint64, error) {
	if d.down.Load() {
		return 0, errors.New("disk full")
	}
	return d.Store.AppendAuditNext(ctx, es)
}

func TestErrorClass(t *testing.T) {
	assert.Equal(t, "", audit.ErrorClass(nil))
	assert.Equal(t, "WrongKey", audit.ErrorClass(keyring.ErrWrongKey))
	assert.Equal(t, "Internal", audit.ErrorClass(errors.New("boom")))
	assert.True(t, strings.HasPrefix(audit.ErrorClass(context.Canceled), "Cancel"))
}

// Two loggers, as two replicas, appending to one log keep one chain,
// unkeyed or keyed.
func TestTwoLoggersOneChain(t *testing.T) {
	run := func(t *testing.T, st interface {
		store.Store
		store.AuditLog
	}, keyed bool) {
		ctx := t.Context()
		rk, err := keyring.NewRootKey(make([]byte, 32))
		require.NoError(t, err)
		var opts []audit.Option
		var vopts []audit.VerifyOption
		if keyed {
			mac, err := keyring.AuditMAC(ctx, st, rk)
			require.NoError(t, err)
			opts, vopts = append(opts, audit.WithMAC(mac)), append(vopts, audit.VerifyWithMAC(mac))
		}
		var keys []*keyring.Keyring
		var loggers []*audit.Logger
		for range 2 {
			l := audit.New(append(opts, audit.WithStore(st))...)
			loggers = append(loggers, l)
			k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithAuditor(l))
			require.NoError(t, err)
			keys = append(keys, k)
		}
		var wg sync.WaitGroup
		for _, k := range keys {
			wg.Go(func() {
				for range 200 {
					_, err := k.GenerateDataKey(ctx)
					assert.NoError(t, err)
				}
			})
		}
		wg.Wait()
		for _, l := range loggers {
			require.NoError(t, l.Close())
			assert.Zero(t, l.Dropped())
		}
		v, err := audit.Verify(ctx, st, vopts...)
		require.NoError(t, err)
		assert.Equal(t, uint64(402), v.Records, "2 CreateKey + 400 GenerateDataKey, one chain")
	}
	for _, keyed := range []bool{false, true} {
		name := map[bool]string{false: "unkeyed", true: "keyed"}[keyed]
		t.Run(name+"/memstore", func(t *testing.T) { run(t, memstore.New(), keyed) })
		t.Run(name+"/pgstore", func(t *testing.T) {
			st, err := pgstore.Open(t.Context(), pgtest.DSN(t))
			require.NoError(t, err)
			defer st.Close()
			run(t, st, keyed)
		})
	}
}
