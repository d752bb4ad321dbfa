package kmsapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// Handler is the AWS KMS-compatible endpoint: an http.Handler for the AWS
// KMS JSON 1.1 protocol over the keys of one store. Create it with New. It
// is safe for concurrent use.
type Handler struct {
	st       store.Store
	rk       tink.AEAD
	region   string
	account  string
	clock    keyring.Clock
	auditors []keyring.Auditor
	log      *slog.Logger
	maxBody  int64
	refresh  time.Duration

	verifier   *verifier
	accessKeys *accessKeys
	keys       keyCache
}

// Option configures New.
type Option func(*Handler) error

// Defaults.
const (
	DefaultRegion  = "us-east-1"
	DefaultAccount = "000000000000"
	// DefaultMaxRequestSize bounds a request body: room for the largest
	// key policy (32 KiB, JSON-escaped) with a margin.
	DefaultMaxRequestSize = 256 << 10
	// DefaultRefreshInterval is how stale the handler's view of a key may
	// grow before a request re-reads it from the store.
	DefaultRefreshInterval = time.Second
)

var regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)

// WithRegion sets the region that ARNs name and that request signatures
// must be scoped to (default DefaultRegion), such as "eu-west-1".
func WithRegion(region string) Option {
	return func(h *Handler) error {
		if !regionRE.MatchString(region) {
			return fmt.Errorf("kmsapi: invalid region %q", truncate(region))
		}
		h.region = region
		return nil
	}
}

// WithAccount sets the 12-digit account ID that ARNs name (default
// DefaultAccount). Principals are arn:aws:iam::ACCOUNT:user/NAME.
func WithAccount(account string) Option {
	return func(h *Handler) error {
		if !accountRE.MatchString(account) {
			return fmt.Errorf("kmsapi: invalid account %q (want 12 digits)", truncate(account))
		}
		h.account = account
		return nil
	}
}

// WithClock sets the clock that checks request dates and that the keys
// are loaded with (default the wall clock).
func WithClock(c keyring.Clock) Option {
	return func(h *Handler) error {
		if c == nil {
			return errors.New("kmsapi: nil clock")
		}
		h.clock = c
		return nil
	}
}

// WithAuditor adds an auditor (such as an *audit.Logger) to every key the
// handler loads or creates. Records name the caller's IAM user ARN as
// their principal.
func WithAuditor(a keyring.Auditor) Option {
	return func(h *Handler) error {
		if a == nil {
			return errors.New("kmsapi: nil auditor")
		}
		h.auditors = append(h.auditors, a)
		return nil
	}
}

// WithLogger sets where internal failures are logged (default
// slog.Default()). Clients see only that an internal error occurred.
func WithLogger(l *slog.Logger) Option {
	return func(h *Handler) error {
		if l == nil {
			return errors.New("kmsapi: nil logger")
		}
		h.log = l
		return nil
	}
}

// WithMaxRequestSize bounds request bodies (default
// DefaultMaxRequestSize); larger ones are refused unread.
func WithMaxRequestSize(n int64) Option {
	return func(h *Handler) error {
		if n < 1024 {
			return fmt.Errorf("kmsapi: max request size %d is below 1024", n)
		}
		h.maxBody = n
		return nil
	}
}

// WithRefreshInterval sets how often, at most, the handler re-reads a key
// it has cached from the store (default DefaultRefreshInterval), to see
// changes made by other processes sharing the store: state, rotations,
// policy. Alias resolutions are cached as long.
func WithRefreshInterval(d time.Duration) Option {
	return func(h *Handler) error {
		if d < 0 {
			return fmt.Errorf("kmsapi: negative refresh interval %v", d)
		}
		h.refresh = d
		return nil
	}
}

// New returns a handler serving the keys in st, whose material (and access
// key secrets) is wrapped under the root key rk. Requests must be signed
// with SigV4 by an access key made by CreateAccessKey with the same store
// and root key.
func New(st store.Store, rk tink.AEAD, opts ...Option) (*Handler, error) {
	if st == nil || rk == nil {
		return nil, errors.New("kmsapi: nil store or root key")
	}
	h := &Handler{
		st:      st,
		rk:      rk,
		region:  DefaultRegion,
		account: DefaultAccount,
		clock:   keyring.RealClock(),
		log:     slog.Default(),
		maxBody: DefaultMaxRequestSize,
		refresh: DefaultRefreshInterval,
	}
	for _, o := range opts {
		if err := o(h); err != nil {
			return nil, err
		}
	}
	h.accessKeys = newAccessKeys(st, rk)
	h.verifier = newVerifier(h.region, h.clock, h.accessKeys.get)
	h.keys.init()
	return h, nil
}

