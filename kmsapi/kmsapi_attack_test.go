package kmsapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/internal/pgtest"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/pgstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// Attacks on the KMS-compatible endpoint: a network attacker without
// credentials, an authenticated principal who is not an admin, and a store
// writer without the root key.

// countingRootKey counts the root key's Decrypt calls (a remote KMS
// request, or an argon2id derivation for a passphrase root key whose salt
// is not cached).
type countingRootKey struct {
	tink.AEAD
	decrypts atomic.Int64
}

func (c *countingRootKey) Decrypt(ct, ad []byte) ([]byte, error) {
	c.decrypts.Add(1)
	return c.AEAD.Decrypt(ct, ad)
}

// send signs (with s) and serves one request, returning status and body.
func send(t *testing.T, h *Handler, s testSigner, op string, body []byte, edit func(r *http.Request)) (int, map[string]any) {
	t.Helper()
	r := httptest.NewRequest("POST", "http://127.0.0.1:8080/", bytes.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	r.Header.Set("X-Amz-Target", targetPrefix+op)
	s.sign(r, body, testNow)
	if edit != nil {
		edit(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var out map[string]any
	json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

// TestAttackPlantedAccessKeyCostsRootKeyCallPerRequest: a store writer
// plants an access key record whose secret does not unwrap. Anyone on the
// network, without any secret, then makes the endpoint call the root key
// once per request naming it: the lookup happens before the signature can
// be checked, and a failed lookup is not remembered. With a remote KMS root
// key that is one KMS call per anonymous request; with a passphrase root
// key and more planted salts than its 256-entry cache, one argon2id
// derivation (64 MiB by default) per anonymous request, serialized with the
// derivations legitimate requests need. DESIGN.md: nothing read from a store
// can make the process compute without bound.
func TestAttackPlantedAccessKeyCostsRootKeyCallPerRequest(t *testing.T) {
	e := newEnv(t)
	rk := &countingRootKey{AEAD: e.rk}
	h, err := New(e.st, rk, WithClock(e.clk), WithAccount(testAccount))
	require.NoError(t, err)

	const planted = "AKIAPLANTEDPLANTED22"
	data, err := json.Marshal(accessKeyDoc{Format: accessKeyFormat, Principal: "root", Admin: true, Secret: bytes.Repeat([]byte{7}, 80)})
	require.NoError(t, err)
	_, err = e.st.Create(context.Background(), store.Record{KeyID: accessKeyRecordPrefix + planted, Data: data}, nil)
	require.NoError(t, err)

	anonymous := testSigner{id: planted, secret: "no secret at all", region: "us-east-1", service: "kms"}
	const requests = 50
	for range requests {
		code, out := send(t, h, anonymous, "ListKeys", []byte(`{}`), nil)
		require.NotEqual(t, http.StatusOK, code, "%v", out)
	}
	t.Logf("%d anonymous requests made %d root key Decrypt calls", requests, rk.decrypts.Load())
	assert.LessOrEqual(t, rk.decrypts.Load(), int64(1), "a planted access key costs one root key call, not one per anonymous request")
}

// TestAttackSignedRequestEdits: a network attacker who sees a signed
// request (or a proxy) edits it; every edit that could change its meaning
// is refused.
func TestAttackSignedRequestEdits(t *testing.T) {
	e := newEnv(t)
	id, _ := e.admin.createKey(obj{})
	body := []byte(fmt.Sprintf(`{"KeyId":%q,"KeySpec":"AES_256"}`, id))
	for name, edit := range map[string]func(r *http.Request){
		"second X-Amz-Target": func(r *http.Request) { r.Header.Add("X-Amz-Target", targetPrefix+"ScheduleKeyDeletion") },
		"X-Amz-Target first": func(r *http.Request) {
			r.Header["X-Amz-Target"] = []string{targetPrefix + "DisableKey", targetPrefix + "GenerateDataKey"}
		},
		"query string added":    func(r *http.Request) { r.RequestURI = "/?Action=DisableKey"; r.URL.RawQuery = "Action=DisableKey" },
		"path changed":          func(r *http.Request) { r.RequestURI = "/x"; r.URL.Path = "/x" },
		"date moved one second": func(r *http.Request) { r.Header.Set("X-Amz-Date", "20260301T120001Z") },
		"second X-Amz-Date":     func(r *http.Request) { r.Header.Add("X-Amz-Date", "20260301T120000Z") },
		"lower-case algorithm": func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256", "aws4-hmac-sha256", 1))
		},
		"upper-case signature": func(r *http.Request) { r.Header.Set("Authorization", strings.ToUpper(r.Header.Get("Authorization"))) },
		"signed headers widened": func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "SignedHeaders=", "SignedHeaders=accept;", 1))
		},
		"access key ID lowered": func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "Credential=AKIA", "Credential=akia", 1))
		},
		"content sha256 of other": func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", strings.Repeat("ab", 32)) },
		"GET instead of POST":     func(r *http.Request) { r.Method = "GET" },
	} {
		t.Run(name, func(t *testing.T) {
			code, out := send(t, e.h, e.admin.s, "GenerateDataKey", body, edit)
			assert.NotEqual(t, http.StatusOK, code, "%v", out)
		})
	}
	t.Run("body replaced, chunked", func(t *testing.T) {
		other := []byte(fmt.Sprintf(`{"KeyId":%q,"KeySpec":"AES_128"}`, id))
		code, out := send(t, e.h, e.admin.s, "GenerateDataKey", body, func(r *http.Request) {
			r.Body = io.NopCloser(bytes.NewReader(other))
			r.ContentLength = -1
		})
		assert.NotEqual(t, http.StatusOK, code, "%v", out)
	})
	t.Run("body shorter than Content-Length", func(t *testing.T) {
		code, out := send(t, e.h, e.admin.s, "GenerateDataKey", body, func(r *http.Request) {
			r.Body = io.NopCloser(bytes.NewReader(body[:10]))
		})
		assert.NotEqual(t, http.StatusOK, code, "%v", out)
	})
}

