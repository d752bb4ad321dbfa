package testvec_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha512"
	"encoding/binary"
	"testing"

	"github.com/kmsring/kmsring/internal/format"
	"github.com/kmsring/kmsring/internal/testvec"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/require"
)

// specAEAD unwraps the data key of the envelope whose header is h and
// returns the payload AEAD, derived as docs/FORMAT.md says, written here
// independently of package envelope so that the two check each other.
func specAEAD(ctx context.Context, t testing.TB, k *keyring.Keyring, h *format.Header) cipher.AEAD {
	dek, err := k.Decrypt(ctx, h.Blob.Marshal(), keyring.WithEncryptionContext(h.Context))
	require.NoError(t, err)
	in := append([]byte("kmsring v1 envelope keys\x00"), 0x01)
	in = append(in, dek...)
	in = append(in, h.Salt[:]...)
	sum := sha512.Sum512(in)
	require.Equal(t, h.Commitment[:], sum[32:], "commitment is the second half of SHA-512")
	b, err := aes.NewCipher(sum[:32])
	require.NoError(t, err)
	g, err := cipher.NewGCM(b)
	require.NoError(t, err)
	return g
}

func specNonce(i uint64, last bool) []byte {
	n := binary.BigEndian.AppendUint64(make([]byte, 3), i)
	if last {
		return append(n, 1)
	}
	return append(n, 0)
}

// TestSpec opens every envelope vector that should open with the spec's
// construction alone.
func TestSpec(t *testing.T) {
	ctx := t.Context()
	k, err := testvec.LoadKeyring(ctx, testdata)
	require.NoError(t, err)
	vs, err := testvec.ReadDir(testdata + "/envelope")
	require.NoError(t, err)
	opened := 0
	for _, v := range vs {
		if v.Expect != testvec.Success {
			continue
		}
		h, n, err := format.ParseHeader(v.Data)
		require.NoError(t, err)
		aead := specAEAD(ctx, t, k, h)
		payload := v.Data[n:]
		var pt []byte
		for i := uint64(0); len(payload) > 0; i++ {
			seg := payload[:min(len(payload), 64<<10+16)]
			payload = payload[len(seg):]
			pt, err = aead.Open(pt, specNonce(i, len(payload) == 0), seg, nil)
			require.NoError(t, err, "%s segment %d", v.Name, i)
		}
		if pt == nil {
			pt = []byte{}
		}
		require.Equal(t, v.Plaintext, pt, v.Name)
		opened++
	}
	require.NotZero(t, opened)
}
