package kmsapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The example request of the AWS General Reference's SigV4 walkthrough
// (IAM ListUsers), with its published intermediate values.
func TestSigV4PublishedExample(t *testing.T) {
	r := httptest.NewRequest("GET", "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08", nil)
	r.Host = "iam.amazonaws.com"
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	r.Header.Set("X-Amz-Date", "20150830T123600Z")
	a, err := parseAuthorization("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, " +
		"SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")
	require.NoError(t, err)

	emptyHash := sha256.Sum256(nil)
	b, err := appendCanonicalRequest(nil, r, a, []byte(hex.EncodeToString(emptyHash[:])))
	require.NoError(t, err)
	cr := bytes.NewBuffer(b)
	assert.Equal(t, "GET\n/\nAction=ListUsers&Version=2010-05-08\n"+
		"content-type:application/x-www-form-urlencoded; charset=utf-8\nhost:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"+
		"content-type;host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", cr.String())
	crHash := sha256.Sum256(cr.Bytes())
	assert.Equal(t, "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59", hex.EncodeToString(crHash[:]))

	key := deriveSigningKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "iam")
	assert.Equal(t, "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9", hex.EncodeToString(key))
	mac := hmacSHA256Fast(key, appendStringToSign(nil, "20150830T123600Z", "20150830", "us-east-1", "iam", []byte(hex.EncodeToString(crHash[:]))))
	assert.Equal(t, a.Signature, mac, "the published signature")
}

// testSigner is a second, deliberately naive SigV4 signer for the tests (the
// cross-test against aws-sdk-go-v2's signer lives in the compat module).
type testSigner struct {
	id, secret, region, service string
	signed                      []string // header names to sign; default host, x-amz-date, x-amz-target and content-type
}

func (s testSigner) sign(r *http.Request, body []byte, at time.Time) {
	date := at.UTC().Format(amzDateLayout)
	r.Header.Set("X-Amz-Date", date)
	names := s.signed
	if names == nil {
		names = []string{"content-type", "host", "x-amz-date", "x-amz-target"}
	}
	names = slices.Sorted(slices.Values(names))
	var ch strings.Builder
	for _, n := range names {
		var vals []string
		if n == "host" {
			vals = []string{r.Host}
		} else {
			vals = r.Header.Values(n)
		}
		for i, v := range vals {
			vals[i] = strings.Join(strings.FieldsFunc(v, func(c rune) bool { return c == ' ' }), " ")
		}
		ch.WriteString(n + ":" + strings.Join(vals, ",") + "\n")
	}
	bh := sha256.Sum256(body)
	cr := strings.Join([]string{r.Method, "/", "", ch.String(), strings.Join(names, ";"), hex.EncodeToString(bh[:])}, "\n")
	crh := sha256.Sum256([]byte(cr))
	scope := date[:8] + "/" + s.region + "/" + s.service + "/aws4_request"
	sts := "AWS4-HMAC-SHA256\n" + date + "\n" + scope + "\n" + hex.EncodeToString(crh[:])
	k := []byte("AWS4" + s.secret)
	for _, d := range []string{date[:8], s.region, s.service, "aws4_request"} {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(d))
		k = m.Sum(nil)
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(sts))
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+s.id+"/"+scope+", SignedHeaders="+
		strings.Join(names, ";")+", Signature="+hex.EncodeToString(m.Sum(nil)))
}

