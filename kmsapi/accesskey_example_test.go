package kmsapi_test

import (
	"context"
	"fmt"
	"log"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/kmsapi"
	"github.com/kmsring/kmsring/store/memstore"
)

// Revoking a leaked access key: list the principal's keys, make the
// leaked one inactive (every endpoint sharing the store refuses it with
// UnrecognizedClientException), then delete it for good.
func ExampleUpdateAccessKey() {
	ctx := context.Background()
	st := memstore.New()
	rk, err := keyring.NewRootKey(make([]byte, keyring.RootKeySize))
	if err != nil {
		log.Fatal(err)
	}
	leaked, err := kmsapi.CreateAccessKey(ctx, st, rk, "orders-service", false)
	if err != nil {
		log.Fatal(err)
	}
	if err := kmsapi.UpdateAccessKey(ctx, st, rk, leaked.ID, kmsapi.AccessKeyInactive); err != nil {
		log.Fatal(err)
	}
	keys, err := kmsapi.ListAccessKeys(ctx, st, rk, "orders-service")
	if err != nil {
		log.Fatal(err)
	}
	for _, k := range keys {
		fmt.Println(k.Principal, k.Status)
	}
	if err := kmsapi.DeleteAccessKey(ctx, st, rk, leaked.ID); err != nil {
		log.Fatal(err)
	}
	keys, _ = kmsapi.ListAccessKeys(ctx, st, rk, "orders-service")
	fmt.Println(len(keys), "keys left")
	// Output:
	// orders-service Inactive
	// 0 keys left
}
