package envelope_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/internal/testvec"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	suiteAESGCM   = 0x01
	suiteChaCha20 = 0x02
	suiteOffset   = 5 // magic, format
)

// TestSuites: Seal uses ChaCha20-Poly1305 up to 4 KiB (one segment) and
// AES-256-GCM above, NewWriter always AES-256-GCM; Open and NewReader read
// both, whatever wrote them.
func TestSuites(t *testing.T) {
	testvec.SkipInFIPSMode(t, "the default suites")
	ctx := t.Context()
	k := newKey(t)
	for _, tc := range []struct {
		n     int
		suite byte
	}{{0, suiteChaCha20}, {1, suiteChaCha20}, {4 << 10, suiteChaCha20}, {4<<10 + 1, suiteAESGCM}, {seg, suiteAESGCM}, {3*seg + 1, suiteAESGCM}} {
		pt := random(tc.n)
		sealed, err := envelope.Seal(ctx, k, pt)
		require.NoError(t, err)
		assert.Equal(t, tc.suite, sealed[suiteOffset], "Seal of %d bytes", tc.n)
		got, err := readAll(t, k, sealed)
		require.NoError(t, err)
		assert.Equal(t, pt, nonNil(got))

		var buf bytes.Buffer
		w, err := envelope.NewWriter(ctx, k, &buf)
		require.NoError(t, err)
		_, err = w.Write(pt)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		assert.Equal(t, byte(suiteAESGCM), buf.Bytes()[suiteOffset], "NewWriter of %d bytes", tc.n)
		got, err = envelope.Open(ctx, k, buf.Bytes())
		require.NoError(t, err)
		assert.Equal(t, pt, nonNil(got))
	}

	// The suite is bound: an envelope relabelled with the other suite
	// fails the commitment.
	sealed, err := envelope.Seal(ctx, k, []byte("suite"))
	require.NoError(t, err)
	sealed[suiteOffset] = suiteAESGCM
	e1, e2 := openBoth(t, k, sealed)
	assert.ErrorIs(t, e1, keyring.ErrDecrypt)
	assert.ErrorIs(t, e2, keyring.ErrDecrypt)
}

// TestAppend: AppendSeal and AppendOpen append after what dst holds, reuse
// its room, and agree with Seal and Open.
func TestAppend(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	ec := map[string]string{"row": "7"}
	for _, n := range []int{0, 100, 5000, seg + 3} {
		pt := random(n)
		prefix := []byte("prefix")
		sealed, err := envelope.AppendSeal(ctx, bytes.Clone(prefix), k, pt, envelope.WithEncryptionContext(ec))
		require.NoError(t, err)
		require.Equal(t, prefix, sealed[:len(prefix)], "AppendSeal keeps dst")
		env := sealed[len(prefix):]

		buf := make([]byte, 3, 3+n+64)
		got, err := envelope.AppendOpen(ctx, buf, k, env, envelope.WithEncryptionContext(ec))
		require.NoError(t, err)
		assert.Equal(t, append(make([]byte, 3), pt...), got, "AppendOpen keeps dst")
		assert.Same(t, &buf[:1][0], &got[:1][0], "AppendOpen used dst's room")

		out := make([]byte, 0, len(env)+128)
		re, err := envelope.AppendSeal(ctx, out, k, pt, envelope.WithEncryptionContext(ec))
		require.NoError(t, err)
		assert.Same(t, &out[:1][0], &re[:1][0], "AppendSeal used dst's room")
		got, err = envelope.Open(ctx, k, re)
		require.NoError(t, err)
		assert.Equal(t, pt, nonNil(got))
	}

	mem := make([]byte, 4096)
	pt := mem[100:200]
	assert.PanicsWithValue(t, "envelope: AppendSeal: dst overlaps plaintext", func() {
		envelope.AppendSeal(ctx, mem[:0], k, pt)
	})
	sealed, err := envelope.Seal(ctx, k, pt)
	require.NoError(t, err)
	assert.PanicsWithValue(t, "envelope: AppendOpen: dst overlaps sealed", func() {
		envelope.AppendOpen(ctx, sealed[:0], k, sealed)
	})

	// On failure, AppendOpen returns nil and leaves no plaintext in dst's
	// room.
	bad := bytes.Clone(sealed)
	bad[len(bad)-1] ^= 1
	buf := make([]byte, 0, 256)
	got, err := envelope.AppendOpen(ctx, buf, k, bad)
	require.ErrorIs(t, err, keyring.ErrDecrypt)
	assert.Nil(t, got)
	assert.Equal(t, make([]byte, 256), buf[:256], "nothing left in dst's room")
}

