package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
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

// WithMAC keys the audit chain with mac, a constructor of HMAC-SHA256
// hashes under the store's audit chain key (keyring.AuditMAC: derived from
// a key only the root key unwraps). Each stored record then carries the
// MAC of its bytes, which include the MAC of the record before it, so that
// someone who can write the store but does not hold the root key cannot
// rewrite a record and recompute the links: Verify with VerifyWithMAC names
// the record. Every Logger appending to the store must be given the same
// MAC, from the first record on.
func WithMAC(mac func() hash.Hash) Option { return func(l *Logger) { l.mac = mac } }

// WithSlog writes every record to lg at level Info, message "kmsring
// audit", one attribute per field.
func WithSlog(lg *slog.Logger) Option { return func(l *Logger) { l.slog = lg } }

// WithContextKeysOnly records the keys of encryption contexts but not
// their values, for contexts that hold data the audit log must not.
func WithContextKeysOnly() Option { return func(l *Logger) { l.keysOnly = true } }

// WithFailClosed makes every operation wait until its record is stored (or
// written to slog, without a store), at most bound, and fail with
// keyring.ErrAudit if it is not. The default is fail-open.
//
// The log then never contradicts what the caller saw: a record stored
// after its caller was told ErrAudit says outcome "failure", error class
// "AuditFailed" (for a mutation, such as a rotation, the change was made
// but the caller was told it failed). A store write in flight when the
// bound passes has its context cancelled; if the store completes it
// anyway, a correction follows: the same operation, "failure",
// "AuditFailed", its Amends naming the record it corrects. The bound is
// measured on the Logger's clock (WithClock).
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

// WithClock sets the clock that times the fail-closed bound, the waits
// between attempts on a failing store and Close's ten seconds (default:
// the wall clock).
func WithClock(c keyring.Clock) Option { return func(l *Logger) { l.clock = c } }

// WithOnError sets a function the writer calls, from its own goroutine,
// with every failed append to the store (it is retried) and, at Close,
// with what was given up. It should return quickly.
func WithOnError(f func(error)) Option { return func(l *Logger) { l.onError = f } }

// Logger records keyring operations. Create it with New and Close it when
// done; it is safe for concurrent use.
type Logger struct {
	store      store.AuditLog
	mac        func() hash.Hash // nil: an unkeyed chain
	slog       *slog.Logger
	clock      keyring.Clock
	onError    func(error)
	keysOnly   bool
	failClosed bool
	bound      time.Duration
	queueSize  int
	groupDelay time.Duration
	// maxBackoff bounds the wait between attempts on a failing store:
	// 5 s, or half the bound of a fail-closed Logger, whose callers fail
	// until the store takes records again.
	maxBackoff time.Duration

	queue   chan item
	stop    chan struct{} // closed by Close
	kick    chan struct{} // Flush ends the writer's wait for more records
	giveUp  chan struct{} // closed when Close's context ends: stop retrying a failing store
	done    chan struct{}
	closing sync.Once
	quit    sync.Once
	cause   error // why Close gave up; set before giveUp closes
	dropped atomic.Uint64

	// Owned by the writer goroutine: the head of the chain, and what
	// Close gave up on (closeErr is read after done closes).
	lastSeq  uint64
	lastHash string
	synced   bool
	// In a partitioned log (a store.AuditSequencer): the writer's own
	// chain ("" until the next append starts one), its last number and
	// link.
	chain     string
	chainN    uint64
	chainHead string
	lastErr   error
	lost      int
	closeErr  error
	enc       encoder
}

// encoder writes records' stored bytes. The writer goroutine owns it.
type encoder struct {
	mac hash.Hash // the chain's MAC, reset for each record; nil: unkeyed
	sum []byte    // the last record's MAC
	buf []byte    // the records' bytes, and free space for the next ones
}

// Sizes of encoder.buf: records are written into chunks of encodeChunk
// bytes, and a new chunk starts when less than encodeSpare is free (a
// record that outgrows it moves, with its chunk, to a larger one).
const (
	encodeChunk = 64 << 10
	encodeSpare = 4 << 10
)

