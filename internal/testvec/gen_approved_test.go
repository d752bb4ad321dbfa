package testvec_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/internal/format"
	"github.com/kmsring/kmsring/internal/testvec"
	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/require"
)

// genApprovedBlobs writes the vectors of the approved data key blob
// (format 0x10): one per parser rule and per authenticated field.
func genApprovedBlobs(t *testing.T, k *keyring.Keyring, write func(testvec.Vector)) {
	ctx := t.Context()
	ec := map[string]string{"tenant": "acme", "table": "orders"}
	pt := bytes.Repeat([]byte{0xd0}, 32)
	v1, err := k.Encrypt(ctx, pt, keyring.WithVersion(1))
	require.NoError(t, err)
	v2, err := k.Encrypt(ctx, pt, keyring.WithEncryptionContext(ec))
	require.NoError(t, err)
	big := bytes.Repeat([]byte("kmsring "), format.MaxBlobPlaintext/8)
	vbig, err := k.Encrypt(ctx, big)
	require.NoError(t, err)
	require.Equal(t, byte(format.BlobFormatApproved), v2[0])

	ok := func(name string, data, pt []byte, ec map[string]string, comment string) {
		write(testvec.Vector{Name: name, Expect: testvec.Success, Data: data, Plaintext: pt, Context: ec, Comment: comment})
	}
	bad := func(name, expect string, data []byte, ec map[string]string, comment string) {
		write(testvec.Vector{Name: name, Expect: expect, Data: data, Context: ec, Comment: comment})
	}
	edit := func(b []byte, f func([]byte)) []byte { b = bytes.Clone(b); f(b); return b }
	const salt, nonce, sealed = 21, format.BlobHeaderSizeApproved, format.BlobHeaderSizeApproved + format.GCMNonceSize

	ok("v1_no_context", v1, pt, nil, "approved blob under version 1, empty encryption context")
	ok("v2_context", v2, pt, ec, "approved blob under version 2 with an encryption context")
	ok("max_plaintext", vbig, big, nil, "4096-byte plaintext, the largest an approved blob holds")

	bad("too_short", testvec.Malformed, v2[:format.MinBlobSizeApproved-1], ec, "shorter than header, nonce, one byte and tag")
	bad("too_long", testvec.Malformed, append(bytes.Clone(vbig), 0), nil, "longer than the largest approved blob")
	bad("version_zero", testvec.Malformed, edit(v2, func(b []byte) { binary.BigEndian.PutUint32(b[17:], 0) }), ec, "versions start at 1")
	bad("flipped_salt", testvec.Decrypt, edit(v2, func(b []byte) { b[salt] ^= 0x80 }), ec, "HKDF salt bit flipped: another key")
	bad("flipped_nonce", testvec.Decrypt, edit(v2, func(b []byte) { b[nonce] ^= 1 }), ec, "GCM nonce bit flipped")
	bad("flipped_ciphertext", testvec.Decrypt, edit(v2, func(b []byte) { b[sealed] ^= 1 }), ec, "ciphertext bit flipped")
	bad("flipped_tag", testvec.Decrypt, edit(v2, func(b []byte) { b[len(b)-1] ^= 1 }), ec, "last tag bit flipped")
	bad("trailing_byte", testvec.Decrypt, append(bytes.Clone(v2), 0), ec, "one byte appended")
	bad("truncated_tag", testvec.Decrypt, v2[:len(v2)-1], ec, "last byte cut")
	bad("wrong_context", testvec.Decrypt, v2, map[string]string{"tenant": "acme", "table": "order"}, "one context value differs")
	bad("missing_context", testvec.Decrypt, v2, nil, "opened without the context it was bound to")
	bad("ambiguous_context", testvec.Decrypt, v2, map[string]string{"tenantacme": "", "table": "orders"}, "same concatenated bytes, different pairs")
	bad("wrong_key", testvec.WrongKey, edit(v2, func(b []byte) { b[1] ^= 0xff }), ec, "key ID of another key")
	bad("unknown_version", testvec.UnknownVersion, edit(v2, func(b []byte) { binary.BigEndian.PutUint32(b[17:], 99) }), ec, "version 99 does not exist")
	bad("version_swapped", testvec.Decrypt, edit(v2, func(b []byte) { binary.BigEndian.PutUint32(b[17:], 1) }), ec, "version 2 blob relabelled as version 1")
}

