package keyring

import "context"

type principalKey struct{}

// ContextWithPrincipal returns a context that names who asks for the
// operations it is passed to (a user, a service, a request's authenticated
// subject), for the auditors to record. audit.WithPrincipal is the same
// function; the rotation scheduler names itself this way.
func ContextWithPrincipal(ctx context.Context, principal string) context.Context {
	return context.WithValue(ctx, principalKey{}, principal)
}

// PrincipalFrom returns the principal ContextWithPrincipal attached to ctx,
// or "".
func PrincipalFrom(ctx context.Context) string {
	p, _ := ctx.Value(principalKey{}).(string)
	return p
}
