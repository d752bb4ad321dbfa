package boltstore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/boltstore"
)

// A key kept in an embedded file survives the process: open the file again
// and load the key by its alias.
func ExampleOpen() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "kmsring-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	rk, err := keyring.RootKeyFile(filepath.Join(dir, "root.key")) // created 0600 on first use
	if err != nil {
		log.Fatal(err)
	}

	st, err := boltstore.Open(filepath.Join(dir, "kmsring.db"))
	if err != nil {
		log.Fatal(err)
	}
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithAlias("alias/orders"))
	if err != nil {
		log.Fatal(err)
	}
	blob, err := k.Encrypt(ctx, []byte("kept across restarts"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := k.Rotate(ctx); err != nil {
		log.Fatal(err)
	}
	st.Close()

	// Later, in another process.
	st, err = boltstore.Open(filepath.Join(dir, "kmsring.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	k, err = keyring.Load(ctx, st, "alias/orders", keyring.WithRootKey(rk))
	if err != nil {
		log.Fatal(err)
	}
	md, err := k.Describe(ctx)
	if err != nil {
		log.Fatal(err)
	}
	pt, err := k.Decrypt(ctx, blob)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(md.CurrentVersion, string(pt))
	// Output: 2 kept across restarts
}