// encode returns r's stored bytes (sealed in a keyed log) and its link,
// what the next record's Prev holds. The bytes are r's own: later records
// never overwrite them.
func (e *encoder) encode(r *Record) (data []byte, next string) {
	if cap(e.buf)-len(e.buf) < encodeSpare {
		e.buf = make([]byte, 0, encodeChunk)
	}
	start := len(e.buf)
	if e.mac != nil {
		e.buf = r.seal(e.buf, e.mac, &e.sum)
		next = r.MAC // link(data), without parsing it back
	} else {
		e.buf = r.appendJSON(e.buf)
		next = link(e.buf[start:])
	}
	return e.buf[start:len(e.buf):len(e.buf)], next
}

type item struct {
	rec   Record
	w     *waiter // nil unless fail-closed
	flush chan struct{}
}

// waiter is a fail-closed caller waiting for its record. The caller and
// the writer move its state so that they agree on what the record says.
type waiter struct {
	state  atomic.Int32
	cancel atomic.Pointer[context.CancelFunc] // cancels the attempt storing the record
	ack    chan error                         // buffered; sent once, when the state becomes answered
}

// States of a waiter.
const (
	waiting   int32 = iota // the record is queued or between attempts
	writing                // an attempt to store the record is in flight
	abandoned              // the caller returned ErrAudit; the record must say so
	answered               // the caller is told the result on ack
)

// abandon gives up waiting, unless the writer has answered, and cancels
// the attempt storing the record if one is in flight.
func (w *waiter) abandon() bool {
	for {
		s := w.state.Load()
		if s == answered {
			return false
		}
		if w.state.CompareAndSwap(s, abandoned) {
			if s == writing {
				(*w.cancel.Load())()
			}
			return true
		}
	}
}

// maxBatch bounds the records written in one store append.
const maxBatch = 500

// New returns a Logger and starts its writer goroutine.
func New(opts ...Option) *Logger {
	l := &Logger{clock: keyring.RealClock(), queueSize: 10000, groupDelay: groupDelay, stop: make(chan struct{}), kick: make(chan struct{}, 1), giveUp: make(chan struct{}), done: make(chan struct{})}
	for _, o := range opts {
		o(l)
	}
	l.maxBackoff = 5 * time.Second
	if l.failClosed {
		l.maxBackoff = min(l.maxBackoff, max(l.bound/2, 10*time.Millisecond))
	}
	if l.mac != nil {
		l.enc.mac = l.mac()
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
		case <-l.stop: // closed: counted as dropped
			l.dropped.Add(1)
			return nil
		default:
		}
		select {
		case l.queue <- it:
		default:
			l.dropped.Add(1)
		}
		return nil
	}
	w := &waiter{ack: make(chan error, 1)}
	it.w = w
	expired := l.clock.After(l.bound)
	select {
	case l.queue <- it:
	case <-expired:
		return fmt.Errorf("audit: queue full for %v", l.bound)
	case <-l.done:
		return ErrClosed
	}
	select {
	case err := <-w.ack:
		return err
	case <-expired:
		if w.abandon() {
			return fmt.Errorf("audit: record not stored within %v", l.bound)
		}
		return <-w.ack // answered as the bound passed
	}
}

// Dropped returns how many records were not stored: dropped because the
// queue was full (fail-open) or the Logger closed, or given up at Close
// because the store kept failing.
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
	case l.kick <- struct{}{}:
	default: // a kick is pending already
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

// Close is CloseContext with a bound of ten seconds on the Logger's clock.
func (l *Logger) Close() error {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	go func() {
		select {
		case <-l.clock.After(closeTimeout):
			cancel(context.DeadlineExceeded)
		case <-l.done:
		}
	}()
	return l.CloseContext(ctx)
}

// CloseContext writes what is queued, retrying a failing store until ctx
// ends, then gives up on what is left and stops the writer. Records given
// up on are counted in Dropped, and CloseContext returns an error saying
// how many, wrapping ctx's error and the store's. Later calls wait for the
// first to finish and return the same.
func (l *Logger) CloseContext(ctx context.Context) error {
	l.closing.Do(func() { close(l.stop) })
	select {
	case <-l.done:
	case <-ctx.Done():
		l.quit.Do(func() {
			l.cause = context.Cause(ctx)
			close(l.giveUp)
		})
		<-l.done
	}
	return l.closeErr
}