// TestAttackNonAdminCannotReachAnotherKey: alice holds every right on her
// own key and none on the victim's. Through every KeyId form and every
// operation that names a second key (aliases, ReEncrypt, Decrypt with a
// KeyId), she gets nothing of the victim's key.
func TestAttackNonAdminCannotReachAnotherKey(t *testing.T) {
	e := newEnv(t)
	a, alice := e.admin, e.alice
	victim, victimARN := a.createKey(obj{})
	a.do("CreateAlias", obj{"AliasName": "alias/victim", "TargetKeyId": victim})
	mine, _ := a.createKey(obj{"Policy": `{"Statement": {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "kms:*", "Resource": "*"}}`})
	a.do("CreateAlias", obj{"AliasName": "alias/mine", "TargetKeyId": mine})
	blob := a.do("Encrypt", obj{"KeyId": victim, "Plaintext": b64([]byte("victim's secret"))})["CiphertextBlob"]
	aliasARN := "arn:aws:kms:us-east-1:111122223333:alias/victim"

	for _, kid := range []string{victim, victimARN, "alias/victim", aliasARN} {
		alice.fail("DescribeKey", obj{"KeyId": kid}, "AccessDeniedException")
		alice.fail("Encrypt", obj{"KeyId": kid, "Plaintext": b64([]byte("x"))}, "AccessDeniedException")
		alice.fail("GenerateDataKey", obj{"KeyId": kid, "KeySpec": "AES_256"}, "AccessDeniedException")
		alice.fail("Decrypt", obj{"KeyId": kid, "CiphertextBlob": blob}, "AccessDeniedException")
		alice.fail("GetKeyPolicy", obj{"KeyId": kid}, "AccessDeniedException")
		alice.fail("PutKeyPolicy", obj{"KeyId": kid, "Policy": `{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}}`}, "AccessDeniedException")
		alice.fail("DisableKey", obj{"KeyId": kid}, "AccessDeniedException")
		alice.fail("ScheduleKeyDeletion", obj{"KeyId": kid}, "AccessDeniedException")
		alice.fail("RotateKeyOnDemand", obj{"KeyId": kid}, "AccessDeniedException")
		alice.fail("ReEncrypt", obj{"CiphertextBlob": blob, "SourceKeyId": kid, "DestinationKeyId": mine}, "AccessDeniedException")
	}
	alice.fail("Decrypt", obj{"CiphertextBlob": blob}, "AccessDeniedException")
	alice.fail("Decrypt", obj{"CiphertextBlob": blob, "KeyId": mine}, "IncorrectKeyException")
	alice.fail("Decrypt", obj{"CiphertextBlob": blob, "KeyId": "alias/mine"}, "IncorrectKeyException")
	alice.fail("ReEncrypt", obj{"CiphertextBlob": blob, "DestinationKeyId": mine}, "AccessDeniedException")
	alice.fail("UpdateAlias", obj{"AliasName": "alias/victim", "TargetKeyId": mine}, "AccessDeniedException")
	alice.fail("DeleteAlias", obj{"AliasName": "alias/victim"}, "AccessDeniedException")
	// Aliases belong to admins (finding 5): no existence oracle either.
	alice.fail("CreateAlias", obj{"AliasName": "alias/victim", "TargetKeyId": mine}, "AccessDeniedException")
	alice.fail("CreateAlias", obj{"AliasName": "alias/new", "TargetKeyId": victim}, "AccessDeniedException")
	alice.fail("CreateAlias", obj{"AliasName": "alias/new", "TargetKeyId": "alias/mine"}, "AccessDeniedException")
	// Her own key, for contrast: all of it works.
	alice.do("ReEncrypt", obj{"CiphertextBlob": alice.do("Encrypt", obj{"KeyId": "alias/mine", "Plaintext": b64([]byte("x"))})["CiphertextBlob"], "DestinationKeyId": mine})
	assert.Equal(t, victim, a.do("DescribeKey", obj{"KeyId": "alias/victim"})["KeyMetadata"].(obj)["KeyId"], "the alias still names the victim's key")
}

