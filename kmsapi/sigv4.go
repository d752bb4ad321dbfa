package kmsapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kmsring/kmsring/keyring"
)

// Signature Version 4, as the AWS General Reference ("Create a signed AWS
// API request") specifies it, for requests signed in the Authorization
// header. Presigned URLs (credentials in the query string), session tokens
// and unsigned payloads are not accepted.

const (
	sigv4Algorithm  = "AWS4-HMAC-SHA256"
	sigv4Terminator = "aws4_request"
	sigv4Service    = "kms"
	amzDateLayout   = "20060102T150405Z"
	scopeDateLayout = "20060102"
	// MaxClockSkew is how far a request's X-Amz-Date may be from the
	// handler's clock, either way, as AWS allows.
	MaxClockSkew = 5 * time.Minute
	// maxAuthorizationSize bounds the Authorization header parsed.
	maxAuthorizationSize = 4096
	signatureSize        = sha256.Size
)

// requiredSignedHeaders must be among a request's signed headers: the host
// (the endpoint), the date (replay window) and the target (the operation).
var requiredSignedHeaders = []string{"host", "x-amz-date", "x-amz-target"}

// authorization is a parsed SigV4 Authorization header.
type authorization struct {
	AccessKeyID string
	Date        string // the credential scope's date, yyyymmdd
	Region      string
	Service     string
	// SignedHeaders are lowercase, sorted and unique; signedHeaders is
	// the header's own spelling of them.
	SignedHeaders []string
	signedHeaders string
	Signature     [signatureSize]byte
}

// errIncomplete reports an Authorization header that does not parse.
var errIncomplete = errors.New("malformed authorization header")

func incomplete(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errIncomplete}, args...)...)
}

// parseAuthorization parses the value of an Authorization header:
//
//	AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, SignedHeaders=h1;h2, Signature=HEX
//
// The three components appear once each, in any order, separated by a
// comma and optional spaces. It checks syntax only; the scope is checked
// against the request by the verifier.
func parseAuthorization(s string) (authorization, error) {
	var a authorization
	if len(s) > maxAuthorizationSize {
		return a, incomplete("longer than %d bytes", maxAuthorizationSize)
	}
	alg, rest, ok := strings.Cut(s, " ")
	if !ok || alg != sigv4Algorithm {
		return a, incomplete("want algorithm %s", sigv4Algorithm)
	}
	var cred, signed, sig string
	var seen [3]bool
	rest = strings.TrimLeft(rest, " ")
	for more := true; more; {
		// The comma-separated parts, as strings.Split would give them.
		var part string
		part, rest, more = strings.Cut(rest, ",")
		part = strings.TrimLeft(part, " ") // the first has none left
		name, value, ok := strings.Cut(part, "=")
		if !ok || value == "" {
			return a, incomplete("component %q is not name=value", truncate(part))
		}
		var j int
		switch name {
		case "Credential":
			j, cred = 0, value
		case "SignedHeaders":
			j, signed = 1, value
		case "Signature":
			j, sig = 2, value
		default:
			return a, incomplete("unknown component %q", truncate(name))
		}
		if seen[j] {
			return a, incomplete("duplicate component %s", name)
		}
		seen[j] = true
	}
	if !seen[0] || !seen[1] || !seen[2] {
		return a, incomplete("want Credential, SignedHeaders and Signature")
	}
	if err := a.parseCredential(cred); err != nil {
		return a, err
	}
	if err := a.parseSignedHeaders(signed); err != nil {
		return a, err
	}
	if len(sig) != 2*signatureSize || strings.ToLower(sig) != sig {
		return a, incomplete("signature must be %d lowercase hex digits", 2*signatureSize)
	}
	if _, err := hex.Decode(a.Signature[:], []byte(sig)); err != nil {
		return a, incomplete("signature must be %d lowercase hex digits", 2*signatureSize)
	}
	return a, nil
}

func (a *authorization) parseCredential(cred string) error {
	if strings.Count(cred, "/") != 4 {
		return incomplete("credential must be ACCESS_KEY_ID/DATE/REGION/SERVICE/%s", sigv4Terminator)
	}
	var parts [5]string
	for i := range parts {
		parts[i], cred, _ = strings.Cut(cred, "/")
	}
	for _, p := range parts {
		if p == "" {
			return incomplete("credential has an empty field")
		}
	}
	if parts[4] != sigv4Terminator {
		return incomplete("credential scope must end with %s", sigv4Terminator)
	}
	if _, err := time.Parse(scopeDateLayout, parts[1]); err != nil || len(parts[1]) != len(scopeDateLayout) {
		return incomplete("credential date %q is not yyyymmdd", truncate(parts[1]))
	}
	a.AccessKeyID, a.Date, a.Region, a.Service = parts[0], parts[1], parts[2], parts[3]
	return nil
}

