package envelope_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/keyring"
)

func ExampleSeal() {
	ctx := context.Background()
	k, err := keyring.New(ctx)
	if err != nil {
		log.Fatal(err)
	}
	ec := map[string]string{"table": "orders", "id": "1001"}
	sealed, err := envelope.Seal(ctx, k, []byte("card 4111..."), envelope.WithEncryptionContext(ec))
	if err != nil {
		log.Fatal(err)
	}

	h, err := envelope.Inspect(sealed)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sealed under version", h.Version, "of the key:", h.KeyID == k.ID())

	pt, err := envelope.Open(ctx, k, sealed, envelope.WithEncryptionContext(ec))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(pt))
	// Output:
	// sealed under version 1 of the key: true
	// card 4111...
}

func ExampleNewWriter() {
	ctx := context.Background()
	k, err := keyring.New(ctx)
	if err != nil {
		log.Fatal(err)
	}
	var file bytes.Buffer
	w, err := envelope.NewWriter(ctx, k, &file)
	if err != nil {
		log.Fatal(err)
	}
	for i := range 3 {
		fmt.Fprintf(w, "line %d\n", i)
	}
	if err := w.Close(); err != nil { // writes the final segment
		log.Fatal(err)
	}

	r, err := envelope.NewReader(ctx, k, &file)
	if err != nil {
		log.Fatal(err)
	}
	pt, err := io.ReadAll(r)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(pt))
	// Output:
	// line 0
	// line 1
	// line 2
}

func ExampleRewrap() {
	ctx := context.Background()
	k, err := keyring.New(ctx)
	if err != nil {
		log.Fatal(err)
	}
	sealed, err := envelope.Seal(ctx, k, []byte("archived record"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := k.Rotate(ctx); err != nil {
		log.Fatal(err)
	}
	// Move the envelope to the current version without touching its payload.
	sealed, err = envelope.Rewrap(ctx, k, sealed)
	if err != nil {
		log.Fatal(err)
	}
	h, err := envelope.Inspect(sealed)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("now under version", h.Version)
	// Output: now under version 2
}

func ExampleOpen_set() {
	ctx := context.Background()
	orders, err := keyring.New(ctx)
	if err != nil {
		log.Fatal(err)
	}
	users, err := keyring.New(ctx)
	if err != nil {
		log.Fatal(err)
	}
	sealed, err := envelope.Seal(ctx, users, []byte("user record"))
	if err != nil {
		log.Fatal(err)
	}
	// A Set opens envelopes of any key it holds, found from the header.
	pt, err := envelope.Open(ctx, keyring.NewSet(orders, users), sealed)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(pt))
	// Output: user record
}

// A data key cache: consecutive messages under one encryption context
// share a data key (each still has its own salt and derived key).
func ExampleCache() {
	ctx := context.Background()
	k, err := keyring.New(ctx)
	if err != nil {
		log.Fatal(err)
	}
	cache, err := envelope.NewCache(envelope.WithMaxMessages(100), envelope.WithMaxAge(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Purge()
	var blobs [][]byte
	for _, msg := range []string{"first", "second"} {
		sealed, err := envelope.Seal(ctx, k, []byte(msg), envelope.WithCache(cache))
		if err != nil {
			log.Fatal(err)
		}
		h, err := envelope.Inspect(sealed)
		if err != nil {
			log.Fatal(err)
		}
		blobs = append(blobs, h.DataKeyBlob)
	}
	fmt.Println("one data key for both:", bytes.Equal(blobs[0], blobs[1]))
	// Output: one data key for both: true
}

// Open tells what it authenticated: the key version and the encryption
// context, without a second, unauthenticated Inspect.
func ExampleWithHeader() {
	ctx := context.Background()
	k, err := keyring.New(ctx)
	if err != nil {
		log.Fatal(err)
	}
	sealed, err := envelope.Seal(ctx, k, []byte("invoice"), envelope.WithEncryptionContext(map[string]string{"tenant": "acme"}))
	if err != nil {
		log.Fatal(err)
	}
	var h envelope.Header
	pt, err := envelope.Open(ctx, k, sealed, envelope.WithHeader(&h))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: version %d, tenant %s\n", pt, h.Version, h.EncryptionContext["tenant"])
	// Output: invoice: version 1, tenant acme
}

// AppendSeal and AppendOpen reuse the caller's buffers, as cipher.AEAD
// does.
func ExampleAppendSeal() {
	ctx := context.Background()
	k, err := keyring.New(ctx)
	if err != nil {
		log.Fatal(err)
	}
	sealBuf, openBuf := make([]byte, 0, 4096), make([]byte, 0, 4096)
	for _, msg := range []string{"first", "second"} {
		sealed, err := envelope.AppendSeal(ctx, sealBuf[:0], k, []byte(msg))
		if err != nil {
			log.Fatal(err)
		}
		pt, err := envelope.AppendOpen(ctx, openBuf[:0], k, sealed)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(pt))
	}
	// Output:
	// first
	// second
}

// A keyring made WithApprovedAlgorithms writes what FIPS 140-3 mode
// writes, in any mode: envelopes of the approved suite (AES-256-GCM,
// HKDF-SHA-512), which open in every mode. In FIPS mode every keyring
// does, and envelopes of the default suites need AllowNonApproved.
func ExampleAllowNonApproved() {
	ctx := context.Background()
	k, err := keyring.New(ctx, keyring.WithApprovedAlgorithms())
	if err != nil {
		log.Fatal(err)
	}
	sealed, err := envelope.Seal(ctx, k, []byte("attack at dawn"))
	if err != nil {
		log.Fatal(err)
	}
	h, err := envelope.Inspect(sealed)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("FIPS approved:", h.FIPSApproved)
	pt, err := envelope.Open(ctx, k, sealed)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(pt))
	// Output:
	// FIPS approved: true
	// attack at dawn
}
