package kmsapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// env is a handler over a memstore with an admin and a non-admin access
// key, driven through ServeHTTP with signed requests.
type env struct {
	t     *testing.T
	st    store.Store
	rk    tink.AEAD
	clk   *clockwork.FakeClock
	h     *Handler
	admin *client
	alice *client
}

type client struct {
	e *env
	h *Handler
	s testSigner
}

func newEnv(t *testing.T, opts ...Option) *env { return newEnvOn(t, memstore.New(), opts...) }

func newEnvOn(t *testing.T, st store.Store, opts ...Option) *env {
	e := &env{t: t, st: st, rk: testRootKey(t), clk: clockwork.NewFakeClockAt(testNow)}
	e.h = e.handler(opts...)
	e.admin = e.client(e.h, "root", true)
	e.alice = e.client(e.h, "alice", false)
	return e
}

// handler returns another handler over the same store: another process.
func (e *env) handler(opts ...Option) *Handler { return e.handlerOn(e.st, opts...) }

// handlerOn returns a handler over st, which may be another connection to
// the env's store.
func (e *env) handlerOn(st store.Store, opts ...Option) *Handler {
	h, err := New(st, e.rk, append([]Option{WithClock(e.clk), WithAccount(testAccount)}, opts...)...)
	require.NoError(e.t, err)
	return h
}

func (e *env) client(h *Handler, principal string, admin bool) *client {
	ak, err := CreateAccessKey(context.Background(), e.st, e.rk, principal, admin)
	require.NoError(e.t, err)
	return &client{e: e, h: h, s: testSigner{id: ak.ID, secret: ak.SecretAccessKey(), region: "us-east-1", service: "kms"}}
}

// via returns the client's credentials against another handler.
func (c *client) via(h *Handler) *client { return &client{e: c.e, h: h, s: c.s} }

// raw sends an operation and returns the status and the decoded body.
func (c *client) raw(op string, in any) (int, map[string]any) {
	t := c.e.t
	body, err := json.Marshal(in)
	require.NoError(t, err)
	r := httptest.NewRequest("POST", "http://127.0.0.1:8080/", bytes.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	r.Header.Set("X-Amz-Target", targetPrefix+op)
	c.s.sign(r, body, c.e.clk.Now())
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, r)
	assert.Equal(t, contentType, w.Header().Get("Content-Type"))
	assert.NotEmpty(t, w.Header().Get("X-Amzn-Requestid"))
	var out map[string]any
	d := json.NewDecoder(w.Body)
	d.UseNumber()
	require.NoError(t, d.Decode(&out), "response body of %s", op)
	return w.Code, out
}

// do sends an operation that must succeed.
func (c *client) do(op string, in any) map[string]any {
	code, out := c.raw(op, in)
	require.Equal(c.e.t, http.StatusOK, code, "%s: %v", op, out)
	return out
}

// fail sends an operation that must fail with the exception typ.
func (c *client) fail(op string, in any, typ string) string {
	code, out := c.raw(op, in)
	require.Equal(c.e.t, typ, out["__type"], "%s: %v", op, out)
	assert.Equal(c.e.t, (&apiError{Type: typ}).status(), code)
	msg, _ := out["message"].(string)
	return msg
}

type obj = map[string]any

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func unb64(t *testing.T, v any) []byte {
	s, ok := v.(string)
	require.True(t, ok, "a base64 string, not %v", v)
	b, err := base64.StdEncoding.DecodeString(s)
	require.NoError(t, err)
	return b
}

func (c *client) createKey(in obj) (id, arn string) {
	md := c.do("CreateKey", in)["KeyMetadata"].(obj)
	return md["KeyId"].(string), md["Arn"].(string)
}

func TestNewRejectsBadOptions(t *testing.T) {
	st, rk := memstore.New(), testRootKey(t)
	for _, o := range []Option{WithRegion("mars"), WithAccount("123"), WithClock(nil), WithAuditor(nil),
		WithLogger(nil), WithMaxRequestSize(10), WithRefreshInterval(-1)} {
		_, err := New(st, rk, o)
		assert.Error(t, err)
	}
	_, err := New(nil, rk)
	assert.Error(t, err)
}