func (a *authorization) parseSignedHeaders(signed string) error {
	a.signedHeaders = signed
	a.SignedHeaders = strings.Split(signed, ";")
	for i, h := range a.SignedHeaders {
		if h == "" || !isLowerToken(h) {
			return incomplete("signed header %q is not a lowercase header name", truncate(h))
		}
		if i > 0 && a.SignedHeaders[i-1] >= h {
			return incomplete("signed headers must be sorted and unique")
		}
	}
	return nil
}

// isLowerToken reports whether s is an HTTP header name (an RFC 9110
// token) without upper-case letters.
func isLowerToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// truncate shortens attacker-supplied text quoted in an error.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// secretLookup finds the secret and identity of an access key; it returns
// errUnknownAccessKey for a key that does not exist.
type secretLookup func(ctx context.Context, id string) (*AccessKey, error)

// verifier checks SigV4 signatures. It is safe for concurrent use.
type verifier struct {
	region string
	clock  keyring.Clock
	lookup secretLookup

	mu   sync.Mutex
	keys map[signingKeyID][]byte // derived signing keys
}

type signingKeyID struct{ accessKeyID, date string }

// maxSigningKeys bounds the signing key cache; it is emptied when full.
const maxSigningKeys = 4096

func newVerifier(region string, clock keyring.Clock, lookup secretLookup) *verifier {
	return &verifier{region: region, clock: clock, lookup: lookup, keys: make(map[signingKeyID][]byte)}
}

// verify authenticates r, whose body is body, and returns the access key
// that signed it. Its errors are *apiError values naming AWS's exceptions.
func (v *verifier) verify(ctx context.Context, r *http.Request, body []byte) (*AccessKey, error) {
	hs := r.Header.Values("Authorization")
	if len(hs) == 0 {
		return nil, &apiError{Type: "MissingAuthenticationTokenException", Message: "Request is missing Authentication Token"}
	}
	if len(hs) > 1 {
		return nil, errIncompleteSig("more than one Authorization header")
	}
	a, err := parseAuthorization(hs[0])
	if err != nil {
		return nil, errIncompleteSig(err.Error())
	}
	ds := r.Header.Values("X-Amz-Date")
	if len(ds) != 1 {
		return nil, errIncompleteSig("the request needs exactly one X-Amz-Date header")
	}
	t, err := time.Parse(amzDateLayout, ds[0])
	if err != nil {
		return nil, errIncompleteSig("X-Amz-Date is not in the form yyyymmddThhmmssZ")
	}
	if a.Service != sigv4Service {
		return nil, errInvalidSig("Credential should be scoped to correct service: '" + sigv4Service + "'.")
	}
	if a.Region != v.region {
		return nil, errInvalidSig("Credential should be scoped to a valid region, not '" + truncate(a.Region) + "'.")
	}
	if a.Date != ds[0][:len(scopeDateLayout)] {
		return nil, errInvalidSig("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.")
	}
	now := v.clock.Now()
	if t.Before(now.Add(-MaxClockSkew)) {
		return nil, errInvalidSig(fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - 5 min.)",
			ds[0], now.Add(-MaxClockSkew).UTC().Format(amzDateLayout), now.UTC().Format(amzDateLayout)))
	}
	if t.After(now.Add(MaxClockSkew)) {
		return nil, errInvalidSig(fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + 5 min.)",
			ds[0], now.Add(MaxClockSkew).UTC().Format(amzDateLayout), now.UTC().Format(amzDateLayout)))
	}
	for _, h := range requiredSignedHeaders {
		if _, ok := slices.BinarySearch(a.SignedHeaders, h); !ok {
			return nil, errInvalidSig("the signed headers must include " + h)
		}
	}
	var payloadHash [2 * sha256.Size]byte
	sum := sha256.Sum256(body)
	hex.Encode(payloadHash[:], sum[:])
	if hs := r.Header.Values("X-Amz-Content-Sha256"); len(hs) > 0 {
		if len(hs) > 1 || subtle.ConstantTimeCompare([]byte(hs[0]), payloadHash[:]) != 1 {
			return nil, errInvalidSig("The provided X-Amz-Content-Sha256 header does not match what was computed.")
		}
	}
	ak, err := v.lookup(ctx, a.AccessKeyID)
	if errors.Is(err, errUnknownAccessKey) {
		return nil, &apiError{Type: "UnrecognizedClientException", Message: "The security token included in the request is invalid."}
	}
	if err != nil {
		return nil, err
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf, err := appendCanonicalRequest((*bp)[:0], r, a, payloadHash[:])
	if err != nil {
		return nil, errInvalidSig(err.Error())
	}
	crHash := sha256.Sum256(buf)
	var crHex [2 * sha256.Size]byte
	hex.Encode(crHex[:], crHash[:])
	buf = appendStringToSign(buf[:0], ds[0], a.Date, v.region, sigv4Service, crHex[:])
	mac := hmacSHA256Fast(v.signingKey(ak, a.Date), buf)
	*bp = buf
	if subtle.ConstantTimeCompare(mac[:], a.Signature[:]) != 1 {
		return nil, errInvalidSig("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
	}
	return ak, nil
}

// bufPool holds buffers for canonical requests and strings to sign.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func errIncompleteSig(msg string) error {
	return &apiError{Type: "IncompleteSignatureException", Message: msg}
}