const (
	testKeyID  = "AKIAIOSFODNN7EXAMPLE"
	testSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestVerifier() (*verifier, *clockwork.FakeClock) {
	clk := clockwork.NewFakeClockAt(testNow)
	keys := map[string]*AccessKey{testKeyID: {ID: testKeyID, Principal: "alice", secret: testSecret}}
	return newVerifier("us-east-1", clk, func(_ context.Context, id string) (*AccessKey, error) {
		if k, ok := keys[id]; ok {
			return k, nil
		}
		return nil, errUnknownAccessKey
	}), clk
}

func newKMSRequest(target string, body []byte) *http.Request {
	r := httptest.NewRequest("POST", "http://127.0.0.1:8080/", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/x-amz-json-1.1")
	r.Header.Set("X-Amz-Target", "TrentService."+target)
	return r
}

var goodSigner = testSigner{id: testKeyID, secret: testSecret, region: "us-east-1", service: "kms"}

func TestVerifyAccepts(t *testing.T) {
	v, _ := newTestVerifier()
	body := []byte(`{"KeyId":"alias/orders","KeySpec":"AES_256"}`)
	for name, tc := range map[string]struct {
		mutate func(r *http.Request)
		signed []string
	}{
		"plain": {},
		"content hash header": {mutate: func(r *http.Request) {
			h := sha256.Sum256(body)
			r.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(h[:]))
		}, signed: []string{"host", "x-amz-content-sha256", "x-amz-date", "x-amz-target"}},
		"spaces folded, values joined": {mutate: func(r *http.Request) {
			r.Header.Set("X-Custom", "  a   b  c ")
			r.Header.Add("X-Custom", "d")
		}, signed: []string{"host", "x-amz-date", "x-amz-target", "x-custom"}},
		"unsigned extra headers": {mutate: func(r *http.Request) { r.Header.Set("User-Agent", "test") }},
	} {
		t.Run(name, func(t *testing.T) {
			r := newKMSRequest("GenerateDataKey", body)
			if tc.mutate != nil {
				tc.mutate(r)
			}
			s := goodSigner
			s.signed = tc.signed
			s.sign(r, body, testNow)
			ak, err := v.verify(context.Background(), r, body)
			require.NoError(t, err)
			assert.Equal(t, "alice", ak.Principal)
		})
	}
}

func TestVerifyClockSkewBoundary(t *testing.T) {
	v, _ := newTestVerifier()
	body := []byte(`{}`)
	for _, d := range []time.Duration{-MaxClockSkew, MaxClockSkew} {
		r := newKMSRequest("ListKeys", body)
		goodSigner.sign(r, body, testNow.Add(d))
		_, err := v.verify(context.Background(), r, body)
		assert.NoError(t, err, "a skew of exactly %v is accepted", d)
	}
}

// Every way a request can fail authentication, with the exception AWS
// answers it with.
func TestVerifyRejects(t *testing.T) {
	body := []byte(`{"KeyId":"alias/orders","KeySpec":"AES_256"}`)
	for name, tc := range map[string]struct {
		signer testSigner
		at     time.Time
		before func(r *http.Request)               // before signing
		after  func(r *http.Request, body *[]byte) // after signing
		want   string
	}{
		"tampered body": {after: func(_ *http.Request, b *[]byte) { *b = []byte(`{"KeyId":"alias/other","KeySpec":"AES_256"}`) },
			want: "InvalidSignatureException"},
		"tampered target": {after: func(r *http.Request, _ *[]byte) { r.Header.Set("X-Amz-Target", "TrentService.Decrypt") },
			want: "InvalidSignatureException"},
		"tampered host": {after: func(r *http.Request, _ *[]byte) { r.Host = "127.0.0.1:8081" },
			want: "InvalidSignatureException"},
		"tampered signed header": {after: func(r *http.Request, _ *[]byte) { r.Header.Set("Content-Type", "application/json") },
			want: "InvalidSignatureException"},
		"unsigned target": {signer: testSigner{signed: []string{"host", "x-amz-date"}},
			want: "InvalidSignatureException"},
		"unsigned host":   {signer: testSigner{signed: []string{"x-amz-date", "x-amz-target"}}, want: "InvalidSignatureException"},
		"unsigned date":   {signer: testSigner{signed: []string{"host", "x-amz-target"}}, want: "InvalidSignatureException"},
		"skew past +5min": {at: testNow.Add(MaxClockSkew + time.Second), want: "InvalidSignatureException"},
		"skew past -5min": {at: testNow.Add(-MaxClockSkew - time.Second), want: "InvalidSignatureException"},
		"wrong region":    {signer: testSigner{region: "eu-west-1"}, want: "InvalidSignatureException"},
		"wrong service":   {signer: testSigner{service: "s3"}, want: "InvalidSignatureException"},
		"scope date not the request's": {after: func(r *http.Request, _ *[]byte) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/20260301/", "/20260302/", 1))
		}, want: "InvalidSignatureException"},
		"wrong secret": {signer: testSigner{secret: "x" + testSecret[1:]}, want: "InvalidSignatureException"},
		"unknown key":  {signer: testSigner{id: "AKIAAAAAAAAAAAAAAAAA"}, want: "UnrecognizedClientException"},
		"body hash mismatch": {before: func(r *http.Request) {
			r.Header.Set("X-Amz-Content-Sha256", strings.Repeat("0", 64))
		}, signer: testSigner{signed: []string{"host", "x-amz-content-sha256", "x-amz-date", "x-amz-target"}}, want: "InvalidSignatureException"},
		"unsigned payload": {before: func(r *http.Request) {
			r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		}, signer: testSigner{signed: []string{"host", "x-amz-content-sha256", "x-amz-date", "x-amz-target"}}, want: "InvalidSignatureException"},
		"flipped signature bit": {after: func(r *http.Request, _ *[]byte) {
			h := r.Header.Get("Authorization")
			last := h[len(h)-1]
			flip := map[byte]byte{'0': '1'}[last]
			if flip == 0 {
				flip = '0'
			}
			r.Header.Set("Authorization", h[:len(h)-1]+string(flip))
		}, want: "InvalidSignatureException"},
		"no authorization":  {after: func(r *http.Request, _ *[]byte) { r.Header.Del("Authorization") }, want: "MissingAuthenticationTokenException"},
		"two authorization": {after: func(r *http.Request, _ *[]byte) { r.Header.Add("Authorization", r.Header.Get("Authorization")) }, want: "IncompleteSignatureException"},
		"duplicate field": {after: func(r *http.Request, _ *[]byte) {
			r.Header.Set("Authorization", r.Header.Get("Authorization")+", Signature="+strings.Repeat("a", 64))
		}, want: "IncompleteSignatureException"},
		"no x-amz-date":   {after: func(r *http.Request, _ *[]byte) { r.Header.Del("X-Amz-Date") }, want: "IncompleteSignatureException"},
		"bad x-amz-date":  {after: func(r *http.Request, _ *[]byte) { r.Header.Set("X-Amz-Date", "2026-03-01T12:00:00Z") }, want: "IncompleteSignatureException"},
		"basic auth":      {after: func(r *http.Request, _ *[]byte) { r.SetBasicAuth("a", "b") }, want: "IncompleteSignatureException"},
		"sigv2 algorithm": {after: func(r *http.Request, _ *[]byte) { r.Header.Set("Authorization", "AWS "+testKeyID+":c2ln") }, want: "IncompleteSignatureException"},
		"unsorted headers": {signer: testSigner{signed: []string{"x-amz-target", "host", "x-amz-date"}}, after: func(r *http.Request, _ *[]byte) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "host;x-amz-date;x-amz-target", "x-amz-target;host;x-amz-date", 1))
		}, want: "IncompleteSignatureException"},
	} {
		t.Run(name, func(t *testing.T) {
			v, _ := newTestVerifier()
			s := goodSigner
			if tc.signer.id != "" {
				s.id = tc.signer.id
			}
			if tc.signer.secret != "" {
				s.secret = tc.signer.secret
			}
			if tc.signer.region != "" {
				s.region = tc.signer.region
			}
			if tc.signer.service != "" {
				s.service = tc.signer.service
			}
			s.signed = tc.signer.signed
			at := tc.at
			if at.IsZero() {
				at = testNow
			}
			b := slices.Clone(body)
			r := newKMSRequest("GenerateDataKey", b)
			if tc.before != nil {
				tc.before(r)
			}
			s.sign(r, b, at)
			if tc.after != nil {
				tc.after(r, &b)
			}
			_, err := v.verify(context.Background(), r, b)
			require.Error(t, err)
			assert.Equal(t, tc.want, toAPIError(err).Type, "%v", err)
			assert.Equal(t, http.StatusBadRequest, toAPIError(err).status())
		})
	}
}

