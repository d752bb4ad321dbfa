package testvec_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/internal/fipsmode"
	"github.com/kmsring/kmsring/internal/format"
	"github.com/kmsring/kmsring/internal/testvec"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "write new golden vectors to testdata/ (never rewrite released ones)")

const testdata = "../../testdata"

// TestGenerate writes the golden vectors with fixed randomness:
//
//	go test ./internal/testvec -run TestGenerate -update
//
// Vectors are a compatibility promise: once released they never change, so
// regenerate only into a new directory or to add vectors. (Format 1 was
// regenerated in place once, before any release, when issue 9 settled it.)
// The blob and envelope vectors depend only on the fixture's version
// material and the fixed randomness; the spec test reads that material
// from keyring.json as a store holds it.
func TestGenerate(t *testing.T) {
	if !*update {
		t.Skip("run with -update to write the vectors")
	}
	ctx := t.Context()
	clk := clockwork.NewFakeClockAt(time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC))
	rootKey := bytes.Repeat([]byte{0x42}, keyring.RootKeySize)
	rk, err := keyring.NewRootKey(rootKey)
	require.NoError(t, err)
	st := memstore.New()
	// The store key is drawn before the fixed randomness starts, so that
	// the version material, and with it every vector, does not depend on
	// it; only keyring.json holds it.
	_, err = keyring.AuditMAC(ctx, st, rk)
	require.NoError(t, err)
	cryptotest.SetGlobalRandom(t, 1)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk), keyring.WithClock(clk))
	require.NoError(t, err)
	clk.Advance(24 * time.Hour)
	_, err = k.Rotate(ctx)
	require.NoError(t, err)

	rec, err := st.Get(ctx, k.ID())
	require.NoError(t, err)
	vs, err := st.Versions(ctx, k.ID(), 0)
	require.NoError(t, err)
	srec, err := st.Get(ctx, testvec.StoreKeyID)
	require.NoError(t, err)
	fixture := testvec.Fixture{RootKey: rootKey, StoreKey: srec.Data, KeyID: k.ID(), Record: rec.Data}
	for _, v := range vs {
		fixture.Versions = append(fixture.Versions, testvec.FixtureVersion{Number: v.Number, Data: v.Data})
	}
	fx, err := json.MarshalIndent(fixture, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(testdata, "keyring.json"), append(fx, '\n'), 0o644))

	write := func(dir string, v testvec.Vector) {
		require.NoError(t, os.MkdirAll(filepath.Join(testdata, dir), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(testdata, dir, v.Name), v.Marshal(), 0o644))
	}
	genBlobs(t, k, func(v testvec.Vector) { write("blob", v) })
	genEnvelopes(t, k, func(v testvec.Vector) { write("envelope", v) })

	// The approved formats (issue 19), with their own fixture, written in
	// FIPS mode (forced) so that its root key ciphertexts are approved too.
	// Added after format 1's, from their own fixed randomness: format 1's
	// vectors above come out byte for byte as before.
	restore := fipsmode.Force(true)
	defer restore()
	cryptotest.SetGlobalRandom(t, 2)
	ast := memstore.New()
	_, err = keyring.AuditMAC(ctx, ast, rk)
	require.NoError(t, err)
	ak, err := keyring.New(ctx, keyring.WithStore(ast), keyring.WithRootKey(rk), keyring.WithClock(clk))
	require.NoError(t, err)
	clk.Advance(24 * time.Hour)
	_, err = ak.Rotate(ctx)
	require.NoError(t, err)
	writeFixture(t, ast, ak, rootKey, testvec.ApprovedFixture)
	genApprovedBlobs(t, ak, func(v testvec.Vector) { write("blob-approved", v) })
	genApprovedEnvelopes(t, ak, func(v testvec.Vector) { write("envelope-approved", v) })
}

// writeFixture writes the fixture of k, in st, as name in testdata.
func writeFixture(t *testing.T, st *memstore.Store, k *keyring.Keyring, rootKey []byte, name string) {
	ctx := t.Context()
	rec, err := st.Get(ctx, k.ID())
	require.NoError(t, err)
	vs, err := st.Versions(ctx, k.ID(), 0)
	require.NoError(t, err)
	srec, err := st.Get(ctx, testvec.StoreKeyID)
	require.NoError(t, err)
	fixture := testvec.Fixture{RootKey: rootKey, StoreKey: srec.Data, KeyID: k.ID(), Record: rec.Data}
	for _, v := range vs {
		fixture.Versions = append(fixture.Versions, testvec.FixtureVersion{Number: v.Number, Data: v.Data})
	}
	fx, err := json.MarshalIndent(fixture, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(testdata, name), append(fx, '\n'), 0o644))
}

