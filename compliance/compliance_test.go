package compliance_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/compliance"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const day = 24 * time.Hour

var start = time.Date(2023, 1, 1, 9, 0, 0, 0, time.UTC)

// fixture is a store with three keys over three simulated years:
// "alias/yearly" rotates automatically every 365 days; "alias/monthly"
// every 30 days plus once on demand; "alias/stale" had rotation turned
// off after 100 days and is overdue from 2024-01-01.
type fixture struct {
	st                     *memstore.Store
	clk                    *clockwork.FakeClock
	log                    *audit.Logger
	opts                   []compliance.Option
	yearly, monthly, stale *keyring.Keyring
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := audit.WithPrincipal(t.Context(), "alice")
	st := memstore.New()
	rk, err := keyring.NewRootKey(bytes.Repeat([]byte{3}, 32))
	require.NoError(t, err)
	mac, err := keyring.AuditMAC(ctx, st, rk)
	require.NoError(t, err)
	l := audit.New(audit.WithStore(st), audit.WithMAC(mac))
	t.Cleanup(func() { l.Close() })
	clk := clockwork.NewFakeClockAt(start)
	mk := func(alias string, period time.Duration) *keyring.Keyring {
		k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithClock(clk),
			keyring.WithAuditor(l), keyring.WithAlias(alias), keyring.WithRotationPeriod(period))
		require.NoError(t, err)
		return k
	}
	f := &fixture{st: st, clk: clk, log: l, yearly: mk("alias/yearly", 365*day), monthly: mk("alias/monthly", 30*day), stale: mk("alias/stale", 365*day)}
	f.opts = []compliance.Option{compliance.WithClock(clk), compliance.WithRootKey(rk), compliance.WithMAC(mac)}
	sched := audit.WithPrincipal(t.Context(), "scheduler")
	var old *keyring.DataKey
	for d := 1; d <= 3*365; d++ {
		clk.Advance(day)
		for _, k := range []*keyring.Keyring{f.yearly, f.monthly, f.stale} {
			_, _, err := k.RotateIfDue(sched)
			require.NoError(t, err)
		}
		switch d {
		case 10:
			old, err = f.yearly.GenerateDataKey(ctx)
			require.NoError(t, err)
		case 100:
			require.NoError(t, f.stale.DisableRotation(ctx))
		case 400:
			_, err = f.yearly.Decrypt(ctx, old.Ciphertext)
			require.NoError(t, err)
			_, err = f.yearly.Encrypt(ctx, []byte("x"))
			require.NoError(t, err)
		case 500:
			_, err := f.monthly.Rotate(ctx)
			require.NoError(t, err)
		}
	}
	require.NoError(t, l.Flush(t.Context()))
	return f
}

func keyOf(t *testing.T, r *compliance.Report, id string) compliance.Key {
	t.Helper()
	for _, k := range r.Keys {
		if k.KeyId == id {
			return k
		}
	}
	t.Fatalf("key %s not in the report", id)
	return compliance.Key{}
}

