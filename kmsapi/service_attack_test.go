package kmsapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kmsring/kmsring/internal/pgtest"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/pgstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Attacks on kmsring serve as a shared service, one per finding of issue
// 16 that the endpoint answers (the command's are in cmd/kmsring).

// eventRecorder is an auditor that keeps what it is given.
type eventRecorder struct {
	mu     sync.Mutex
	events []keyring.AuditEvent
}

func (r *eventRecorder) Audit(_ context.Context, e keyring.AuditEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

func (r *eventRecorder) all() []keyring.AuditEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]keyring.AuditEvent(nil), r.events...)
}

// TestAttackFinding2DenyYieldsToCapitalLetter: a Deny on
// kms:EncryptionContext:classification must hold for "Classification"
// and "CLASSIFICATION" too (AWS matches the context key
// case-insensitively), and a differently cased twin cannot satisfy an
// Allow. The denial says it was explicit, as AWS's does.
func TestAttackFinding2DenyYieldsToCapitalLetter(t *testing.T) {
	e := newEnv(t)
	id, _ := e.admin.createKey(obj{"Policy": `{"Statement": [
		{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "kms:*", "Resource": "*"},
		{"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
		 "Condition": {"StringEquals": {"kms:EncryptionContext:classification": "secret"}}}]}`})
	for _, k := range []string{"classification", "Classification", "CLASSIFICATION"} {
		msg := e.alice.fail("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256", "EncryptionContext": obj{k: "secret"}}, "AccessDeniedException")
		assert.Contains(t, msg, "with an explicit deny in a resource-based policy", k)
	}
	e.alice.fail("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256", "EncryptionContext": obj{"Classification": "public", "classification": "secret"}}, "AccessDeniedException")
	e.alice.do("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256", "EncryptionContext": obj{"classification": "Secret"}}) // values: case-sensitive

	allowOnly, _ := e.admin.createKey(obj{"Policy": `{"Statement": [
		{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "kms:GenerateDataKey", "Resource": "*",
		 "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "a"}}}]}`})
	e.alice.do("GenerateDataKey", obj{"KeyId": allowOnly, "KeySpec": "AES_256", "EncryptionContext": obj{"Tenant": "a"}})
	msg := e.alice.fail("GenerateDataKey", obj{"KeyId": allowOnly, "KeySpec": "AES_256", "EncryptionContext": obj{"tenant": "a", "TENANT": "b"}}, "AccessDeniedException")
	assert.Contains(t, msg, "because no resource-based policy allows", "no Deny applied")
}

// TestAttackFinding3DeniedRequestsWriteLargeAuditRecords: a principal
// with no rights sends oversized or invalid contexts; each fails with
// ValidationException before a denial is audited, and no audit record
// carries more than the 8 KiB a context may hold.
func TestAttackFinding3DeniedRequestsWriteLargeAuditRecords(t *testing.T) {
	rec := &eventRecorder{}
	e := newEnv(t, WithAuditor(rec))
	id, _ := e.admin.createKey(obj{})
	big := obj{}
	for i := range 40 {
		big[strings.Repeat("k", 10)+string(rune('a'+i%26))+strings.Repeat("x", i)] = strings.Repeat("v", 6000)
	}
	for range 5 {
		e.alice.fail("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256", "EncryptionContext": big}, "ValidationException")
		e.alice.fail("Encrypt", obj{"KeyId": id, "Plaintext": b64([]byte("x")), "EncryptionContext": obj{"k": strings.Repeat("v", 9000)}}, "ValidationException")
		e.alice.fail("Encrypt", obj{"KeyId": id, "Plaintext": b64([]byte("x")), "EncryptionContext": obj{"": "v"}}, "ValidationException")
	}
	for _, ev := range rec.all() {
		b, err := json.Marshal(ev.EncryptionContext)
		require.NoError(t, err)
		assert.LessOrEqual(t, len(b), 9<<10, "audit record of %s", ev.Operation)
	}
	e.alice.fail("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256", "EncryptionContext": obj{"small": "x"}}, "AccessDeniedException")
	assert.Len(t, rec.all(), 2, "only CreateKey and the one valid, denied request are audited")
}

