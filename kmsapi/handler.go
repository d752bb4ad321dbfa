package kmsapi

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

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
	observers  []func(context.Context, Request)
}

// Request describes one answered request, for logs and metrics
// (WithRequestObserver). It holds nothing secret: no body, no signature.
type Request struct {
	// Time is when the request arrived; Duration how long it took.
	Time     time.Time
	Duration time.Duration
	// RequestID is the X-Amzn-Requestid the response carried.
	RequestID string
	// Operation is the API operation ("Encrypt"), or "" when the target
	// is missing or not an operation this endpoint knows.
	Operation string
	// Principal is the caller's IAM user ARN and AccessKeyID the key it
	// signed with. When the request did not authenticate, Principal is ""
	// and AccessKeyID the key ID the request claimed, if any.
	Principal   string
	AccessKeyID string
	// KeyID is the key the request resolved, when it got that far.
	KeyID string
	// Exception is the AWS exception answered ("AccessDeniedException"),
	// "" on success; Status the HTTP status.
	Exception string
	Status    int
	// RemoteAddr is the client's address, as net/http reports it.
	RemoteAddr string
}

// WithRequestObserver calls fn after every request with what it was and
// how it ended: a request log, Prometheus metrics. fn runs on the
// request's goroutine after the response is written, and should be quick.
func WithRequestObserver(fn func(context.Context, Request)) Option {
	return func(h *Handler) error {
		if fn == nil {
			return errors.New("kmsapi: nil request observer")
		}
		h.observers = append(h.observers, fn)
		return nil
	}
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

// claimedKeyRE finds the access key ID in an Authorization header.
var claimedKeyRE = regexp.MustCompile(`Credential=(AKIA[A-Z2-7]{16})/`)

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
	h.accessKeys = newAccessKeys(st, rk, h.clock, h.refresh/2)
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
	info := Request{Time: h.clock.Now(), RequestID: newRequestID(), RemoteAddr: r.RemoteAddr, Status: http.StatusOK}
	w.Header()["X-Amzn-Requestid"] = []string{info.RequestID} // canonical: Set would check again
	note := &auditNote{}
	resp, err := h.serve(context.WithValue(r.Context(), auditNoteKey{}, note), r, &info)
	if err != nil {
		ae := h.writeError(w, r, err)
		info.Exception, info.Status = ae.Type, ae.status()
	} else {
		writeResponse(w, resp)
	}
	if len(h.observers) == 0 {
		return
	}
	info.KeyID = note.keyID
	info.Duration = h.clock.Now().Sub(info.Time)
	for _, fn := range h.observers {
		fn(r.Context(), info)
	}
}

// serve answers r on ctx, which carries the request's auditNote (passed
// apart from r, as r.WithContext would copy the request).
// newRequestID returns a random (version 4) UUID, as uuid.NewString does
// with one allocation fewer.
func newRequestID() string {
	var u uuid.UUID
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u.String()
}