func TestBuildRotationHistory(t *testing.T) {
	f := newFixture(t)
	r, err := compliance.Build(t.Context(), f.st, f.opts...)
	require.NoError(t, err)
	end := start.Add(3 * 365 * day)
	assert.Equal(t, end, r.PeriodEnd)
	assert.Equal(t, start, r.PeriodStart, "the period starts with the oldest key")
	assert.Equal(t, 365.0, r.MaxCryptoperiodDays)
	assert.True(t, r.AuditLog.Verified, r.AuditLog.Error)
	assert.True(t, r.AuditLog.Keyed)
	assert.Nil(t, r.AuditLog.ContinuesPreviousReport)
	assert.Equal(t, compliance.Summary{Keys: 3, Compliant: 2, NonCompliant: 1}, r.Summary)

	y := keyOf(t, r, f.yearly.ID())
	assert.Equal(t, []string{"alias/yearly"}, y.Aliases)
	assert.Equal(t, "Enabled", y.KeyState)
	require.Len(t, y.Rotations, 3)
	for i, rot := range y.Rotations {
		assert.Equal(t, compliance.Rotation{Date: start.Add(time.Duration(i+1) * 365 * day), Type: compliance.Automatic, Principal: "scheduler", KeyVersion: uint32(i + 2)}, rot)
	}
	assert.Equal(t, 365.0, y.LongestIntervalDays, "exactly the maximum complies")
	assert.True(t, y.Compliant)
	assert.Empty(t, y.OverduePeriods)
	require.Len(t, y.Versions, 4)
	assert.Equal(t, uint64(1), y.Versions[0].EncryptCount)
	assert.Equal(t, uint64(1), y.Versions[0].DecryptCount, "the old data key was decrypted under version 1")
	assert.Equal(t, uint64(1), y.Versions[1].EncryptCount)
	require.NotNil(t, y.Versions[0].LastUsed)
	assert.Equal(t, start.Add(400*day), *y.Versions[0].LastUsed)
	assert.Nil(t, y.Versions[3].LastUsed)

	m := keyOf(t, r, f.monthly.ID())
	assert.Len(t, m.Rotations, 37, "36 automatic and one on demand")
	var onDemand []compliance.Rotation
	for _, rot := range m.Rotations {
		if rot.Type == compliance.OnDemand {
			onDemand = append(onDemand, rot)
		}
	}
	require.Len(t, onDemand, 1)
	assert.Equal(t, "alice", onDemand[0].Principal)
	assert.Equal(t, start.Add(500*day), onDemand[0].Date)
	assert.Equal(t, 30.0, m.LongestIntervalDays)

	s := keyOf(t, r, f.stale.ID())
	assert.False(t, s.Compliant)
	assert.False(t, s.RotationEnabled)
	assert.Empty(t, s.Rotations)
	assert.Equal(t, float64(3*365), s.LongestIntervalDays)
	assert.Equal(t, float64(3*365), s.CurrentVersionAgeDays)
	require.Len(t, s.OverduePeriods, 1)
	assert.Equal(t, compliance.OverduePeriod{Start: start.Add(365 * day), End: end, Days: 730}, s.OverduePeriods[0])
	require.Len(t, s.StateChanges, 1)
	assert.Equal(t, compliance.StateChange{Date: start.Add(100 * day), Operation: "DisableKeyRotation", Principal: "alice"}, s.StateChanges[0])
	assert.Equal(t, findingStatuses(s), map[string]string{
		compliance.ControlCryptoperiod: "FAIL", compliance.ControlRetiredKeys: "PASS",
		compliance.ControlLogIntegrity: "PASS", compliance.ControlAttribution: "PASS",
	})
}

func findingStatuses(k compliance.Key) map[string]string {
	m := map[string]string{}
	for _, f := range k.Findings {
		m[f.Control] = f.Status
	}
	return m
}

// The JSON is exactly the shape DESIGN.md fixes.
func TestReportJSONShape(t *testing.T) {
	f := newFixture(t)
	r, err := compliance.Build(t.Context(), f.st, append(f.opts, compliance.WithKeyIDs("alias/yearly"))...)
	require.NoError(t, err)
	b, err := json.Marshal(r)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	keys := func(v any) []string { return slices.Sorted(maps.Keys(v.(map[string]any))) }
	assert.Equal(t, []string{"AuditLog", "GeneratedAt", "Keys", "MaxCryptoperiodDays", "PeriodEnd", "PeriodStart", "Summary"}, keys(m))
	assert.Equal(t, []string{"ContinuesPreviousReport", "Error", "FirstSeq", "Head", "Keyed", "LastSeq", "Records", "Verified"}, keys(m["AuditLog"]))
	assert.Nil(t, m["AuditLog"].(map[string]any)["ContinuesPreviousReport"], "null without a previous report")
	assert.Equal(t, []string{"Compliant", "Keys", "NonCompliant"}, keys(m["Summary"]))
	ks := m["Keys"].([]any)
	require.Len(t, ks, 1)
	k := ks[0].(map[string]any)
	assert.Equal(t, []string{"Aliases", "Arn", "Compliant", "CreationDate", "CurrentVersionAgeDays", "Findings", "KeyId", "KeyState",
		"LongestIntervalDays", "OverduePeriods", "RotationEnabled", "RotationPeriodInDays", "Rotations", "StateChanges", "Versions"}, keys(k))
	assert.Equal(t, []string{"Date", "KeyVersion", "Principal", "Type"}, keys(k["Rotations"].([]any)[0]))
	assert.Equal(t, []string{"CreationDate", "DecryptCount", "EncryptCount", "KeyVersion", "LastUsed", "State"}, keys(k["Versions"].([]any)[0]))
	assert.Equal(t, []string{"Control", "Detail", "Status"}, keys(k["Findings"].([]any)[0]))
	assert.Equal(t, "arn:aws:kms:us-east-1:000000000000:key/"+f.yearly.ID(), k["Arn"])
	assert.Equal(t, "2024-01-01T09:00:00Z", k["Rotations"].([]any)[0].(map[string]any)["Date"], "RFC 3339")

	back, err := compliance.ReadJSON(bytes.NewReader(b))
	require.NoError(t, err)
	assert.Equal(t, r.AuditLog.Head, back.AuditLog.Head)
}

