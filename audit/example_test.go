package audit_test

import (
	"context"
	"fmt"
	"log"

	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Which version did GenerateDataKey use before and after a rotation? The
// audit log alone says.
func ExampleLookupEvents() {
	ctx := audit.WithPrincipal(context.Background(), "svc-billing")
	st := memstore.New()
	logger := audit.New(audit.WithStore(st))
	defer logger.Close()
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithAuditor(logger))
	if err != nil {
		log.Fatal(err)
	}
	for range 2 {
		if _, err := k.GenerateDataKey(ctx); err != nil {
			log.Fatal(err)
		}
		if _, err := k.Rotate(ctx); err != nil {
			log.Fatal(err)
		}
	}
	if err := logger.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	recs, _, err := audit.LookupEvents(ctx, st, audit.Query{KeyID: k.ID()})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range recs {
		fmt.Println(r.Seq, r.Operation, r.Version, r.Origin, r.Principal)
	}
	v, err := audit.Verify(ctx, st)
	fmt.Println(v.Records, "records verified:", err)
	// Output:
	// 1 CreateKey 1 initial svc-billing
	// 2 GenerateDataKey 1  svc-billing
	// 3 RotateKey 2 on-demand svc-billing
	// 4 GenerateDataKey 2  svc-billing
	// 5 RotateKey 3 on-demand svc-billing
	// 5 records verified: <nil>
}

func ExampleBus() {
	ctx := context.Background()
	bus := audit.NewBus()
	k, err := keyring.New(ctx, keyring.WithAuditor(bus))
	if err != nil {
		log.Fatal(err)
	}
	sub := bus.Subscribe(audit.Filter{KeyID: k.ID(), Types: []audit.EventType{audit.EventRotated}}, 16)
	defer sub.Close()
	if _, err := k.Rotate(ctx); err != nil {
		log.Fatal(err)
	}
	e := <-sub.Events()
	fmt.Println(e.Type, e.PreviousVersion, "->", e.Version, e.Origin)
	// Output: KeyRotated 1 -> 2 on-demand
}

// A log that someone who can write the store, but does not hold the root
// key, cannot rewrite: the chain is keyed by the store's audit chain key.
func ExampleWithMAC() {
	ctx := context.Background()
	st := memstore.New()
	rk, err := keyring.NewRootKey(make([]byte, keyring.RootKeySize)) // use RootKeyFile or a KMS
	if err != nil {
		log.Fatal(err)
	}
	mac, err := keyring.AuditMAC(ctx, st, rk)
	if err != nil {
		log.Fatal(err)
	}
	logger := audit.New(audit.WithStore(st), audit.WithMAC(mac))
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithAuditor(logger))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := k.GenerateDataKey(ctx); err != nil {
		log.Fatal(err)
	}
	if err := logger.Close(); err != nil {
		log.Fatal(err)
	}
	v, err := audit.Verify(ctx, st, audit.VerifyWithMAC(mac))
	fmt.Println(v.Records, "records verified:", err)
	_, err = audit.Verify(ctx, st)
	fmt.Println(err)
	// Output:
	// 2 records verified: <nil>
	// audit: the log is keyed: verify it with the audit chain key (VerifyWithMAC) (record 1 carries a MAC)
}

// A key per tenant: the per-key counters keep the keys used most recently.
func ExampleWithMaxKeySeries() {
	ctx := context.Background()
	c := audit.NewCollector(audit.WithMaxKeySeries(2))
	for _, tenant := range []string{"t1", "t2", "t3"} {
		k, err := keyring.New(ctx, keyring.WithAuditor(c), keyring.WithDescription("key of "+tenant))
		if err != nil {
			log.Fatal(err)
		}
		if _, err := k.GenerateDataKey(ctx); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(testutil.CollectAndCount(c, "kmsring_operations_total"))
	// Output:
	// 4
}
