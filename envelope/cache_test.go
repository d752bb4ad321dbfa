package envelope_test

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func blobOf(t *testing.T, sealed []byte) []byte {
	h, err := envelope.Inspect(sealed)
	require.NoError(t, err)
	return h.DataKeyBlob
}

func TestCache(t *testing.T) {
	ctx := t.Context()
	clk := clockwork.NewFakeClock()
	k, err := keyring.New(ctx, keyring.WithClock(clk))
	require.NoError(t, err)
	c, err := envelope.NewCache(envelope.WithMaxMessages(3), envelope.WithMaxBytes(100), envelope.WithMaxAge(time.Minute), envelope.WithCacheClock(clk))
	require.NoError(t, err)
	seal := func(pt string, ec map[string]string) []byte {
		b, err := envelope.Seal(ctx, k, []byte(pt), envelope.WithCache(c), envelope.WithEncryptionContext(ec))
		require.NoError(t, err)
		got, err := envelope.Open(ctx, k, b)
		require.NoError(t, err)
		require.Equal(t, pt, string(got))
		return b
	}
	a := map[string]string{"tenant": "a"}
	s1, s2 := seal("one", a), seal("two", a)
	assert.Equal(t, blobOf(t, s1), blobOf(t, s2), "the data key is reused")
	assert.NotEqual(t, s1[6:38], s2[6:38], "each message has its own salt, hence its own payload key")

	other := seal("three", map[string]string{"tenant": "b"})
	assert.NotEqual(t, blobOf(t, s1), blobOf(t, other), "never shared across encryption contexts")

	s3, s4 := seal("four", a), seal("five", a)
	assert.Equal(t, blobOf(t, s1), blobOf(t, s3))
	assert.NotEqual(t, blobOf(t, s3), blobOf(t, s4), "retired after 3 messages")

	s5 := seal(string(make([]byte, 97)), a)
	assert.NotEqual(t, blobOf(t, s4), blobOf(t, s5), "retired at 100 bytes")

	s6 := seal("x", a)
	clk.Advance(time.Minute)
	s7 := seal("y", a)
	assert.NotEqual(t, blobOf(t, s6), blobOf(t, s7), "retired after a minute")

	_, err = k.Rotate(ctx)
	require.NoError(t, err)
	s8 := seal("z", a)
	h, err := envelope.Inspect(s8)
	require.NoError(t, err)
	assert.Equal(t, uint32(2), h.Version, "a rotation retires cached keys")

	big := seal(string(make([]byte, 200)), a)
	assert.NotEqual(t, blobOf(t, s8), blobOf(t, big), "a message over the byte limit gets a fresh key")

	assert.Equal(t, 2, c.Len())
	c.Purge()
	assert.Zero(t, c.Len())

	_, err = envelope.NewCache(envelope.WithMaxAge(0))
	assert.ErrorIs(t, err, keyring.ErrInvalidArgument)
}

func TestCacheConcurrent(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	c, err := envelope.NewCache(envelope.WithMaxMessages(10))
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	blobs := map[string]int{}
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				pt := []byte{byte(g), byte(i)}
				sealed, err := envelope.Seal(ctx, k, pt, envelope.WithCache(c))
				if !assert.NoError(t, err) {
					return
				}
				got, err := envelope.Open(ctx, k, sealed)
				assert.NoError(t, err)
				assert.True(t, bytes.Equal(pt, got))
				mu.Lock()
				blobs[string(blobOf(t, sealed))]++
				mu.Unlock()
			}
		})
		if g == 3 {
			c.Purge() // purging under load must not corrupt a message
		}
	}
	wg.Wait()
	for _, n := range blobs {
		assert.LessOrEqual(t, n, 10, "no data key seals more than MaxMessages messages")
	}
	assert.GreaterOrEqual(t, len(blobs), 40)
}
