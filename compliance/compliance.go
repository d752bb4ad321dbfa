// Package compliance builds the evidence an auditor asks of key rotation:
// for every key, each rotation with its date, type and principal, the
// longest interval between rotations, the stretches when the key was past
// its maximum cryptoperiod, each version's state and use, the key's state
// changes, and findings per control (PCI DSS 3.7.4 cryptoperiod, 3.7.5
// retired keys, NIST SP 800-53 AU-9 and AU-10 for the audit log), computed
// from the authenticated key records and the audit log (its archive
// included).
//
// # The report
//
// [Build] returns a typed [Report]; JSON ([Report.WriteJSON], or
// json.Marshal), CSV ([Report.WriteCSV], one row per key) and a
// self-contained HTML page ([Report.WriteHTML]: no network, no script,
// printable, with an SVG rotation timeline per key) are renderings of that
// one value. The JSON shape is fixed (docs/COMPLIANCE.md shows it).
//
// # Signing
//
// A report is signed with a reporting key that is not the root key
// ([GenerateSigningKey], [Sign]): an auditor checks it with the public key
// alone ([VerifySignature]), without access to the store. The report's
// AuditLog.Head, kept by the auditor, lets the next report prove that the
// log was not cut short in between ([WithPreviousReport]).
//
// # Costs
//
// Build loads each selected key (one read and one unwrap per key) and
// streams the audit log once, a page at a time; it holds per-key counters,
// not the log.
package compliance

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// Day is the unit of cryptoperiods in a report.
const Day = 24 * time.Hour

// DefaultMaxCryptoperiod is the maximum cryptoperiod unless
// WithMaxCryptoperiod says otherwise: 365 days, as AWS KMS's default
// rotation period.
const DefaultMaxCryptoperiod = 365 * Day

// Report is the compliance evidence for a set of keys over a period. Its
// JSON is the report's exchange form.
type Report struct {
	GeneratedAt         time.Time
	PeriodStart         time.Time
	PeriodEnd           time.Time
	MaxCryptoperiodDays float64
	AuditLog            AuditLog
	Keys                []Key
	Summary             Summary
}

// AuditLog is what verifying the audit log found.
type AuditLog struct {
	// Verified is true when the whole log (archive and store) verified.
	Verified bool
	// Keyed is true when every record was authenticated under the audit
	// chain key (WithMAC), not only hash-chained.
	Keyed bool
	// Records is how many records were read; FirstSeq and LastSeq number
	// the first and last.
	Records  uint64
	FirstSeq uint64
	LastSeq  uint64
	// Head is the link of record LastSeq: keep it (or this report) to
	// check that the next report's log continues this one.
	Head string
	// ContinuesPreviousReport is null without a previous report
	// (WithPreviousReport), true when this log holds the previous
	// report's last record with the same head.
	ContinuesPreviousReport *bool
	// Error says why the log did not verify, or why it does not continue
	// the previous report; empty when it did.
	Error string
}

// Key is one key's evidence.
type Key struct {
	KeyId                 string
	Arn                   string
	Aliases               []string
	KeyState              string
	CreationDate          time.Time
	RotationEnabled       bool
	RotationPeriodInDays  float64
	Rotations             []Rotation
	LongestIntervalDays   float64
	CurrentVersionAgeDays float64
	OverduePeriods        []OverduePeriod
	Versions              []Version
	StateChanges          []StateChange
	Compliant             bool
	Findings              []Finding
}

// Rotation is one new version made by a rotation.
type Rotation struct {
	Date time.Time
	// Type is "AUTOMATIC" or "ON_DEMAND", as AWS's ListKeyRotations says.
	Type string
	// Principal is who rotated, from the audit log ("" when the log does
	// not hold the rotation's record).
	Principal  string
	KeyVersion uint32
}

// Rotation types.
const (
	Automatic = "AUTOMATIC"
	OnDemand  = "ON_DEMAND"
)

