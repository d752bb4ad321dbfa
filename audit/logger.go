package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
)

var _ keyring.Auditor = (*Logger)(nil)

// Option configures a Logger.
type Option func(*Logger)

// WithStore stores records, hash-chained, in al (a *boltstore.Store,
// *pgstore.Store or *memstore.Store). Several processes may append to one
// log; the chain stays whole.
func WithStore(al store.AuditLog) Option { return func(l *Logger) { l.store = al } }

// WithSlog writes every record to lg at level Info, message "kmsring
// audit", one attribute per field.
func WithSlog(lg *slog.Logger) Option { return func(l *Logger) { l.slog = lg } }

// WithContextKeysOnly records the keys of encryption contexts but not
// their values, for contexts that hold data the audit log must not.
func WithContextKeysOnly() Option { return func(l *Logger) { l.keysOnly = true } }

// WithFailClosed makes every operation wait until its record is stored (or
// written to slog, without a store), at most bound, and fail with
// keyring.ErrAudit if it is not. The default is fail-open.
func WithFailClosed(bound time.Duration) Option {
	return func(l *Logger) { l.failClosed, l.bound = true, bound }
}

// WithQueue sets how many records may wait to be written (default 10,000).
func WithQueue(n int) Option {
	return func(l *Logger) {
		if n > 0 {
			l.queueSize = n
		}
	}
}

// Logger records keyring operations. Create it with New and Close it when
// done; it is safe for concurrent use.
type Logger struct {
	store      store.AuditLog
	slog       *slog.Logger
	keysOnly   bool
	failClosed bool
	bound      time.Duration
	queueSize  int

	queue   chan item
	stop    chan struct{} // closed by Close
	giveUp  chan struct{} // closed 10 s after stop: stop retrying a failing store
	done    chan struct{}
	closing sync.Once
	dropped atomic.Uint64

	// head of the chain, owned by the writer goroutine.
	lastSeq  uint64
	lastHash string
	synced   bool
}

type item struct {
	rec   Record
	ack   chan error // nil unless fail-closed; buffered
	flush chan struct{}
}

// maxBatch bounds the records written in one store append.
const maxBatch = 500

// New returns a Logger and starts its writer goroutine.
func New(opts ...Option) *Logger {
	l := &Logger{queueSize: 10000, stop: make(chan struct{}), giveUp: make(chan struct{}), done: make(chan struct{})}
	for _, o := range opts {
		o(l)
	}
	l.queue = make(chan item, l.queueSize)
	go l.run()
	return l
}

// ErrClosed reports a record sent to a closed Logger.
var ErrClosed = errors.New("audit: logger closed")

// Audit implements keyring.Auditor.
func (l *Logger) Audit(ctx context.Context, e keyring.AuditEvent) error {
	it := item{rec: newRecord(ctx, e, l.keysOnly)}
	if !l.failClosed {
		select {
		case l.queue <- it:
		default:
			l.dropped.Add(1)
		}
		return nil
	}
	it.ack = make(chan error, 1)
	timer := time.NewTimer(l.bound)
	defer timer.Stop()
	select {
	case l.queue <- it:
	case <-timer.C:
		return fmt.Errorf("audit: queue full for %v", l.bound)
	case <-l.done:
		return ErrClosed
	}
	select {
	case err := <-it.ack:
		return err
	case <-timer.C:
		return fmt.Errorf("audit: record not stored within %v", l.bound)
	}
}

// Dropped returns how many records were dropped because the queue was full
// (fail-open only).
func (l *Logger) Dropped() uint64 { return l.dropped.Load() }

