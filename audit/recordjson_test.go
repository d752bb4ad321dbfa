package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// everyEscape holds every class of byte appendString treats apart: each
// control character, the JSON and HTML specials, DEL, multi-byte UTF-8,
// U+2028, U+2029, an encoded U+FFFD and invalid UTF-8 (a stray
// continuation byte, a truncated sequence, an overlong encoding, a
// surrogate and bytes past U+10FFFF).
var everyEscape = func() string {
	var b strings.Builder
	for c := range 0x20 {
		b.WriteByte(byte(c))
	}
	b.WriteString("\"\\/<>&'\x7f plain é ☃ 😀 \u2028 \u2029 \ufffd ")
	b.WriteString("\x80 \xe2\x82 \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xff\xfe\xe2\x80\xa8\xe2\x80")
	return b.String()
}()

// recordVectors are the golden records: appendJSON must write what
// json.Marshal writes for each.
func recordVectors() map[string]Record {
	t0 := time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)
	full := Record{
		Seq: 18446744073709551615, Time: t0, Operation: "ReEncrypt", KeyID: "7b6f0c1e-key",
		Version: 4294967295, PreviousVersion: 3, Origin: "on-demand", Alias: "alias/payments",
		Principal:                   "arn:aws:iam::123456789012:user/alice",
		EncryptionContext:           map[string]string{"tenant": "b", "app": "pay", "Zed": "", "": "empty key", "é": "accent", "a<b": "c&d"},
		EncryptionContextKeys:       []string{"app", "tenant"},
		SourceEncryptionContext:     map[string]string{"tenant": "a", "secret": "s3"},
		SourceEncryptionContextKeys: []string{"secret", "tenant", ""},
		Outcome:                     Failure, ErrorClass: "AuditFailed", Amends: 41,
		Chain: "0123456789abcdef", ChainSeq: 9, Prev: strings.Repeat("ab", 32), MAC: strings.Repeat("cd", 32),
		Link: "not stored",
	}
	many := map[string]string{}
	for i := range 40 {
		many[fmt.Sprintf("k%02d-%c", 39-i, 'a'+i%26)] = fmt.Sprint(i)
	}
	return map[string]Record{
		"empty":       {},
		"zero time":   {Time: time.Time{}},
		"every field": full,
		"typical": {
			Time: t0, Operation: "GenerateDataKey", KeyID: "k1", Version: 2, Principal: "svc",
			EncryptionContext: map[string]string{"tenant": "a", "purpose": "backup"}, Outcome: Success,
			Chain: "fedcba9876543210", ChainSeq: 1,
		},
		"empty map and list":      {EncryptionContext: map[string]string{}, EncryptionContextKeys: []string{}, SourceEncryptionContext: map[string]string{}, SourceEncryptionContextKeys: []string{}},
		"many keys (past 16)":     {Time: t0, EncryptionContext: many, SourceEncryptionContext: many},
		"every escape":            {Time: t0, Operation: everyEscape, KeyID: everyEscape, Origin: everyEscape, Alias: everyEscape, Principal: everyEscape, Outcome: everyEscape, ErrorClass: everyEscape, Chain: everyEscape, Prev: everyEscape, MAC: everyEscape},
		"escapes in contexts":     {Time: t0, EncryptionContext: map[string]string{everyEscape: everyEscape, "\x00": "\u2028", "\xff": "\xfe"}, EncryptionContextKeys: []string{everyEscape, "\xff", "\u2029"}, SourceEncryptionContext: map[string]string{"<": ">", "&": "\\"}, SourceEncryptionContextKeys: []string{"\"", "\x1f"}},
		"invalid utf-8 only":      {Time: t0, KeyID: "\xff\xfe\xfd", Principal: "a\xc3", Alias: "\xe2\x80"},
		"no nanoseconds":          {Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		"trailing zero nanos":     {Time: time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.UTC)},
		"one nanosecond":          {Time: time.Date(2026, 1, 2, 3, 4, 5, 1, time.UTC)},
		"zone east":               {Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("IST", 5*3600+30*60))},
		"zone west":               {Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", -8*3600))},
		"zone with seconds":       {Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("LMT", -(4*3600+56*60+2)))},
		"zone 23:59":              {Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 23*3600+59*60))},
		"named location":          {Time: time.Date(2026, 7, 1, 12, 0, 0, 0, mustLoadLocation("America/New_York"))},
		"year 0":                  {Time: time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)},
		"year 9999":               {Time: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		"monotonic reading":       {Time: time.Now()},
		"local":                   {Time: time.Unix(1700000000, 5).Local()},
		"large numbers":           {Seq: 1 << 63, Version: 1 << 31, PreviousVersion: 10, Amends: 1e19, ChainSeq: 99999999999},
		"outcome only":            {Outcome: Success},
		"keys only":               {EncryptionContextKeys: []string{"a", "b", "a"}},
		"source context only":     {SourceEncryptionContext: map[string]string{"b": "2", "a": "1", "aa": "3", "A": "0"}},
		"prev without chain":      {Seq: 7, Prev: strings.Repeat("0", 64)},
		"mac set, others empty":   {MAC: "x"},
		"unsorted keys preserved": {EncryptionContextKeys: []string{"z", "a"}},
	}
}

