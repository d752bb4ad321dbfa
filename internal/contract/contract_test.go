// Package contract pins the signatures DESIGN.md fixes: callers and the
// acceptance tests compile against them, so a change here is a breaking
// change.
package contract

import (
	"context"
	"io"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/rotation"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/boltstore"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/kmsring/kmsring/store/pgstore"
	"github.com/tink-crypto/tink-go/v2/tink"
)

var (
	_ keyring.Clock = (*clockwork.FakeClock)(nil)

	_ func(context.Context, ...keyring.Option) (*keyring.Keyring, error)                      = keyring.New
	_ func(context.Context, store.Store, string, ...keyring.Option) (*keyring.Keyring, error) = keyring.Load
	_ func(store.Store) keyring.Option                                                        = keyring.WithStore
	_ func(tink.AEAD) keyring.Option                                                          = keyring.WithRootKey
	_ func(keyring.Clock) keyring.Option                                                      = keyring.WithClock
	_ func(time.Duration) keyring.Option                                                      = keyring.WithRotationPeriod
	_ func(string) keyring.Option                                                             = keyring.WithAlias
	_ func(map[string]string) keyring.OpOption                                                = keyring.WithEncryptionContext
	_ func(uint32) keyring.OpOption                                                           = keyring.WithVersion
	_ func([]byte) (string, uint32, error)                                                    = keyring.ParseCiphertext

	_ func(*keyring.Keyring) string                                                                  = (*keyring.Keyring).ID
	_ func(*keyring.Keyring, context.Context) (keyring.Metadata, error)                              = (*keyring.Keyring).Describe
	_ func(*keyring.Keyring, context.Context, ...keyring.OpOption) (*keyring.DataKey, error)         = (*keyring.Keyring).GenerateDataKey
	_ func(*keyring.Keyring, context.Context, ...keyring.OpOption) (*keyring.DataKey, error)         = (*keyring.Keyring).GenerateDataKeyWithoutPlaintext
	_ func(*keyring.Keyring, context.Context, []byte, ...keyring.OpOption) ([]byte, error)           = (*keyring.Keyring).Encrypt
	_ func(*keyring.Keyring, context.Context, []byte, ...keyring.OpOption) ([]byte, error)           = (*keyring.Keyring).Decrypt
	_ func(*keyring.Keyring, context.Context, []byte, ...keyring.OpOption) ([]byte, error)           = (*keyring.Keyring).ReEncrypt
	_ func(*keyring.Keyring, context.Context) (keyring.Version, error)                               = (*keyring.Keyring).Rotate
	_ func(*keyring.Keyring, context.Context) (keyring.Version, bool, error)                         = (*keyring.Keyring).RotateIfDue
	_ func(*keyring.Keyring, context.Context, time.Duration) error                                   = (*keyring.Keyring).EnableRotation
	_ func(*keyring.Keyring, context.Context) error                                                  = (*keyring.Keyring).DisableRotation
	_ func(*keyring.Keyring, context.Context, uint32) error                                          = (*keyring.Keyring).DisableVersion
	_ func(*keyring.Keyring, context.Context, uint32) error                                          = (*keyring.Keyring).EnableVersion
	_ func(*keyring.Keyring, context.Context, uint32, time.Duration) (time.Time, error)              = (*keyring.Keyring).ScheduleVersionDestruction
	_ func(*keyring.Keyring, context.Context, uint32) error                                          = (*keyring.Keyring).CancelVersionDestruction
	_ func() *memstore.Store                                                                         = memstore.New
	_ func(string) (*boltstore.Store, error)                                                         = boltstore.Open
	_ func(*boltstore.Store) error                                                                   = (*boltstore.Store).Close
	_ func(context.Context, string) (*pgstore.Store, error)                                          = pgstore.Open
	_ func(*pgstore.Store) error                                                                     = (*pgstore.Store).Close
	_ func(context.Context, *keyring.Keyring, []byte, ...envelope.Option) ([]byte, error)            = envelope.Seal
	_ func(context.Context, envelope.Opener, []byte, ...envelope.Option) ([]byte, error)             = envelope.Open
	_ func(context.Context, *keyring.Keyring, io.Writer, ...envelope.Option) (io.WriteCloser, error) = envelope.NewWriter
	_ func(context.Context, envelope.Opener, io.Reader, ...envelope.Option) (io.Reader, error)       = envelope.NewReader
	_ func([]byte) (envelope.Header, error)                                                          = envelope.Inspect
	_ func(context.Context, *keyring.Keyring, []byte) ([]byte, error)                                = envelope.Rewrap
	_ func(map[string]string) envelope.Option                                                        = envelope.WithEncryptionContext
	_ func(...rotation.Option) *rotation.Scheduler                                                   = rotation.New
	_ func(keyring.Clock) rotation.Option                                                            = rotation.WithClock
	_ func(*rotation.Scheduler, *keyring.Keyring)                                                    = (*rotation.Scheduler).Add
	_ func(*rotation.Scheduler, context.Context) ([]rotation.Event, error)                           = (*rotation.Scheduler).RunOnce
	_ func(*rotation.Scheduler, context.Context) error                                               = (*rotation.Scheduler).Run
	_ func(keyring.Metadata, time.Time, time.Duration) bool                                          = rotation.Overdue
	_ envelope.Opener                                                                                = (*keyring.Keyring)(nil)
	_ envelope.Opener                                                                                = (*keyring.Set)(nil)
	_ store.Store                                                                                    = (*memstore.Store)(nil)
	_ store.Store                                                                                    = (*boltstore.Store)(nil)
	_ store.Store                                                                                    = (*pgstore.Store)(nil)
	_                                                                                                = []error{keyring.ErrKeyNotFound, keyring.ErrUnknownVersion, keyring.ErrVersionDisabled, keyring.ErrVersionDestroyed, keyring.ErrWrongKey, keyring.ErrMalformed, keyring.ErrDecrypt, store.ErrNotFound, store.ErrExists, store.ErrConflict}
	_                                                                                                = []keyring.Origin{keyring.OriginInitial, keyring.OriginAutomatic, keyring.OriginOnDemand}
	_                                                                                                = []keyring.VersionState{keyring.VersionEnabled, keyring.VersionDisabled, keyring.VersionPendingDestruction, keyring.VersionDestroyed}
)

// The struct fields the contract names.
var (
	_ = keyring.DataKey{KeyID: "", Version: 0, Plaintext: nil, Ciphertext: nil}
	_ = keyring.Metadata{KeyID: "", Aliases: nil, CreatedAt: time.Time{}, CurrentVersion: 0, Versions: nil,
		RotationEnabled: false, RotationPeriod: 0, LastRotatedAt: time.Time{}, NextRotationAt: time.Time{}}
	_ = keyring.Version{Number: 0, CreatedAt: time.Time{}, Origin: 0, State: 0}
	_ = envelope.Header{KeyID: "", Version: 0, EncryptionContext: nil}
	_ = rotation.Event{KeyID: "", Version: 0, Previous: 0, At: time.Time{}, Origin: 0}
)