// OverduePeriod is a stretch of the period when the key's material in use
// was older than the maximum cryptoperiod.
type OverduePeriod struct {
	Start time.Time
	End   time.Time
	Days  float64
}

// Version is one version's state and use in the period.
type Version struct {
	KeyVersion   uint32
	State        string
	CreationDate time.Time
	// EncryptCount counts GenerateDataKey, GenerateDataKeyWithoutPlaintext
	// and Encrypt under the version, DecryptCount Decrypt and ReEncrypt's
	// source, both successful and in the period.
	EncryptCount uint64
	DecryptCount uint64
	// LastUsed is the time of the version's last counted use, null if
	// none.
	LastUsed *time.Time
}

// StateChange is a successful change of the key's state, rotation
// settings, or a version's state, from the audit log.
type StateChange struct {
	Date      time.Time
	Operation string
	Principal string
}

// Finding is the result of one control for one key.
type Finding struct {
	Control string
	// Status is "PASS" or "FAIL".
	Status string
	Detail string
}

// Finding statuses.
const (
	Pass = "PASS"
	Fail = "FAIL"
)

// Controls a report checks.
const (
	ControlCryptoperiod = "PCI DSS 3.7.4"
	ControlRetiredKeys  = "PCI DSS 3.7.5"
	ControlLogIntegrity = "NIST SP 800-53 AU-9"
	ControlAttribution  = "NIST SP 800-53 AU-10"
)

// Summary counts the keys.
type Summary struct {
	Keys         int
	Compliant    int
	NonCompliant int
}

// Option configures Build.
type Option func(*config)

type config struct {
	clock       keyring.Clock
	maxPeriod   time.Duration
	start, end  time.Time
	ids         []string
	rootKey     tink.AEAD
	mac         func() hash.Hash
	archive     string
	previous    *Report
	region, acc string
}

// WithClock sets the clock that dates the report and ends its default
// period (default: the wall clock).
func WithClock(c keyring.Clock) Option { return func(c2 *config) { c2.clock = c } }

// WithMaxCryptoperiod sets the maximum cryptoperiod (default 365 days): a
// key's material may be in use at most this long; an interval of exactly
// the maximum complies.
func WithMaxCryptoperiod(d time.Duration) Option { return func(c *config) { c.maxPeriod = d } }

// WithPeriod bounds the report to [start, end] (default: from the oldest
// selected key's creation to the clock's now). Either may be zero for its
// default.
func WithPeriod(start, end time.Time) Option {
	return func(c *config) { c.start, c.end = start, end }
}

// WithKeyIDs limits the report to these keys (key IDs or alias names;
// default: every key in the store).
func WithKeyIDs(ids ...string) Option {
	return func(c *config) { c.ids = append(c.ids, ids...) }
}

// WithRootKey reads the key records authenticated under rk, as
// keyring.Load reads them (required by persistent stores).
func WithRootKey(rk tink.AEAD) Option { return func(c *config) { c.rootKey = rk } }

// WithMAC verifies a keyed audit log under its chain key
// (keyring.AuditMAC); without it a keyed log does not verify.
func WithMAC(mac func() hash.Hash) Option { return func(c *config) { c.mac = mac } }

// WithArchive reads the audit archive in dir (audit.Archive) before the
// store's log, as one chain.
func WithArchive(dir string) Option { return func(c *config) { c.archive = dir } }

// WithPreviousReport checks that this report's log continues prev's: it
// holds prev's last record, with prev's head. AuditLog.ContinuesPreviousReport
// says the result; false means records were cut from the log's end since
// prev, or prev is another store's report.
func WithPreviousReport(prev *Report) Option { return func(c *config) { c.previous = prev } }

// WithARN sets the region and account that key ARNs name (default
// us-east-1 and 000000000000, as the kmsring command's).
func WithARN(region, account string) Option {
	return func(c *config) { c.region, c.acc = region, account }
}

// Errors of Build.
var (
	// ErrInvalidArgument reports a bad option value.
	ErrInvalidArgument = errors.New("compliance: invalid argument")
)

