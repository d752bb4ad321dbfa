package audit

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmsring/kmsring/keyring"
)

var _ keyring.Auditor = (*Bus)(nil)

// EventType names what happened to a key.
type EventType string

// Event types.
const (
	EventRotated              EventType = "KeyRotated" // automatic or on demand: see Event.Origin
	EventVersionDisabled      EventType = "KeyVersionDisabled"
	EventVersionEnabled       EventType = "KeyVersionEnabled"
	EventDestructionScheduled EventType = "KeyVersionDestructionScheduled"
	EventDestructionCancelled EventType = "KeyVersionDestructionCancelled"
	EventVersionDestroyed     EventType = "KeyVersionDestroyed"
	EventRotationOverdue      EventType = "KeyRotationOverdue"
	EventKeyDisabled          EventType = "KeyDisabled"
	EventKeyEnabled           EventType = "KeyEnabled"
	EventDeletionScheduled    EventType = "KeyDeletionScheduled" // DestroyAt is the deletion date
	EventDeletionCancelled    EventType = "KeyDeletionCancelled"
	EventKeyDeleted           EventType = "KeyDeleted"
	// EventPendingDeletionUse is a refused use of a key pending deletion:
	// what AWS KMS users alarm on, since it means something still depends
	// on a key about to be deleted.
	EventPendingDeletionUse EventType = "KeyPendingDeletionUse"
)

var eventTypes = map[keyring.Operation]EventType{
	keyring.OpRotateKey:                  EventRotated,
	keyring.OpDisableVersion:             EventVersionDisabled,
	keyring.OpEnableVersion:              EventVersionEnabled,
	keyring.OpScheduleVersionDestruction: EventDestructionScheduled,
	keyring.OpCancelVersionDestruction:   EventDestructionCancelled,
	keyring.OpDestroyVersion:             EventVersionDestroyed,
	keyring.OpDisableKey:                 EventKeyDisabled,
	keyring.OpEnableKey:                  EventKeyEnabled,
	keyring.OpScheduleKeyDeletion:        EventDeletionScheduled,
	keyring.OpCancelKeyDeletion:          EventDeletionCancelled,
	keyring.OpDeleteKey:                  EventKeyDeleted,
}

// Event is one thing that happened to a key.
type Event struct {
	Type  EventType
	KeyID string
	Time  time.Time
	// Version is the new version of a rotation or the version whose state
	// changed; PreviousVersion and Origin are set for rotations.
	Version, PreviousVersion uint32
	Origin                   keyring.Origin
	// DestroyAt is set for destruction events; NextRotationAt for overdue
	// ones (the due time that passed).
	DestroyAt, NextRotationAt time.Time
}

// Filter selects events. Zero fields match everything.
type Filter struct {
	KeyID string
	Types []EventType
}

func (f Filter) match(e Event) bool {
	return (f.KeyID == "" || f.KeyID == e.KeyID) && (len(f.Types) == 0 || slices.Contains(f.Types, e.Type))
}

// Bus delivers key events to subscribers. As a keyring.Auditor it turns
// the keyrings' successful rotations, version and key state changes, and
// refused uses of keys pending deletion into events; Overdue publishes overdue alarms (pass it to rotation.WithOverdue).
// Delivery never blocks the operation: each subscription has a bounded
// buffer, and events that find it full are dropped and counted. A Bus is
// safe for concurrent use; the zero value is not usable, call NewBus.
type Bus struct {
	mu   sync.RWMutex
	subs map[*Subscription]struct{}
}

// NewBus returns a bus with no subscribers.
func NewBus() *Bus { return &Bus{subs: make(map[*Subscription]struct{})} }

// Subscription receives the events its filter selects.
type Subscription struct {
	bus     *Bus
	filter  Filter
	c       chan Event
	dropped atomic.Uint64
	once    sync.Once
}

// Subscribe returns a subscription with room for buffer undelivered events
// (at least 1).
func (b *Bus) Subscribe(f Filter, buffer int) *Subscription {
	s := &Subscription{bus: b, filter: f, c: make(chan Event, max(buffer, 1))}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Events returns the channel events arrive on; Close closes it.
func (s *Subscription) Events() <-chan Event { return s.c }

// Dropped returns how many events were dropped because the buffer was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription and closes its channel.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.bus.mu.Lock()
		delete(s.bus.subs, s)
		s.bus.mu.Unlock()
		close(s.c)
	})
}

// Publish delivers e to every matching subscription, without blocking.
func (b *Bus) Publish(e Event) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for s := range b.subs {
		if !s.filter.match(e) {
			continue
		}
		select {
		case s.c <- e:
		default:
			s.dropped.Add(1)
		}
	}
}

// Audit implements keyring.Auditor; it never fails an operation.
func (b *Bus) Audit(_ context.Context, e keyring.AuditEvent) error {
	t, ok := eventTypes[e.Operation]
	if errors.Is(e.Err, keyring.ErrKeyPendingDeletion) {
		t, ok = EventPendingDeletionUse, true
	} else if !ok || e.Err != nil {
		return nil
	}
	b.Publish(Event{
		Type: t, KeyID: e.KeyID, Time: e.Time,
		Version: e.Version, PreviousVersion: e.PreviousVersion, Origin: e.Origin, DestroyAt: e.DestroyAt,
	})
	return nil
}

// Overdue publishes an EventRotationOverdue for md, dated md.ReadAt (when
// the scheduler read the metadata it found overdue, on the keyring's
// clock, as rotation events are), or now if md was not read from a
// keyring. Its signature fits rotation.WithOverdue.
func (b *Bus) Overdue(md keyring.Metadata) {
	at := md.ReadAt
	if at.IsZero() {
		at = time.Now().UTC()
	}
	b.Publish(Event{Type: EventRotationOverdue, KeyID: md.KeyID, Time: at, Version: md.CurrentVersion, NextRotationAt: md.NextRotationAt})
}
