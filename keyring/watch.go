package keyring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kmsring/kmsring/store"
)

// Watch keeps the handle fresh until ctx ends, then returns ctx.Err(): it
// reloads from the store every interval, and at once when the store reports
// a change to the key (stores that implement store.Notifier, such as
// pgstore with LISTEN/NOTIFY). A replica that runs Watch moves its
// encryptions to a version another replica made within interval (plus one
// reload), and typically within milliseconds when the store notifies.
// Failed reloads are logged (WithLogger; slog.Default by default) and
// retried at the next tick; the handle keeps working with what it has.
// When the store has been closed, Watch returns an error wrapping
// store.ErrClosed. interval must be positive. Watch sleeps on the
// keyring's clock and starts no goroutine.
func (k *Keyring) Watch(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("%w: watch interval must be positive, not %v", ErrInvalidArgument, interval)
	}
	var changed chan struct{}
	if n, ok := k.st.(store.Notifier); ok {
		changed = make(chan struct{}, 1)
		defer n.Notify(k.id, changed)()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-k.clock.After(interval):
		case <-changed:
		}
		err := k.Refresh(ctx)
		switch {
		case err == nil || ctx.Err() != nil:
		case errors.Is(err, store.ErrClosed):
			return fmt.Errorf("keyring: watch %s: %w", k.id, store.ErrClosed)
		default:
			k.log().Warn("kmsring: reloading key failed; using the loaded versions", "key_id", k.id, "err", err)
		}
	}
}

// log returns the keyring's logger.
func (k *Keyring) log() *slog.Logger {
	if k.logger != nil {
		return k.logger
	}
	return slog.Default()
}