func TestHMACSHA256Fast(t *testing.T) {
	for _, n := range []int{0, 1, 32, 63, 64} {
		key := bytes.Repeat([]byte{byte(n)}, n)
		for _, msg := range []string{"", "a", strings.Repeat("x", 1000)} {
			m := hmac.New(sha256.New, key)
			m.Write([]byte(msg))
			got := hmacSHA256Fast(key, []byte(msg))
			assert.Equal(t, m.Sum(nil), got[:], "key of %d bytes, message of %d", n, len(msg))
		}
	}
}

func TestSigningKeyCached(t *testing.T) {
	v, clk := newTestVerifier()
	body := []byte(`{}`)
	for range 3 {
		r := newKMSRequest("ListKeys", body)
		goodSigner.sign(r, body, clk.Now())
		_, err := v.verify(context.Background(), r, body)
		require.NoError(t, err)
	}
	clk.Advance(24 * time.Hour)
	r := newKMSRequest("ListKeys", body)
	goodSigner.sign(r, body, clk.Now())
	_, err := v.verify(context.Background(), r, body)
	require.NoError(t, err, "a new day derives a new key")
	assert.Len(t, v.keys, 2, "one signing key per access key and date")
}

func TestCanonicalQuery(t *testing.T) {
	for raw, want := range map[string]string{
		"":                          "",
		"b=2&a=1":                   "a=1&b=2",
		"a=2&a=1":                   "a=1&a=2",
		"a&b=":                      "a=&b=",
		"x=a%20b&y=a+b":             "x=a%20b&y=a%20b",
		"k%2Fey=%7E%2F":             "k%2Fey=~%2F",
		"Action=ListUsers&Version=": "Action=ListUsers&Version=",
	} {
		got, err := canonicalQuery(raw)
		require.NoError(t, err, raw)
		assert.Equal(t, want, got, raw)
	}
	_, err := canonicalQuery("a=%zz")
	assert.Error(t, err, "bad percent-encoding")
}