// TestAllocations pins the allocations of the 1 KiB path: Seal and Open
// allocate the envelope (or plaintext) and the payload cipher, nothing
// else; with room in dst, only the cipher. No option escapes.
func TestAllocations(t *testing.T) {
	testvec.SkipInFIPSMode(t, "allocation counts of the default suites")
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	ctx := context.Background()
	k := newKey(t)
	pt := make([]byte, 1024)
	sealed, err := envelope.Seal(ctx, k, pt)
	require.NoError(t, err)
	dst := make([]byte, 0, 2048)
	for _, tc := range []struct {
		name string
		max  float64
		f    func()
	}{
		{"Seal", 2, func() { envelope.Seal(ctx, k, pt) }},
		{"Seal with options", 2, func() { envelope.Seal(ctx, k, pt, envelope.WithEncryptionContext(nil)) }},
		{"AppendSeal", 1, func() { envelope.AppendSeal(ctx, dst[:0], k, pt) }},
		{"Open", 2, func() { envelope.Open(ctx, k, sealed) }},
		{"Open with options", 2, func() { envelope.Open(ctx, k, sealed, envelope.WithEncryptionContext(nil)) }},
		{"AppendOpen", 1, func() { envelope.AppendOpen(ctx, dst[:0], k, sealed) }},
	} {
		n := testing.AllocsPerRun(100, tc.f)
		assert.LessOrEqual(t, n, tc.max, "%s allocates %v times", tc.name, n)
	}
	set := keyring.NewSet(k)
	n := testing.AllocsPerRun(100, func() { envelope.AppendOpen(ctx, dst[:0], set, sealed) })
	assert.LessOrEqual(t, n, 1.0, "AppendOpen with a Set allocates %v times", n)
}

// TestWithHeader: Open, AppendOpen and NewReader report the authenticated
// header; a failure leaves it alone; Seal and NewWriter report what they
// wrote.
func TestWithHeader(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	_, err := k.Rotate(ctx)
	require.NoError(t, err)
	ec := map[string]string{"tenant": "acme"}
	var sh envelope.Header
	sealed, err := envelope.Seal(ctx, k, []byte("x"), envelope.WithEncryptionContext(ec), envelope.WithHeader(&sh))
	require.NoError(t, err)
	want, err := envelope.Inspect(sealed)
	require.NoError(t, err)
	assert.Equal(t, want, sh, "Seal reports the header it wrote")
	assert.Equal(t, k.ID(), sh.KeyID)
	assert.Equal(t, uint32(2), sh.Version)
	assert.Equal(t, ec, sh.EncryptionContext)

	var h1, h2, h3 envelope.Header
	_, err = envelope.Open(ctx, k, sealed, envelope.WithHeader(&h1))
	require.NoError(t, err)
	_, err = envelope.AppendOpen(ctx, nil, k, sealed, envelope.WithHeader(&h2))
	require.NoError(t, err)
	r, err := envelope.NewReader(ctx, k, bytes.NewReader(sealed), envelope.WithHeader(&h3))
	require.NoError(t, err)
	assert.Equal(t, want, h3, "NewReader reports the header before the payload is read")
	_, err = io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, want, h1)
	assert.Equal(t, want, h2)

	var w envelope.Header
	var buf bytes.Buffer
	_, err = envelope.NewWriter(ctx, k, &buf, envelope.WithHeader(&w))
	require.NoError(t, err)
	assert.Equal(t, k.ID(), w.KeyID)

	bad := bytes.Clone(sealed)
	bad[len(bad)-1] ^= 1
	untouched := envelope.Header{KeyID: "untouched"}
	h := untouched
	_, err = envelope.Open(ctx, k, bad, envelope.WithHeader(&h))
	require.Error(t, err)
	assert.Equal(t, untouched, h, "a failed Open leaves the header alone")
	_, err = envelope.Open(ctx, k, sealed, envelope.WithHeader(&h), envelope.WithEncryptionContext(map[string]string{"tenant": "other"}))
	require.ErrorIs(t, err, envelope.ErrContextMismatch)
	assert.Equal(t, untouched, h)
}