// The seed's rotation runbook, through the wire protocol.
func TestRunbook(t *testing.T) {
	e := newEnv(t)
	a := e.admin
	id, arn := a.createKey(obj{"Description": "orders"})
	assert.Equal(t, "arn:aws:kms:us-east-1:111122223333:key/"+id, arn)
	a.do("CreateAlias", obj{"AliasName": "alias/orders", "TargetKeyId": id})
	a.do("EnableKeyRotation", obj{"KeyId": "alias/orders", "RotationPeriodInDays": 90})

	st := a.do("GetKeyRotationStatus", obj{"KeyId": id})
	assert.Equal(t, true, st["KeyRotationEnabled"])
	assert.Equal(t, json.Number("90"), st["RotationPeriodInDays"])
	next, err := st["NextRotationDate"].(json.Number).Float64()
	require.NoError(t, err)
	assert.Equal(t, float64(testNow.Add(90*day).Unix()), next, "an epoch-second number")

	dk := a.do("GenerateDataKey", obj{"KeyId": "alias/orders", "KeySpec": "AES_256", "EncryptionContext": obj{"id": "1"}})
	assert.Len(t, unb64(t, dk["Plaintext"]), 32)
	assert.Equal(t, arn, dk["KeyId"])
	assert.Equal(t, obj{"KeyId": id}, a.do("RotateKeyOnDemand", obj{"KeyId": arn}))

	rots := a.do("ListKeyRotations", obj{"KeyId": "arn:aws:kms:us-east-1:111122223333:alias/orders"})
	require.Len(t, rots["Rotations"], 1)
	assert.Equal(t, "ON_DEMAND", rots["Rotations"].([]any)[0].(obj)["RotationType"])
	assert.Equal(t, false, rots["Truncated"])

	md := a.do("DescribeKey", obj{"KeyId": "alias/orders"})["KeyMetadata"].(obj)
	assert.Equal(t, "Enabled", md["KeyState"])
	assert.Equal(t, "orders", md["Description"])
	assert.Equal(t, "SYMMETRIC_DEFAULT", md["KeySpec"])
	assert.Equal(t, testAccount, md["AWSAccountId"])

	// The old data key still decrypts; ReEncrypt moves it to version 2.
	dec := a.do("Decrypt", obj{"CiphertextBlob": dk["CiphertextBlob"], "EncryptionContext": obj{"id": "1"}})
	assert.Equal(t, dk["Plaintext"], dec["Plaintext"])
	re := a.do("ReEncrypt", obj{"CiphertextBlob": dk["CiphertextBlob"], "SourceEncryptionContext": obj{"id": "1"},
		"DestinationKeyId": "alias/orders", "DestinationEncryptionContext": obj{"id": "1"}})
	assert.Equal(t, arn, re["SourceKeyId"])
	dec = a.do("Decrypt", obj{"CiphertextBlob": re["CiphertextBlob"], "EncryptionContext": obj{"id": "1"}, "KeyId": id})
	assert.Equal(t, dk["Plaintext"], dec["Plaintext"])

	enc := a.do("Encrypt", obj{"KeyId": id, "Plaintext": b64([]byte("secret"))})
	dec = a.do("Decrypt", obj{"CiphertextBlob": enc["CiphertextBlob"]})
	assert.Equal(t, "secret", string(unb64(t, dec["Plaintext"])))

	a.do("DisableKey", obj{"KeyId": id})
	a.fail("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256"}, "DisabledException")
	a.fail("RotateKeyOnDemand", obj{"KeyId": id}, "DisabledException")
	a.do("EnableKey", obj{"KeyId": id})

	del := a.do("ScheduleKeyDeletion", obj{"KeyId": id, "PendingWindowInDays": 7})
	assert.Equal(t, "PendingDeletion", del["KeyState"])
	assert.Equal(t, json.Number("7"), del["PendingWindowInDays"])
	a.fail("Decrypt", obj{"CiphertextBlob": enc["CiphertextBlob"]}, "KMSInvalidStateException")
	a.fail("EnableKey", obj{"KeyId": id}, "KMSInvalidStateException")
	assert.Equal(t, obj{"KeyId": arn}, a.do("CancelKeyDeletion", obj{"KeyId": id}))
	md = a.do("DescribeKey", obj{"KeyId": id})["KeyMetadata"].(obj)
	assert.Equal(t, "Disabled", md["KeyState"], "CancelKeyDeletion leaves the key disabled, as AWS does")
	assert.Equal(t, false, md["Enabled"])
	a.fail("CancelKeyDeletion", obj{"KeyId": id}, "KMSInvalidStateException")
}