// TestAttackPolicyGames: action case and wildcards, conditions with absent
// context keys, a key whose stored policy does not parse.
func TestAttackPolicyGames(t *testing.T) {
	e := newEnv(t)
	a, alice := e.admin, e.alice
	ctx := context.Background()
	allow := func(action, cond string) string {
		if cond != "" {
			cond = `, "Condition": ` + cond
		}
		return `{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "` + action + `", "Resource": "*"` + cond + `},
			{"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*", "Condition": {"StringEquals": {"kms:EncryptionContext:class": "secret"}}}]}`
	}
	t.Run("Encrypt* does not reach Decrypt", func(t *testing.T) {
		id, _ := a.createKey(obj{"Policy": allow("KMS:ENCRYPT*", "")})
		blob := alice.do("Encrypt", obj{"KeyId": id, "Plaintext": b64([]byte("x"))})["CiphertextBlob"]
		alice.fail("Decrypt", obj{"CiphertextBlob": blob}, "AccessDeniedException")
		alice.fail("ReEncrypt", obj{"CiphertextBlob": blob, "DestinationKeyId": id}, "AccessDeniedException")
		alice.fail("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256"}, "AccessDeniedException")
	})
	t.Run("Deny on a context value: the ciphertext binds the context", func(t *testing.T) {
		id, _ := a.createKey(obj{"Policy": allow("kms:*", "")})
		secret := obj{"class": "secret"}
		blob := a.do("Encrypt", obj{"KeyId": id, "Plaintext": b64([]byte("x")), "EncryptionContext": secret})["CiphertextBlob"]
		alice.fail("Decrypt", obj{"CiphertextBlob": blob, "EncryptionContext": secret}, "AccessDeniedException")
		// The context key matches case-insensitively, as on AWS: a
		// capital letter does not escape the Deny (finding 2).
		alice.fail("Decrypt", obj{"CiphertextBlob": blob, "EncryptionContext": obj{"Class": "secret"}}, "AccessDeniedException")
		for _, ec := range []obj{nil, {"class": "Secret"}, {"class": "secret "}} {
			alice.fail("Decrypt", obj{"CiphertextBlob": blob, "EncryptionContext": ec}, "InvalidCiphertextException")
		}
		// ReEncrypt to another context is kms:ReEncrypt*, which this
		// policy allows: the Deny names Decrypt only (as on AWS).
	})
	t.Run("condition on a key the request lacks", func(t *testing.T) {
		id, _ := a.createKey(obj{"Policy": allow("kms:Decrypt", `{"StringEquals": {"kms:EncryptionContext:tenant": "alice"}}`)})
		blob := a.do("Encrypt", obj{"KeyId": id, "Plaintext": b64([]byte("x"))})["CiphertextBlob"]
		alice.fail("Decrypt", obj{"CiphertextBlob": blob}, "AccessDeniedException")
		blob = a.do("Encrypt", obj{"KeyId": id, "Plaintext": b64([]byte("x")), "EncryptionContext": obj{"tenant": "bob"}})["CiphertextBlob"]
		alice.fail("Decrypt", obj{"CiphertextBlob": blob, "EncryptionContext": obj{"tenant": "bob"}}, "AccessDeniedException")
		alice.fail("Decrypt", obj{"CiphertextBlob": blob, "EncryptionContext": obj{"tenant": "alice"}}, "InvalidCiphertextException")
	})
	t.Run("stored policy that kmsapi cannot parse: admins only", func(t *testing.T) {
		id, _ := a.createKey(obj{})
		k, err := keyring.Load(ctx, e.st, id, keyring.WithRootKey(e.rk))
		require.NoError(t, err)
		// Valid JSON, so the library stores it; NotAction is refused by
		// the endpoint's parser. Read literally it would allow alice all.
		require.NoError(t, k.PutKeyPolicy(ctx, `{"Statement": {"Effect": "Allow", "Principal": "*", "NotAction": "kms:Nothing", "Action": "kms:*", "Resource": "*"}}`))
		e.clk.Advance(DefaultRefreshInterval)
		alice.fail("DescribeKey", obj{"KeyId": id}, "AccessDeniedException")
		alice.fail("Encrypt", obj{"KeyId": id, "Plaintext": b64([]byte("x"))}, "AccessDeniedException")
		a.do("DescribeKey", obj{"KeyId": id})
	})
}

