package format_test

import (
	"bytes"
	"fmt"
	"strings"
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

	many := map[string]string{}
	for i := range 20 {
		many[string(rune('a'+i))] = "v"
	}
	enc, err := format.AppendContext(nil, many)
	require.NoError(t, err, "more keys than sort on the stack")
	back, err := format.ParseContext(enc)
	require.NoError(t, err)
	assert.Equal(t, many, back)
}

// TestParseContextMemory: the 16-bit count never sizes an allocation; what
// a parse allocates is bounded by its input (issue 10: a count of 0xffff
// cost 5 MB per parse).
func TestParseContextMemory(t *testing.T) {
	for name, b := range map[string][]byte{
		"count 0xffff, no pairs":  {0xff, 0xff},
		"count 0xffff, two pairs": {0xff, 0xff, 0, 1, 'a', 0, 0, 0, 1, 'b', 0, 0},
		"count 0xffff, 8 KiB":     append([]byte{0xff, 0xff, 0, 1, 'a', 0x1f, 0xfa}, make([]byte, 8186)...),
	} {
		var err error
		n := testvec.Allocated(func() { _, err = format.ParseContext(b) })
		require.ErrorIs(t, err, format.ErrMalformed, name)
		// The error message, and nothing sized from the count.
		assert.LessOrEqual(t, n, uint64(1024), "%s: %d bytes allocated per parse of %d bytes", name, n, len(b))
	}
	// A valid context of many pairs: memory grows with the pairs present.
	ec := map[string]string{}
	for i := range 800 {
		ec[fmt.Sprintf("k%04d", i)] = ""
	}
	b, err := format.AppendContext(nil, ec)
	require.NoError(t, err)
	n := testvec.Allocated(func() { _, err = format.ParseContext(b) })
	require.NoError(t, err)
	assert.Less(t, n, uint64(32*len(b)), "%d bytes allocated to parse %d bytes", n, len(b))
}

// TestCheckContextCheap: an oversized context is rejected from its
// lengths, before anything is copied, encoded or even read (issue 10: a
// 256 MiB context was encoded before it was rejected).
func TestCheckContextCheap(t *testing.T) {
	huge := map[string]string{"k": strings.Repeat("\xff", 256<<20)} // not UTF-8 either
	many := make(map[string]string, 10000)
	for i := range 10000 {
		many[fmt.Sprint(i)] = ""
	}
	long := map[string]string{"a": strings.Repeat("x", 4000), "b": strings.Repeat("y", 4000), "c": strings.Repeat("z", 4000)}
	for name, ec := range map[string]map[string]string{"one 256 MiB value": huge, "10,000 pairs": many, "three 4000-byte values": long} {
		var err error
		n := testvec.Allocated(func() { _, err = format.CheckContext(ec) })
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), "exceeds 8192 bytes", name)
		assert.Less(t, n, uint64(64), "%s: CheckContext allocated %d bytes", name, n)
		n = testvec.Allocated(func() { _, err = format.AppendContext(nil, ec) })
		require.Error(t, err, name)
		assert.Less(t, n, uint64(64), "%s: AppendContext allocated %d bytes", name, n)
	}
}

// FuzzParseBlob: no input panics, and what parses marshals back to itself.
func FuzzParseBlob(f *testing.F) {
	testvec.Seed(f, testdata+"/blob")
	testvec.Seed(f, testdata+"/blob-approved")
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
	testvec.Seed(f, testdata+"/envelope-approved")
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
	f.Add([]byte{0xff, 0xff, 0, 1, 'a', 0, 0, 0, 1, 'b', 0, 0}) // a count far beyond the pairs
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
