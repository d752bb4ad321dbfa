package k8skms_test

import (
	"context"
	"fmt"

	"github.com/kmsring/kmsring/k8skms"
	"github.com/kmsring/kmsring/keyring"
	kmsv2 "k8s.io/kms/apis/v2"
)

// The plugin over a key: what the API server sees before and after a
// rotation. In a real process, register svc on a grpc.Server that serves
// k8skms.Listen("unix:///var/run/kmsring/kms.sock").
func ExampleNew() {
	ctx := context.Background()
	k, _ := keyring.New(ctx) // in production: keyring.Load from a persistent store
	svc, _ := k8skms.New(k)

	st, _ := svc.Status(ctx, &kmsv2.StatusRequest{})
	fmt.Println(st.Version, st.Healthz)
	enc, _ := svc.Encrypt(ctx, &kmsv2.EncryptRequest{Plaintext: make([]byte, 32)})
	fmt.Println(enc.KeyId == st.KeyId, len(enc.Ciphertext))

	k.Rotate(ctx)
	st2, _ := svc.Status(ctx, &kmsv2.StatusRequest{})
	fmt.Println(st2.KeyId != st.KeyId)
	dec, _ := svc.Decrypt(ctx, &kmsv2.DecryptRequest{Ciphertext: enc.Ciphertext, KeyId: st.KeyId})
	fmt.Println(len(dec.Plaintext))
	// Output:
	// v2 ok
	// true 93
	// true
	// 32
}