func TestKeyIDForms(t *testing.T) {
	e := newEnv(t)
	a := e.admin
	id, arn := a.createKey(obj{})
	a.do("CreateAlias", obj{"AliasName": "alias/app/one", "TargetKeyId": arn})
	for _, k := range []string{id, arn, "alias/app/one", "arn:aws:kms:us-east-1:111122223333:alias/app/one"} {
		assert.Equal(t, id, a.do("DescribeKey", obj{"KeyId": k})["KeyMetadata"].(obj)["KeyId"], k)
	}
	for _, k := range []string{
		"arn:aws:kms:eu-west-1:111122223333:key/" + id, "arn:aws:kms:us-east-1:999999999999:key/" + id,
		"alias/none", "0b7b8e0e-6f0c-4e8a-9c5e-3f4b2a1d0c9e", "not-a-key", "kmsring:store", "arn:aws:kms:us-east-1:111122223333:thing/x",
	} {
		a.fail("DescribeKey", obj{"KeyId": k}, "NotFoundException")
	}
	a.fail("DescribeKey", obj{}, "ValidationException")
	a.fail("CreateAlias", obj{"AliasName": "alias/two", "TargetKeyId": "alias/app/one"}, "ValidationException")
	a.fail("CreateAlias", obj{"AliasName": "alias/app/one", "TargetKeyId": id}, "AlreadyExistsException")
	a.fail("CreateAlias", obj{"AliasName": "alias/aws/s3", "TargetKeyId": id}, "InvalidAliasNameException")
	a.fail("CreateAlias", obj{"AliasName": "orders", "TargetKeyId": id}, "ValidationException")
}

func TestAliases(t *testing.T) {
	e := newEnv(t)
	a := e.admin
	k1, _ := a.createKey(obj{})
	k2, _ := a.createKey(obj{})
	for _, n := range []string{"alias/a", "alias/b", "alias/c"} {
		a.do("CreateAlias", obj{"AliasName": n, "TargetKeyId": k1})
	}
	a.do("UpdateAlias", obj{"AliasName": "alias/b", "TargetKeyId": k2})
	assert.Equal(t, k2, a.do("DescribeKey", obj{"KeyId": "alias/b"})["KeyMetadata"].(obj)["KeyId"])
	a.do("DeleteAlias", obj{"AliasName": "alias/c"})
	a.fail("DescribeKey", obj{"KeyId": "alias/c"}, "NotFoundException")
	a.fail("DeleteAlias", obj{"AliasName": "alias/c"}, "NotFoundException")
	a.fail("UpdateAlias", obj{"AliasName": "alias/c", "TargetKeyId": k1}, "NotFoundException")

	l := a.do("ListAliases", obj{"Limit": 1})
	assert.Equal(t, []any{obj{"AliasName": "alias/a", "AliasArn": "arn:aws:kms:us-east-1:111122223333:alias/a", "TargetKeyId": k1}}, l["Aliases"])
	assert.Equal(t, true, l["Truncated"])
	l = a.do("ListAliases", obj{"Limit": 1, "Marker": l["NextMarker"]})
	assert.Equal(t, "alias/b", l["Aliases"].([]any)[0].(obj)["AliasName"])
	assert.Equal(t, false, l["Truncated"])
	l = a.do("ListAliases", obj{"KeyId": k2})
	assert.Len(t, l["Aliases"], 1)

	keys := a.do("ListKeys", obj{"Limit": 1})
	assert.Len(t, keys["Keys"], 1)
	assert.Equal(t, true, keys["Truncated"])
	keys = a.do("ListKeys", obj{"Marker": keys["NextMarker"]})
	assert.Len(t, keys["Keys"], 1, "the reserved records are not keys")
	a.fail("ListKeys", obj{"Limit": 0}, "ValidationException")
}

