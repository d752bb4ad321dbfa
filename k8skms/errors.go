package k8skms

import (
	"context"
	"errors"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errBadInput reports a request the plugin refuses before it reaches the
// key: an empty or oversized ciphertext or plaintext.
var errBadInput = errors.New("invalid request")

// codeTable maps the errors a caller can act on to gRPC codes, first match
// first. Anything else is codes.Internal.
var codeTable = []struct {
	err  error
	code codes.Code
}{
	{errBadInput, codes.InvalidArgument},
	{keyring.ErrMalformed, codes.InvalidArgument},
	{keyring.ErrWrongKey, codes.InvalidArgument},
	{keyring.ErrDecrypt, codes.InvalidArgument},
	{keyring.ErrInvalidArgument, codes.InvalidArgument},
	{keyring.ErrUnknownVersion, codes.NotFound},
	{keyring.ErrVersionDisabled, codes.FailedPrecondition},
	{keyring.ErrVersionDestroyed, codes.FailedPrecondition},
	{keyring.ErrKeyDisabled, codes.FailedPrecondition},
	{keyring.ErrKeyPendingDeletion, codes.FailedPrecondition},
	{keyring.ErrTampered, codes.FailedPrecondition},
	{keyring.ErrRootKey, codes.FailedPrecondition},
	{keyring.ErrAudit, codes.Unavailable},
	{store.ErrClosed, codes.Unavailable},
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
}

// Code is the gRPC code the service answers err with: InvalidArgument for
// bad input (empty, oversized, malformed, another key's or store's, or
// tampered ciphertext), NotFound for a version the key does not have,
// FailedPrecondition for a key or version that may not be used (disabled,
// pending deletion or destruction, destroyed; a tampered store, a root key
// that cannot unwrap), Unavailable when the audit log or store cannot be
// reached, Canceled and DeadlineExceeded for the caller's context, and
// Internal for anything else. Code(nil) is codes.OK.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	for _, e := range codeTable {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	return codes.Internal
}

// grpcStatus is the status a call of method that failed with err answers
// (an OK status for nil). Its message is "k8skms: METHOD: " and the
// error's message, which never holds key material.
func grpcStatus(method string, err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	return status.New(Code(err), "k8skms: "+method+": "+err.Error())
}