// skipJSONV2 skips a test that holds appendJSON to json.Marshal's bytes
// when encoding/json is not the one the stored format follows.
// TestRecordJSONPinned still runs.
func skipJSONV2(t testing.TB) {
	if jsonV2 {
		t.Skip("GOEXPERIMENT=jsonv2: encoding/json no longer writes the stored format's bytes (invalid UTF-8)")
	}
}

func mustLoadLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		return time.FixedZone("EDT", -4*3600)
	}
	return loc
}

// TestRecordJSONMatchesEncodingJSON: appendJSON writes exactly the bytes
// json.Marshal writes for every golden record, after any prefix.
func TestRecordJSONMatchesEncodingJSON(t *testing.T) {
	skipJSONV2(t)
	for name, r := range recordVectors() {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(&r)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(r.marshal()), "appendJSON must write json.Marshal's bytes")
			assert.Equal(t, "prefix"+string(want), string(r.appendJSON([]byte("prefix"))), "appendJSON appends")
		})
	}
}

// TestRecordJSONPinned pins the bytes of one record, so that a change in
// encoding/json (which the differential tests would follow) cannot pass
// unnoticed: stored logs hash these bytes.
func TestRecordJSONPinned(t *testing.T) {
	r := recordVectors()["typical"]
	r.Prev = strings.Repeat("ab", 32)
	r.EncryptionContext["x"] = "<&>\u2028\n\b\f\x01\xff"
	const want = `{"seq":0,"time":"2026-03-14T15:09:26.535897932Z","operation":"GenerateDataKey","key_id":"k1","version":2,` +
		`"principal":"svc","encryption_context":{"purpose":"backup","tenant":"a","x":"\u003c\u0026\u003e\u2028\n\b\f\u0001\ufffd"},` +
		`"outcome":"success","chain":"fedcba9876543210","chain_seq":1,"prev":"abababababababababababababababababababababababababababababababab"}`
	assert.Equal(t, want, string(r.marshal()))
}

// TestRecordJSONRefusedTimes: a time json.Marshal refuses makes marshal
// panic as it always has, with the same message, and leaves the bytes
// before it alone.
func TestRecordJSONRefusedTimes(t *testing.T) {
	skipJSONV2(t)
	for _, tm := range []time.Time{
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600)),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", -25*3600)),
	} {
		r := Record{Time: tm, Operation: "Encrypt"}
		_, err := json.Marshal(&r)
		require.Error(t, err, "json.Marshal refuses %v", tm)
		assert.PanicsWithValue(t, "audit: marshal record: "+err.Error(), func() { r.appendJSON([]byte("prefix")) })
	}
}