// TestAttackRequestBodies: bodies that are huge, chunked, deeply nested or
// with enormous contexts are refused with an error, never a panic.
func TestAttackRequestBodies(t *testing.T) {
	e := newEnv(t)
	id, _ := e.admin.createKey(obj{})
	ctxKeys := map[string]string{}
	for i := range 20000 {
		ctxKeys[fmt.Sprintf("k%05d", i)] = ""
	}
	bigEC, err := json.Marshal(obj{"KeyId": id, "KeySpec": "AES_256", "EncryptionContext": ctxKeys})
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		body    []byte
		chunked bool
		want    string
	}{
		"over the limit":         {body: bytes.Repeat([]byte(" "), DefaultMaxRequestSize+1), want: "RequestEntityTooLargeException"},
		"over the limit chunked": {body: bytes.Repeat([]byte(" "), DefaultMaxRequestSize+1), chunked: true, want: "RequestEntityTooLargeException"},
		"deep JSON":              {body: []byte(strings.Repeat("[", 200000)), want: "SerializationException"},
		"deep EncryptionContext": {body: []byte(`{"KeyId":"` + id + `","KeySpec":"AES_256","EncryptionContext":` + strings.Repeat(`{"a":`, 40000) + `}`), want: "SerializationException"},
		"20000 context pairs":    {body: bigEC, want: "ValidationException"},
	} {
		t.Run(name, func(t *testing.T) {
			code, out := send(t, e.h, e.admin.s, "GenerateDataKey", tc.body, func(r *http.Request) {
				if tc.chunked {
					r.ContentLength = -1
				}
			})
			assert.NotEqual(t, http.StatusOK, code)
			assert.Equal(t, tc.want, out["__type"], "%v", out)
		})
	}
}

// countingStore counts the reads the endpoint makes of its store.
type countingStore struct {
	store.Store
	gets atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, id string) (store.Record, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, id)
}

// ListPage and ListAliasPage pass store.Pager on: every store in this
// module has it.
func (c *countingStore) ListPage(ctx context.Context, after string, limit int) ([]string, error) {
	return c.Store.(store.Pager).ListPage(ctx, after, limit)
}

func (c *countingStore) ListAliasPage(ctx context.Context, after string, limit int) ([]store.AliasEntry, error) {
	return c.Store.(store.Pager).ListAliasPage(ctx, after, limit)
}