// Build reads the selected keys from st (authenticated: a tampered key
// record fails with keyring.ErrTampered naming the key; an unknown key
// with keyring.ErrKeyNotFound) and streams the audit log once (st's, if it
// keeps one, after the archive given by WithArchive) to build the report.
// A log that fails verification does not fail Build: the report says so
// (AuditLog.Verified false, AuditLog.Error) and every key is then
// non-compliant. Safe for concurrent use; it changes nothing in st.
func Build(ctx context.Context, st store.Store, opts ...Option) (*Report, error) {
	c := config{maxPeriod: DefaultMaxCryptoperiod, region: "us-east-1", acc: "000000000000"}
	for _, o := range opts {
		o(&c)
	}
	if c.clock == nil {
		c.clock = realClock{}
	}
	if st == nil || c.maxPeriod <= 0 || (!c.start.IsZero() && !c.end.IsZero() && c.end.Before(c.start)) {
		return nil, fmt.Errorf("%w: a store, a positive maximum cryptoperiod and a period that ends after it starts", ErrInvalidArgument)
	}
	now := c.clock.Now().UTC()
	ids := c.ids
	if len(ids) == 0 {
		all, err := st.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("compliance: list keys: %w", err)
		}
		for _, id := range all {
			if !strings.HasPrefix(id, keyring.ReservedPrefix) {
				ids = append(ids, id)
			}
		}
	}
	var kopts []keyring.Option
	if c.rootKey != nil {
		kopts = append(kopts, keyring.WithRootKey(c.rootKey))
	}
	b := &builder{cfg: &c, keys: map[string]*keyAcc{}}
	for _, id := range ids {
		k, err := keyring.Load(ctx, st, id, kopts...)
		if err != nil {
			return nil, fmt.Errorf("compliance: key %s: %w", id, err)
		}
		md, err := k.Describe(ctx)
		if err != nil {
			return nil, fmt.Errorf("compliance: key %s: %w", id, err)
		}
		if _, dup := b.keys[md.KeyID]; dup {
			continue
		}
		b.keys[md.KeyID] = newKeyAcc(md)
		b.order = append(b.order, md.KeyID)
	}
	r := &Report{GeneratedAt: now, PeriodStart: c.start.UTC(), PeriodEnd: c.end.UTC(), MaxCryptoperiodDays: days(c.maxPeriod)}
	if c.end.IsZero() {
		r.PeriodEnd = now
	}
	if c.start.IsZero() {
		r.PeriodStart = r.PeriodEnd
		for _, a := range b.keys {
			if a.md.CreatedAt.Before(r.PeriodStart) {
				r.PeriodStart = a.md.CreatedAt.UTC()
			}
		}
	}
	b.start, b.end = r.PeriodStart, r.PeriodEnd
	r.AuditLog = b.walk(ctx, st)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, id := range b.order {
		key := b.key(b.keys[id], r.AuditLog)
		r.Keys = append(r.Keys, key)
		r.Summary.Keys++
		if key.Compliant {
			r.Summary.Compliant++
		} else {
			r.Summary.NonCompliant++
		}
	}
	if r.Keys == nil {
		r.Keys = []Key{}
	}
	return r, nil
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// days returns d in days, rounded to a thousandth.
func days(d time.Duration) float64 {
	return math.Round(d.Hours()/24*1000) / 1000
}

// builder accumulates what the audit log says about the selected keys.
type builder struct {
	cfg        *config
	keys       map[string]*keyAcc
	order      []string
	start, end time.Time
}

type keyAcc struct {
	md       keyring.Metadata
	versions map[uint32]*Version
	// rotatedBy is the principal of each version's rotation record.
	rotatedBy map[uint32]string
	rotLogged map[uint32]bool
	changes   []StateChange
	// retired counts encryptions under a version after its successor
	// was made.
	retired map[uint32]uint64
	// inactiveSince is when the key last stopped being usable
	// (DisableKey, ScheduleKeyDeletion, DeleteKey), zero if it is not
	// known or the key was enabled again since.
	inactiveSince time.Time
}

