// Package k8skms is a Kubernetes KMS v2 plugin over a kmsring key: the
// gRPC service (k8s.io/kms/apis/v2: Status, Encrypt, Decrypt) a
// kube-apiserver calls to encrypt Secrets at rest, embeddable in any
// process that holds a [keyring.Keyring]. The kmsring command runs it as
// `kmsring kms-plugin --listen unix:///PATH.sock --key-id K`.
//
// # What the API server sees
//
// Status answers version "v2", healthz "ok" while the key can encrypt (an
// error message otherwise: a disabled key or one pending deletion, a store
// that cannot be read, a root key that cannot unwrap the current version)
// and a key_id that names the key and its current version (see [KeyID]).
// The key_id changes when, and only when, the key rotates; the API server
// then encrypts new writes with a data key wrapped under the new version
// and reports objects written under an older key_id as stale, so that
// `kubectl get secrets -A -o json | kubectl replace -f -` rewrites them.
//
// Encrypt wraps the API server's seed (32 bytes) into a kmsring data key
// blob under the current version, well under the 1 KiB limit the API
// server puts on it, and returns the key_id of that version. Decrypt opens
// a blob of any version that is still enabled, whatever key_id the API
// server sends with it: the blob names its version. Blobs are bound to the
// encryption context [Context], so the plugin opens only blobs it made:
// a data key the same key wrapped for another purpose does not unwrap
// through the socket. No annotations are returned.
//
// # Freshness
//
// The hot path (Encrypt, Decrypt) never reads the store. Status reads the
// key again when what the handle holds is older than the refresh interval
// (WithRefreshInterval, one second by default), so a rotation, a disabled
// key or an unreachable store made by another process shows at the next
// Status. [Service.Run] keeps the handle fresh between Status calls
// (keyring's Watch: at once on a PostgreSQL store, which notifies).
//
// # Errors and audit
//
// Every Encrypt and Decrypt is recorded by the keyring's auditors under
// the principal [Principal]; Status is not (the API server calls it every
// minute), except for the one probe encryption that proves the root key
// can unwrap a new current version. Errors map to gRPC codes in one place:
// bad input (an empty or oversized ciphertext, a blob of another key or
// store, a flipped bit) is codes.InvalidArgument, a disabled or destroyed
// version or key codes.FailedPrecondition, a store or audit log that
// cannot be reached codes.Unavailable. Messages never hold key material.
//
// # Concurrency
//
// A Service is safe for concurrent use.
package k8skms