func genBlobs(t *testing.T, k *keyring.Keyring, write func(testvec.Vector)) {
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

	ok := func(name string, data, pt []byte, ec map[string]string, comment string) {
		write(testvec.Vector{Name: name, Expect: testvec.Success, Data: data, Plaintext: pt, Context: ec, Comment: comment})
	}
	bad := func(name, expect string, data []byte, ec map[string]string, comment string) {
		write(testvec.Vector{Name: name, Expect: expect, Data: data, Context: ec, Comment: comment})
	}
	edit := func(b []byte, f func([]byte)) []byte { b = bytes.Clone(b); f(b); return b }

	ok("v1_no_context", v1, pt, nil, "data key under version 1, empty encryption context")
	ok("v2_context", v2, pt, ec, "data key under version 2 with an encryption context")
	ok("max_plaintext", vbig, big, nil, "4096-byte plaintext, the largest a blob holds")

	bad("empty", testvec.Malformed, nil, nil, "no bytes")
	bad("unknown_format", testvec.Malformed, edit(v2, func(b []byte) { b[0] = 0x02 }), ec, "format byte 2 is unknown")
	bad("too_short", testvec.Malformed, v2[:format.MinBlobSize-1], ec, "shorter than header, one byte and tag")
	bad("too_long", testvec.Malformed, append(bytes.Clone(vbig), 0), nil, "longer than the largest blob")
	bad("version_zero", testvec.Malformed, edit(v2, func(b []byte) { binary.BigEndian.PutUint32(b[17:], 0) }), ec, "versions start at 1")
	bad("flipped_tag", testvec.Decrypt, edit(v2, func(b []byte) { b[len(b)-1] ^= 1 }), ec, "last tag bit flipped")
	bad("flipped_nonce", testvec.Decrypt, edit(v2, func(b []byte) { b[21] ^= 0x80 }), ec, "nonce bit flipped")
	bad("flipped_ciphertext", testvec.Decrypt, edit(v2, func(b []byte) { b[format.BlobHeaderSize] ^= 1 }), ec, "ciphertext bit flipped")
	bad("trailing_byte", testvec.Decrypt, append(bytes.Clone(v2), 0), ec, "one byte appended")
	bad("truncated_tag", testvec.Decrypt, v2[:len(v2)-1], ec, "last byte cut")
	bad("wrong_context", testvec.Decrypt, v2, map[string]string{"tenant": "acme", "table": "order"}, "one context value differs")
	bad("missing_context", testvec.Decrypt, v2, nil, "opened without the context it was bound to")
	bad("ambiguous_context", testvec.Decrypt, v2, map[string]string{"tenantacme": "", "table": "orders"}, "same concatenated bytes, different pairs")
	bad("wrong_key", testvec.WrongKey, edit(v2, func(b []byte) { b[1] ^= 0xff }), ec, "key ID of another key")
	bad("unknown_version", testvec.UnknownVersion, edit(v2, func(b []byte) { binary.BigEndian.PutUint32(b[17:], 99) }), ec, "version 99 does not exist")
	bad("version_swapped", testvec.Decrypt, edit(v2, func(b []byte) { binary.BigEndian.PutUint32(b[17:], 1) }), ec, "version 2 blob relabelled as version 1")
}

// assemble builds an envelope from raw parts, with lengths as given.
func assemble(head []byte, ecLen, blobLen int, ec, blob, payload []byte) []byte {
	out := bytes.Clone(head[:format.FixedHeaderSize-4])
	out = binary.BigEndian.AppendUint16(out, uint16(ecLen))
	out = binary.BigEndian.AppendUint16(out, uint16(blobLen))
	out = append(out, ec...)
	out = append(out, blob...)
	return append(out, payload...)
}

// craft returns the header of sealed with its payload replaced by the
// given segments, sealed with the spec's construction and the suite of the
// header, each marked last or not as given.
func craft(t *testing.T, s *spec, sealed []byte, segs [][]byte, last []bool) []byte {
	p, err := splitEnvelope(sealed)
	require.NoError(t, err)
	dek, err := s.openBlob(p.blob, p.ec)
	require.NoError(t, err)
	aead, err := p.keys(dek)
	require.NoError(t, err)
	out := bytes.Clone(sealed[:len(sealed)-len(p.payload)])
	for i, seg := range segs {
		out = aead.Seal(out, specNonce(uint64(i), last[i]), seg, nil)
	}
	return out
}