func (h *Handler) serve(ctx context.Context, r *http.Request, info *Request) (any, error) {
	if r.Method != http.MethodPost {
		return nil, &apiError{Type: "UnknownOperationException", Message: "the AWS KMS API takes POST requests"}
	}
	if name, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix); ok && operations[name] != nil {
		info.Operation = name
	}
	bp := bufPool.Get().(*[]byte)
	body, err := readBody(r, h.maxBody, *bp)
	defer func() {
		// Decoding copied what the operation keeps; a plaintext
		// (Encrypt's) is erased with the rest.
		clear(body)
		if cap(body) <= maxPooledBody {
			*bp = body[:0]
			bufPool.Put(bp)
		}
	}()
	if err != nil {
		return nil, err
	}
	ak, err := h.verifier.verify(ctx, r, body)
	if err != nil {
		// The access key ID the request claims, for the log of a
		// refused request: an ID, never the signature.
		if m := claimedKeyRE.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
			info.AccessKeyID = m[1]
		}
		return nil, err
	}
	if err := checkText(body); err != nil {
		return nil, err
	}
	name, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	if !ok {
		return nil, &apiError{Type: "UnknownOperationException", Message: "X-Amz-Target must be " + targetPrefix + "OPERATION"}
	}
	op, ok := operations[name]
	info.Principal, info.AccessKeyID = ak.ARN(h.account), ak.ID
	if !ok {
		return nil, errUnsupported(fmt.Sprintf("%s is not supported by this endpoint", truncate(name)))
	}
	c := &caller{key: ak, arn: info.Principal}
	ctx = audit.WithPrincipal(ctx, c.arn)
	if !unaudited[name] {
		return op(h, ctx, c, body)
	}
	// The keyring audits what it does; reads it is not asked to do are
	// audited here, as CloudTrail records them, with the key they resolved.
	resp, err := op(h, ctx, c, body)
	if !isAccessDenied(err) { // denials are audited where they are decided
		var keyID string
		if note, ok := ctx.Value(auditNoteKey{}).(*auditNote); ok {
			keyID = note.keyID
		}
		if aerr := h.audit(ctx, name, keyID, nil, err); aerr != nil && err == nil {
			// A fail-closed auditor did not store the record in time.
			return nil, aerr
		}
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
// not record itself: a denial, or an operation in unaudited. It returns
// the first auditor's error, wrapping keyring.ErrAudit: a read then fails
// as a keyring operation does under a fail-closed auditor; a denial stands
// whatever an auditor says.
func (h *Handler) audit(ctx context.Context, action, keyID string, ec map[string]string, err error) error {
	op, ok := auditOps[action]
	if !ok {
		op = keyring.Operation(action)
	}
	ev := keyring.AuditEvent{Time: h.clock.Now().UTC(), Operation: op, KeyID: keyID, EncryptionContext: ec, Err: err}
	var first error
	for _, a := range h.auditors {
		if aerr := a.Audit(ctx, ev); aerr != nil && first == nil {
			first = fmt.Errorf("%w: %s: %w", keyring.ErrAudit, op, aerr)
		}
	}
	return first
}

func isAccessDenied(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Type == "AccessDeniedException"
}

// readBody reads the request body into buf, refusing one larger than
// limit. It reads incrementally: memory follows the bytes that arrive, not
// the length a client announces before it has authenticated.
func readBody(r *http.Request, limit int64, buf []byte) ([]byte, error) {
	if r.ContentLength > limit {
		return buf, errTooLarge(limit)
	}
	// Room for the announced body and the EOF after it, so that a body
	// that keeps its word is read without growing the buffer.
	buf = slices.Grow(buf[:0], int(min(max(r.ContentLength, 0), initialBodyBuffer))+1)
	lr := io.LimitReader(r.Body, limit+1)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 1)
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return buf, &apiError{Type: "SerializationException", Message: "cannot read the request body"}
		}
	}
	if int64(len(buf)) > limit {
		return buf, errTooLarge(limit)
	}
	if r.ContentLength >= 0 && int64(len(buf)) != r.ContentLength {
		return buf, &apiError{Type: "SerializationException", Message: "the request body is shorter than its Content-Length"}
	}
	return buf, nil
}

// maxPooledBody is the largest body buffer kept for another request.
const maxPooledBody = 64 << 10

// initialBodyBuffer is what readBody allocates before bytes arrive.
const initialBodyBuffer = 4 << 10

// checkText refuses a request body whose strings would not survive
// decoding unchanged: bytes that are not UTF-8, and \u escapes of lone
// UTF-16 surrogates, both of which encoding/json turns into U+FFFD, so
// that two different wire requests would name one encryption context.
func checkText(body []byte) error {
	if !utf8.Valid(body) {
		return errValidation("the request is not valid UTF-8")
	}
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' || i+1 >= len(body) {
			continue
		}
		if body[i+1] != 'u' {
			i++ // an escaped character, perhaps a backslash
			continue
		}
		r, ok := hex4(body[i+2:])
		switch {
		case !ok:
		case utf16.IsSurrogate(r) && r < 0xdc00:
			// A high surrogate must be followed by an escaped low one.
			lo, ok := rune(0), false
			if len(body) >= i+12 && body[i+6] == '\\' && body[i+7] == 'u' {
				lo, ok = hex4(body[i+8:])
			}
			if !ok || lo < 0xdc00 || lo > 0xdfff {
				return errValidation("the request holds a lone UTF-16 surrogate escape")
			}
			i += 11
			continue
		case utf16.IsSurrogate(r):
			return errValidation("the request holds a lone UTF-16 surrogate escape")
		}
		i += 5
	}
	return nil
}

// hex4 parses the 4 hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func errTooLarge(limit int64) error {
	return &apiError{Type: "RequestEntityTooLargeException", Message: fmt.Sprintf("the request body exceeds %d bytes", limit)}
}

// writeError answers with err's exception, logging internal failures, and
// returns the exception.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) *apiError {
	ae := toAPIError(err)
	if ae.Type == "KMSInternalException" || ae.Type == "DependencyTimeoutException" {
		h.log.LogAttrs(r.Context(), slog.LevelError, "kmsapi: request failed",
			slog.String("target", r.Header.Get("X-Amz-Target")),
			slog.String("request_id", w.Header().Get("X-Amzn-Requestid")),
			slog.String("err", err.Error()))
	}
	writeErrorBody(w, ae)
	return ae
}