// TestAttackListAliasesReadsEveryKey: any authenticated principal may call
// ListAliases (as documented), and listing aliases means reading and
// authenticating key records. A page reads only the records of its
// aliases (store.Pager), so a principal with no rights cannot make the
// endpoint do one store round trip per key per request.
func TestAttackListAliasesReadsEveryKey(t *testing.T) {
	e := newEnv(t)
	cs := &countingStore{Store: e.st}
	h, err := New(cs, e.rk, WithClock(e.clk), WithAccount(testAccount))
	require.NoError(t, err)
	const keys = 300
	for range keys {
		e.admin.createKey(obj{})
	}
	code, out := send(t, h, e.alice.s, "ListAliases", []byte(`{"Limit":1}`), nil)
	require.Equal(t, http.StatusOK, code, "%v", out)
	before := cs.gets.Load()
	for range 10 {
		code, out = send(t, h, e.alice.s, "ListAliases", []byte(`{"Limit":1}`), nil)
		require.Equal(t, http.StatusOK, code, "%v", out)
	}
	reads := cs.gets.Load() - before
	t.Logf("ten more ListAliases (Limit 1) by a principal with no rights, within the refresh interval, read the store %d times", reads)
	assert.Less(t, reads, int64(keys/10), "the cost of a page must not grow with the number of keys")
}

// TestAttackKeyExistenceOracle documents what a principal with no rights
// learns: whether a key ID exists (NotFoundException vs
// AccessDeniedException) and which key an alias names (the AccessDenied
// message names the key ARN), as AWS KMS answers within an account.
func TestAttackKeyExistenceOracle(t *testing.T) {
	e := newEnv(t)
	id, arn := e.admin.createKey(obj{})
	e.admin.do("CreateAlias", obj{"AliasName": "alias/payroll", "TargetKeyId": id})
	e.alice.fail("DescribeKey", obj{"KeyId": "00000000-0000-4000-8000-000000000000"}, "NotFoundException")
	e.alice.fail("DescribeKey", obj{"KeyId": "alias/nothing"}, "NotFoundException")
	msg := e.alice.fail("DescribeKey", obj{"KeyId": "alias/payroll"}, "AccessDeniedException")
	assert.Contains(t, msg, arn, "the denial names the key behind the alias")
}

// TestAttackTamperedAccessKeyThroughEndpoint: an access key record edited
// to grant admin (or to another principal) authenticates nobody; the
// request fails without acting as admin.
func TestAttackTamperedAccessKeyThroughEndpoint(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for name, edit := range map[string]func(d *accessKeyDoc){
		"admin granted":       func(d *accessKeyDoc) { d.Admin = true },
		"principal to root":   func(d *accessKeyDoc) { d.Principal = "root" },
		"secret of the admin": nil,
	} {
		t.Run(name, func(t *testing.T) {
			alice := e.client(e.h, "alice", false)
			rec, err := e.st.Get(ctx, accessKeyRecordPrefix+alice.s.id)
			require.NoError(t, err)
			var d accessKeyDoc
			require.NoError(t, json.Unmarshal(rec.Data, &d))
			if edit != nil {
				edit(&d)
			} else {
				adm, err := e.st.Get(ctx, accessKeyRecordPrefix+e.admin.s.id)
				require.NoError(t, err)
				var ad accessKeyDoc
				require.NoError(t, json.Unmarshal(adm.Data, &ad))
				d = ad
			}
			rec.Data, err = json.Marshal(d)
			require.NoError(t, err)
			_, err = e.st.Update(ctx, rec, nil)
			require.NoError(t, err)
			fresh := e.handler()
			code, out := send(t, fresh, alice.s, "CreateKey", []byte(`{}`), nil)
			assert.NotEqual(t, http.StatusOK, code, "%v", out)
		})
	}
}

// TestAttackRevokedPolicyStaysInForce: the revision freeze (see keyring's
// TestAttackRevisionBumpFreezesReplica) through the endpoint. A database
// administrator raises a key's revision for a moment; the endpoint
// refreshes meanwhile. The key's admin then revokes alice's grant: the
// endpoint never sees the new policy, and alice keeps decrypting.
func TestAttackRevokedPolicyStaysInForce(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	open := func() store.Store {
		st, err := pgstore.Open(ctx, dsn)
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		return st
	}
	e := newEnvOn(t, open())
	elsewhere := e.admin.via(e.handlerOn(open()))
	grant := `{"Statement": {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "kms:*", "Resource": "*"}}`
	id, _ := e.admin.createKey(obj{"Policy": grant})
	blob := e.alice.do("Encrypt", obj{"KeyId": id, "Plaintext": b64([]byte("x"))})["CiphertextBlob"]

	db, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer db.Close(ctx)
	_, err = db.Exec(ctx, `UPDATE kmsring_keys SET revision = revision + 1000 WHERE key_id = $1`, id)
	require.NoError(t, err)
	e.clk.Advance(DefaultRefreshInterval)
	e.alice.do("Decrypt", obj{"CiphertextBlob": blob}) // the endpoint refreshes
	_, err = db.Exec(ctx, `UPDATE kmsring_keys SET revision = revision - 1000 WHERE key_id = $1`, id)
	require.NoError(t, err)

	elsewhere.do("PutKeyPolicy", obj{"KeyId": id, "Policy": `{"Statement": {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/bob"}, "Action": "kms:*", "Resource": "*"}}`})
	elsewhere.do("DisableKey", obj{"KeyId": id})
	e.clk.Advance(10 * DefaultRefreshInterval)
	e.alice.raw("DescribeKey", obj{"KeyId": id}) // a refresh (denied already, with the new policy)
	e.clk.Advance(10 * DefaultRefreshInterval)
	code, out := e.alice.raw("Decrypt", obj{"CiphertextBlob": blob})
	assert.NotEqual(t, http.StatusOK, code, "alice's grant was revoked and the key disabled: %v", out)
}