func TestCanonicalURI(t *testing.T) {
	assert.Equal(t, "/", canonicalURI(""))
	assert.Equal(t, "/", canonicalURI("/"))
	assert.Equal(t, "/a%2520b/c~", canonicalURI("/a%20b/c~"), "the escaped path is encoded again")
}

// authorizationVectors reads testdata/authorization.txt: lines "ok HEADER"
// or "bad HEADER" (comments start with #).
func authorizationVectors(t testing.TB) (ok, bad []string) {
	f, err := os.Open("testdata/authorization.txt")
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		verdict, h, _ := strings.Cut(line, " ") // a bare verdict is the empty header
		switch verdict {
		case "ok":
			ok = append(ok, h)
		case "bad":
			bad = append(bad, h)
		default:
			t.Fatalf("bad verdict in %q", line)
		}
	}
	require.NoError(t, sc.Err())
	return ok, bad
}

func TestParseAuthorizationVectors(t *testing.T) {
	ok, bad := authorizationVectors(t)
	require.NotEmpty(t, ok)
	require.NotEmpty(t, bad)
	for _, h := range ok {
		a, err := parseAuthorization(h)
		require.NoError(t, err, h)
		assert.NotEmpty(t, a.AccessKeyID)
		assert.Equal(t, a, mustParse(t, formatAuthorization(a)), "format then parse round-trips: %s", h)
	}
	for _, h := range bad {
		_, err := parseAuthorization(h)
		assert.ErrorIs(t, err, errIncomplete, h)
	}
}

func mustParse(t *testing.T, h string) authorization {
	a, err := parseAuthorization(h)
	require.NoError(t, err, h)
	return a
}

// formatAuthorization writes a as the AWS SDKs do.
func formatAuthorization(a authorization) string {
	return sigv4Algorithm + " Credential=" + a.AccessKeyID + "/" + a.Date + "/" + a.Region + "/" + a.Service + "/" + sigv4Terminator +
		", SignedHeaders=" + strings.Join(a.SignedHeaders, ";") + ", Signature=" + hex.EncodeToString(a.Signature[:])
}

// FuzzParseAuthorization: no input panics; what parses is well-formed and
// round-trips through the SDKs' spelling.
func FuzzParseAuthorization(f *testing.F) {
	ok, bad := authorizationVectors(f)
	require.NotEmpty(f, ok, "seed corpus")
	for _, h := range append(ok, bad...) {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		a, err := parseAuthorization(h)
		if err != nil {
			require.ErrorIs(t, err, errIncomplete)
			return
		}
		require.NotEmpty(t, a.AccessKeyID)
		require.NotEmpty(t, a.SignedHeaders)
		require.True(t, slices.IsSorted(a.SignedHeaders))
		require.Equal(t, a, mustParse(t, formatAuthorization(a)))
	})
}
