package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"testing"
	"time"
)

// FuzzParseDigest: no digest file bytes make parseDigest panic, and what
// it accepts marshals back to exactly the bytes it was given (the
// canonical form), so that two different files never pass as one digest.
func FuzzParseDigest(f *testing.F) {
	mac := func() hash.Hash { return hmac.New(sha256.New, bytes.Repeat([]byte{5}, 32)) }
	d := Digest{
		Segment: segmentName(1, 3), FirstSeq: 1, LastSeq: 3, Count: 3,
		FirstTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), LastTime: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC),
		SHA256: hexSHA256([]byte("segment")), Head: hexSHA256([]byte("head")),
	}
	name := digestName(d.Segment)
	keyed := sealDigest(d, mac)
	f.Add(name, keyed)
	f.Add(name, sealDigest(d, nil))
	d2 := d
	d2.PrevDigest, d2.Prev = hexSHA256(keyed), hexSHA256([]byte("prev"))
	f.Add(name, sealDigest(d2, mac))
	f.Add(digestName(segmentName(4, 9)), keyed)
	f.Add("notes.txt", []byte("{}\n"))
	f.Fuzz(func(t *testing.T, name string, raw []byte) {
		got, err := parseDigest(name, raw, mac, true)
		if err != nil {
			return
		}
		if !bytes.Equal(got.marshal(), raw) {
			t.Fatalf("accepted a non-canonical digest: %q", raw)
		}
		if _, err := parseDigest(name, raw, nil, true); err == nil {
			t.Fatalf("a keyed digest passed without the key")
		}
	})
}