// TestAttackFinding5AliasSquatting: a non-admin with kms:* on its own key
// cannot claim an alias, move or delete one: aliases belong to admins.
func TestAttackFinding5AliasSquatting(t *testing.T) {
	rec := &eventRecorder{}
	e := newEnv(t, WithAuditor(rec))
	own, _ := e.admin.createKey(obj{"Policy": `{"Statement": {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "kms:*", "Resource": "*"}}`})
	e.alice.fail("CreateAlias", obj{"AliasName": "alias/payments", "TargetKeyId": own}, "AccessDeniedException")
	payments, _ := e.admin.createKey(obj{})
	e.admin.do("CreateAlias", obj{"AliasName": "alias/payments", "TargetKeyId": payments})
	e.admin.do("CreateAlias", obj{"AliasName": "alias/alice", "TargetKeyId": own})
	e.alice.fail("UpdateAlias", obj{"AliasName": "alias/alice", "TargetKeyId": own}, "AccessDeniedException")
	e.alice.fail("DeleteAlias", obj{"AliasName": "alias/alice"}, "AccessDeniedException")
	e.alice.do("Encrypt", obj{"KeyId": "alias/alice", "Plaintext": b64([]byte("x"))})
	var denied int
	for _, ev := range rec.all() {
		if ev.Err != nil && isAccessDenied(ev.Err) {
			denied++
		}
	}
	assert.Equal(t, 3, denied, "each refused alias call is audited")
}

// TestAttackFinding5LoneSurrogates: a context holding a lone UTF-16
// surrogate escape (which encoding/json turns into U+FFFD, so that two
// wire contexts would open one blob) or bytes that are not UTF-8 is
// refused.
func TestAttackFinding5LoneSurrogates(t *testing.T) {
	e := newEnv(t)
	id, _ := e.admin.createKey(obj{})
	for _, ec := range []string{`"\ud800"`, `"\udfff"`, `"a\ud800\u0041"`, `"\uD83D"`, "\"\xff\""} {
		body := []byte(`{"KeyId": "` + id + `", "Plaintext": "eA==", "EncryptionContext": {"k": ` + ec + `}}`)
		code, out := send(t, e.h, e.admin.s, "Encrypt", body, nil)
		assert.Equal(t, http.StatusBadRequest, code, ec)
		assert.Equal(t, "ValidationException", out["__type"], ec)
	}
	for _, ec := range []string{`"\ud83d\ude00"`, `"\\ud800"`, `"\u00e9"`} {
		body := []byte(`{"KeyId": "` + id + `", "Plaintext": "eA==", "EncryptionContext": {"k": ` + ec + `}}`)
		code, out := send(t, e.h, e.admin.s, "Encrypt", body, nil)
		assert.Equal(t, http.StatusOK, code, "%s: %v", ec, out)
	}
}

// TestAttackFinding5BodyAllocatedBeforeAuthentication: a request that
// announces a large body and sends little costs the server what it sent,
// not what it announced.
func TestAttackFinding5BodyAllocatedBeforeAuthentication(t *testing.T) {
	e := newEnv(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 20 {
		r := httptest.NewRequest("POST", "http://127.0.0.1:8080/", strings.NewReader("{}"))
		r.ContentLength = DefaultMaxRequestSize
		r.Header.Set("X-Amz-Target", targetPrefix+"ListKeys")
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		assert.Equal(t, "SerializationException", w.Header().Get("X-Amzn-Errortype"))
	}
	runtime.ReadMemStats(&after)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(2*DefaultMaxRequestSize), "20 requests must not allocate 20 announced bodies")
}