// TestSealMatchesMAC: seal writes the record's JSON with its MAC as the
// last field, the same bytes json.Marshal writes with MAC set, and one
// reset MAC serves record after record.
func TestSealMatchesMAC(t *testing.T) {
	skipJSONV2(t)
	key := bytes.Repeat([]byte{7}, 32)
	h := hmac.New(sha256.New, key)
	var sum, buf []byte
	for name, r := range recordVectors() {
		r.MAC = "stale"
		start := len(buf)
		buf = r.seal(buf, h, &sum)
		data := buf[start:]

		r2 := r
		r2.MAC = ""
		body, err := json.Marshal(&r2)
		require.NoError(t, err)
		fresh := hmac.New(sha256.New, key)
		fresh.Write(body)
		wantMAC := hex.EncodeToString(fresh.Sum(nil))
		assert.Equal(t, wantMAC, r.MAC, "%s: the MAC of the bytes without it", name)
		want, err := json.Marshal(&r)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(data), "%s: sealed bytes", name)
		assert.Equal(t, r.MAC, link(data), "%s: the record links by its MAC", name)
	}
}

// TestEncoderKeepsBytes: the bytes encode returns stay the record's own
// while later records, small and past a chunk's size, are encoded, and
// each links the next as link reads it back, keyed or not.
func TestEncoderKeepsBytes(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		var e encoder
		if keyed {
			e.mac = hmac.New(sha256.New, bytes.Repeat([]byte{7}, 32))
		}
		var recs []Record
		var datas [][]byte
		prev := ""
		for i := range 300 {
			r := benchRecord()
			r.ChainSeq, r.Prev = uint64(i+1), prev
			r.Principal = strings.Repeat("p", (i*i*37)%(encodeChunk+1000))
			data, next := e.encode(&r)
			assert.Equal(t, link(data), next, "record %d's link", i)
			recs, datas, prev = append(recs, r), append(datas, data), next
		}
		for i, r := range recs {
			want, err := json.Marshal(&r)
			require.NoError(t, err)
			require.Equal(t, string(want), string(datas[i]), "keyed %v: record %d's bytes after later records", keyed, i)
		}
	}
}

// fuzzFlags choose, in FuzzRecordJSON, between nil and empty maps and
// lists.
const (
	fuzzContext = 1 << iota
	fuzzContextKeys
	fuzzSource
	fuzzSourceKeys
)