func (l *Logger) run() {
	defer close(l.done)
	batch := make([]item, 0, maxBatch)
	for {
		select {
		case it := <-l.queue:
			batch = l.fill(append(batch[:0], it))
			if l.store != nil {
				batch = l.gather(batch)
			}
			l.write(batch)
		case <-l.stop:
			l.drain()
			if l.lost > 0 {
				l.closeErr = fmt.Errorf("audit: close: %d records not stored (%w): %w", l.lost, l.cause, l.lastErr)
				l.report(l.closeErr)
			}
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

// groupDelay is how long the writer waits for more records when every
// record it holds is fail-open (no caller waits for it): one store commit,
// an fsync with the embedded store, then serves many operations instead
// of one. Records wait at most this long, in real time, before they are
// stored.
const groupDelay = 20 * time.Millisecond

// gather waits groupDelay, unless batch is full or some record in it is
// awaited (fail-closed, or Flush), then adds the records queued meanwhile,
// up to maxBatch. Flush and Close end the wait early. The writer sleeps through
// the wait instead of waking for each record: operations queue their
// records without waking it. The wait is in real time, not on the
// Logger's clock: it changes when records are stored, never what they
// say.
func (l *Logger) gather(batch []item) []item {
	if len(batch) == maxBatch {
		return batch
	}
	for _, it := range batch {
		if it.w != nil || it.flush != nil {
			return batch
		}
	}
	t := time.NewTimer(l.groupDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.kick:
	case <-l.stop:
	}
	return l.fill(batch)
}

// drain writes what is left in the queue at Close.
func (l *Logger) drain() {
	for {
		batch := l.fill(nil)
		if len(batch) == 0 {
			return
		}
		l.write(batch)
	}
}

// write stores and logs a batch, retrying a failing store with backoff
// until it succeeds or Close gives up (records queued meanwhile join the
// retry), then answers its fail-closed callers. Records of callers who
// gave up while their record was being stored, and whose record says
// success, get a correction.
func (l *Logger) write(batch []item) {
	backoff := 10 * time.Millisecond
	for {
		var recs []Record
		var waiters []*waiter
		for _, it := range batch {
			if it.flush == nil {
				recs = append(recs, it.rec)
				waiters = append(waiters, it.w)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
		claim(recs, waiters, &cancel)
		var err error
		if l.store != nil && len(recs) > 0 {
			err = l.append(ctx, recs)
		}
		cancel()
		for _, w := range waiters {
			switch {
			case w == nil:
			case err == nil:
				if w.state.CompareAndSwap(writing, answered) {
					w.ack <- nil
				}
			default:
				w.state.CompareAndSwap(writing, waiting)
			}
		}
		if err == nil {
			l.finish(batch, recs, nil)
			var amends []item
			for i, w := range waiters {
				if w != nil && w.state.Load() == abandoned && recs[i].Outcome == Success {
					amends = append(amends, item{rec: recs[i].amendment()})
				}
			}
			if len(amends) > 0 {
				l.write(amends)
			}
			return
		}
		l.lastErr = err
		l.report(fmt.Errorf("audit: storing %d records failed; retrying: %w", len(recs), err))
		select {
		case <-l.giveUp:
			l.lost += len(recs)
			l.dropped.Add(uint64(len(recs)))
			l.finish(batch, recs, err)
			return
		default:
		}
		select {
		case <-l.giveUp: // one more attempt, then give up
		case <-l.clock.After(backoff):
			backoff = min(2*backoff, l.maxBackoff)
		}
		batch = l.fill(batch)
	}
}

// finish logs a batch's records (as stored, or as given up on with err)
// and answers its callers.
func (l *Logger) finish(batch []item, recs []Record, err error) {
	if l.slog != nil {
		for _, r := range recs {
			l.slog.LogAttrs(context.Background(), slog.LevelInfo, "kmsring audit", r.attrs()...)
		}
	}
	for _, it := range batch {
		if it.w != nil && it.w.state.CompareAndSwap(waiting, answered) {
			it.w.ack <- err // given up: nothing was stored
		}
		if it.flush != nil {
			close(it.flush)
		}
	}
}

// claim marks the records of waiting callers as being written by the
// attempt that cancel cancels (a caller that gives up cancels it). The
// record of a caller that gave up on a successful operation is rewritten
// to say what the caller saw: failure, AuditFailed.
func claim(recs []Record, waiters []*waiter, cancel *context.CancelFunc) {
	for i, w := range waiters {
		if w == nil {
			continue
		}
		w.cancel.Store(cancel)
		if !w.state.CompareAndSwap(waiting, writing) && w.state.Load() == abandoned && recs[i].Outcome == Success {
			recs[i].Outcome, recs[i].ErrorClass = Failure, ErrorClass(keyring.ErrAudit)
		}
	}
}

// report hands err to slog and the WithOnError function.
func (l *Logger) report(err error) {
	if l.slog != nil {
		l.slog.Warn("kmsring: audit log", "err", err)
	}
	if l.onError != nil {
		l.onError(err)
	}
}

// appendTimeout bounds one store append.
const appendTimeout = 30 * time.Second

// append chains recs onto the stored log and appends them: onto the
// Logger's own chain when the store numbers appends itself, else onto
// the log's one chain, re-reading the head when another process appended
// first.
func (l *Logger) append(ctx context.Context, recs []Record) error {
	if sq, ok := l.store.(store.AuditSequencer); ok {
		return l.appendChain(ctx, sq, recs)
	}
	for attempt := 0; attempt < 100; attempt++ {
		if !l.synced {
			last, err := l.store.LastAudit(ctx)
			switch {
			case errors.Is(err, store.ErrNotFound):
				l.lastSeq, l.lastHash = 0, ""
			case err != nil:
				return err
			default:
				l.lastSeq, l.lastHash = last.Seq, link(last.Data)
			}
			l.synced = true
		}
		entries := make([]store.AuditEntry, len(recs))
		seq, prev := l.lastSeq, l.lastHash
		for i := range recs {
			seq++
			recs[i].Seq, recs[i].Prev = seq, prev
			var data []byte
			data, prev = l.enc.encode(&recs[i])
			entries[i] = store.AuditEntry{Seq: seq, Time: recs[i].Time, KeyID: recs[i].KeyID, Operation: recs[i].Operation, Data: data}
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

// appendChain appends recs to the Logger's own chain. Writers on their
// own chains never conflict: the store numbers the entries, and each
// record's place is its chain's name, number and link, under the MAC. A
// failed append may have been stored all the same (a lost commit
// acknowledgement), so the retry starts a new chain: the records may
// then be stored twice, in two chains (as the single chain's retry would
// store them twice), but no chain ever holds two records at one place.
func (l *Logger) appendChain(ctx context.Context, sq store.AuditSequencer, recs []Record) error {
	if l.chain == "" {
		l.chain, l.chainN, l.chainHead = newChainID(), 0, ""
	}
	entries := make([]store.AuditEntry, len(recs))
	n, prev := l.chainN, l.chainHead
	for i := range recs {
		n++
		recs[i].Seq, recs[i].Chain, recs[i].ChainSeq, recs[i].Prev = 0, l.chain, n, prev
		var data []byte
		data, prev = l.enc.encode(&recs[i])
		entries[i] = store.AuditEntry{Time: recs[i].Time, KeyID: recs[i].KeyID, Operation: recs[i].Operation, Data: data}
	}
	first, err := sq.AppendAuditNext(ctx, entries)
	if err != nil {
		l.chain = ""
		return err
	}
	for i := range recs {
		recs[i].Seq = first + uint64(i)
	}
	l.chainN, l.chainHead = n, prev
	return nil
}

// newChainID returns a new chain's name: 16 random hex digits.
func newChainID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
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
	if r.Amends != 0 {
		a = append(a, slog.Uint64("amends", r.Amends))
	}
	if r.Chain != "" {
		a = append(a, slog.String("chain", r.Chain), slog.Uint64("chain_seq", r.ChainSeq))
	}
	return append(a, slog.Time("time", r.Time))
}