// The previous report's head: the same log continues it; another store's
// report, or a log cut short since, does not.
func TestPreviousReport(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	first, err := compliance.Build(ctx, f.st, f.opts...)
	require.NoError(t, err)
	_, err = f.yearly.Encrypt(ctx, []byte("more"))
	require.NoError(t, err)
	require.NoError(t, f.log.Flush(ctx))

	next, err := compliance.Build(ctx, f.st, append(f.opts, compliance.WithPreviousReport(first))...)
	require.NoError(t, err)
	require.NotNil(t, next.AuditLog.ContinuesPreviousReport)
	assert.True(t, *next.AuditLog.ContinuesPreviousReport, next.AuditLog.Error)
	assert.Equal(t, first.AuditLog.LastSeq+1, next.AuditLog.LastSeq)
	same, err := compliance.Build(ctx, f.st, append(f.opts, compliance.WithPreviousReport(first))...)
	require.NoError(t, err)
	assert.True(t, *same.AuditLog.ContinuesPreviousReport)

	other := newFixture(t)
	foreign, err := compliance.Build(ctx, other.st, other.opts...)
	require.NoError(t, err)
	r, err := compliance.Build(ctx, f.st, append(f.opts, compliance.WithPreviousReport(foreign))...)
	require.NoError(t, err)
	assert.False(t, *r.AuditLog.ContinuesPreviousReport, "another store's report")
	assert.Contains(t, r.AuditLog.Error, "another store")

	// A tail cut: the log now ends before the previous report's end.
	cut := &truncated{Store: f.st, last: first.AuditLog.LastSeq - 5}
	r, err = compliance.Build(ctx, cut, append(f.opts, compliance.WithPreviousReport(first))...)
	require.NoError(t, err)
	assert.False(t, *r.AuditLog.ContinuesPreviousReport, "records cut from the end")
	assert.True(t, r.AuditLog.Verified, "the shorter log itself verifies: only the previous head shows the cut")
}

// truncated hides the log's records after last.
type truncated struct {
	*memstore.Store
	last uint64
}

func (s *truncated) ReadAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	es, err := s.Store.ReadAudit(ctx, q)
	return slices.DeleteFunc(es, func(e store.AuditEntry) bool { return e.Seq > s.last }), err
}

// A log that does not verify makes every key non-compliant and says why.
func TestTamperedLogFailsEveryKey(t *testing.T) {
	f := newFixture(t)
	r, err := compliance.Build(t.Context(), f.st, f.opts[:2]...) // no MAC: the keyed log cannot be verified
	require.NoError(t, err)
	assert.False(t, r.AuditLog.Verified)
	assert.Contains(t, r.AuditLog.Error, "keyed")
	assert.Equal(t, 0, r.Summary.Compliant)
	for _, k := range r.Keys {
		assert.Equal(t, "FAIL", findingStatuses(k)[compliance.ControlLogIntegrity])
	}
}

func TestBuildOptions(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	r, err := compliance.Build(ctx, f.st, append(f.opts, compliance.WithKeyIDs("alias/stale"), compliance.WithMaxCryptoperiod(3*365*day),
		compliance.WithPeriod(start.Add(365*day), start.Add(2*365*day)))...)
	require.NoError(t, err)
	require.Len(t, r.Keys, 1)
	assert.True(t, r.Keys[0].Compliant, "within a three-year cryptoperiod")
	assert.Equal(t, 1095.0, r.MaxCryptoperiodDays)
	assert.Empty(t, r.Keys[0].StateChanges, "the change on day 100 is before the period")

	_, err = compliance.Build(ctx, f.st, append(f.opts, compliance.WithKeyIDs("alias/none"))...)
	assert.ErrorIs(t, err, keyring.ErrKeyNotFound)
	_, err = compliance.Build(ctx, f.st, append(f.opts, compliance.WithMaxCryptoperiod(0))...)
	assert.ErrorIs(t, err, compliance.ErrInvalidArgument)
	_, err = compliance.Build(ctx, f.st, compliance.WithClock(f.clk))
	assert.ErrorIs(t, err, keyring.ErrRootKey, "key records are read authenticated: the root key is needed")
}