// Flush waits until every record queued before the call is written or
// given up on, or until ctx ends.
func (l *Logger) Flush(ctx context.Context) error {
	f := make(chan struct{})
	select {
	case l.queue <- item{flush: f}:
	case <-ctx.Done():
		return ctx.Err()
	case <-l.done:
		return nil
	}
	select {
	case <-f:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closeTimeout is how long Close keeps retrying a failing store.
const closeTimeout = 10 * time.Second

// Close writes what is queued (retrying a failing store for up to ten
// seconds) and stops the writer.
func (l *Logger) Close() error {
	l.closing.Do(func() {
		close(l.stop)
		time.AfterFunc(closeTimeout, func() { close(l.giveUp) })
	})
	<-l.done
	return nil
}

func (l *Logger) run() {
	defer close(l.done)
	batch := make([]item, 0, maxBatch)
	for {
		select {
		case it := <-l.queue:
			l.write(l.fill(append(batch[:0], it)), l.giveUp)
		case <-l.stop:
			l.drain()
			return
		}
	}
}

// fill appends to batch the queued records that are ready, up to maxBatch.
func (l *Logger) fill(batch []item) []item {
	for len(batch) < maxBatch {
		select {
		case it := <-l.queue:
			batch = append(batch, it)
		default:
			return batch
		}
	}
	return batch
}

// drain writes what is left in the queue at Close.
func (l *Logger) drain() {
	for {
		batch := l.fill(nil)
		if len(batch) == 0 {
			return
		}
		l.write(batch, l.giveUp)
	}
}

// write logs and stores a batch, retrying the store with backoff until it
// succeeds or quit closes, then acknowledges every record.
func (l *Logger) write(batch []item, quit <-chan struct{}) {
	recs := make([]Record, 0, len(batch))
	for _, it := range batch {
		if it.flush == nil {
			recs = append(recs, it.rec)
		}
	}
	var err error
	if l.store != nil && len(recs) > 0 {
		backoff := 10 * time.Millisecond
		for {
			if err = l.append(recs); err == nil {
				break
			}
			if l.slog != nil {
				l.slog.Warn("kmsring: audit log append failed; retrying", "err", err, "records", len(recs))
			}
			select {
			case <-quit:
			default:
				select {
				case <-quit: // one more attempt, then give up
				case <-time.After(backoff):
					backoff = min(2*backoff, 5*time.Second)
				}
				continue
			}
			break
		}
	}
	if l.slog != nil {
		for _, r := range recs {
			l.slog.LogAttrs(context.Background(), slog.LevelInfo, "kmsring audit", r.attrs()...)
		}
	}
	for _, it := range batch {
		if it.ack != nil {
			it.ack <- err
		}
		if it.flush != nil {
			close(it.flush)
		}
	}
}

// append chains recs onto the stored log and appends them, re-reading the
// head when another process appended first.
func (l *Logger) append(recs []Record) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for attempt := 0; attempt < 100; attempt++ {
		if !l.synced {
			last, err := l.store.LastAudit(ctx)
			switch {
			case errors.Is(err, store.ErrNotFound):
				l.lastSeq, l.lastHash = 0, ""
			case err != nil:
				return err
			default:
				l.lastSeq, l.lastHash = last.Seq, chainHash(last.Data)
			}
			l.synced = true
		}
		entries := make([]store.AuditEntry, len(recs))
		seq, prev := l.lastSeq, l.lastHash
		for i := range recs {
			seq++
			recs[i].Seq, recs[i].Prev = seq, prev
			data := recs[i].marshal()
			entries[i] = store.AuditEntry{Seq: seq, Time: recs[i].Time, KeyID: recs[i].KeyID, Operation: recs[i].Operation, Data: data}
			prev = chainHash(data)
		}
		err := l.store.AppendAudit(ctx, entries)
		if errors.Is(err, store.ErrConflict) {
			l.synced = false
			continue
		}
		if err != nil {
			l.synced = false
			return err
		}
		l.lastSeq, l.lastHash = seq, prev
		return nil
	}
	return fmt.Errorf("audit: append kept conflicting: %w", store.ErrConflict)
}

func (r Record) attrs() []slog.Attr {
	a := []slog.Attr{
		slog.String("operation", r.Operation),
		slog.String("key_id", r.KeyID),
		slog.String("outcome", r.Outcome),
	}
	if r.Seq != 0 {
		a = append(a, slog.Uint64("seq", r.Seq))
	}
	if r.Version != 0 {
		a = append(a, slog.Any("version", r.Version))
	}
	if r.PreviousVersion != 0 {
		a = append(a, slog.Any("previous_version", r.PreviousVersion))
	}
	if r.Origin != "" {
		a = append(a, slog.String("origin", r.Origin))
	}
	if r.Alias != "" {
		a = append(a, slog.String("alias", r.Alias))
	}
	if r.Principal != "" {
		a = append(a, slog.String("principal", r.Principal))
	}
	if r.EncryptionContext != nil {
		a = append(a, slog.Any("encryption_context", r.EncryptionContext))
	}
	if r.EncryptionContextKeys != nil {
		a = append(a, slog.Any("encryption_context_keys", r.EncryptionContextKeys))
	}
	if r.ErrorClass != "" {
		a = append(a, slog.String("error_class", r.ErrorClass))
	}
	return append(a, slog.Time("time", r.Time))
}