// TestAttackFinding6LeakedAccessKeyCannotBeRevoked: an access key can be
// listed, made inactive (refused as unknown, by this and by another
// handler sharing the store), reactivated, and deleted for good; a store
// writer cannot reactivate it.
func TestAttackFinding6LeakedAccessKeyCannotBeRevoked(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	other := e.handler()
	leaked := e.client(e.h, "leaky", true)
	leaked.do("ListKeys", obj{})
	leaked.via(other).do("ListKeys", obj{})

	keys, err := ListAccessKeys(ctx, e.st, e.rk, "leaky")
	require.NoError(t, err)
	require.Len(t, keys, 1)
	assert.Equal(t, AccessKeyActive, keys[0].Status)
	assert.Equal(t, leaked.s.id, keys[0].ID)
	all, err := ListAccessKeys(ctx, e.st, e.rk, "")
	require.NoError(t, err)
	assert.Len(t, all, 3)

	require.NoError(t, UpdateAccessKey(ctx, e.st, e.rk, leaked.s.id, AccessKeyInactive))
	// Every handler sharing the store refuses it within half its refresh
	// interval (Changed or Watch make it at once).
	e.clk.Advance(DefaultRefreshInterval / 2)
	leaked.fail("ListKeys", obj{}, "UnrecognizedClientException")
	leaked.via(other).fail("ListKeys", obj{}, "UnrecognizedClientException")
	keys, err = ListAccessKeys(ctx, e.st, e.rk, "leaky")
	require.NoError(t, err)
	assert.Equal(t, AccessKeyInactive, keys[0].Status)

	// A store writer puts the inactive flag back to active: the record no
	// longer authenticates.
	inactive, err := e.st.Get(ctx, accessKeyRecordPrefix+leaked.s.id)
	require.NoError(t, err)
	forged := inactive
	forged.Data = []byte(strings.Replace(string(inactive.Data), `"inactive":true,`, ``, 1))
	require.NotEqual(t, inactive.Data, forged.Data)
	_, err = e.st.Update(ctx, forged, nil)
	require.NoError(t, err)
	e.clk.Advance(DefaultRefreshInterval)
	leaked.fail("ListKeys", obj{}, "KMSInternalException")

	// Restore the authentic record.
	cur, err := e.st.Get(ctx, accessKeyRecordPrefix+leaked.s.id)
	require.NoError(t, err)
	cur.Data = inactive.Data
	_, err = e.st.Update(ctx, cur, nil)
	require.NoError(t, err)
	require.NoError(t, UpdateAccessKey(ctx, e.st, e.rk, leaked.s.id, AccessKeyActive))
	e.clk.Advance(DefaultRefreshInterval)
	leaked.do("ListKeys", obj{})

	require.NoError(t, DeleteAccessKey(ctx, e.st, e.rk, leaked.s.id))
	other.Changed(ctx, accessKeyRecordPrefix+leaked.s.id)
	leaked.via(other).fail("ListKeys", obj{}, "UnrecognizedClientException") // at once, told
	e.clk.Advance(DefaultRefreshInterval / 2)
	leaked.fail("ListKeys", obj{}, "UnrecognizedClientException")
	require.ErrorIs(t, DeleteAccessKey(ctx, e.st, e.rk, leaked.s.id), ErrAccessKeyNotFound)
	require.ErrorIs(t, UpdateAccessKey(ctx, e.st, e.rk, leaked.s.id, AccessKeyActive), ErrAccessKeyNotFound)
	require.ErrorIs(t, UpdateAccessKey(ctx, e.st, e.rk, "AKIANOTAKEYNOTAKEY22", AccessKeyActive), ErrAccessKeyNotFound)
	require.Error(t, UpdateAccessKey(ctx, e.st, e.rk, e.alice.s.id, "Disabled"))
	keys, err = ListAccessKeys(ctx, e.st, e.rk, "leaky")
	require.NoError(t, err)
	assert.Empty(t, keys, "a deleted key is not listed")
}

// TestAttackFinding9SlowRevocationAcrossReplicas: on PostgreSQL, a
// handler running Watch applies a disabled key and a revoked access key
// made by another process as soon as the notification arrives, without
// waiting for its refresh interval (an hour here).
func TestAttackFinding9SlowRevocationAcrossReplicas(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := t.Context()
	open := func() *pgstore.Store {
		st, err := pgstore.Open(ctx, dsn)
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		return st
	}
	here, there := open(), open()
	e := newEnvOn(t, here, WithRefreshInterval(time.Hour))
	other := e.handlerOn(there, WithRefreshInterval(time.Hour))
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- other.Watch(wctx) }()

	id, _ := e.admin.createKey(obj{})
	e.admin.via(other).do("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256"})
	e.admin.do("DisableKey", obj{"KeyId": id})
	require.Eventually(t, func() bool {
		code, _ := e.admin.via(other).raw("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256"})
		return code != http.StatusOK
	}, 10*time.Second, time.Millisecond, "the other handler sees the disabled key without waiting an hour")
	e.admin.via(other).fail("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256"}, "DisabledException")

	e.alice.via(other).do("ListKeys", obj{})
	require.NoError(t, UpdateAccessKey(ctx, here, e.rk, e.alice.s.id, AccessKeyInactive))
	require.Eventually(t, func() bool {
		code, _ := e.alice.via(other).raw("ListKeys", obj{})
		return code != http.StatusOK
	}, 10*time.Second, time.Millisecond, "the other handler refuses the revoked access key without waiting")
	e.alice.via(other).fail("ListKeys", obj{}, "UnrecognizedClientException")
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

