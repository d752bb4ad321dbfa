// Package leaktest holds the tests that scan everything kmsring prints,
// returns as an error or records for key material and plaintext.
//
// The secrets: plaintext, data keys (returned, cached and inside
// envelopes), version material and the store key (what a spy root key
// wraps; the store key also keys the audit chain), the bytes of root keys
// from NewRootKey and RootKeyFile, and a passphrase. Each is looked for
// raw, in hex (both cases), base64 (standard and URL), as a decimal byte
// list and quoted.
//
// Every value is printed with the fmt verbs %v %+v %#v %s %x %X %q %d,
// encoded with encoding/json, and logged through slog's TextHandler and
// JSONHandler; errors also by their Error text. The values: the root keys
// of NewRootKey, RootKeyFile, NewPassphraseRootKey and RootKeys, each as
// itself, behind tink.AEAD, through a pointer to the interface, in a
// slice, a struct field and a map; *Keyring (under a local and a
// passphrase root key), Set, DataKey and *DataKey, Metadata, errors of
// Decrypt, Encrypt, Load (wrong root key, wrong passphrase, bad option),
// envelope.Open of every bit flip, envelope.Header, rotation events and
// Scheduler, audit Records (stored and logged), Logger, Bus, Subscription,
// Event, Collector, Verification, store records and the stored versions.
// The envelope values that hold secrets (Cache, NewWriter's writer,
// NewReader's reader) are checked once they implement fmt.Formatter.
package leaktest