// TestTruncated: an envelope cut after its header, at a segment boundary
// or inside a tag, or a stream whose writer was never closed, fails with
// ErrTruncated, which says so and still matches keyring.ErrDecrypt. A cut
// inside a segment's data is indistinguishable from tampering:
// keyring.ErrDecrypt alone.
func TestTruncated(t *testing.T) {
	testvec.SkipInFIPSMode(t, "default-suite segment sizes")
	ctx := t.Context()
	k := newKey(t)
	pt := random(3*seg + 100)
	sealed, err := envelope.Seal(ctx, k, pt)
	require.NoError(t, err)
	h, err := envelope.Inspect(sealed)
	require.NoError(t, err)
	small, err := envelope.Seal(ctx, k, []byte("short"))
	require.NoError(t, err)
	hs, err := envelope.Inspect(small)
	require.NoError(t, err)

	var unclosed bytes.Buffer
	w, err := envelope.NewWriter(ctx, k, &unclosed)
	require.NoError(t, err)
	_, err = w.Write(pt)
	require.NoError(t, err) // no Close

	var unclosedShort bytes.Buffer
	w, err = envelope.NewWriter(ctx, k, &unclosedShort)
	require.NoError(t, err)
	_, err = w.Write([]byte("short")) // no Close: nothing after the header
	require.NoError(t, err)

	for name, b := range map[string][]byte{
		"header only":                   sealed[:h.Size],
		"cut after segment 1":           sealed[:h.Size+seg+16],
		"cut after segment 3":           sealed[:h.Size+3*(seg+16)],
		"cut inside the last tag":       sealed[:h.Size+3*(seg+16)+10],
		"short envelope cut in its tag": small[:hs.Size+15],
		"writer never closed":           unclosed.Bytes(),
		"short writer never closed":     unclosedShort.Bytes(),
	} {
		e1, e2 := openBoth(t, k, b)
		for _, err := range []error{e1, e2} {
			require.ErrorIs(t, err, envelope.ErrTruncated, name)
			require.ErrorIs(t, err, keyring.ErrDecrypt, name)
			require.Contains(t, err.Error(), "truncated", name)
		}
	}
	e1, e2 := openBoth(t, k, sealed[:h.Size+seg+100])
	for _, err := range []error{e1, e2} {
		require.ErrorIs(t, err, keyring.ErrDecrypt, "cut inside a segment")
		require.NotErrorIs(t, err, envelope.ErrTruncated, "cut inside a segment")
	}
	e1, e2 = openBoth(t, k, append(bytes.Clone(sealed), make([]byte, seg+16)...))
	for _, err := range []error{e1, e2} {
		require.ErrorIs(t, err, keyring.ErrDecrypt, "a segment appended")
		require.NotErrorIs(t, err, envelope.ErrTruncated, "a segment appended")
	}

	// The reader returns the authentic segments before the cut, then the
	// error, never io.EOF.
	r, err := envelope.NewReader(ctx, k, bytes.NewReader(unclosed.Bytes()))
	require.NoError(t, err)
	got, err := io.ReadAll(r)
	require.ErrorIs(t, err, envelope.ErrTruncated)
	assert.Equal(t, pt[:len(got)], got)
}