func errInvalidSig(msg string) error {
	return &apiError{Type: "InvalidSignatureException", Message: msg}
}

// signingKey returns the key derived from ak's secret for date, in the
// configured region and the kms service, from the cache when it can.
func (v *verifier) signingKey(ak *AccessKey, date string) []byte {
	id := signingKeyID{ak.ID, date}
	v.mu.Lock()
	k, ok := v.keys[id]
	v.mu.Unlock()
	if ok {
		return k
	}
	k = deriveSigningKey(ak.secret, date, v.region, sigv4Service)
	v.mu.Lock()
	if len(v.keys) >= maxSigningKeys {
		clear(v.keys)
	}
	v.keys[id] = k
	v.mu.Unlock()
	return k
}

// deriveSigningKey is the SigV4 key derivation:
// HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request").
func deriveSigningKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, sigv4Terminator)
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	io.WriteString(m, data)
	return m.Sum(nil)
}

// hmacSHA256Fast is HMAC-SHA256 (RFC 2104) for a key of at most one block,
// without allocating: SHA-256((K ^ opad) || SHA-256((K ^ ipad) || msg)).
// TestHMACSHA256Fast checks it against crypto/hmac.
func hmacSHA256Fast(key, msg []byte) [sha256.Size]byte {
	const blockSize = 64
	if len(key) > blockSize {
		panic("kmsapi: HMAC key longer than a block")
	}
	var pad [blockSize]byte
	copy(pad[:], key)
	for i := range pad {
		pad[i] ^= 0x36
	}
	h := sha256.New()
	h.Write(pad[:])
	h.Write(msg)
	var inner [blockSize + sha256.Size]byte
	for i := range pad {
		inner[i] = pad[i] ^ 0x36 ^ 0x5c
	}
	h.Sum(inner[:blockSize])
	return sha256.Sum256(inner[:])
}

// appendStringToSign appends the SigV4 string to sign to dst.
func appendStringToSign(dst []byte, amzDate, date, region, service string, canonicalRequestHash []byte) []byte {
	dst = append(dst, sigv4Algorithm+"\n"...)
	dst = append(dst, amzDate...)
	dst = append(dst, '\n')
	dst = append(dst, date...)
	dst = append(dst, '/')
	dst = append(dst, region...)
	dst = append(dst, '/')
	dst = append(dst, service...)
	dst = append(dst, "/"+sigv4Terminator+"\n"...)
	return append(dst, canonicalRequestHash...)
}