func genEnvelopes(t *testing.T, k *keyring.Keyring, write func(testvec.Vector)) {
	ctx := t.Context()
	s := loadSpec(t)
	ec := map[string]string{"file": "orders.csv", "owner": "billing"}
	small := []byte("attack at dawn")
	seg := bytes.Repeat([]byte{0x5a}, 64<<10)
	multi := bytes.Repeat([]byte("0123456789abcdef"), (2*(64<<10)+100)/16)
	chachaMax := bytes.Repeat([]byte{0xc2}, 4<<10)
	aesMin := bytes.Repeat([]byte{0xa1}, 4<<10+1)

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
	eEmpty := seal(nil, nil)
	eSeg := seal(seg, nil)
	eMulti := seal(multi, nil)
	eChachaMax := seal(chachaMax, nil)
	eAESMin := seal(aesMin, nil)
	eStream := stream(small, true)
	eUnclosed := stream(multi, false)
	ok := func(name string, data, pt []byte, comment string) {
		write(testvec.Vector{Name: name, Expect: testvec.Success, Data: data, Plaintext: pt, Comment: comment})
	}
	okWith := func(name string, data, pt []byte, ec map[string]string, comment string) {
		write(testvec.Vector{Name: name, Expect: testvec.Success, Data: data, Plaintext: pt, Context: ec, Comment: comment})
	}
	bad := func(name, expect string, data []byte, comment string) {
		write(testvec.Vector{Name: name, Expect: expect, Data: data, Comment: comment})
	}
	badWith := func(name, expect string, data []byte, ec map[string]string, comment string) {
		write(testvec.Vector{Name: name, Expect: expect, Data: data, Context: ec, Comment: comment})
	}
	edit := func(b []byte, f func([]byte)) []byte { b = bytes.Clone(b); f(b); return b }

	ok("small_context", eSmall, small, "ChaCha20-Poly1305, one short segment, encryption context")
	okWith("small_context_expected", eSmall, small, ec, "the same, opened expecting its context")
	ok("empty", eEmpty, []byte{}, "empty plaintext: one empty final segment (ChaCha20-Poly1305)")
	ok("chacha20poly1305_largest", eChachaMax, chachaMax, "4096 bytes, the largest Seal seals with ChaCha20-Poly1305")
	ok("aes256gcm_smallest", eAESMin, aesMin, "4097 bytes, the smallest Seal seals with AES-256-GCM")
	ok("one_full_segment", eSeg, seg, "exactly 65536 bytes: one full final segment (AES-256-GCM)")
	ok("multi_segment", eMulti, multi, "two full segments and a short final one (AES-256-GCM)")
	ok("stream_short", eStream, small, "NewWriter: AES-256-GCM even for one short segment")
	ok("chacha20poly1305_two_segments", craft(t, s, eSmall, [][]byte{seg, small}, []bool{false, true}), append(bytes.Clone(seg), small...),
		"ChaCha20-Poly1305 in two segments: Seal never writes it, but the format allows it")

	h, n, err := format.ParseHeader(eSmall)
	require.NoError(t, err)
	head := eSmall[:format.FixedHeaderSize]
	ecb := h.ContextBytes
	blob := eSmall[format.FixedHeaderSize+len(ecb) : n]
	payload := eSmall[n:]

	// Header syntax, one vector per rule.
	bad("no_bytes", testvec.Malformed, nil, "no bytes")
	bad("bad_magic", testvec.Malformed, edit(eSmall, func(b []byte) { b[0] = 'X' }), "magic is not KMSR")
	bad("truncated_magic", testvec.Malformed, eSmall[:2], "cut inside the magic")
	bad("unknown_format", testvec.Malformed, edit(eSmall, func(b []byte) { b[4] = 2 }), "envelope format 2 is unknown")
	bad("unknown_suite", testvec.Malformed, edit(eSmall, func(b []byte) { b[5] = 3 }), "algorithm suite 3 is unknown")
	bad("suite_zero", testvec.Malformed, edit(eSmall, func(b []byte) { b[5] = 0 }), "algorithm suite 0 is unknown")
	bad("truncated_fixed_header", testvec.Malformed, eSmall[:format.FixedHeaderSize-1], "cut inside the fixed header")
	bad("context_length_too_small", testvec.Malformed, assemble(head, 1, len(blob), ecb, blob, payload), "context length below 2")
	bad("context_length_too_large", testvec.Malformed, assemble(head, format.MaxContextSize+1, len(blob), ecb, blob, payload), "context length above the limit")
	bad("blob_length_too_small", testvec.Malformed, assemble(head, len(ecb), format.MinBlobSize-1, ecb, blob, payload), "blob length below the minimum")
	bad("blob_length_too_large", testvec.Malformed, assemble(head, len(ecb), format.MaxBlobSize+1, ecb, blob, payload), "blob length above the maximum")
	bad("truncated_blob", testvec.Malformed, eSmall[:n-1], "cut inside the blob")
	pair := func(k, v string) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
		return append(b, v...)
	}
	ctxOf := func(count int, pairs ...[]byte) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(count))
		for _, p := range pairs {
			b = append(b, p...)
		}
		return b
	}
	withCtx := func(c []byte) []byte { return assemble(head, len(c), len(blob), c, blob, payload) }
	bad("context_unsorted", testvec.Malformed, withCtx(ctxOf(2, pair("owner", "billing"), pair("file", "orders.csv"))), "context keys out of order")
	bad("context_duplicate_key", testvec.Malformed, withCtx(ctxOf(2, pair("file", "a"), pair("file", "b"))), "context key repeated")
	bad("context_empty_key", testvec.Malformed, withCtx(ctxOf(1, pair("", "v"))), "empty context key")
	bad("context_invalid_utf8", testvec.Malformed, withCtx(ctxOf(1, pair("file", "\xff"))), "context value not UTF-8")
	bad("context_trailing_bytes", testvec.Malformed, withCtx(append(bytes.Clone(ecb), 0)), "context length covers a byte after the last pair")
	bad("context_truncated", testvec.Malformed, withCtx(ctxOf(3, pair("file", "orders.csv"), pair("owner", "billing"))), "context count larger than its pairs")
	bad("context_count_65535", testvec.Malformed, withCtx(ctxOf(0xffff, pair("a", ""), pair("b", ""))), "context count far beyond its bytes (must not size an allocation)")
	bad("blob_unknown_format", testvec.Malformed, edit(eSmall, func(b []byte) { b[format.FixedHeaderSize+len(ecb)] = 2 }), "inner blob has an unknown format")
	bad("blob_version_zero", testvec.Malformed, edit(eSmall, func(b []byte) {
		binary.BigEndian.PutUint32(b[format.FixedHeaderSize+len(ecb)+17:], 0)
	}), "inner blob names version 0")

	// Truncation: ErrTruncated, an ErrDecrypt.
	_, nm, err := format.ParseHeader(eMulti)
	require.NoError(t, err)
	bad("no_payload", testvec.Truncated, eSmall[:n], "header only")
	bad("payload_shorter_than_tag", testvec.Truncated, eSmall[:n+15], "final segment shorter than a tag")
	bad("truncated_at_segment_boundary", testvec.Truncated, eMulti[:nm+2*(64<<10+16)], "last segment dropped at a segment boundary")
	bad("truncated_after_first_segment", testvec.Truncated, eMulti[:nm+64<<10+16], "cut after the first segment")
	bad("writer_not_closed", testvec.Truncated, eUnclosed, "NewWriter without Close: full segments, none marked last")
	bad("truncated_inside_segment", testvec.Decrypt, eMulti[:nm+64<<10+16+100], "cut inside a segment: indistinguishable from tampering")
	bad("full_final_then_16_bytes", testvec.Decrypt, append(bytes.Clone(eSeg), make([]byte, 16)...), "16 bytes after a full final segment: it no longer authenticates as final")
	bad("empty_final_after_full", testvec.Malformed, craft(t, s, eSeg, [][]byte{seg, nil}, []bool{false, true}), "an authentic empty final segment after a full one")

	// Authentication.
	bad("flipped_salt", testvec.Decrypt, edit(eSmall, func(b []byte) { b[6] ^= 1 }), "salt bit flipped")
	bad("flipped_commitment", testvec.Decrypt, edit(eSmall, func(b []byte) { b[38] ^= 1 }), "commitment bit flipped")
	bad("flipped_context", testvec.Decrypt, edit(eSmall, func(b []byte) { b[format.FixedHeaderSize+4] ^= 1 }), "context byte changed, still canonical")
	bad("flipped_blob", testvec.Decrypt, edit(eSmall, func(b []byte) { b[n-1] ^= 1 }), "blob tag bit flipped")
	bad("flipped_payload", testvec.Decrypt, edit(eSmall, func(b []byte) { b[n] ^= 1 }), "payload bit flipped")
	bad("flipped_payload_tag", testvec.Decrypt, edit(eSmall, func(b []byte) { b[len(b)-1] ^= 1 }), "payload tag bit flipped")
	bad("trailing_byte", testvec.Decrypt, append(bytes.Clone(eSmall), 0), "one byte appended")
	bad("suite_swapped", testvec.Decrypt, edit(eSmall, func(b []byte) { b[5] = format.SuiteAES256GCM }), "ChaCha20-Poly1305 envelope relabelled AES-256-GCM: the suite is bound")
	bad("segments_swapped", testvec.Decrypt, edit(eMulti, func(b []byte) {
		s0 := bytes.Clone(b[nm : nm+64<<10+16])
		copy(b[nm:], b[nm+64<<10+16:nm+2*(64<<10+16)])
		copy(b[nm+64<<10+16:], s0)
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