// TestContextMismatch: a wrong expected context is ErrContextMismatch,
// which is also keyring.ErrDecrypt (as Decrypt with a wrong context is).
func TestContextMismatch(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	sealed, err := envelope.Seal(ctx, k, []byte("x"), envelope.WithEncryptionContext(map[string]string{"a": "1"}))
	require.NoError(t, err)
	for _, ec := range []map[string]string{nil, {"a": "2"}, {"a": "1", "b": "2"}} {
		e1, e2 := openBoth(t, k, sealed, envelope.WithEncryptionContext(ec))
		for _, err := range []error{e1, e2} {
			require.ErrorIs(t, err, envelope.ErrContextMismatch)
			require.ErrorIs(t, err, keyring.ErrDecrypt)
		}
	}
}

// opener is an Opener that is neither a Keyring nor a Set: it goes through
// Decrypt.
type opener struct{ k *keyring.Keyring }

func (o opener) Decrypt(ctx context.Context, blob []byte, opts ...keyring.OpOption) ([]byte, error) {
	return o.k.Decrypt(ctx, blob, opts...)
}

func TestOtherOpener(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	ec := map[string]string{"a": "b"}
	sealed, err := envelope.Seal(ctx, k, []byte("through Decrypt"), envelope.WithEncryptionContext(ec))
	require.NoError(t, err)
	got, err := envelope.Open(ctx, opener{k}, sealed)
	require.NoError(t, err)
	assert.Equal(t, "through Decrypt", string(got))
	forged := bytes.Clone(sealed)
	forged[40] ^= 1 // the commitment
	_, err = envelope.Open(ctx, opener{k}, forged)
	require.ErrorIs(t, err, keyring.ErrDecrypt)
}

// TestContextTooLarge: a 256 MiB context is rejected before it is encoded
// or copied (issue 10, item 6): the allocation is bounded, not
// proportional to the context.
func TestContextTooLarge(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	huge := map[string]string{"k": strings.Repeat("v", 256<<20)}
	many := make(map[string]string, 100000)
	for i := range 100000 {
		many[strings.Repeat("k", 1+i%7)+string(rune('a'+i%26))+strings.Repeat("x", i/182)] = ""
	}
	for name, ec := range map[string]map[string]string{"one 256 MiB value": huge, "100,000 pairs": many} {
		var err error
		n := testvec.Allocated(func() { _, err = envelope.Seal(ctx, k, []byte("x"), envelope.WithEncryptionContext(ec)) })
		require.ErrorIs(t, err, keyring.ErrInvalidArgument, name)
		assert.Less(t, n, uint64(4<<10), "%s: Seal allocated %d bytes before rejecting it", name, n)
		n = testvec.Allocated(func() {
			_, err = envelope.NewWriter(ctx, k, io.Discard, envelope.WithEncryptionContext(ec))
		})
		require.ErrorIs(t, err, keyring.ErrInvalidArgument, name)
		assert.Less(t, n, uint64(4<<10), "%s: NewWriter allocated %d bytes", name, n)
	}
}

// TestHostileHeaderMemory: a 78-byte header whose context claims 65,535
// pairs is rejected by Inspect, Open and NewReader with memory bounded by
// the input, not by the count (issue 10, item 6: it cost 5 MB per parse).
func TestHostileHeaderMemory(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	sealed, err := envelope.Seal(ctx, k, []byte("x"))
	require.NoError(t, err)
	h, err := envelope.Inspect(sealed)
	require.NoError(t, err)
	hostileCtx := []byte{0xff, 0xff, 0, 1, 'a', 0, 0, 0, 1, 'b', 0, 0}
	forged := relabel(t, sealed, h, hostileCtx, h.DataKeyBlob)
	for name, f := range map[string]func() error{
		"Inspect":   func() error { _, err := envelope.Inspect(forged); return err },
		"Open":      func() error { _, err := envelope.Open(ctx, k, forged); return err },
		"NewReader": func() error { _, err := envelope.NewReader(ctx, k, bytes.NewReader(forged)); return err },
	} {
		var err error
		n := testvec.Allocated(func() { err = f() })
		require.ErrorIs(t, err, keyring.ErrMalformed, name)
		assert.Less(t, n, uint64(16*len(forged)), "%s allocates %d bytes per call for a %d-byte header", name, n, len(forged))
	}
}
