package compat

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/kmsapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var authErrors = map[string]bool{
	"InvalidSignatureException":           true,
	"IncompleteSignatureException":        true,
	"UnrecognizedClientException":         true,
	"MissingAuthenticationTokenException": true,
}

// Requests signed by aws-sdk-go-v2's SigV4 signer, randomized in their
// headers (names, values with runs of spaces and tabs, repeated headers),
// bodies, targets, paths, query strings and signing times (within the
// allowed skew, across a date change), all pass the endpoint's
// verification; the same requests tampered with after signing, or signed
// outside the skew, all fail it.
func TestSigV4CrossCheckSDKSigner(t *testing.T) {
	// Two minutes before midnight: signing times on both sides of it.
	clk := clockwork.NewFakeClockAt(time.Date(2026, 6, 30, 23, 58, 0, 0, time.UTC))
	s := startServer(t, kmsapi.WithClock(clk))
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	signer := v4.NewSigner()
	creds := aws.Credentials{AccessKeyID: s.admin.ID, SecretAccessKey: s.admin.SecretAccessKey()}

	const n = 300
	var accepted, rejected int
	for i := range n {
		req, body := randomRequest(t, rng, s.URL)
		skew := time.Duration(rng.Int64N(int64(2*kmsapi.MaxClockSkew))) - kmsapi.MaxClockSkew
		tamper := rng.IntN(3) == 0
		if !tamper && rng.IntN(8) == 0 {
			skew = kmsapi.MaxClockSkew + time.Second + time.Duration(rng.Int64N(int64(time.Hour)))
			if rng.IntN(2) == 0 {
				skew = -skew
			}
			tamper = true
		}
		h := sha256.Sum256(body)
		require.NoError(t, signer.SignHTTP(context.Background(), creds, req, hex.EncodeToString(h[:]), "kms", region, clk.Now().Add(skew)))
		what := "untampered"
		if tamper && (skew <= kmsapi.MaxClockSkew && skew >= -kmsapi.MaxClockSkew) {
			what = tamperWith(rng, req, &body)
		} else if tamper {
			what = fmt.Sprintf("signed %v from the server's clock", skew)
		}
		typ, status := send(t, req, body)
		if tamper {
			assert.True(t, authErrors[typ], "request %d (%s) must fail authentication, got %q (%d)", i, what, typ, status)
			rejected++
		} else {
			assert.False(t, authErrors[typ], "request %d must pass authentication, got %q; headers %v", i, typ, req.Header)
			accepted++
		}
	}
	t.Logf("%d accepted, %d rejected", accepted, rejected)
	assert.Greater(t, accepted, n/3)
	assert.Greater(t, rejected, n/5)
}

var targets = []string{"ListKeys", "GenerateRandom", "DescribeKey", "ListAliases", "Encrypt", "CreateGrant", "NoSuchOperation"}

func randomRequest(t *testing.T, rng *rand.Rand, endpoint string) (*http.Request, []byte) {
	body := randomBody(rng)
	u := endpoint + "/"
	if rng.IntN(4) == 0 {
		u += url.PathEscape(randomText(rng, "abc /%~é", 6)) + "/x"
	}
	if rng.IntN(3) == 0 {
		q := url.Values{}
		for range 1 + rng.IntN(3) {
			q.Add(randomText(rng, "abAB-_.~ +=&/é", 4), randomText(rng, "xyXY-_.~ +=&/é", 5))
		}
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest("POST", u, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "TrentService."+targets[rng.IntN(len(targets))])
	for range rng.IntN(5) {
		name := "X-" + randomText(rng, "abcdefghijklmnopqrstuvwxyz0123456789-", 1+rng.IntN(8))
		for range 1 + rng.IntN(2) {
			req.Header.Add(name, randomText(rng, "aZ09 \t,;:=/\"'-  ", rng.IntN(20)))
		}
	}
	if rng.IntN(3) == 0 {
		h := sha256.Sum256(body)
		req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(h[:]))
	}
	return req, body
}

func randomBody(rng *rand.Rand) []byte {
	switch rng.IntN(4) {
	case 0:
		return nil
	case 1:
		return []byte(`{}`)
	case 2:
		b, _ := json.Marshal(map[string]any{"NumberOfBytes": 1 + rng.IntN(64), "Limit": 1 + rng.IntN(10)})
		return b
	}
	m := map[string]string{}
	for range rng.IntN(4) {
		m[randomText(rng, "KeyIdPlaintext", 6)] = randomText(rng, "abc \n\"\\é", 10)
	}
	b, _ := json.Marshal(m)
	return b
}

func randomText(rng *rand.Rand, alphabet string, n int) string {
	rs := []rune(alphabet)
	var b strings.Builder
	for range n {
		b.WriteRune(rs[rng.IntN(len(rs))])
	}
	return b.String()
}

// tamperWith changes a signed part of the request and says which.
func tamperWith(rng *rand.Rand, req *http.Request, body *[]byte) string {
	for {
		switch rng.IntN(6) {
		case 0:
			*body = append(*body, ' ')
			return "body"
		case 1:
			req.Header.Set("X-Amz-Target", req.Header.Get("X-Amz-Target")+"X")
			return "target"
		case 2:
			req.Header.Set("X-Amz-Date", time.Now().UTC().Add(-time.Second).Format("20060102T150405Z"))
			return "date"
		case 3:
			req.Header.Set("Content-Type", "application/json")
			return "content type"
		case 4:
			if req.URL.RawQuery == "" {
				continue
			}
			req.URL.RawQuery += "&extra=1"
			return "query"
		case 5:
			a := req.Header.Get("Authorization")
			req.Header.Set("Authorization", strings.Replace(a, "SignedHeaders=", "SignedHeaders=accept;", 1))
			return "signed header list"
		}
	}
}

// send sends a signed request and returns the exception it got ("" on
// success) and the status.
func send(t *testing.T, req *http.Request, body []byte) (string, int) {
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		Type string `json:"__type"`
	}
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &out), "%s", b)
	return out.Type, resp.StatusCode
}
