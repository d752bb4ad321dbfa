package envelope_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/internal/format"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/require"
)

// TestRelabelContext is the attack of issue 9: someone allowed to
// ReEncrypt a data key blob (but not to Decrypt it) re-encrypts the
// header's blob from context A to context B, writes B and the new blob into
// the header, and keeps salt, commitment and payload. The forged envelope
// must not open under B, with Open or NewReader.
func TestRelabelContext(t *testing.T) {
	ctx := t.Context()
	k := newKey(t)
	a := map[string]string{"tenant": "a"}
	b := map[string]string{"tenant": "b"}
	for _, n := range []int{16, 100 << 10} { // ChaCha20-Poly1305 in one segment, AES-256-GCM in two
		pt := random(n)
		sealed, err := envelope.Seal(ctx, k, pt, envelope.WithEncryptionContext(a))
		require.NoError(t, err)
		h, err := envelope.Inspect(sealed)
		require.NoError(t, err)

		blobB, err := k.ReEncrypt(ctx, h.DataKeyBlob, keyring.WithEncryptionContext(a), keyring.WithDestinationEncryptionContext(b))
		require.NoError(t, err, "the attacker may ReEncrypt")
		ecB, err := format.AppendContext(nil, b)
		require.NoError(t, err)
		forged := relabel(t, sealed, h, ecB, blobB)
		hf, err := envelope.Inspect(forged)
		require.NoError(t, err, "the forged header parses")
		require.Equal(t, b, hf.EncryptionContext)

		e1, e2 := openBoth(t, k, forged, envelope.WithEncryptionContext(b))
		require.ErrorIs(t, e1, keyring.ErrDecrypt, "Open of an envelope relabelled from A to B (%d bytes)", n)
		require.ErrorIs(t, e2, keyring.ErrDecrypt, "NewReader of an envelope relabelled from A to B (%d bytes)", n)
		e1, e2 = openBoth(t, k, forged)
		require.ErrorIs(t, e1, keyring.ErrDecrypt, "Open without an expected context")
		require.ErrorIs(t, e2, keyring.ErrDecrypt, "NewReader without an expected context")
	}
}

// relabel returns sealed with its context and blob replaced, every other
// header byte and the payload kept.
func relabel(t *testing.T, sealed []byte, h envelope.Header, ec, blob []byte) []byte {
	t.Helper()
	out := bytes.Clone(sealed[:format.FixedHeaderSize-4])
	out = binary.BigEndian.AppendUint16(out, uint16(len(ec)))
	out = binary.BigEndian.AppendUint16(out, uint16(len(blob)))
	out = append(out, ec...)
	out = append(out, blob...)
	return append(out, sealed[h.Size:]...)
}
