package format_test

import (
	"bytes"
	"testing"

	"github.com/kmsring/kmsring/internal/format"
	"github.com/kmsring/kmsring/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testdata = "../../testdata"

func TestContextEncoding(t *testing.T) {
	a, err := format.AppendContext(nil, map[string]string{"ab": "c"})
	require.NoError(t, err)
	b, err := format.AppendContext(nil, map[string]string{"a": "bc"})
	require.NoError(t, err)
	assert.NotEqual(t, a, b, "length prefixes keep pairs apart")
	c, err := format.AppendContext(nil, map[string]string{"b": "2", "a": "1"})
	require.NoError(t, err)
	assert.Equal(t, []byte("\x00\x02\x00\x01a\x00\x011\x00\x01b\x00\x012"), c, "sorted by key")
	empty, err := format.AppendContext(nil, nil)
	require.NoError(t, err)
	assert.Equal(t, []byte{0, 0}, empty)
	ec, err := format.ParseContext(c)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a": "1", "b": "2"}, ec)

	_, err = format.AppendContext(nil, map[string]string{"k": string(make([]byte, format.MaxContextSize))})
	assert.Error(t, err, "oversized context")
}

// FuzzParseBlob: no input panics, and what parses marshals back to itself.
func FuzzParseBlob(f *testing.F) {
	testvec.Seed(f, testdata+"/blob")
	f.Fuzz(func(t *testing.T, b []byte) {
		bl, err := format.ParseBlob(b)
		if err != nil {
			require.ErrorIs(t, err, format.ErrMalformed)
			return
		}
		require.Equal(t, b, bl.Marshal(), "parse then marshal returns the input")
	})
}

// FuzzParseHeader: no input panics, what parses marshals back to the bytes
// it was parsed from, and ReadHeader agrees with ParseHeader.
func FuzzParseHeader(f *testing.F) {
	testvec.Seed(f, testdata+"/envelope")
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := format.ParseHeader(b)
		h2, raw, err2 := format.ReadHeader(bytes.NewReader(b))
		if err != nil {
			require.ErrorIs(t, err, format.ErrMalformed)
			require.ErrorIs(t, err2, format.ErrMalformed, "ReadHeader rejects what ParseHeader rejects")
			return
		}
		require.NoError(t, err2)
		require.Equal(t, b[:n], raw)
		require.Equal(t, h, h2)
		out, err := h.Append(nil)
		require.NoError(t, err)
		require.Equal(t, b[:n], out, "parse then marshal returns the input")
	})
}

// FuzzParseContext: no input panics; what parses encodes back to itself.
func FuzzParseContext(f *testing.F) {
	for _, ec := range []map[string]string{nil, {"a": "b"}, {"tenant": "acme", "table": "orders"}, {"k": ""}} {
		b, err := format.AppendContext(nil, ec)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ec, err := format.ParseContext(b)
		if err != nil {
			require.ErrorIs(t, err, format.ErrMalformed)
			return
		}
		out, err := format.AppendContext(nil, ec)
		require.NoError(t, err)
		require.Equal(t, b, out)
	})
}
