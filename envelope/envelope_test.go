package envelope_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const seg = 64 << 10

var sizes = []int{0, 1, 1000, seg - 1, seg, seg + 1, 3 * seg, 3*seg + 17}

// newKeyOptions are the options of newKey: TestApprovedSuite runs the
// generic tests again with keyring.WithApprovedAlgorithms.
var newKeyOptions []keyring.Option

func newKey(t testing.TB) *keyring.Keyring {
	t.Helper()
	k, err := keyring.New(t.Context(), newKeyOptions...)
	require.NoError(t, err)
	return k
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestSealOpen(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	ec := map[string]string{"file": "orders.csv"}
	for _, n := range sizes {
		pt := random(n)
		sealed, err := envelope.Seal(ctx, k, pt, envelope.WithEncryptionContext(ec))
		require.NoError(t, err)
		h, err := envelope.Inspect(sealed)
		require.NoError(t, err)
		overhead := len(sealed) - n
		segments := max(1, (n+seg-1)/seg)
		perSegment := 16
		if h.FIPSApproved {
			perSegment = 12 + 16 // the module's nonce and the tag
		}
		assert.Equal(t, h.Size+perSegment*segments, overhead, "size %d: header plus one tag (and nonce) per segment", n)

		got, err := envelope.Open(ctx, k, sealed)
		require.NoError(t, err, "size %d", n)
		assert.Equal(t, pt, nonNil(got), "size %d", n)
		got, err = envelope.Open(ctx, k, sealed, envelope.WithEncryptionContext(ec))
		require.NoError(t, err)
		assert.Equal(t, pt, nonNil(got))

		_, err = envelope.Open(ctx, k, sealed, envelope.WithEncryptionContext(map[string]string{"file": "other"}))
		assert.ErrorIs(t, err, envelope.ErrContextMismatch)
		_, err = envelope.Open(ctx, k, sealed, envelope.WithEncryptionContext(nil))
		assert.ErrorIs(t, err, envelope.ErrContextMismatch)
	}
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func TestInspect(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	_, err := k.Rotate(ctx)
	require.NoError(t, err)
	ec := map[string]string{"a": "b"}
	sealed, err := envelope.Seal(ctx, k, []byte("x"), envelope.WithEncryptionContext(ec))
	require.NoError(t, err)
	h, err := envelope.Inspect(sealed)
	require.NoError(t, err)
	assert.Equal(t, k.ID(), h.KeyID)
	assert.Equal(t, uint32(2), h.Version)
	assert.Equal(t, ec, h.EncryptionContext)
	assert.Equal(t, seg, h.SegmentSize)
	pt, err := k.Decrypt(ctx, h.DataKeyBlob, keyring.WithEncryptionContext(ec))
	require.NoError(t, err, "the header's blob is a plain data key blob")
	assert.Len(t, pt, 32)
}

func TestStreams(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	for _, n := range sizes {
		pt := random(n)
		for _, chunk := range []int{1 << 20, 1000, seg} {
			if chunk < 1000 && n > seg {
				continue
			}
			var buf bytes.Buffer
			w, err := envelope.NewWriter(ctx, k, &buf)
			require.NoError(t, err)
			for p := pt; len(p) > 0; p = p[min(chunk, len(p)):] {
				_, err := w.Write(p[:min(chunk, len(p))])
				require.NoError(t, err)
			}
			require.NoError(t, w.Close())
			require.NoError(t, w.Close(), "second Close is a no-op")
			_, err = w.Write([]byte("x"))
			require.Error(t, err, "write after close")

			got, err := envelope.Open(ctx, k, buf.Bytes())
			require.NoError(t, err, "Open reads what NewWriter wrote (size %d, chunk %d)", n, chunk)
			assert.Equal(t, pt, nonNil(got))

			r, err := envelope.NewReader(ctx, k, bytes.NewReader(buf.Bytes()))
			require.NoError(t, err)
			got, err = io.ReadAll(iotestOneByte(r, chunk == 1000))
			require.NoError(t, err)
			assert.Equal(t, pt, nonNil(got))
		}
		sealed, err := envelope.Seal(ctx, k, pt)
		require.NoError(t, err)
		r, err := envelope.NewReader(ctx, k, bytes.NewReader(sealed))
		require.NoError(t, err)
		got, err := io.ReadAll(r)
		require.NoError(t, err, "NewReader reads what Seal wrote (size %d)", n)
		assert.Equal(t, pt, nonNil(got))

		// io.Copy takes the WriterTo path.
		r, err = envelope.NewReader(ctx, k, bytes.NewReader(sealed))
		require.NoError(t, err)
		var out bytes.Buffer
		copied, err := io.Copy(&out, r)
		require.NoError(t, err)
		assert.Equal(t, int64(n), copied)
		assert.Equal(t, pt, nonNil(out.Bytes()))
		if n > seg {
			r, err = envelope.NewReader(ctx, k, bytes.NewReader(sealed[:len(sealed)-1]))
			require.NoError(t, err)
			out.Reset()
			copied, err = io.Copy(&out, r)
			assert.Error(t, err, "a cut stream ends in an error through WriteTo too")
			assert.Less(t, copied, int64(n))
		}
	}
}

// iotestOneByte makes small reads when small is set, to exercise the
// reader's buffering.
func iotestOneByte(r io.Reader, small bool) io.Reader {
	if !small {
		return r
	}
	return readerFunc(func(p []byte) (int, error) { return r.Read(p[:min(len(p), 7)]) })
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// openBoth opens sealed with Open and with NewReader and returns the errors.
func openBoth(t *testing.T, k envelope.Opener, sealed []byte, opts ...envelope.Option) (error, error) {
	t.Helper()
	pt, err1 := envelope.Open(t.Context(), k, sealed, opts...)
	assert.True(t, pt == nil, "no plaintext from a failed Open")
	var err2 error
	r, err := envelope.NewReader(t.Context(), k, bytes.NewReader(sealed), opts...)
	if err != nil {
		err2 = err
	} else {
		_, err2 = io.ReadAll(r)
	}
	return err1, err2
}

// documented is the list of errors Open's godoc says tampered input can
// produce.
var documented = []error{
	keyring.ErrMalformed, keyring.ErrDecrypt, keyring.ErrWrongKey, keyring.ErrKeyNotFound,
	keyring.ErrUnknownVersion, keyring.ErrVersionDisabled, keyring.ErrVersionDestroyed,
}

// requireDocumented fails unless err is one of the documented errors.
func requireDocumented(t *testing.T, err error, msgAndArgs ...any) {
	t.Helper()
	require.Error(t, err, msgAndArgs...)
	for _, d := range documented {
		if errors.Is(err, d) {
			return
		}
	}
	require.Fail(t, "undocumented error "+err.Error(), msgAndArgs...)
}

// TestTamper flips every bit of a one-segment and of a three-segment
// envelope, cuts them at every length and appends a byte: every change
// fails, in Open and in NewReader, with an error Open's godoc lists, also
// with a keyring.Set, a keyring with a disabled version, and an expected
// context.
func TestTamper(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	ec := map[string]string{"k": "v"}
	// Version 1 disabled, 2 current, 3 destroyed would need the
	// lifecycle; a disabled version is enough to reach that error.
	_, err := k.Rotate(ctx)
	require.NoError(t, err)
	_, err = k.Rotate(ctx)
	require.NoError(t, err)
	require.NoError(t, k.DisableVersion(ctx, 2))
	set := keyring.NewSet(k)
	small, err := envelope.Seal(ctx, k, []byte("attack at dawn"), envelope.WithEncryptionContext(ec))
	require.NoError(t, err)
	large, err := envelope.Seal(ctx, k, random(2*seg+10), envelope.WithEncryptionContext(ec))
	require.NoError(t, err)
	h, err := envelope.Inspect(large)
	require.NoError(t, err)
	for _, sealed := range [][]byte{small, large} {
		bits := len(sealed) * 8
		if len(sealed) > seg {
			bits = (h.Size + 64) * 8 // the header and the start of the payload
		}
		for i := range bits {
			b := bytes.Clone(sealed)
			b[i/8] ^= 1 << (i % 8)
			for _, o := range []envelope.Opener{k, set} {
				e1, e2 := openBoth(t, o, b)
				requireDocumented(t, e1, "bit %d", i)
				requireDocumented(t, e2, "bit %d (stream)", i)
			}
			e1, e2 := openBoth(t, k, b, envelope.WithEncryptionContext(ec))
			requireDocumented(t, e1, "bit %d, expected context", i)
			requireDocumented(t, e2, "bit %d, expected context (stream)", i)
		}
	}
	for _, sealed := range [][]byte{small, large} {
		step := 1
		if len(sealed) > seg {
			step = 997
		}
		for n := 0; n < len(sealed); n += step {
			e1, e2 := openBoth(t, k, sealed[:n])
			requireDocumented(t, e1, "truncated to %d", n)
			requireDocumented(t, e2, "truncated to %d (stream)", n)
		}
		e1, e2 := openBoth(t, k, append(bytes.Clone(sealed), 0))
		requireDocumented(t, e1, "trailing byte")
		requireDocumented(t, e2, "trailing byte (stream)")
	}
}

func TestTruncationAtSegmentBoundary(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	sealed, err := envelope.Seal(ctx, k, random(3*seg+5))
	require.NoError(t, err)
	h, err := envelope.Inspect(sealed)
	require.NoError(t, err)
	for s := 1; s <= 3; s++ {
		cut := sealed[:h.Size+s*(seg+16)]
		e1, e2 := openBoth(t, k, cut)
		assert.ErrorIs(t, e1, keyring.ErrDecrypt, "dropping the segments after %d is detected", s)
		assert.ErrorIs(t, e2, keyring.ErrDecrypt, "dropping the segments after %d is detected (stream)", s)
	}
	// Swapping two full segments fails.
	b := bytes.Clone(sealed)
	s0 := b[h.Size : h.Size+seg+16]
	s1 := b[h.Size+seg+16 : h.Size+2*(seg+16)]
	tmp := bytes.Clone(s0)
	copy(s0, s1)
	copy(s1, tmp)
	e1, e2 := openBoth(t, k, b)
	assert.ErrorIs(t, e1, keyring.ErrDecrypt)
	assert.ErrorIs(t, e2, keyring.ErrDecrypt)
}

func TestCommitment(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	a, err := envelope.Seal(ctx, k, []byte("first"))
	require.NoError(t, err)
	b, err := envelope.Seal(ctx, k, []byte("second"))
	require.NoError(t, err)
	ha, err := envelope.Inspect(a)
	require.NoError(t, err)
	hb, err := envelope.Inspect(b)
	require.NoError(t, err)
	// b's header with a's valid blob (same key, same context): the blob
	// decrypts, but to the wrong data key.
	forged := bytes.Clone(b[:hb.Size-len(hb.DataKeyBlob)])
	forged = append(forged, ha.DataKeyBlob...)
	forged = append(forged, b[hb.Size:]...)
	e1, e2 := openBoth(t, k, forged)
	assert.ErrorIs(t, e1, keyring.ErrDecrypt)
	assert.ErrorIs(t, e2, keyring.ErrDecrypt)
}

func TestRewrap(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	ec := map[string]string{"row": "42"}
	pt := random(2*seg + 3)
	sealed, err := envelope.Seal(ctx, k, pt, envelope.WithEncryptionContext(ec))
	require.NoError(t, err)
	_, err = k.Rotate(ctx)
	require.NoError(t, err)

	re, err := envelope.Rewrap(ctx, k, sealed)
	require.NoError(t, err)
	h0, err := envelope.Inspect(sealed)
	require.NoError(t, err)
	h1, err := envelope.Inspect(re)
	require.NoError(t, err)
	assert.Equal(t, uint32(1), h0.Version)
	assert.Equal(t, uint32(2), h1.Version, "rewrapped under the current version")
	assert.Equal(t, ec, h1.EncryptionContext)
	assert.Equal(t, sealed[h0.Size:], re[h1.Size:], "payload bytes untouched")
	got, err := envelope.Open(ctx, k, re, envelope.WithEncryptionContext(ec))
	require.NoError(t, err)
	assert.Equal(t, pt, got)

	other := newKey(t)
	_, err = envelope.Rewrap(ctx, other, sealed)
	assert.ErrorIs(t, err, keyring.ErrWrongKey)
}

// TestRewrapTamper: Rewrap reads a header someone else may have written.
// Every bit flipped in it, and every cut inside it, fails with an error
// Open's godoc lists and no output, before anything is wrapped.
func TestRewrapTamper(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	sealed, err := envelope.Seal(ctx, k, []byte("attack at dawn"), envelope.WithEncryptionContext(map[string]string{"k": "v"}))
	require.NoError(t, err)
	h, err := envelope.Inspect(sealed)
	require.NoError(t, err)
	for i := range h.Size * 8 {
		b := bytes.Clone(sealed)
		b[i/8] ^= 1 << (i % 8)
		out, err := envelope.Rewrap(ctx, k, b)
		requireDocumented(t, err, "bit %d", i)
		require.Nil(t, out, "bit %d: no output", i)
	}
	for n := range h.Size {
		out, err := envelope.Rewrap(ctx, k, sealed[:n])
		require.ErrorIs(t, err, keyring.ErrMalformed, "cut to %d bytes", n)
		require.Nil(t, out, "cut to %d bytes: no output", n)
	}
}

func TestSet(t *testing.T) {
	ctx := t.Context()
	a, b := newKey(t), newKey(t)
	set := keyring.NewSet(a, b)
	for _, k := range []*keyring.Keyring{a, b} {
		sealed, err := envelope.Seal(ctx, k, []byte(k.ID()))
		require.NoError(t, err)
		got, err := envelope.Open(ctx, set, sealed)
		require.NoError(t, err)
		assert.Equal(t, k.ID(), string(got))
	}
	sealed, err := envelope.Seal(ctx, newKey(t), []byte("x"))
	require.NoError(t, err)
	_, err = envelope.Open(ctx, set, sealed)
	assert.ErrorIs(t, err, keyring.ErrKeyNotFound)
}

func TestOverhead(t *testing.T) {
	k := newKey(t)
	sealed, err := envelope.Seal(t.Context(), k, make([]byte, 1024))
	require.NoError(t, err)
	if k.Approved() {
		assert.Equal(t, 217, len(sealed)-1024, "docs/FORMAT.md: 74 + 2 + 113 header bytes and one 12-byte nonce and 16-byte tag")
		return
	}
	assert.Equal(t, 185, len(sealed)-1024, "docs/FORMAT.md: 74 + 2 + 93 header bytes and one 16-byte tag")
}
