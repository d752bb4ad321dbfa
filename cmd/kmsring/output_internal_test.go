package main

import (
	"bytes"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTextOutputMatchesAWSCLI: --output text follows the AWS CLI's text
// formatter; the expected lines are what aws 1.x printed for the same
// responses.
func TestTextOutputMatchesAWSCLI(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   any
		want string
	}{
		{"scalar", "c2VjcmV0", "c2VjcmV0\n"},
		{"bool and null", []any{true, false, nil}, "True\tFalse\tNone\n"},
		{"list of objects", listAliasesOutput{Aliases: []aliasListEntry{{"alias/a", "arn:a", "k1"}, {"alias/b", "arn:b", "k2"}}},
			"ALIASES\tarn:a\talias/a\tk1\nALIASES\tarn:b\talias/b\tk2\n"},
		{"nested object and scalar list", map[string]any{"KeyMetadata": map[string]any{"KeyId": "k", "Enabled": true, "EncryptionAlgorithms": []any{"SYMMETRIC_DEFAULT"}}},
			"KEYMETADATA\tTrue\tk\nENCRYPTIONALGORITHMS\tSYMMETRIC_DEFAULT\n"},
		{"top-level scalars sorted", map[string]any{"KeyId": "k", "Plaintext": "cA==", "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"},
			"SYMMETRIC_DEFAULT\tk\tcA==\n"},
		{"rows share columns", map[string]any{"L": []any{map[string]any{"A": "1"}, map[string]any{"B": "2"}}}, "L\t1\t\nL\t\t2\n"},
		{"control characters escaped", map[string]any{"D": "a\nEVENTS\t\x1b[2J"}, "a\\nEVENTS\\t\\x1b[2J\n"},
		{"empty list", map[string]any{"Keys": []any{}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _, err := toGeneric(tc.in)
			require.NoError(t, err)
			var buf bytes.Buffer
			writeText(&buf, v, "", nil)
			assert.Equal(t, tc.want, buf.String())
		})
	}
}

// TestAttackFinding5NoConnectionCap: serve's listener holds at most its
// cap of connections; the next waits until one closes.
func TestAttackFinding5NoConnectionCap(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := newLimitListener(ln, 2)
	defer l.Close()
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		defer c.Close()
	}
	first, second := <-accepted, <-accepted
	assert.Len(t, l.(*limitListener).sem, 2, "the cap is taken")
	assert.Empty(t, accepted, "no third connection over a cap of 2")
	require.NoError(t, first.Close())
	third := <-accepted // accepted once one closed
	third.Close()
	second.Close()
}

// TestQueryKeepsResponseOrder: an object --query keeps prints its fields
// in the response shape's order, as the AWS CLI does; keys of a
// multiselect hash follow, sorted.
func TestQueryKeepsResponseOrder(t *testing.T) {
	v, rank, err := toGeneric(createAccessKeyOutput{accessKeyOutput{UserName: "u", AccessKeyId: "AKIA", Status: "Active"}})
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, writeJSON(&buf, ordered(v.(map[string]any)["AccessKey"], rank)))
	assert.Regexp(t, `(?s)^\{\n    "UserName": "u",\n    "AccessKeyId": "AKIA",\n    "Status": "Active",\n    "SecretAccessKey": "",\n    "CreateDate": .*"Arn": "",\n    "Admin": false\n\}\n$`, buf.String())
	buf.Reset()
	require.NoError(t, writeJSON(&buf, ordered(map[string]any{"b": 1, "UserName": "u", "a": 2}, rank)))
	assert.Equal(t, "{\n    \"UserName\": \"u\",\n    \"a\": 2,\n    \"b\": 1\n}\n", buf.String())
}
