package kmsapi

import (
	"bytes"
	"context"
	"net/http/httptest"
	"testing"
)

// BenchmarkVerify is SigV4 verification of a GenerateDataKey request as
// aws-sdk-go-v2 signs it, the access key and signing key cached.
func BenchmarkVerify(b *testing.B) {
	v, _ := newTestVerifier()
	body := []byte(`{"EncryptionContext":{"tenant":"acme"},"KeyId":"0b7b8e0e-6f0c-4e8a-9c5e-3f4b2a1d0c9e","KeySpec":"AES_256"}`)
	r := newKMSRequest("GenerateDataKey", body)
	r.Header.Set("Amz-Sdk-Invocation-Id", "4f7a2b9c-3d1e-4f5a-8b6c-7d8e9f0a1b2c")
	r.Header.Set("Amz-Sdk-Request", "attempt=1; max=1")
	r.Header.Set("Accept-Encoding", "identity")
	s := goodSigner
	s.signed = []string{"accept-encoding", "amz-sdk-invocation-id", "amz-sdk-request", "content-type", "host", "x-amz-date", "x-amz-target"}
	s.sign(r, body, testNow)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.verify(ctx, r, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeHTTP is the handler's whole cost of a GenerateDataKey and a
// Decrypt by a non-admin principal under a policy with a condition, without
// the network.
func BenchmarkServeHTTP(b *testing.B) {
	e := newEnv(&testing.T{})
	id, _ := e.admin.createKey(obj{})
	e.admin.do("PutKeyPolicy", obj{"KeyId": id, "Policy": `{"Statement": {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"},
		"Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*", "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "acme"}}}}`})
	blob := e.alice.do("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256", "EncryptionContext": obj{"tenant": "acme"}})["CiphertextBlob"]
	for name, body := range map[string]string{
		"GenerateDataKey": `{"EncryptionContext":{"tenant":"acme"},"KeyId":"` + id + `","KeySpec":"AES_256"}`,
		"Decrypt":         `{"CiphertextBlob":"` + blob.(string) + `","EncryptionContext":{"tenant":"acme"}}`,
	} {
		b.Run(name, func(b *testing.B) {
			r := newKMSRequest(name, []byte(body))
			e.alice.s.sign(r, []byte(body), testNow)
			b.ReportAllocs()
			for b.Loop() {
				r.Body = readCloser{bytes.NewReader([]byte(body))}
				w := httptest.NewRecorder()
				e.h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatal(w.Body.String())
				}
			}
		})
	}
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