// Format prints the handler's region and account, for every fmt verb:
// never its root key, access keys or signing keys.
func (h *Handler) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "kmsapi.Handler{region: %s, account: %s}", h.region, h.account)
}

// caller is an authenticated principal.
type caller struct {
	key *AccessKey
	arn string
}

// ServeHTTP answers one AWS KMS API request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Amzn-Requestid", uuid.NewString())
	resp, err := h.serve(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeResponse(w, resp)
}

func (h *Handler) serve(r *http.Request) (any, error) {
	if r.Method != http.MethodPost {
		return nil, &apiError{Type: "UnknownOperationException", Message: "the AWS KMS API takes POST requests"}
	}
	body, err := readBody(r, h.maxBody)
	if err != nil {
		return nil, err
	}
	ak, err := h.verifier.verify(r.Context(), r, body)
	if err != nil {
		return nil, err
	}
	name, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	if !ok {
		return nil, &apiError{Type: "UnknownOperationException", Message: "X-Amz-Target must be " + targetPrefix + "OPERATION"}
	}
	op, ok := operations[name]
	if !ok {
		return nil, errUnsupported(fmt.Sprintf("%s is not supported by this endpoint", truncate(name)))
	}
	c := &caller{key: ak, arn: ak.ARN(h.account)}
	ctx := audit.WithPrincipal(r.Context(), c.arn)
	if !unaudited[name] {
		return op(h, ctx, c, body)
	}
	// The keyring audits what it does; reads it is not asked to do are
	// audited here, as CloudTrail records them, with the key they resolved.
	note := &auditNote{}
	resp, err := op(h, context.WithValue(ctx, auditNoteKey{}, note), c, body)
	if !isAccessDenied(err) { // denials are audited where they are decided
		h.audit(ctx, name, note.keyID, nil, err)
	}
	return resp, err
}

// unaudited are the operations no keyring call audits.
var unaudited = map[string]bool{
	"DescribeKey": true, "ListKeys": true, "ListAliases": true, "GenerateRandom": true,
	"GetKeyRotationStatus": true, "ListKeyRotations": true, "GetKeyPolicy": true,
}

// auditNote carries the key an unaudited operation resolved back to serve.
type auditNote struct{ keyID string }

type auditNoteKey struct{}

// noteKey records the key a request resolved, for its audit record.
func noteKey(ctx context.Context, keyID string) {
	if n, ok := ctx.Value(auditNoteKey{}).(*auditNote); ok {
		n.keyID = keyID
	}
}

// auditOps maps API actions to the keyring's audit vocabulary where they
// differ, so that one operation has one name in the log whichever face
// (and whichever outcome) recorded it.
var auditOps = map[string]keyring.Operation{
	"RotateKeyOnDemand": keyring.OpRotateKey,
	"UpdateAlias":       keyring.OpAddAlias, // what a success records on the target key
}

// audit sends the handler's auditors a record of a request the keyring did
// not record itself: a denial, or an operation in unaudited. The outcome
// stands whatever an auditor says.
func (h *Handler) audit(ctx context.Context, action, keyID string, ec map[string]string, err error) {
	op, ok := auditOps[action]
	if !ok {
		op = keyring.Operation(action)
	}
	ev := keyring.AuditEvent{Time: h.clock.Now().UTC(), Operation: op, KeyID: keyID, EncryptionContext: ec, Err: err}
	for _, a := range h.auditors {
		a.Audit(ctx, ev)
	}
}

func isAccessDenied(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Type == "AccessDeniedException"
}

// readBody reads the request body, refusing one larger than limit.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, errTooLarge(limit)
	}
	var body []byte
	var err error
	if r.ContentLength >= 0 {
		// The usual case: one allocation of the announced size.
		body = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
	}
	if err != nil {
		return nil, &apiError{Type: "SerializationException", Message: "cannot read the request body"}
	}
	if int64(len(body)) > limit {
		return nil, errTooLarge(limit)
	}
	return body, nil
}

func errTooLarge(limit int64) error {
	return &apiError{Type: "RequestEntityTooLargeException", Message: fmt.Sprintf("the request body exceeds %d bytes", limit)}
}

// writeError answers with err's exception, logging internal failures.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := toAPIError(err)
	if ae.Type == "KMSInternalException" || ae.Type == "DependencyTimeoutException" {
		h.log.LogAttrs(r.Context(), slog.LevelError, "kmsapi: request failed",
			slog.String("target", r.Header.Get("X-Amz-Target")),
			slog.String("request_id", w.Header().Get("X-Amzn-Requestid")),
			slog.String("err", err.Error()))
	}
	writeErrorBody(w, ae)
}