func TestDecryptErrors(t *testing.T) {
	e := newEnv(t)
	a := e.admin
	k1, _ := a.createKey(obj{})
	k2, _ := a.createKey(obj{})
	blob := a.do("Encrypt", obj{"KeyId": k1, "Plaintext": b64([]byte("x")), "EncryptionContext": obj{"a": "b"}})["CiphertextBlob"]
	a.fail("Decrypt", obj{"CiphertextBlob": blob, "KeyId": k2, "EncryptionContext": obj{"a": "b"}}, "IncorrectKeyException")
	a.fail("Decrypt", obj{"CiphertextBlob": blob}, "InvalidCiphertextException")
	a.fail("Decrypt", obj{"CiphertextBlob": blob, "EncryptionContext": obj{"a": "c"}}, "InvalidCiphertextException")
	raw := unb64(t, blob)
	raw[len(raw)-1] ^= 1
	a.fail("Decrypt", obj{"CiphertextBlob": b64(raw), "EncryptionContext": obj{"a": "b"}}, "InvalidCiphertextException")
	a.fail("Decrypt", obj{"CiphertextBlob": b64([]byte("not a blob"))}, "InvalidCiphertextException")
	a.fail("Decrypt", obj{}, "ValidationException")
	a.fail("Decrypt", obj{"CiphertextBlob": blob, "EncryptionAlgorithm": "RSAES_OAEP_SHA_256", "EncryptionContext": obj{"a": "b"}}, "InvalidKeyUsageException")
	a.fail("Encrypt", obj{"KeyId": k1, "Plaintext": b64(make([]byte, 4097))}, "ValidationException")
	a.fail("Encrypt", obj{"KeyId": k1, "Plaintext": b64([]byte("x")), "DryRun": true}, "DryRunOperationException")
}

// ReEncrypt without a destination context re-encrypts with none, as AWS
// does; across keys, too.
func TestReEncryptContext(t *testing.T) {
	e := newEnv(t)
	a := e.admin
	k1, arn1 := a.createKey(obj{})
	k2, arn2 := a.createKey(obj{})
	ec := obj{"tenant": "acme"}
	blob := a.do("Encrypt", obj{"KeyId": k1, "Plaintext": b64([]byte("pt")), "EncryptionContext": ec})["CiphertextBlob"]
	for _, dst := range []string{k1, k2} {
		re := a.do("ReEncrypt", obj{"CiphertextBlob": blob, "SourceEncryptionContext": ec, "DestinationKeyId": dst})
		assert.Equal(t, arn1, re["SourceKeyId"])
		a.fail("Decrypt", obj{"CiphertextBlob": re["CiphertextBlob"], "EncryptionContext": ec}, "InvalidCiphertextException")
		dec := a.do("Decrypt", obj{"CiphertextBlob": re["CiphertextBlob"]})
		assert.Equal(t, "pt", string(unb64(t, dec["Plaintext"])))
	}
	re := a.do("ReEncrypt", obj{"CiphertextBlob": blob, "SourceEncryptionContext": ec, "SourceKeyId": arn1,
		"DestinationKeyId": arn2, "DestinationEncryptionContext": obj{"b": "c"}})
	assert.Equal(t, arn2, re["KeyId"])
	a.do("Decrypt", obj{"CiphertextBlob": re["CiphertextBlob"], "EncryptionContext": obj{"b": "c"}})
	a.fail("ReEncrypt", obj{"CiphertextBlob": blob, "SourceEncryptionContext": ec, "SourceKeyId": k2, "DestinationKeyId": k1}, "IncorrectKeyException")
}

