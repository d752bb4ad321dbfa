package kmsapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fastSeeds are request bodies as the clients send them: aws-sdk-go-v2
// (names sorted, no spaces), boto3 and the AWS CLI (", " and ": "), the
// JavaScript SDK (its own order), and the unusual forms the fast decoder
// leaves to encoding/json.
var fastSeeds = []string{
	// aws-sdk-go-v2
	`{"EncryptionContext":{"tenant":"acme"},"KeyId":"0b7b8e0e-6f0c-4e8a-9c5e-3f4b2a1d0c9e","KeySpec":"AES_256"}`,
	`{"CiphertextBlob":"AQEBAHhGs2zBrVGx8iO2AAAAfjB8BgkqhkiG9w0BBwagbzBtAgEAMGgGCSqGSIb3DQEHATAeBglghkgBZQMEAS4wEQQMrw==","EncryptionContext":{"tenant":"acme"}}`,
	`{"KeyId":"alias/app","Plaintext":"aGVsbG8="}`,
	`{"KeyId":"arn:aws:kms:us-east-1:111122223333:key/0b7b8e0e-6f0c-4e8a-9c5e-3f4b2a1d0c9e","NumberOfBytes":64}`,
	// boto3 and the AWS CLI
	`{"KeyId": "alias/app", "KeySpec": "AES_128", "EncryptionContext": {"purpose": "test", "tenant": "b"}}`,
	`{"CiphertextBlob": "AAEC", "KeyId": "alias/app", "EncryptionAlgorithm": "SYMMETRIC_DEFAULT", "DryRun": true}`,
	// the JavaScript SDK
	`{"KeyId":"alias/app","KeySpec":"AES_256","EncryptionContext":{}}`,
	// left to encoding/json
	`{"keyid":"a","KeySpec":"AES_256"}`,
	`{"KeyId":"a","KeyId":"b"}`,
	`{"KeyId":null,"EncryptionContext":null}`,
	`{"KeyId":"a\u00e9\"","EncryptionContext":{"k":"\ud83d\ude00"}}`,
	`{"NumberOfBytes":1e2}`, `{"NumberOfBytes":-1}`, `{"NumberOfBytes":1.0}`, `{"NumberOfBytes":01}`,
	`{"NumberOfBytes":99999999999999999999}`, `{"DryRun":truex}`, `{"DryRun":"true"}`,
	`{"CiphertextBlob":"AAE"}`, `{"CiphertextBlob":"AA==AA=="}`, `{"Plaintext":""}`,
	`{"GrantTokens":["t"],"Recipient":{}}`, `{"Unknown":[1,{"a":2}]}`,
	`{"KeyId":"a"} x`, `{"KeyId":"a"}}`, `{"KeyId":"a",}`, `[]`, `"x"`, `{}`, ` { } `, "{\"KeyId\":\"\xff\"}",
	"{\"KeyId\":\"a\tb\"}", `{"EncryptionContext":{"a":"1","a":"2"}}`,
}

// FuzzFastDecode checks that whatever the fast decoders take, encoding/json
// takes too and decodes to the same input; and that the fast encoders
// write what encoding/json writes.
func FuzzFastDecode(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFastDecode[generateDataKeyInput](t, body)
		checkFastDecode[decryptInput](t, body)
		checkFastDecode[encryptInput](t, body)
		checkFastEncode(t, body)
	})
}

func checkFastDecode[In any](t *testing.T, body []byte) {
	var fast In
	if !decodeFast(&fast, body) {
		return
	}
	var want In
	require.NoError(t, json.Unmarshal(body, &want), "the fast decoder took %q", body)
	require.Equal(t, want, fast, "%q", body)
}

func checkFastEncode(t *testing.T, b []byte) {
	s := string(b)
	for _, v := range []jsonAppender{
		generateDataKeyOutput{b, b, s}, generateDataKeyOutput{nil, nil, s},
		decryptOutput{s, b, symmetricDefault}, decryptOutput{s, nil, s},
		encryptOutput{b, s, symmetricDefault}, encryptOutput{nil, s, s},
	} {
		want, err := json.Marshal(v)
		require.NoError(t, err)
		require.Equal(t, string(want), string(v.appendJSON(nil)), "%#v", v)
	}
}

// TestFastDecode checks that the seeds' plain forms take the fast path,
// and that the forms left to encoding/json do not.
func TestFastDecode(t *testing.T) {
	for _, s := range fastSeeds[:7] {
		var gdk generateDataKeyInput
		var dec decryptInput
		var enc encryptInput
		assert.True(t, decodeFast(&gdk, []byte(s)) || decodeFast(&dec, []byte(s)) || decodeFast(&enc, []byte(s)), s)
	}
	for _, s := range fastSeeds[7:] {
		var gdk generateDataKeyInput
		var dec decryptInput
		var enc encryptInput
		ok := decodeFast(&gdk, []byte(s)) || decodeFast(&dec, []byte(s)) || decodeFast(&enc, []byte(s))
		if s == `{}` || s == ` { } ` || s == `{"Plaintext":""}` || s == `{"EncryptionContext":{"a":"1","a":"2"}}` {
			assert.True(t, ok, s)
			continue
		}
		assert.False(t, ok, s)
	}
	for _, s := range fastSeeds {
		checkFastDecode[generateDataKeyInput](t, []byte(s))
		checkFastDecode[decryptInput](t, []byte(s))
		checkFastDecode[encryptInput](t, []byte(s))
		checkFastEncode(t, []byte(s))
	}
}

// TestRequestID checks that request IDs are random version 4 UUIDs in
// their canonical form, as uuid.NewString made them.
func TestRequestID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := newRequestID()
		u, err := uuid.Parse(id)
		require.NoError(t, err)
		assert.Equal(t, u.String(), id)
		assert.Equal(t, uuid.Version(4), u.Version())
		assert.Equal(t, uuid.RFC4122, u.Variant())
		assert.False(t, seen[id])
		seen[id] = true
	}
}

// TestPooledBuffersDoNotLeak sends requests of decreasing size through
// the pooled body and response buffers: each answer is its own request's.
func TestPooledBuffersDoNotLeak(t *testing.T) {
	e := newEnv(t)
	id, _ := e.admin.createKey(obj{})
	for _, n := range []int{1024, 64, 3} {
		pt := bytes.Repeat([]byte{byte(n)}, n)
		blob := e.admin.do("Encrypt", obj{"KeyId": id, "Plaintext": pt, "EncryptionContext": obj{"n": strings.Repeat("x", n)}})["CiphertextBlob"]
		out := e.admin.do("Decrypt", obj{"CiphertextBlob": blob, "EncryptionContext": obj{"n": strings.Repeat("x", n)}})
		assert.Equal(t, base64.StdEncoding.EncodeToString(pt), out["Plaintext"])
	}
}
