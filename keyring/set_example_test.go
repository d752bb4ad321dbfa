package keyring_test

import (
	"context"
	"fmt"
	"log"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/memstore"
)

// A key per tenant: the reader opens a set over the whole store and
// decrypts any tenant's blob; only the keys it uses are loaded, at most
// WithMaxLoaded of them at a time.
func ExampleOpenSet() {
	ctx := context.Background()
	st := memstore.New() // a boltstore or pgstore file with a root key in production
	var blobs [][]byte
	for _, tenant := range []string{"acme", "globex", "initech"} {
		k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithAlias("alias/tenant-"+tenant))
		if err != nil {
			log.Fatal(err)
		}
		blob, err := k.Encrypt(ctx, []byte("secret of "+tenant))
		if err != nil {
			log.Fatal(err)
		}
		blobs = append(blobs, blob)
	}

	set, err := keyring.OpenSet(ctx, st, keyring.WithMaxLoaded(2))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("loaded after OpenSet:", set.Loaded())
	for _, blob := range blobs {
		pt, err := set.Decrypt(ctx, blob) // the blob names its key
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s (loaded: %d)\n", pt, set.Loaded())
	}
	// Output:
	// loaded after OpenSet: 0
	// secret of acme (loaded: 1)
	// secret of globex (loaded: 2)
	// secret of initech (loaded: 2)
}