func TestGenerateDataKeySizes(t *testing.T) {
	e := newEnv(t)
	a := e.admin
	id, _ := a.createKey(obj{})
	for in, size := range map[string]int{`{"KeySpec":"AES_128"}`: 16, `{"NumberOfBytes":32}`: 32, `{"NumberOfBytes":64}`: 64, `{"NumberOfBytes":1}`: 1} {
		var req obj
		require.NoError(t, json.Unmarshal([]byte(in), &req))
		req["KeyId"] = id
		dk := a.do("GenerateDataKey", req)
		pt := unb64(t, dk["Plaintext"])
		assert.Len(t, pt, size, in)
		dec := a.do("Decrypt", obj{"CiphertextBlob": dk["CiphertextBlob"]})
		assert.Equal(t, pt, unb64(t, dec["Plaintext"]), in)
		wo := a.do("GenerateDataKeyWithoutPlaintext", req)
		assert.NotContains(t, wo, "Plaintext")
		assert.Len(t, unb64(t, a.do("Decrypt", obj{"CiphertextBlob": wo["CiphertextBlob"]})["Plaintext"]), size)
	}
	for _, in := range []obj{{}, {"KeySpec": "AES_512"}, {"KeySpec": "AES_256", "NumberOfBytes": 32}, {"NumberOfBytes": 0}, {"NumberOfBytes": 1025}} {
		in["KeyId"] = id
		a.fail("GenerateDataKey", in, "ValidationException")
	}
	assert.Len(t, unb64(t, e.alice.do("GenerateRandom", obj{"NumberOfBytes": 100})["Plaintext"]), 100, "any principal")
	a.fail("GenerateRandom", obj{"NumberOfBytes": 0}, "ValidationException")
}

func TestProtocol(t *testing.T) {
	e := newEnv(t, WithMaxRequestSize(4096))
	a := e.admin
	id, _ := a.createKey(obj{})
	a.do("DescribeKey", obj{"KeyId": id, "SomeFutureField": obj{"x": 1}})
	a.fail("CreateGrant", obj{"KeyId": id}, "UnsupportedOperationException")
	a.fail("Sign", obj{"KeyId": id}, "UnsupportedOperationException")
	a.fail("DescribeKey", obj{"KeyId": 5}, "SerializationException")
	a.fail("Encrypt", obj{"KeyId": id, "Plaintext": "not base64!"}, "SerializationException")
	a.fail("DescribeKey", obj{"KeyId": id, "Pad": string(make([]byte, 5000))}, "RequestEntityTooLargeException")
	a.fail("CreateKey", obj{"KeySpec": "RSA_2048"}, "UnsupportedOperationException")
	a.fail("CreateKey", obj{"KeyUsage": "SIGN_VERIFY"}, "UnsupportedOperationException")
	a.fail("CreateKey", obj{"MultiRegion": true}, "UnsupportedOperationException")

	r := httptest.NewRequest("GET", "/", nil)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	assert.Equal(t, http.StatusBadRequest, w.Code)
	assert.Contains(t, w.Body.String(), `"__type":"UnknownOperationException"`)

	// Unsigned.
	r = httptest.NewRequest("POST", "/", bytes.NewReader([]byte(`{}`)))
	r.Header.Set("X-Amz-Target", "TrentService.ListKeys")
	w = httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	assert.Equal(t, http.StatusBadRequest, w.Code)
	assert.JSONEq(t, `{"__type":"MissingAuthenticationTokenException","message":"Request is missing Authentication Token"}`, w.Body.String())
	assert.Equal(t, "MissingAuthenticationTokenException", w.Header().Get("X-Amzn-Errortype"))
}

func TestEpochJSON(t *testing.T) {
	b, err := json.Marshal(struct{ T *epoch }{epochOf(testNow.Add(1500 * 1e6))})
	require.NoError(t, err)
	assert.Equal(t, `{"T":1772366401.5}`, string(b))
}
