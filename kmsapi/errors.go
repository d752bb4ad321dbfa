package kmsapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
)

// apiError is an error as the AWS JSON protocol returns it: an exception
// name (the body's "__type") and a message.
type apiError struct {
	Type    string
	Message string
}

func (e *apiError) Error() string { return "kmsapi: " + e.Type + ": " + e.Message }

// AuditClass names the error in audit records (audit.ErrorClass): AWS's
// exception name without "Exception", such as "AccessDenied".
func (e *apiError) AuditClass() string { return strings.TrimSuffix(e.Type, "Exception") }

// status returns the HTTP status AWS KMS answers the exception with.
func (e *apiError) status() int {
	switch e.Type {
	case "KMSInternalException":
		return http.StatusInternalServerError
	case "DependencyTimeoutException":
		return http.StatusServiceUnavailable
	case "DryRunOperationException":
		return http.StatusPreconditionFailed
	case "RequestEntityTooLargeException":
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// errorTable maps the library's errors to AWS KMS exceptions, in one place;
// the first row whose error matches (errors.Is) wins. Anything else is a
// KMSInternalException whose detail goes to the log, not the client.
var errorTable = []struct {
	err error
	typ string
}{
	{keyring.ErrKeyNotFound, "NotFoundException"},
	{keyring.ErrKeyDisabled, "DisabledException"},
	{keyring.ErrKeyPendingDeletion, "KMSInvalidStateException"},
	{keyring.ErrWrongKey, "IncorrectKeyException"},
	{keyring.ErrMalformed, "InvalidCiphertextException"},
	{keyring.ErrDecrypt, "InvalidCiphertextException"},
	{keyring.ErrUnknownVersion, "InvalidCiphertextException"},
	{keyring.ErrVersionDisabled, "KMSInvalidStateException"},
	{keyring.ErrVersionDestroyed, "KMSInvalidStateException"},
	{keyring.ErrInvalidArgument, "ValidationException"},
	{keyring.ErrRecordTooLarge, "LimitExceededException"},
	{ErrMalformedPolicy, "MalformedPolicyDocumentException"},
	{store.ErrExists, "AlreadyExistsException"},
	{ErrAccessKeyNotFound, "NoSuchEntityException"}, // IAM's name; the verifier answers UnrecognizedClientException
	{context.DeadlineExceeded, "DependencyTimeoutException"},
}

// internalMessage is all a client learns of an internal failure.
const internalMessage = "An internal error occurred; the server's log has the detail."

// toAPIError maps err to the exception the client sees.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	if sentinel, typ := lookupError(err); typ != "" {
		return &apiError{Type: typ, Message: clientMessage(sentinel, err)}
	}
	return &apiError{Type: "KMSInternalException", Message: internalMessage}
}

// lookupError returns the first row of errorTable that err matches.
func lookupError(err error) (sentinel error, typ string) {
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			return row.err, row.typ
		}
	}
	return nil, ""
}

// ExceptionName returns the AWS KMS exception the endpoint answers err
// with, such as "NotFoundException", or "" for an error it answers as an
// internal failure (KMSInternalException). It lets another face of the
// library, such as the kmsring command, name errors as the endpoint does.
func ExceptionName(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Type
	}
	_, typ := lookupError(err)
	return typ
}

// clientMessage is the library's message without its package prefix. The
// library never puts key material in an error; an authentication failure
// says nothing more than that it failed.
func clientMessage(sentinel, err error) string {
	if sentinel == keyring.ErrDecrypt {
		return "The ciphertext is invalid, or was encrypted with another encryption context."
	}
	msg := err.Error()
	for _, p := range []string{"keyring: ", "kmsapi: ", "store: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	return msg
}

// Exceptions the handler raises itself.

func errValidation(msg string) error { return &apiError{Type: "ValidationException", Message: msg} }

func errNotFound(msg string) error { return &apiError{Type: "NotFoundException", Message: msg} }

func errUnsupported(msg string) error {
	return &apiError{Type: "UnsupportedOperationException", Message: msg}
}

func errInvalidState(msg string) error {
	return &apiError{Type: "KMSInvalidStateException", Message: msg}
}
