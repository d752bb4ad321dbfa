// Package kmsapi is an AWS KMS-compatible endpoint: an http.Handler that
// speaks the AWS KMS JSON 1.1 protocol over the keys of a kmsring store, so
// that unchanged AWS clients (every AWS SDK, the AWS CLI, Tink's AWS KMS
// client, SOPS) use kmsring keys given an endpoint URL.
//
// # Serving
//
// [New] takes the store and the root key the keys are wrapped under;
// options set the region and account that ARNs name ([WithRegion],
// [WithAccount]), the auditors every key is given ([WithAuditor], for
// instance an audit.Logger), the clock, the logger and the request size
// bound. Mount the handler at the root of its own listener (the protocol is
// POST /), and serve it over TLS beyond loopback: request signatures
// authenticate a request but do not hide it. `kmsring serve` does all this.
//
//	h, err := kmsapi.New(st, rk, kmsapi.WithAuditor(auditLog))
//	srv := &http.Server{Addr: "127.0.0.1:8080", Handler: h}
//
// The operations are CreateKey, DescribeKey, ListKeys,
// UpdateKeyDescription, EnableKey, DisableKey, ScheduleKeyDeletion,
// CancelKeyDeletion, CreateAlias, UpdateAlias, DeleteAlias, ListAliases,
// Encrypt, Decrypt, ReEncrypt, GenerateDataKey,
// GenerateDataKeyWithoutPlaintext, GenerateRandom, EnableKeyRotation,
// DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand,
// ListKeyRotations, GetKeyPolicy and PutKeyPolicy; any other is answered
// with UnsupportedOperationException. A KeyId may be a key ID, a key ARN
// (arn:aws:kms:REGION:ACCOUNT:key/ID, built at response time), an alias
// name or an alias ARN. Errors carry AWS's exception names and status
// codes, mapped from the library's errors in one table.
//
// # Authentication
//
// Every request must be signed with AWS Signature Version 4 (in the
// Authorization header) by an access key made by [CreateAccessKey], scoped
// to service kms and the handler's region, dated within [MaxClockSkew] of
// the handler's clock, with host, x-amz-date and x-amz-target among the
// signed headers. The body is part of the signature; an
// X-Amz-Content-Sha256 header, when present, must be its hash
// (UNSIGNED-PAYLOAD is refused). Access key secrets are stored wrapped under
// the root key, bound to their ID, principal and admin flag; an access key
// made by another process sharing the store works at once.
//
// An access key authenticates a principal, the IAM user ARN
// arn:aws:iam::ACCOUNT:user/NAME, which every audit record names.
//
// # Key policies
//
// An admin access key may call every operation. Any other principal may
// call ListKeys, ListAliases and GenerateRandom, and on a key only what the
// key's policy allows; CreateKey is for admins. A key without a policy is
// for admins only (GetKeyPolicy shows AWS's default policy for it, whose
// account principal grants nothing here). Policies are checked by
// [ValidatePolicy] when put and use this subset of the AWS key policy
// language:
//
//	{"Version": "2012-10-17", "Id": "...", "Statement": [STATEMENT, ...]}   (or one STATEMENT)
//	STATEMENT: {"Sid": "...", "Effect": "Allow" | "Deny",
//	            "Principal": "*" | {"AWS": ARN or [ARN, ...]},
//	            "Action": "kms:Name" or [...]    (wildcards * and ?; names case-insensitive),
//	            "Resource": "*" or a key ARN, or a list (wildcards allowed),
//	            "Condition": {OPERATOR: {KEY: VALUE or [VALUE, ...]}}}
//
// Principals are "*", IAM user ARNs (what access keys authenticate as),
// account principals (arn:aws:iam::ACCOUNT:root or the account ID) and
// role ARNs. There is no IAM: an account principal in an Allow statement,
// which on AWS delegates to IAM policies, grants nothing; in a Deny
// statement it denies every principal of the account, as on AWS. Role ARNs
// and "Service" principals are accepted and match no access key. Condition
// keys are kms:EncryptionContext:KEY and kms:EncryptionContextKeys; operators are StringEquals, StringNotEquals,
// StringEqualsIgnoreCase, StringNotEqualsIgnoreCase, StringLike and
// StringNotLike, each optionally prefixed with ForAnyValue: or
// ForAllValues: and suffixed with IfExists. An explicit Deny wins, then an
// Allow; anything else is denied (AccessDeniedException). What the endpoint
// could not enforce (NotPrincipal, NotAction, NotResource, other condition
// keys and operators) is refused as MalformedPolicyDocumentException rather
// than ignored. ReEncrypt needs kms:ReEncryptFrom on the source key with the
// source context and kms:ReEncryptTo on the destination key with the
// destination context. PutKeyPolicy applies AWS's lockout safety check to
// non-admin callers.
//
// Evaluation follows AWS where the subset overlaps, point by point:
//
//   - Context key case: the KEY of kms:EncryptionContext:KEY matches the
//     request's context keys case-insensitively (AWS: condition key names
//     are not case-sensitive), so a Deny on "classification" holds for
//     "Classification"; values compare case-sensitively unless the
//     operator is an IgnoreCase one. kms:EncryptionContextKeys compares
//     the keys themselves, case-sensitively, as AWS does.
//   - Multiple values: a condition with several values holds if any
//     matches (AWS: values of one key are ORed; keys and operators are
//     ANDed). A context whose keys differ only in case gives one condition
//     key several request values: a Deny's condition holds if it holds for
//     any, an Allow's only if it holds for all, so a differently cased twin
//     neither escapes a Deny nor satisfies an Allow.
//   - Empty context: a condition on an absent key is false, except with
//     IfExists, a negated operator, or ForAllValues: (true, vacuously, as
//     AWS documents); ForAnyValue: on no values is false.
//   - Explicit deny: a Deny wins over any Allow, and its AccessDeniedException
//     says "with an explicit deny in a resource-based policy", as AWS's does;
//     a request nothing allows says "because no resource-based policy
//     allows the ACTION action".
//   - Alias namespace: CreateAlias, UpdateAlias and DeleteAlias are for
//     admins (AWS needs an IAM permission on the alias for them, which no
//     key policy grants); other principals get AccessDeniedException.
//
// Every caller-controlled value is checked before it is authorized,
// audited or stored: a request that is not valid UTF-8 or holds a lone
// UTF-16 surrogate escape, and an encryption context over 8 KiB encoded or
// with an empty key, fail with ValidationException before a denial is
// recorded. Bodies are read as they arrive, never allocated at the length
// a client announces. A change whose stored key record would exceed
// keyring.MaxKeyRecordSize fails with LimitExceededException and changes
// nothing.
//
// # Access keys
//
// [ListAccessKeys], [UpdateAccessKey] and [DeleteAccessKey] give access
// keys IAM's lifecycle: an Inactive or deleted key is refused
// (UnrecognizedClientException). A handler re-reads a cached access key's
// record at most every half refresh interval, so every handler sharing the
// store refuses a revoked key within that; [Handler.Watch] (pgstore's
// change notifications) and [Handler.Changed] make it at once.
//
// # Caching and freshness
//
// The handler loads each key once and keeps it; the hot path (a data key,
// a decryption) touches neither the store nor the root key. A key, alias or
// access key made by another process sharing the store works at once (a
// cache miss reads the store). Changes made elsewhere to a key the handler
// holds (state, rotation, policy) are seen within the refresh interval
// ([WithRefreshInterval], default one second), and a request denied by a
// cached policy re-reads the key first (at most once per interval per key),
// so a policy granting access takes effect at once. Alias resolutions are
// cached for the same interval (AWS documents alias changes as eventually
// consistent too). [Handler.Watch] applies the changes a store with a
// change feed reports (pgstore, with LISTEN/NOTIFY) as they arrive, so
// that a disabled key, a revoked access key or a tightened policy reaches
// every handler sharing a PostgreSQL store within milliseconds.
//
// # Observing requests
//
// [WithRequestObserver] is called after every request with its operation,
// principal, key, exception and duration ([Request]): kmsring serve's
// request log and Prometheus metrics are built on it.
//
// # Differences from AWS KMS
//
// Only symmetric encryption keys (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT,
// origin AWS_KMS) exist. There are no grants (GrantTokens are ignored), no
// tags (CreateKey with Tags is refused), no multi-Region keys, custom key
// stores, imported material or Nitro Enclaves recipients. UpdateAlias updates two records, one
// after the other. ListKeys also lists deleted keys (tombstones).
// RotateKeyOnDemand has no lifetime limit. Every unsupported operation,
// including ones AWS KMS does not have, is answered with
// UnsupportedOperationException.
package kmsapi