// TestAttackFinding1PermittedCallBricksKey: a principal allowed
// kms:PutKeyPolicy stores a 32 KiB policy of '<' characters; after a
// restart (a new handler over the store) the key still works, its
// ciphertexts open, and ListAliases answers every caller.
func TestAttackFinding1PermittedCallBricksKey(t *testing.T) {
	e := newEnv(t)
	id, _ := e.admin.createKey(obj{"Policy": `{"Statement": {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "kms:*", "Resource": "*"}}`})
	e.admin.do("CreateAlias", obj{"AliasName": "alias/victim", "TargetKeyId": id})
	blob := e.alice.do("Encrypt", obj{"KeyId": id, "Plaintext": b64([]byte("x"))})["CiphertextBlob"]
	head := `{"Statement": {"Sid": "`
	tail := `", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "kms:*", "Resource": "*"}}`
	policy := head + strings.Repeat("<", MaxPolicySize-len(head)-len(tail)) + tail
	e.alice.do("PutKeyPolicy", obj{"KeyId": id, "PolicyName": "default", "Policy": policy})
	e.alice.do("UpdateKeyDescription", obj{"KeyId": id, "Description": strings.Repeat("<", 8192)})

	restarted := e.handler()
	e.alice.via(restarted).do("Decrypt", obj{"CiphertextBlob": blob})
	e.admin.via(restarted).do("ListAliases", obj{})
	e.alice.via(restarted).do("PutKeyPolicy", obj{"KeyId": id, "PolicyName": "default", "Policy": `{"Statement": {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "kms:*", "Resource": "*"}}`})
}

// FuzzCheckText: checkText never panics, and a body it accepts decodes
// to strings that encode back to the same text (no lone surrogate or
// invalid byte was silently replaced).
func FuzzCheckText(f *testing.F) {
	for _, s := range []string{`{"k": "\ud800"}`, `{"k": "\ud83d\ude00"}`, `{"k": "\\ud800"}`, `"\u00e9"`, "\"\xff\"", `"\udc00\ud800"`, `\`, `\u12`, `"\ud800\u"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if checkText(body) != nil {
			return
		}
		var s string
		if json.Unmarshal(body, &s) != nil {
			return
		}
		if strings.ContainsRune(s, utf8.RuneError) {
			lower := strings.ToLower(string(body))
			assert.True(t, strings.Contains(lower, "\\ufffd") || strings.ContainsRune(string(body), utf8.RuneError),
				"accepted %q decodes with a replacement character it did not hold", body)
		}
	})
}

// failingAuditor is a fail-closed audit log whose store does not answer.
type failingAuditor struct{}

func (failingAuditor) Audit(context.Context, keyring.AuditEvent) error {
	return errors.New("audit store unavailable")
}

// TestAttackFinding9AuditFailClosed: with a fail-closed auditor that cannot
// store records (serve --audit-fail-closed), a request whose record is not
// stored fails with KMSInternalException instead of succeeding unaudited:
// the keyring's operations and the reads the handler audits itself alike.
func TestAttackFinding9AuditFailClosed(t *testing.T) {
	e := newEnv(t)
	id, _ := e.admin.createKey(obj{})
	closed := e.handler(WithAuditor(failingAuditor{}))
	e.admin.via(closed).fail("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256"}, "KMSInternalException")
	e.admin.via(closed).fail("DescribeKey", obj{"KeyId": id}, "KMSInternalException")
	e.admin.via(closed).fail("ListKeys", obj{}, "KMSInternalException")
	e.admin.via(e.h).do("DescribeKey", obj{"KeyId": id}) // fail-open: answered
}
