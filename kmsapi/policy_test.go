package kmsapi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func readPolicy(t testing.TB, name string) string {
	b, err := os.ReadFile(filepath.Join("testdata", "policies", name))
	require.NoError(t, err)
	return string(b)
}

const (
	testAccount = "111122223333"
	testKeyARN  = "arn:aws:kms:us-east-1:111122223333:key/0b7b8e0e-6f0c-4e8a-9c5e-3f4b2a1d0c9e"
)

func user(name string) string { return principalARN(testAccount, name) }

func TestPolicyEvaluation(t *testing.T) {
	type req struct {
		user, action string
		ec           map[string]string
		resource     string
	}
	for _, tc := range []struct {
		policy string
		req    req
		want   bool
	}{
		// The default policy delegates to IAM, which does not exist here.
		{"default.json", req{user: "alice", action: "kms:Encrypt"}, false},

		{"users.json", req{user: "alice", action: "kms:Encrypt"}, true},
		{"users.json", req{user: "alice", action: "kms:ReEncryptFrom"}, true},
		{"users.json", req{user: "alice", action: "kms:generatedatakeywithoutplaintext"}, true},
		{"users.json", req{user: "alice", action: "kms:PutKeyPolicy"}, false},
		{"users.json", req{user: "admin", action: "kms:PutKeyPolicy"}, true},
		{"users.json", req{user: "admin", action: "kms:Encrypt"}, false},
		{"users.json", req{user: "bob", action: "kms:Encrypt"}, true},
		{"users.json", req{user: "bob", action: "kms:Decrypt"}, false}, // explicit Deny wins
		{"users.json", req{user: "mallory", action: "kms:Encrypt"}, false},
		{"users.json", req{user: "Alice", action: "kms:Encrypt"}, false},

		{"context.json", req{user: "svc", action: "kms:GenerateDataKey", ec: map[string]string{"tenant": "acme"}}, true},
		{"context.json", req{user: "svc", action: "kms:GenerateDataKey", ec: map[string]string{"tenant": "acme", "table": "orders"}}, true},
		{"context.json", req{user: "svc", action: "kms:GenerateDataKey", ec: map[string]string{"tenant": "ACME"}}, false},
		{"context.json", req{user: "svc", action: "kms:GenerateDataKey", ec: map[string]string{"Tenant": "acme"}}, false},
		{"context.json", req{user: "svc", action: "kms:GenerateDataKey", ec: map[string]string{"tenant": "acme", "other": "x"}}, false},
		{"context.json", req{user: "svc", action: "kms:GenerateDataKey"}, false},
		{"context.json", req{user: "svc", action: "kms:Decrypt", ec: map[string]string{"tenant": "acme", "legacy": "1"}}, false},
		{"context.json", req{user: "svc", action: "kms:Encrypt", ec: map[string]string{"team": "tenant-blue"}}, true},
		{"context.json", req{user: "svc", action: "kms:Encrypt", ec: map[string]string{"team": "blue"}}, false},
		{"context.json", req{user: "svc", action: "kms:Encrypt", ec: map[string]string{"team": "tenant-blue"},
			resource: "arn:aws:kms:eu-west-1:111122223333:key/0b7b8e0e-6f0c-4e8a-9c5e-3f4b2a1d0c9e"}, false},
		{"context.json", req{user: "auditor", action: "kms:Decrypt"}, true},
		{"context.json", req{user: "auditor", action: "kms:Decrypt", ec: map[string]string{"purpose": "audit"}}, true},
		{"context.json", req{user: "auditor", action: "kms:Decrypt", ec: map[string]string{"purpose": "export"}}, false},

		{"single.json", req{user: "anyone", action: "kms:DescribeKey"}, true},
		{"single.json", req{user: "anyone", action: "kms:Encrypt"}, false},
	} {
		p, err := parsePolicy(readPolicy(t, tc.policy))
		require.NoError(t, err, tc.policy)
		r := accessRequest{principal: user(tc.req.user), account: testAccount, action: tc.req.action, resource: testKeyARN, ec: tc.req.ec}
		if tc.req.resource != "" {
			r.resource = tc.req.resource
		}
		assert.Equal(t, tc.want, p.allows(r), "%s: %+v", tc.policy, tc.req)
	}
}

