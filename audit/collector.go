package audit

import (
	"container/list"
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/rotation"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	_ keyring.Auditor      = (*Collector)(nil)
	_ prometheus.Collector = (*Collector)(nil)
)

// Collector is a Prometheus collector of kmsring metrics. Per key added
// with Add, read from the keyring's cached metadata at every scrape:
//
//	kmsring_key_current_version
//	kmsring_key_versions
//	kmsring_key_rotation_enabled                 1 or 0
//	kmsring_key_seconds_since_last_rotation      since creation before the first rotation
//	kmsring_key_seconds_until_next_rotation      negative when past due; absent when rotation is off
//	kmsring_key_rotation_overdue                 1 when rotation.Overdue with the collector's grace
//	kmsring_key_state{state}                     1 for the key's state (Enabled, Disabled, PendingDeletion, Deleted), 0 for the others
//	kmsring_key_seconds_until_deletion           absent unless the key is pending deletion
//
// and, as a keyring.Auditor (give it to keyrings with WithAuditor),
// kmsring_operations_total{operation, key_id, version, outcome} and
// kmsring_pending_deletion_uses_total{key_id}, the refused uses of a key
// pending deletion (alert on any increase). All carry
// the label key_id. A Collector is safe for concurrent use.
//
// The counters hold a series per key used; in a process that serves many
// keys, WithMaxKeySeries bounds them.
type Collector struct {
	clock keyring.Clock
	grace time.Duration

	mu     sync.Mutex
	keys   []*keyring.Keyring
	source func() []*keyring.Keyring

	// With WithMaxKeySeries: the keys that have counter series, most
	// recently counted first.
	maxKeys  int
	seriesMu sync.Mutex
	recent   *list.List // of *keySeries
	series   map[string]*list.Element

	ops, pendingUses                                          *prometheus.CounterVec
	current, versions, enabled, sinceLast, untilNext, overdue *prometheus.Desc
	state, untilDeletion                                      *prometheus.Desc
}

// CollectorOption configures a Collector.
type CollectorOption func(*Collector)

// WithCollectorClock sets the clock the time gauges are computed from
// (default: the wall clock).
func WithCollectorClock(c keyring.Clock) CollectorOption { return func(x *Collector) { x.clock = c } }

// WithOverdueGrace sets the grace of kmsring_key_rotation_overdue (default
// 0: overdue as soon as a rotation is past due).
func WithOverdueGrace(d time.Duration) CollectorOption { return func(x *Collector) { x.grace = d } }

// WithKeySource adds the keys f returns at each scrape to those added
// with Add, for a process whose set of loaded keys changes (kmsring serve
// reports the keys its bounded cache holds). f must be safe for
// concurrent use.
func WithKeySource(f func() []*keyring.Keyring) CollectorOption {
	return func(x *Collector) { x.source = f }
}

// WithMaxKeySeries keeps the per-key counters (kmsring_operations_total,
// kmsring_pending_deletion_uses_total) of at most n keys, those counted
// most recently; the series of the key counted least recently go (default:
// every key ever counted). A key that comes back counts from zero again,
// which Prometheus's rate and increase read as a counter reset. kmsring
// serve bounds them as it bounds the keys it holds (--max-loaded-keys), so
// that a key per tenant does not grow /metrics with every tenant served.
//
// Of each key, the series of at most 16 versions stay (those
// counted most recently): a failed Decrypt counts the version its blob
// names, which the caller chose, so that the versions of one key, unbound,
// would grow /metrics as fast as a caller can make them up.
func WithMaxKeySeries(n int) CollectorOption {
	return func(x *Collector) { x.maxKeys = max(n, 1) }
}

// NewCollector returns a collector with no keys.
func NewCollector(opts ...CollectorOption) *Collector {
	key := []string{"key_id"}
	c := &Collector{
		clock: keyring.RealClock(),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmsring_operations_total", Help: "Keyring operations, by operation, key, version used and outcome.",
		}, []string{"operation", "key_id", "version", "outcome"}),
		current:   prometheus.NewDesc("kmsring_key_current_version", "The version that encrypts.", key, nil),
		versions:  prometheus.NewDesc("kmsring_key_versions", "Number of versions, destroyed ones included.", key, nil),
		enabled:   prometheus.NewDesc("kmsring_key_rotation_enabled", "1 if automatic rotation is on.", key, nil),
		sinceLast: prometheus.NewDesc("kmsring_key_seconds_since_last_rotation", "Seconds since the last rotation (since creation before the first).", key, nil),
		untilNext: prometheus.NewDesc("kmsring_key_seconds_until_next_rotation", "Seconds until automatic rotation is due; negative when past due.", key, nil),
		overdue:   prometheus.NewDesc("kmsring_key_rotation_overdue", "1 if automatic rotation is overdue past the grace period.", key, nil),
		pendingUses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmsring_pending_deletion_uses_total", Help: "Refused uses of a key pending deletion.",
		}, key),
		state:         prometheus.NewDesc("kmsring_key_state", "1 for the key's state, 0 for the others.", []string{"key_id", "state"}, nil),
		untilDeletion: prometheus.NewDesc("kmsring_key_seconds_until_deletion", "Seconds until a key pending deletion is deleted.", key, nil),
	}
	for _, o := range opts {
		o(c)
	}
	if c.maxKeys > 0 {
		c.recent, c.series = list.New(), make(map[string]*list.Element)
	}
	return c
}