func newKeyAcc(md keyring.Metadata) *keyAcc {
	a := &keyAcc{md: md, versions: map[uint32]*Version{}, rotatedBy: map[uint32]string{}, rotLogged: map[uint32]bool{}, retired: map[uint32]uint64{}}
	for _, v := range md.Versions {
		a.versions[v.Number] = &Version{KeyVersion: v.Number, State: versionState(v.State), CreationDate: v.CreatedAt.UTC()}
	}
	return a
}

var versionStates = map[keyring.VersionState]string{
	keyring.VersionEnabled:            "Enabled",
	keyring.VersionDisabled:           "Disabled",
	keyring.VersionPendingDestruction: "PendingDestruction",
	keyring.VersionDestroyed:          "Destroyed",
}

func versionState(s keyring.VersionState) string {
	if n, ok := versionStates[s]; ok {
		return n
	}
	return s.String()
}

// stateOps are the operations a report lists as state changes.
var stateOps = map[string]bool{
	string(keyring.OpEnableKey): true, string(keyring.OpDisableKey): true,
	string(keyring.OpScheduleKeyDeletion): true, string(keyring.OpCancelKeyDeletion): true,
	string(keyring.OpDeleteKey): true, string(keyring.OpEnableKeyRotation): true,
	string(keyring.OpDisableKeyRotation): true, string(keyring.OpDisableVersion): true,
	string(keyring.OpEnableVersion): true, string(keyring.OpScheduleVersionDestruction): true,
	string(keyring.OpCancelVersionDestruction): true, string(keyring.OpDestroyVersion): true,
}

// walk streams the audit log into the key accumulators.
func (b *builder) walk(ctx context.Context, st store.Store) AuditLog {
	var out AuditLog
	prev := b.cfg.previous
	var continues *bool
	if prev != nil {
		f := false
		continues = &f
	}
	al, ok := st.(store.AuditLog)
	if !ok {
		out.Error = "the store keeps no audit log"
		out.ContinuesPreviousReport = continues
		return out
	}
	vopts := []audit.VerifyOption{audit.WalkWithoutContexts()}
	if b.cfg.mac != nil {
		vopts = append(vopts, audit.VerifyWithMAC(b.cfg.mac))
	}
	if b.cfg.archive != "" {
		vopts = append(vopts, audit.VerifyWithArchive(b.cfg.archive))
	}
	v, err := audit.Walk(ctx, al, func(r audit.Record) error {
		if prev != nil && r.Seq == prev.AuditLog.LastSeq {
			*continues = prev.AuditLog.Head != "" && r.Link == prev.AuditLog.Head
		}
		if a := b.keys[r.KeyID]; a != nil {
			b.add(a, r)
		}
		return nil
	}, vopts...)
	out = AuditLog{Verified: err == nil, Keyed: b.cfg.mac != nil && err == nil, Records: v.Records, FirstSeq: v.FirstSeq, LastSeq: v.LastSeq, Head: v.Head}
	if err != nil {
		out.Error = err.Error()
	}
	if prev != nil {
		if v.LastSeq == prev.AuditLog.LastSeq {
			*continues = prev.AuditLog.Head != "" && v.Head == prev.AuditLog.Head
		}
		if !*continues && out.Error == "" {
			out.Error = fmt.Sprintf("the log does not continue the previous report's (record %d with head %.16s...): records were cut from its end, or the previous report is another store's", prev.AuditLog.LastSeq, prev.AuditLog.Head)
		}
	}
	out.ContinuesPreviousReport = continues
	return out
}