func TestPolicyConditionOperators(t *testing.T) {
	ec := map[string]string{"a": "x", "b": "y"}
	for _, tc := range []struct {
		cond string
		ec   map[string]string
		want bool
	}{
		{`{"StringEquals": {"kms:EncryptionContext:a": ["w", "x"]}}`, ec, true},
		{`{"StringEquals": {"KMS:ENCRYPTIONCONTEXT:a": "x"}}`, ec, true}, // the prefix is case-insensitive
		{`{"StringEquals": {"kms:EncryptionContext:A": "x"}}`, ec, true}, // the context key is case-insensitive, as on AWS
		{`{"StringNotEquals": {"kms:EncryptionContext:a": "x"}}`, ec, false},
		{`{"StringNotEquals": {"kms:EncryptionContext:a": "z"}}`, ec, true},
		{`{"StringNotEquals": {"kms:EncryptionContext:c": "z"}}`, ec, true}, // absent key: negated operators match
		{`{"StringEquals": {"kms:EncryptionContext:c": "z"}}`, ec, false},
		{`{"StringEqualsIfExists": {"kms:EncryptionContext:c": "z"}}`, ec, true},
		{`{"StringEqualsIfExists": {"kms:EncryptionContext:a": "z"}}`, ec, false},
		{`{"StringEqualsIgnoreCase": {"kms:EncryptionContext:a": "X"}}`, ec, true},
		{`{"StringNotEqualsIgnoreCase": {"kms:EncryptionContext:a": "X"}}`, ec, false},
		{`{"StringLike": {"kms:EncryptionContext:a": "?"}}`, ec, true},
		{`{"StringLike": {"kms:EncryptionContext:a": "x*y"}}`, ec, false},
		{`{"StringNotLike": {"kms:EncryptionContext:a": "*"}}`, ec, false},
		{`{"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "b"}}`, ec, true},
		{`{"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "c"}}`, ec, false},
		{`{"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "c"}}`, nil, false},
		{`{"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["a", "b", "c"]}}`, ec, true},
		{`{"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["a"]}}`, ec, false},
		{`{"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["a"]}}`, nil, true}, // vacuous, as on AWS
		{`{"ForAllValues:StringLike": {"kms:EncryptionContextKeys": ["?"]}}`, ec, true},
		{`{"ForAnyValue:StringNotEquals": {"kms:EncryptionContextKeys": ["a"]}}`, ec, true},
		{`{"ForAllValues:StringNotEquals": {"kms:EncryptionContextKeys": ["a"]}}`, ec, false},
		{`{"StringEquals": {"kms:EncryptionContextKeys": "a"}}`, ec, true},
		{`{"StringEquals": {"kms:EncryptionContext:n": 5}}`, map[string]string{"n": "5"}, true},
		{`{"StringEquals": {"kms:EncryptionContext:a": "x", "kms:EncryptionContext:b": "z"}}`, ec, false}, // keys AND
		{`{"StringEquals": {"kms:EncryptionContext:a": "x"}, "StringLike": {"kms:EncryptionContext:b": "y*"}}`, ec, true},
	} {
		doc := `{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*", "Condition": ` + tc.cond + `}}`
		p, err := parsePolicy(doc)
		require.NoError(t, err, tc.cond)
		got := p.allows(accessRequest{principal: user("u"), account: testAccount, action: "kms:Decrypt", resource: testKeyARN, ec: tc.ec})
		assert.Equal(t, tc.want, got, "%s with %v", tc.cond, tc.ec)
	}
}

func TestPolicyAccountPrincipal(t *testing.T) {
	doc := `{"Statement": [
		{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"},
		{"Effect": "Deny", "Principal": {"AWS": "111122223333"}, "Action": "kms:Decrypt", "Resource": "*"}]}`
	p, err := parsePolicy(doc)
	require.NoError(t, err)
	r := accessRequest{principal: user("alice"), account: testAccount, action: "kms:Decrypt", resource: testKeyARN}
	assert.False(t, p.allows(r), "a Deny for the account covers its users")
	r.action = "kms:Encrypt"
	assert.True(t, p.allows(r))
}