// packStrings joins list as uvarint-length-prefixed strings;
// unpackStrings reads them back, as many as are whole.
func packStrings(list []string) string {
	var b []byte
	for _, s := range list {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return string(b)
}

func unpackStrings(s string) []string {
	var list []string
	for len(s) > 0 {
		n, w := binary.Uvarint([]byte(s))
		if w <= 0 || n > uint64(len(s)-w) {
			break
		}
		list = append(list, s[w:w+int(n)])
		s = s[w+int(n):]
	}
	return list
}

func packMap(m map[string]string) string {
	var list []string
	for k, v := range m {
		list = append(list, k, v)
	}
	return packStrings(list)
}

func unpackMap(s string, present bool) map[string]string {
	if !present {
		return nil
	}
	list := unpackStrings(s)
	m := make(map[string]string, len(list)/2)
	for i := 0; i+1 < len(list); i += 2 {
		m[list[i]] = list[i+1]
	}
	return m
}

func unpackList(s string, present bool) []string {
	if !present {
		return nil
	}
	if l := unpackStrings(s); l != nil {
		return l
	}
	return []string{}
}

// FuzzRecordJSON: for any record, appendJSON writes exactly the bytes
// json.Marshal writes, or panics as marshal did when json.Marshal fails.
// The seeds are the golden records.
func FuzzRecordJSON(f *testing.F) {
	vectors := recordVectors()
	require.NotEmpty(f, vectors, "the fuzz target is seeded from the golden records")
	for _, r := range vectors {
		_, offset := r.Time.Zone()
		var flags uint8
		for bit, present := range map[uint8]bool{
			fuzzContext: r.EncryptionContext != nil, fuzzContextKeys: r.EncryptionContextKeys != nil,
			fuzzSource: r.SourceEncryptionContext != nil, fuzzSourceKeys: r.SourceEncryptionContextKeys != nil,
		} {
			if present {
				flags |= bit
			}
		}
		f.Add(r.Seq, r.Time.Unix(), int64(r.Time.Nanosecond()), int32(offset), r.Version, r.PreviousVersion, r.Amends, r.ChainSeq,
			r.Operation, r.KeyID, r.Origin, r.Alias, r.Principal, r.Outcome, r.ErrorClass, r.Chain, r.Prev, r.MAC,
			flags, packMap(r.EncryptionContext), packStrings(r.EncryptionContextKeys), packMap(r.SourceEncryptionContext), packStrings(r.SourceEncryptionContextKeys))
	}
	skipJSONV2(f)
	f.Fuzz(func(t *testing.T, seq uint64, sec, nanos int64, offset int32, version, prevVersion uint32, amends, chainSeq uint64,
		op, keyID, origin, alias, principal, outcome, errClass, chain, prev, mac string,
		flags uint8, ec, ecKeys, src, srcKeys string) {
		r := Record{
			Seq: seq, Time: time.Unix(sec, nanos).In(time.FixedZone("z", int(offset))), Operation: op, KeyID: keyID,
			Version: version, PreviousVersion: prevVersion, Origin: origin, Alias: alias, Principal: principal,
			EncryptionContext:           unpackMap(ec, flags&fuzzContext != 0),
			EncryptionContextKeys:       unpackList(ecKeys, flags&fuzzContextKeys != 0),
			SourceEncryptionContext:     unpackMap(src, flags&fuzzSource != 0),
			SourceEncryptionContextKeys: unpackList(srcKeys, flags&fuzzSourceKeys != 0),
			Outcome:                     outcome, ErrorClass: errClass, Amends: amends, Chain: chain, ChainSeq: chainSeq, Prev: prev, MAC: mac,
		}
		want, err := json.Marshal(&r)
		if err != nil {
			defer func() {
				if got := recover(); got != "audit: marshal record: "+err.Error() {
					t.Fatalf("json.Marshal failed (%v) but appendJSON did not panic as marshal did: %v", err, got)
				}
			}()
		}
		got := r.appendJSON(nil)
		if !bytes.Equal(got, want) {
			t.Fatalf("appendJSON differs from json.Marshal:\n got %s\nwant %s", got, want)
		}
	})
}

// benchRecord is a typical GenerateDataKey record as the writer seals it.
func benchRecord() Record {
	return Record{
		Time: time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC), Operation: "GenerateDataKey",
		KeyID: "5f0c3a6e-7d1b-4c8e-9a2f-1b3c4d5e6f70", Version: 3,
		Principal:         "arn:aws:iam::123456789012:user/batch-writer",
		EncryptionContext: map[string]string{"tenant": "acme", "purpose": "backup", "bucket": "s3://acme-backups"},
		Outcome:           Success, Chain: "0123456789abcdef", Prev: strings.Repeat("ab", 32),
	}
}

// sealReflect is how the writer sealed and linked a record before
// appendJSON: json.Marshal, a new MAC per record, and link parsing the
// sealed bytes back. BenchmarkSeal compares the two in one run.
func sealReflect(r *Record, mac func() hash.Hash) (data []byte, next string) {
	r.MAC = ""
	body := r.reflectJSON()
	r.MAC = hex.EncodeToString(sum(mac, body))
	data = append(body[:len(body)-1], macField+r.MAC+`"}`...)
	_, next, _ = splitMAC(data)
	return data, next
}

// BenchmarkSeal measures the writer's work per record in a keyed log:
// the record's bytes, its MAC and its link.
func BenchmarkSeal(b *testing.B) {
	mac := func() hash.Hash { return hmac.New(sha256.New, bytes.Repeat([]byte{7}, 32)) }
	b.Run("reflect", func(b *testing.B) {
		r := benchRecord()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			r.ChainSeq = uint64(i)
			var data []byte
			data, r.Prev = sealReflect(&r, mac)
			b.SetBytes(int64(len(data)))
		}
	})
	b.Run("append", func(b *testing.B) {
		r := benchRecord()
		e := encoder{mac: mac()}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			r.ChainSeq = uint64(i)
			var data []byte
			data, r.Prev = e.encode(&r)
			b.SetBytes(int64(len(data)))
		}
	})
}

// BenchmarkMarshal measures a record's bytes alone, in an unkeyed log.
func BenchmarkMarshal(b *testing.B) {
	r := benchRecord()
	b.Run("reflect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.reflectJSON()
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			buf = r.appendJSON(buf[:0])
		}
	})
}