func TestRenderings(t *testing.T) {
	f := newFixture(t)
	r, err := compliance.Build(t.Context(), f.st, f.opts...)
	require.NoError(t, err)

	var csvOut bytes.Buffer
	require.NoError(t, r.WriteCSV(&csvOut))
	rows, err := csv.NewReader(&csvOut).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 4, "a header and a row per key")
	assert.Equal(t, "KeyId", rows[0][0])
	col := slices.Index(rows[0], "Compliant")
	var compliant []string
	for _, row := range rows[1:] {
		compliant = append(compliant, row[col])
	}
	assert.ElementsMatch(t, []string{"true", "true", "false"}, compliant)

	var html bytes.Buffer
	require.NoError(t, r.WriteHTML(&html))
	page := html.String()
	for _, k := range r.Keys {
		assert.Contains(t, page, k.KeyId)
	}
	assert.Contains(t, page, "<svg")
	assert.Contains(t, page, `class="over"`, "the overdue stretch is drawn")
	assert.NotContains(t, strings.ToLower(page), "<script")
	assert.NotContains(t, page, "http://", "no network")
	assert.NotContains(t, page, "https://")
}

// A disabled key's current version is not in use: its age after the
// DisableKey does not count against the cryptoperiod, its time before
// does, and the change is listed with its principal.
func TestDisabledKeyIsNotOverdue(t *testing.T) {
	ctx := audit.WithPrincipal(t.Context(), "carol")
	st := memstore.New()
	rk, err := keyring.NewRootKey(bytes.Repeat([]byte{4}, 32))
	require.NoError(t, err)
	mac, err := keyring.AuditMAC(ctx, st, rk)
	require.NoError(t, err)
	l := audit.New(audit.WithStore(st), audit.WithMAC(mac))
	defer l.Close()
	clk := clockwork.NewFakeClockAt(start)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithClock(clk), keyring.WithAuditor(l))
	require.NoError(t, err)
	clk.Advance(100 * day)
	require.NoError(t, k.DisableKey(ctx))
	clk.Advance(900 * day)
	require.NoError(t, l.Flush(t.Context()))
	r, err := compliance.Build(t.Context(), st, compliance.WithClock(clk), compliance.WithRootKey(rk), compliance.WithMAC(mac))
	require.NoError(t, err)
	require.Len(t, r.Keys, 1)
	key := r.Keys[0]
	assert.Equal(t, "Disabled", key.KeyState)
	assert.True(t, key.Compliant)
	assert.Empty(t, key.OverduePeriods)
	assert.Equal(t, []compliance.StateChange{{Date: start.Add(100 * day), Operation: "DisableKey", Principal: "carol"}}, key.StateChanges)
	assert.Equal(t, 1000.0, key.CurrentVersionAgeDays)
	assert.Equal(t, 100.0, key.LongestIntervalDays, "in use for 100 days")

	// Enabled again, used 300 more days, disabled: 400 days in use.
	require.NoError(t, k.EnableKey(ctx))
	clk.Advance(300 * day)
	require.NoError(t, k.DisableKey(ctx))
	clk.Advance(10 * day)
	require.NoError(t, l.Flush(t.Context()))
	r, err = compliance.Build(t.Context(), st, compliance.WithClock(clk), compliance.WithRootKey(rk), compliance.WithMAC(mac))
	require.NoError(t, err)
	key = r.Keys[0]
	assert.False(t, key.Compliant)
	assert.Equal(t, 1300.0, key.LongestIntervalDays, "from creation to the last DisableKey")
	require.Len(t, key.OverduePeriods, 1)
	assert.Equal(t, start.Add(365*day), key.OverduePeriods[0].Start)
	assert.Equal(t, start.Add(1300*day), key.OverduePeriods[0].End)
}