func TestPolicyRejects(t *testing.T) {
	stmt := func(s string) string { return `{"Version": "2012-10-17", "Statement": [` + s + `]}` }
	ok := `"Effect": "Allow", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*"`
	for name, doc := range map[string]string{
		"empty":                "",
		"not JSON":             "{",
		"a list":               "[]",
		"trailing data":        stmt("{"+ok+"}") + "{}",
		"duplicate element":    `{"Statement": [{` + ok + `}], "Statement": [{` + ok + `}]}`,
		"duplicate in stmt":    stmt(`{` + ok + `, "Effect": "Deny"}`),
		"unknown element":      `{"Statement": [{` + ok + `}], "Foo": 1}`,
		"bad version":          `{"Version": "2020-01-01", "Statement": [{` + ok + `}]}`,
		"no statement":         `{"Version": "2012-10-17"}`,
		"empty statements":     stmt(""),
		"statement not object": stmt(`"x"`),
		"lowercase effect":     stmt(`{"Effect": "allow", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*"}`),
		"no effect":            stmt(`{"Principal": "*", "Action": "kms:Encrypt", "Resource": "*"}`),
		"no principal":         stmt(`{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}`),
		"no action":            stmt(`{"Effect": "Allow", "Principal": "*", "Resource": "*"}`),
		"no resource":          stmt(`{"Effect": "Allow", "Principal": "*", "Action": "kms:Encrypt"}`),
		"NotAction":            stmt(`{` + ok + `, "NotAction": "kms:Decrypt"}`),
		"NotPrincipal":         stmt(`{"Effect": "Deny", "NotPrincipal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}`),
		"other service action": stmt(`{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}`),
		"empty action list":    stmt(`{"Effect": "Allow", "Principal": "*", "Action": [], "Resource": "*"}`),
		"action not string":    stmt(`{"Effect": "Allow", "Principal": "*", "Action": [1], "Resource": "*"}`),
		"bare user principal":  stmt(`{"Effect": "Allow", "Principal": {"AWS": "alice"}, "Action": "kms:*", "Resource": "*"}`),
		"short account":        stmt(`{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1234:user/a"}, "Action": "kms:*", "Resource": "*"}`),
		"federated principal":  stmt(`{"Effect": "Allow", "Principal": {"Federated": "x"}, "Action": "kms:*", "Resource": "*"}`),
		"principal string":     stmt(`{"Effect": "Allow", "Principal": "alice", "Action": "kms:*", "Resource": "*"}`),
		"bad resource":         stmt(`{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "key/1"}`),
		"numeric operator":     stmt(`{` + ok + `, "Condition": {"NumericEquals": {"kms:EncryptionContext:a": "1"}}}`),
		"other condition key":  stmt(`{` + ok + `, "Condition": {"StringEquals": {"aws:SourceIp": "10.0.0.1"}}}`),
		"empty context key":    stmt(`{` + ok + `, "Condition": {"StringEquals": {"kms:EncryptionContext:": "x"}}}`),
		"empty value list":     stmt(`{` + ok + `, "Condition": {"StringEquals": {"kms:EncryptionContext:a": []}}}`),
		"object value":         stmt(`{` + ok + `, "Condition": {"StringEquals": {"kms:EncryptionContext:a": {}}}}`),
		"condition not object": stmt(`{` + ok + `, "Condition": []}`),
		"too deep":             strings.Repeat("[", 40) + strings.Repeat("]", 40),
		"too large":            `{"Id": "` + strings.Repeat("x", MaxPolicySize) + `", "Statement": [{` + ok + `}]}`,
	} {
		err := ValidatePolicy(doc)
		assert.ErrorIs(t, err, ErrMalformedPolicy, name)
	}
}

func TestWildcardMatch(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"", "", true}, {"*", "", true}, {"*", "abc", true}, {"a*c", "abc", true}, {"a*c", "ac", true},
		{"a*c", "ab", false}, {"?", "", false}, {"a?c", "abc", true}, {"*a*a*a*", "aaa", true},
		{"*a*a*a*b", strings.Repeat("a", 1000), false}, {"kms:generate*", "kms:generatedatakey", true},
	} {
		assert.Equal(t, tc.want, wildcardMatch(tc.p, tc.s), "%q ~ %q", tc.p, tc.s)
	}
}

// FuzzParsePolicy: no document panics or takes unbounded time; what
// parses evaluates without panicking.
func FuzzParsePolicy(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "policies", "*.json"))
	require.NoError(f, err)
	require.NotEmpty(f, files, "seed corpus")
	for _, name := range files {
		f.Add(readPolicy(f, filepath.Base(name)))
	}
	f.Fuzz(func(t *testing.T, doc string) {
		p, err := parsePolicy(doc)
		if err != nil {
			require.ErrorIs(t, err, ErrMalformedPolicy)
			return
		}
		require.NotEmpty(t, p.statements)
		for _, ec := range []map[string]string{nil, {"tenant": "acme", "legacy": "1"}} {
			p.allows(accessRequest{principal: user("alice"), account: testAccount, action: "kms:Decrypt", resource: testKeyARN, ec: ec})
		}
	})
}