// TestAttackEndpointPrintsNoSecrets: the handler, access keys (alone, in
// slices, maps and structs), the handler's log of internal failures and
// the audit log's slog records print no access key secret, root key or
// plaintext. *Handler has no Format method: with %s, %q, %t or %c, fmt
// prints the pointers it cannot format by their contents (its bad-verb
// path), one level down, so the local root key's raw 32 bytes (inside the
// XChaCha20-Poly1305 value the root key holds) and the cached SigV4
// signing keys (enough to sign any request for that access key for the
// day) are printed. DESIGN.md: no key material in any fmt verb of any
// value the library returns, root keys included.
func TestAttackEndpointPrintsNoSecrets(t *testing.T) {
	ctx := context.Background()
	rootBytes := make([]byte, keyring.RootKeySize)
	rand.Read(rootBytes)
	rk, err := keyring.NewRootKey(rootBytes)
	require.NoError(t, err)
	e := newEnv(t)
	e.rk = rk
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	al := audit.New(audit.WithSlog(logger))
	defer al.Close()
	e.h = e.handler(WithLogger(logger), WithAuditor(al))
	admin := e.client(e.h, "root", true)
	ak, err := CreateAccessKey(ctx, e.st, rk, "bob", false)
	require.NoError(t, err)

	id, _ := admin.createKey(obj{})
	pt := []byte("the plaintext no log may hold!")
	blob := admin.do("Encrypt", obj{"KeyId": id, "Plaintext": b64(pt)})["CiphertextBlob"]
	admin.do("Decrypt", obj{"CiphertextBlob": blob})
	dk := admin.do("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256"})
	dkPlain := unb64(t, dk["Plaintext"])
	// An internal failure: the key's record tampered with, seen by a
	// fresh handler.
	rec, err := e.st.Get(ctx, id)
	require.NoError(t, err)
	rec.Data[5] ^= 1
	_, err = e.st.Update(ctx, rec, nil)
	require.NoError(t, err)
	admin.via(e.handler(WithLogger(logger), WithAuditor(al))).fail("Decrypt", obj{"CiphertextBlob": blob}, "KMSInternalException")
	require.NoError(t, al.Close())

	var out bytes.Buffer
	for _, v := range []any{e.h, ak, &ak, []AccessKey{ak}, map[string]AccessKey{"k": ak}, struct{ K AccessKey }{ak}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		slog.New(slog.NewTextHandler(&out, nil)).Info("v", "v", v)
		slog.New(slog.NewJSONHandler(&out, nil)).Info("v", "v", v)
		b, _ := json.Marshal(v)
		out.Write(b)
	}
	out.Write(logs.Bytes())
	text := out.String()
	signingKey := deriveSigningKey(admin.s.secret, testNow.Format(scopeDateLayout), "us-east-1", "kms")
	for name, s := range map[string][]byte{"access key secret": []byte(ak.SecretAccessKey()), "admin secret": []byte(admin.s.secret),
		"admin's SigV4 signing key for the day": signingKey, "root key": rootBytes, "plaintext": pt, "data key": dkPlain} {
		for _, f := range []string{string(s), hex.EncodeToString(s), base64.StdEncoding.EncodeToString(s), strings.Trim(fmt.Sprint(s), "[]")} {
			assert.NotContains(t, text, f, "the %s is printed", name)
		}
	}
}
