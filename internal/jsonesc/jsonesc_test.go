package jsonesc_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/kmsring/kmsring/internal/jsonesc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var cases = []string{
	"", "plain", `quote " and \ backslash`, "<a href='x'>&amp;</a>",
	"\b\f\n\r\t\x00\x01\x1f\x7f", "line\u2028para\u2029", "bad \xff\xfe utf-8 \xe2\x82",
	"héllo wörld ✓", "\ufffd", strings.Repeat("x<", 100),
}

// Each style writes what its writer writes.
func TestStylesMatchTheirWriters(t *testing.T) {
	for _, s := range cases {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		assert.Equal(t, string(want), `"`+string(jsonesc.EncodingJSON.Append(nil, s))+`"`, "encoding/json: %q", s)

		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: dropBuiltins})).Info("", "v", s)
		assert.Equal(t, `{"v":"`+string(jsonesc.Slog.Append(nil, s))+"\"}\n", buf.String(), "slog: %q", s)
	}
}

// dropBuiltins leaves only the attribute under test in a slog line.
func dropBuiltins(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
		return slog.Attr{}
	}
	return a
}