// add counts one record of a selected key.
func (b *builder) add(a *keyAcc, r audit.Record) {
	if r.Outcome != audit.Success || r.Amends != 0 {
		return
	}
	in := !r.Time.Before(b.start) && !r.Time.After(b.end)
	switch keyring.Operation(r.Operation) {
	case keyring.OpGenerateDataKey, keyring.OpGenerateDataKeyWithoutPlaintext, keyring.OpEncrypt:
		if v := a.versions[r.Version]; v != nil && in {
			v.EncryptCount++
			b.used(v, r.Time)
			if next := a.versions[r.Version+1]; next != nil && !r.Time.Before(next.CreationDate) {
				a.retired[r.Version]++
			}
		}
	case keyring.OpDecrypt:
		if v := a.versions[r.Version]; v != nil && in {
			v.DecryptCount++
			b.used(v, r.Time)
		}
	case keyring.OpReEncrypt:
		if v := a.versions[r.PreviousVersion]; v != nil && in {
			v.DecryptCount++
			b.used(v, r.Time)
		}
	case keyring.OpRotateKey:
		a.rotatedBy[r.Version] = r.Principal
		a.rotLogged[r.Version] = true
	default:
		switch keyring.Operation(r.Operation) {
		case keyring.OpDisableKey, keyring.OpScheduleKeyDeletion, keyring.OpDeleteKey:
			if a.inactiveSince.IsZero() {
				a.inactiveSince = r.Time.UTC()
			}
		case keyring.OpEnableKey:
			a.inactiveSince = time.Time{}
		}
		if stateOps[r.Operation] && in {
			a.changes = append(a.changes, StateChange{Date: r.Time.UTC(), Operation: r.Operation, Principal: r.Principal})
		}
	}
}

func (b *builder) used(v *Version, t time.Time) {
	if v.LastUsed == nil || t.After(*v.LastUsed) {
		t := t.UTC()
		v.LastUsed = &t
	}
}

// key composes one key's evidence.
func (b *builder) key(a *keyAcc, log AuditLog) Key {
	md := a.md
	k := Key{
		KeyId:                md.KeyID,
		Arn:                  fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", b.cfg.region, b.cfg.acc, md.KeyID),
		Aliases:              slices.Clone(md.Aliases),
		KeyState:             md.KeyState.String(),
		CreationDate:         md.CreatedAt.UTC(),
		RotationEnabled:      md.RotationEnabled,
		RotationPeriodInDays: days(md.RotationPeriod),
		Rotations:            []Rotation{},
		OverduePeriods:       []OverduePeriod{},
		Versions:             []Version{},
		StateChanges:         a.changes,
	}
	if k.Aliases == nil {
		k.Aliases = []string{}
	}
	if k.StateChanges == nil {
		k.StateChanges = []StateChange{}
	}
	slices.SortStableFunc(k.StateChanges, func(x, y StateChange) int { return x.Date.Compare(y.Date) })
	var unlogged []uint32
	var longest time.Duration
	for i, mv := range md.Versions {
		k.Versions = append(k.Versions, *a.versions[mv.Number])
		created := mv.CreatedAt.UTC()
		if mv.Origin == keyring.OriginAutomatic || mv.Origin == keyring.OriginOnDemand {
			if !created.Before(b.start) && !created.After(b.end) {
				typ := Automatic
				if mv.Origin == keyring.OriginOnDemand {
					typ = OnDemand
				}
				k.Rotations = append(k.Rotations, Rotation{Date: created, Type: typ, Principal: a.rotatedBy[mv.Number], KeyVersion: mv.Number})
				if !a.rotLogged[mv.Number] {
					unlogged = append(unlogged, mv.Number)
				}
			}
		}
		// The interval this version's material was the one in use.
		var end time.Time
		switch {
		case i+1 < len(md.Versions):
			end = md.Versions[i+1].CreatedAt.UTC()
		case md.KeyState == keyring.KeyEnabled:
			end = b.end
		case !a.inactiveSince.IsZero():
			end = a.inactiveSince // in use until the key was disabled
		default:
			continue // the current version of a key not in use, since an unknown time
		}
		if !end.After(b.start) || created.After(b.end) {
			continue // outside the period
		}
		if end.After(b.end) {
			end = b.end
		}
		longest = max(longest, end.Sub(created))
		if end.Sub(created) > b.cfg.maxPeriod {
			s, e := created.Add(b.cfg.maxPeriod), end
			if s.Before(b.start) {
				s = b.start
			}
			if e.After(s) {
				k.OverduePeriods = append(k.OverduePeriods, OverduePeriod{Start: s, End: e, Days: days(e.Sub(s))})
			}
		}
	}
	k.LongestIntervalDays = days(longest)
	if n := len(md.Versions); n > 0 {
		k.CurrentVersionAgeDays = days(b.end.Sub(md.Versions[n-1].CreatedAt))
	}
	k.Findings = b.findings(a, k, log, unlogged)
	k.Compliant = len(k.OverduePeriods) == 0 && log.Verified
	return k
}