// appendCanonicalRequest appends the canonical request of r to dst:
//
//	METHOD \n CANONICAL_URI \n CANONICAL_QUERY \n CANONICAL_HEADERS \n SIGNED_HEADERS \n PAYLOAD_HASH
//
// where CANONICAL_HEADERS has one "name:value\n" line per signed header.
func appendCanonicalRequest(dst []byte, r *http.Request, a authorization, payloadHash []byte) ([]byte, error) {
	path, query := requestTarget(r)
	q, err := canonicalQuery(query)
	if err != nil {
		return nil, err
	}
	dst = append(dst, r.Method...)
	dst = append(dst, '\n')
	dst = append(dst, canonicalURI(path)...)
	dst = append(dst, '\n')
	dst = append(dst, q...)
	dst = append(dst, '\n')
	for _, name := range a.SignedHeaders {
		dst = append(dst, name...)
		dst = append(dst, ':')
		if name == "host" { // without allocating headerValues' slice
			one := [1]string{requestHost(r)}
			dst = appendHeaderValues(dst, one[:])
		} else {
			dst = appendHeaderValues(dst, headerValues(r, name))
		}
		dst = append(dst, '\n')
	}
	dst = append(dst, '\n')
	dst = append(dst, a.signedHeaders...)
	dst = append(dst, '\n')
	return append(dst, payloadHash...), nil
}

// requestTarget returns the escaped path and raw query of the request as
// the client sent them (a handler mounted behind http.StripPrefix still
// sees the original target in RequestURI).
func requestTarget(r *http.Request) (path, query string) {
	if t := r.RequestURI; strings.HasPrefix(t, "/") {
		path, query, _ = strings.Cut(t, "?")
		return path, query
	}
	return r.URL.EscapedPath(), r.URL.RawQuery
}

// canonicalURI encodes the escaped path once more, as SigV4 does for every
// service but S3: each byte but the unreserved ones and '/' becomes %XX.
func canonicalURI(escapedPath string) string {
	if escapedPath == "" || escapedPath == "/" {
		return "/"
	}
	return uriEncode(escapedPath, true)
}

// canonicalQuery returns the canonical query string of a raw query: each
// name and value decoded, then URI-encoded, sorted by name and value,
// joined as name=value with '&'.
func canonicalQuery(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	var pairs []string
	for _, p := range strings.Split(raw, "&") {
		if p == "" {
			continue
		}
		name, value, _ := strings.Cut(p, "=")
		n, err1 := url.QueryUnescape(name)
		v, err2 := url.QueryUnescape(value)
		if err1 != nil || err2 != nil {
			return "", errors.New("the query string is not well-formed")
		}
		pairs = append(pairs, uriEncode(n, false)+"="+uriEncode(v, false))
	}
	slices.SortFunc(pairs, func(x, y string) int {
		xn, xv, _ := strings.Cut(x, "=")
		yn, yv, _ := strings.Cut(y, "=")
		if c := strings.Compare(xn, yn); c != 0 {
			return c
		}
		return strings.Compare(xv, yv)
	})
	return strings.Join(pairs, "&"), nil
}

// uriEncode percent-encodes every byte of s but the RFC 3986 unreserved
// characters (and '/' if keepSlash), with upper-case hex digits.
func uriEncode(s string, keepSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' || keepSlash && c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// headerValues returns the values of the header name (lowercase) as the
// request carried them. Go keeps Host apart from the header map, and may
// keep Content-Length only in the request's field.
func headerValues(r *http.Request, name string) []string {
	switch name {
	case "host":
		return []string{requestHost(r)}
	case "content-length":
		if vs := r.Header.Values("Content-Length"); len(vs) > 0 || r.ContentLength < 0 {
			return vs
		}
		return []string{strconv.FormatInt(r.ContentLength, 10)}
	}
	// The header map's keys are in canonical form ("X-Amz-Date"); build
	// it on the stack, as a map lookup with string(bytes) does not
	// allocate.
	var buf [128]byte
	if len(name) > len(buf) {
		return r.Header.Values(name)
	}
	k := buf[:len(name)]
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		k[i] = c
		upper = c == '-'
	}
	return r.Header[string(k)]
}

// requestHost is the Host header as the request carried it.
func requestHost(r *http.Request) string {
	if r.Host != "" {
		return r.Host
	}
	return r.URL.Host
}

// appendHeaderValues appends a header's values as SigV4 canonicalizes
// them: each trimmed, runs of spaces folded into one, joined with commas.
func appendHeaderValues(dst []byte, vs []string) []byte {
	for i, v := range vs {
		if i > 0 {
			dst = append(dst, ',')
		}
		v = strings.Trim(v, " \t")
		for len(v) > 0 {
			j := strings.Index(v, "  ")
			if j < 0 {
				dst = append(dst, v...)
				break
			}
			dst = append(dst, v[:j+1]...)
			v = strings.TrimLeft(v[j:], " ")
		}
	}
	return dst
}
