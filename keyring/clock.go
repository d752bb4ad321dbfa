package keyring

import "time"

// Clock is the source of time for a keyring: it stamps versions and decides
// when a rotation is due. *clockwork.FakeClock from
// github.com/jonboulle/clockwork satisfies it, so a test can advance years
// in milliseconds.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// RealClock returns the wall clock.
func RealClock() Clock { return realClock{} }