// maxVersionSeries is how many versions of a key keep their counter
// series under WithMaxKeySeries.
const maxVersionSeries = 16

// keySeries is a key with counter series under WithMaxKeySeries.
type keySeries struct {
	id       string
	versions []uint32 // those with series, most recently counted first
}

// countedLocked marks version of keyID as counted now and, past the
// bounds, deletes the series of the key counted least recently, or of
// keyID's version counted least recently. c.seriesMu is held.
func (c *Collector) countedLocked(keyID string, version uint32) {
	e, ok := c.series[keyID]
	if ok {
		c.recent.MoveToFront(e)
	} else {
		e = c.recent.PushFront(&keySeries{id: keyID})
		c.series[keyID] = e
	}
	k := e.Value.(*keySeries)
	if i := slices.Index(k.versions, version); i >= 0 {
		copy(k.versions[1:i+1], k.versions[:i])
		k.versions[0] = version
	} else {
		if len(k.versions) == maxVersionSeries {
			old := k.versions[len(k.versions)-1]
			k.versions = k.versions[:len(k.versions)-1]
			c.ops.DeletePartialMatch(prometheus.Labels{"key_id": keyID, "version": strconv.FormatUint(uint64(old), 10)})
		}
		k.versions = slices.Insert(k.versions, 0, version)
	}
	if c.recent.Len() <= c.maxKeys {
		return
	}
	old := c.recent.Remove(c.recent.Back()).(*keySeries).id
	delete(c.series, old)
	c.ops.DeletePartialMatch(prometheus.Labels{"key_id": old})
	c.pendingUses.DeleteLabelValues(old)
}

// Add makes the collector report k.
func (c *Collector) Add(k *keyring.Keyring) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keys = append(c.keys, k)
}

// Audit implements keyring.Auditor: it counts the operation.
func (c *Collector) Audit(_ context.Context, e keyring.AuditEvent) error {
	outcome := Success
	if e.Err != nil {
		outcome = Failure
	}
	if c.recent != nil {
		// Held over the count too, so that no key's series are
		// deleted between its mark and its count: every series
		// belongs to a marked key.
		c.seriesMu.Lock()
		defer c.seriesMu.Unlock()
		c.countedLocked(e.KeyID, e.Version)
	}
	c.ops.WithLabelValues(string(e.Operation), e.KeyID, strconv.FormatUint(uint64(e.Version), 10), outcome).Inc()
	if errors.Is(e.Err, keyring.ErrKeyPendingDeletion) {
		c.pendingUses.WithLabelValues(e.KeyID).Inc()
	}
	return nil
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	c.ops.Describe(ch)
	c.pendingUses.Describe(ch)
	for _, d := range []*prometheus.Desc{c.current, c.versions, c.enabled, c.sinceLast, c.untilNext, c.overdue, c.state, c.untilDeletion} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.ops.Collect(ch)
	c.pendingUses.Collect(ch)
	c.mu.Lock()
	keys := append([]*keyring.Keyring(nil), c.keys...)
	c.mu.Unlock()
	if c.source != nil {
		keys = append(keys, c.source()...)
	}
	now := c.clock.Now()
	gauge := func(d *prometheus.Desc, v float64, id string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, id)
	}
	for _, k := range keys {
		md := k.Cached()
		id := md.KeyID
		gauge(c.current, float64(md.CurrentVersion), id)
		gauge(c.versions, float64(len(md.Versions)), id)
		gauge(c.enabled, bool01(md.RotationEnabled), id)
		last := md.LastRotatedAt
		if last.IsZero() {
			last = md.CreatedAt
		}
		gauge(c.sinceLast, now.Sub(last).Seconds(), id)
		if md.RotationEnabled {
			gauge(c.untilNext, md.NextRotationAt.Sub(now).Seconds(), id)
		}
		gauge(c.overdue, bool01(rotation.Overdue(md, now, c.grace)), id)
		for _, s := range []keyring.KeyState{keyring.KeyEnabled, keyring.KeyDisabled, keyring.KeyPendingDeletion, keyring.KeyDeleted} {
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, bool01(md.KeyState == s), id, s.String())
		}
		if md.KeyState == keyring.KeyPendingDeletion {
			gauge(c.untilDeletion, md.DeletionDate.Sub(now).Seconds(), id)
		}
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
