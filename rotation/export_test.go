package rotation

import "github.com/kmsring/kmsring/keyring"

// WithPaceClock sets the clock Wake-started passes are spaced on, so that
// a test can see the scheduler wait for the gap.
func WithPaceClock(c keyring.Clock) Option { return func(s *Scheduler) { s.pace = c } }

// MinWakeGap is minWakeGap, for the tests.
const MinWakeGap = minWakeGap