func (b *builder) findings(a *keyAcc, k Key, log AuditLog, unlogged []uint32) []Finding {
	maxDays := days(b.cfg.maxPeriod)
	var fs []Finding
	if len(k.OverduePeriods) == 0 {
		fs = append(fs, Finding{ControlCryptoperiod, Pass, fmt.Sprintf("cryptoperiod: the longest interval without new key material was %s days, within the maximum of %s days (PCI DSS 3.6.4 in v3.2.1)", num(k.LongestIntervalDays), num(maxDays))})
	} else {
		var total float64
		for _, o := range k.OverduePeriods {
			total += o.Days
		}
		o := k.OverduePeriods[0]
		fs = append(fs, Finding{ControlCryptoperiod, Fail, fmt.Sprintf("cryptoperiod: the key was past the maximum of %s days for %s days in %d stretch(es), the first from %s to %s; the longest interval was %s days", num(maxDays), num(total), len(k.OverduePeriods), o.Start.Format(time.DateOnly), o.End.Format(time.DateOnly), num(k.LongestIntervalDays))})
	}
	var retired []string
	var retiredN uint64
	for _, v := range slices.Sorted(maps.Keys(a.retired)) {
		retired = append(retired, fmt.Sprintf("version %d: %d", v, a.retired[v]))
		retiredN += a.retired[v]
	}
	switch {
	case !log.Verified:
		fs = append(fs, Finding{ControlRetiredKeys, Fail, "retired versions: cannot be shown from an audit log that does not verify"})
	case retiredN == 0:
		fs = append(fs, Finding{ControlRetiredKeys, Pass, "retired versions were used only to decrypt: no encryption under a version after its successor was made"})
	default:
		fs = append(fs, Finding{ControlRetiredKeys, Fail, fmt.Sprintf("%d encryption(s) under retired versions (%s)", retiredN, strings.Join(retired, ", "))})
	}
	switch {
	case log.Verified && log.Keyed:
		fs = append(fs, Finding{ControlLogIntegrity, Pass, fmt.Sprintf("audit log verified: %d records, each authenticated under the audit chain key, head %.16s...", log.Records, log.Head)})
	case log.Verified:
		fs = append(fs, Finding{ControlLogIntegrity, Fail, fmt.Sprintf("audit log hash chain verified (%d records) but not keyed: whoever can write the store could rewrite it", log.Records)})
	default:
		fs = append(fs, Finding{ControlLogIntegrity, Fail, "audit log does not verify: " + log.Error})
	}
	switch {
	case !log.Verified:
		fs = append(fs, Finding{ControlAttribution, Fail, "attribution: cannot be shown from an audit log that does not verify"})
	case len(unlogged) > 0:
		fs = append(fs, Finding{ControlAttribution, Fail, fmt.Sprintf("attribution: rotation(s) to version(s) %v have no record in the audit log", unlogged)})
	default:
		fs = append(fs, Finding{ControlAttribution, Pass, fmt.Sprintf("attribution: each of the %d rotation(s) and %d state change(s) in the period is recorded with its principal", len(k.Rotations), len(k.StateChanges))})
	}
	return fs
}

// num formats a day count without trailing zeros.
func num(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", f), "0"), ".")
}
