package k8skms_test

import (
	"context"
	"testing"

	"github.com/kmsring/kmsring/k8skms"
	"github.com/kmsring/kmsring/keyring"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	kmsv2 "k8s.io/kms/apis/v2"
)

// FuzzDecrypt sends the plugin any ciphertext and key_id: it never panics,
// and it answers a valid blob's plaintext or one of the codes bad input
// gets. Seeds: blobs of versions 1 and 2 (one disabled), another key's,
// empty and oversized inputs.
func FuzzDecrypt(f *testing.F) {
	ctx := context.Background()
	k, err := keyring.New(ctx)
	if err != nil {
		f.Fatal(err)
	}
	svc, err := k8skms.New(k)
	if err != nil {
		f.Fatal(err)
	}
	enc := func(s *k8skms.Service) *kmsv2.EncryptResponse {
		r, err := s.Encrypt(ctx, &kmsv2.EncryptRequest{Plaintext: make([]byte, 32)})
		if err != nil {
			f.Fatal(err)
		}
		return r
	}
	v1 := enc(svc)
	if _, err := k.Rotate(ctx); err != nil {
		f.Fatal(err)
	}
	v2 := enc(svc)
	if _, err := k.Rotate(ctx); err != nil {
		f.Fatal(err)
	}
	if err := k.DisableVersion(ctx, 2); err != nil {
		f.Fatal(err)
	}
	other, _ := keyring.New(ctx)
	otherSvc, _ := k8skms.New(other)
	f.Add(v1.Ciphertext, v1.KeyId)
	f.Add(v2.Ciphertext, v2.KeyId)
	f.Add(enc(otherSvc).Ciphertext, "")
	f.Add([]byte{}, "")
	f.Add(make([]byte, k8skms.MaxCiphertext+1), "x")
	f.Fuzz(func(t *testing.T, ct []byte, keyID string) {
		resp, err := svc.Decrypt(ctx, &kmsv2.DecryptRequest{Ciphertext: ct, KeyId: keyID})
		switch code := status.Code(err); code {
		case codes.OK:
			if len(resp.Plaintext) != 32 {
				t.Fatalf("opened %d bytes", len(resp.Plaintext))
			}
		case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition:
		default:
			t.Fatalf("code %v for bad input: %v", code, err)
		}
	})
}
