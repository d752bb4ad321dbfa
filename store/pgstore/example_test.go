package pgstore_test

import (
	"context"
	"log"
	"time"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/rotation"
	"github.com/kmsring/kmsring/store/pgstore"
)

// Every replica of a service runs this: the same key, its versions shared
// through PostgreSQL, rotation coordinated through the database.
func ExampleOpen() {
	ctx := context.Background()
	st, err := pgstore.Open(ctx, "postgres://kmsring@127.0.0.1:5432/app?application_name=orders-api")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	rk, err := keyring.RootKeyFile("/etc/orders-api/kmsring.key")
	if err != nil {
		log.Fatal(err)
	}
	k, err := keyring.Load(ctx, st, "alias/orders", keyring.WithRootKey(rk))
	if err != nil {
		log.Fatal(err)
	}
	go k.Watch(ctx, 30*time.Second) // follow other replicas' rotations

	s := rotation.New()
	s.Add(k)
	go s.Run(ctx) // one new version per period, whichever replica wins

	dk, err := k.GenerateDataKey(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer dk.Destroy()
}