// genApprovedEnvelopes writes the vectors of the approved envelope suite
// (0x10).
func genApprovedEnvelopes(t *testing.T, k *keyring.Keyring, write func(testvec.Vector)) {
	ctx := t.Context()
	ec := map[string]string{"file": "orders.csv", "owner": "billing"}
	small := []byte("attack at dawn")
	seg := bytes.Repeat([]byte{0x5a}, 64<<10)
	multi := bytes.Repeat([]byte("0123456789abcdef"), (2*(64<<10)+100)/16)
	seal := func(pt []byte, ec map[string]string) []byte {
		b, err := envelope.Seal(ctx, k, pt, envelope.WithEncryptionContext(ec))
		require.NoError(t, err)
		return b
	}
	stream := func(pt []byte, close bool) []byte {
		var buf bytes.Buffer
		w, err := envelope.NewWriter(ctx, k, &buf)
		require.NoError(t, err)
		_, err = w.Write(pt)
		require.NoError(t, err)
		if close {
			require.NoError(t, w.Close())
		}
		return buf.Bytes()
	}
	eSmall := seal(small, ec)
	require.Equal(t, byte(format.SuiteApproved), eSmall[5])
	eEmpty := seal(nil, nil)
	eSeg := seal(seg, nil)
	eMulti := seal(multi, nil)
	eStream := stream(small, true)
	eUnclosed := stream(multi, false)
	ok := func(name string, data, pt []byte, comment string) {
		write(testvec.Vector{Name: name, Expect: testvec.Success, Data: data, Plaintext: pt, Comment: comment})
	}
	bad := func(name, expect string, data []byte, comment string) {
		write(testvec.Vector{Name: name, Expect: expect, Data: data, Comment: comment})
	}
	badWith := func(name, expect string, data []byte, ec map[string]string, comment string) {
		write(testvec.Vector{Name: name, Expect: expect, Data: data, Context: ec, Comment: comment})
	}
	edit := func(b []byte, f func([]byte)) []byte { b = bytes.Clone(b); f(b); return b }
	const full = 64<<10 + format.GCMNonceSize + 16 // a full sealed segment

	ok("small_context", eSmall, small, "one short segment, encryption context")
	ok("empty", eEmpty, []byte{}, "empty plaintext: one empty final segment")
	ok("one_full_segment", eSeg, seg, "exactly 65536 bytes: one full final segment")
	ok("multi_segment", eMulti, multi, "two full segments and a short final one")
	ok("stream_short", eStream, small, "NewWriter, one short segment")

	h, n, err := format.ParseHeader(eSmall)
	require.NoError(t, err)
	head := eSmall[:format.FixedHeaderSize]
	ecb := h.ContextBytes
	blob := eSmall[format.FixedHeaderSize+len(ecb) : n]
	payload := eSmall[n:]
	bad("blob_length_too_small", testvec.Malformed, assemble(head, len(ecb), format.MinBlobSizeApproved-1, ecb, blob, payload), "blob length below the approved minimum")
	bad("blob_length_too_large", testvec.Malformed, assemble(head, len(ecb), format.MaxBlobSizeApproved+1, ecb, blob, payload), "blob length above the approved maximum")
	bad("blob_format_1", testvec.Malformed, edit(eSmall, func(b []byte) { b[format.FixedHeaderSize+len(ecb)] = format.BlobFormat }), "the approved suite holds an approved blob only")
	bad("suite_downgraded", testvec.Malformed, edit(eSmall, func(b []byte) { b[5] = format.SuiteAES256GCM }), "relabelled suite 0x01: a default suite holds a format 1 blob only")
	bad("truncated_blob", testvec.Malformed, eSmall[:n-1], "cut inside the blob")

	_, nm, err := format.ParseHeader(eMulti)
	require.NoError(t, err)
	bad("no_payload", testvec.Truncated, eSmall[:n], "header only")
	bad("payload_shorter_than_overhead", testvec.Truncated, eSmall[:n+27], "final segment shorter than nonce and tag")
	bad("truncated_at_segment_boundary", testvec.Truncated, eMulti[:nm+2*full], "last segment dropped at a segment boundary")
	bad("truncated_after_first_segment", testvec.Truncated, eMulti[:nm+full], "cut after the first segment")
	bad("writer_not_closed", testvec.Truncated, eUnclosed, "NewWriter without Close: full segments, none marked last")
	bad("truncated_inside_segment", testvec.Decrypt, eMulti[:nm+full+100], "cut inside a segment")
	bad("full_final_then_28_bytes", testvec.Decrypt, append(bytes.Clone(eSeg), make([]byte, 28)...), "28 bytes after a full final segment")

	bad("flipped_salt", testvec.Decrypt, edit(eSmall, func(b []byte) { b[6] ^= 1 }), "header salt bit flipped")
	bad("flipped_commitment", testvec.Decrypt, edit(eSmall, func(b []byte) { b[38] ^= 1 }), "commitment bit flipped")
	bad("flipped_context", testvec.Decrypt, edit(eSmall, func(b []byte) { b[format.FixedHeaderSize+4] ^= 1 }), "context byte changed, still canonical")
	bad("flipped_blob", testvec.Decrypt, edit(eSmall, func(b []byte) { b[n-1] ^= 1 }), "blob tag bit flipped")
	bad("flipped_segment_nonce", testvec.Decrypt, edit(eSmall, func(b []byte) { b[n] ^= 1 }), "the segment's GCM nonce bit flipped")
	bad("flipped_payload", testvec.Decrypt, edit(eSmall, func(b []byte) { b[n+format.GCMNonceSize] ^= 1 }), "payload bit flipped")
	bad("flipped_payload_tag", testvec.Decrypt, edit(eSmall, func(b []byte) { b[len(b)-1] ^= 1 }), "payload tag bit flipped")
	bad("trailing_byte", testvec.Decrypt, append(bytes.Clone(eSmall), 0), "one byte appended")
	bad("segments_swapped", testvec.Decrypt, edit(eMulti, func(b []byte) {
		s0 := bytes.Clone(b[nm : nm+full])
		copy(b[nm:], b[nm+full:nm+2*full])
		copy(b[nm+full:], s0)
	}), "first two segments swapped")
	other := seal([]byte("other message"), ec)
	_, no, err := format.ParseHeader(other)
	require.NoError(t, err)
	bad("blob_from_other_envelope", testvec.Decrypt, append(bytes.Clone(eSmall[:n-len(blob)]), append(bytes.Clone(other[no-len(blob):no]), payload...)...),
		"valid blob of another envelope with the same key and context: fails the commitment")
	relabelled := map[string]string{"file": "orders.csv", "owner": "mallory"}
	blobB, err := k.ReEncrypt(ctx, blob, keyring.WithEncryptionContext(ec), keyring.WithDestinationEncryptionContext(relabelled))
	require.NoError(t, err)
	ecB, err := format.AppendContext(nil, relabelled)
	require.NoError(t, err)
	badWith("relabelled_context", testvec.Decrypt, assemble(head, len(ecB), len(blobB), ecB, blobB, payload), relabelled,
		"the blob re-encrypted to another context and spliced in with it: the context is bound to the payload")
	badWith("context_mismatch", testvec.ContextMismatch, eSmall, relabelled, "opened expecting another context")
	bad("wrong_key", testvec.WrongKey, edit(eSmall, func(b []byte) { b[format.FixedHeaderSize+len(ecb)+1] ^= 0xff }), "inner blob names another key")
	bad("unknown_version", testvec.UnknownVersion, edit(eSmall, func(b []byte) {
		binary.BigEndian.PutUint32(b[format.FixedHeaderSize+len(ecb)+17:], 99)
	}), "inner blob names version 99")
}
