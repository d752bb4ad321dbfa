package kmsapi_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/kmsapi"
	"github.com/kmsring/kmsring/store/memstore"
)

// An endpoint in a test server, called with a SigV4-signed request. Real
// clients (an AWS SDK, the AWS CLI, Tink's AWS KMS client) sign for you:
// point them at the server's URL as their endpoint.
func ExampleNew() {
	ctx := context.Background()
	st := memstore.New() // a service would use boltstore or pgstore
	rk, err := keyring.NewRootKey(make([]byte, keyring.RootKeySize))
	if err != nil {
		log.Fatal(err)
	}
	h, err := kmsapi.New(st, rk, kmsapi.WithRegion("eu-west-1"), kmsapi.WithAccount("111122223333"))
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	ak, err := kmsapi.CreateAccessKey(ctx, st, rk, "ops", true)
	if err != nil {
		log.Fatal(err)
	}
	out := call(srv.URL, ak, "CreateKey", `{"Description": "orders"}`)
	var created struct {
		KeyMetadata struct{ KeyState, Description string }
	}
	if err := json.Unmarshal(out, &created); err != nil {
		log.Fatal(err)
	}
	fmt.Println(created.KeyMetadata.KeyState, created.KeyMetadata.Description)

	// A wrong secret is refused as AWS refuses it.
	forged := call(srv.URL, kmsapi.AccessKey{ID: ak.ID}, "ListKeys", `{}`)
	fmt.Println(string(forged[:strings.Index(string(forged), `,`)]))
	// Output:
	// Enabled orders
	// {"__type":"InvalidSignatureException"
}

// call sends one operation signed with SigV4 for kms in eu-west-1.
func call(endpoint string, ak kmsapi.AccessKey, op, body string) []byte {
	req, err := http.NewRequest("POST", endpoint, strings.NewReader(body))
	if err != nil {
		log.Fatal(err)
	}
	now := time.Now().UTC().Format("20060102T150405Z")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "TrentService."+op)
	req.Header.Set("X-Amz-Date", now)
	u, _ := url.Parse(endpoint)
	bodyHash := sha256.Sum256([]byte(body))
	canonical := "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:" + u.Host + "\nx-amz-date:" + now +
		"\nx-amz-target:TrentService." + op + "\n\ncontent-type;host;x-amz-date;x-amz-target\n" + hex.EncodeToString(bodyHash[:])
	scope := now[:8] + "/eu-west-1/kms/aws4_request"
	crHash := sha256.Sum256([]byte(canonical))
	key := []byte("AWS4" + ak.SecretAccessKey())
	for _, s := range []string{now[:8], "eu-west-1", "kms", "aws4_request"} {
		key = hmacSHA256(key, s)
	}
	sig := hmacSHA256(key, "AWS4-HMAC-SHA256\n"+now+"\n"+scope+"\n"+hex.EncodeToString(crHash[:]))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+ak.ID+"/"+scope+
		", SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature="+hex.EncodeToString(sig))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	return bytes.TrimSpace(b)
}

func hmacSHA256(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}
