package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kmsring/kmsring/kmsapi"
)

// requestLineVector is a request and the time its line is logged at.
type requestLineVector struct {
	name string
	t    time.Time
	r    kmsapi.Request
}

var (
	logTime   = time.Date(2026, 12, 6, 19, 31, 12, 127_456_789, time.UTC)
	typicalRq = kmsapi.Request{
		Principal:   "arn:aws:iam::000000000000:user/ops",
		Operation:   "GenerateDataKey",
		KeyID:       "96989baa-7c1e-4f2a-9d0b-3f4e5a6b7c8d",
		Status:      200,
		Duration:    11518 * time.Microsecond,
		AccessKeyID: "AKIAIOSFODNN7EXAMPLE",
		RequestID:   "33e2b0a4-1f5c-4e8d-a9b7-6c5d4e3f2a1b",
		RemoteAddr:  "127.0.0.1:51930",
	}
)

// with returns typicalRq changed by f.
func with(f func(*kmsapi.Request)) kmsapi.Request {
	r := typicalRq
	f(&r)
	return r
}

// everyString sets every string field of a request to s.
func everyString(s string) kmsapi.Request {
	return with(func(r *kmsapi.Request) {
		r.Principal, r.Operation, r.KeyID, r.Exception = s, s, s, s
		r.AccessKeyID, r.RequestID, r.RemoteAddr = s, s, s
	})
}

// requestLineVectors are the golden cases of the differential test and
// the seeds of FuzzRequestLine.
var requestLineVectors = []requestLineVector{
	{"typical", logTime, typicalRq},
	{"every field empty", logTime, kmsapi.Request{}},
	{"every string empty", logTime, with(func(r *kmsapi.Request) {
		r.Principal, r.Operation, r.KeyID, r.AccessKeyID, r.RequestID, r.RemoteAddr = "", "", "", "", "", ""
	})},
	{"warn", logTime, with(func(r *kmsapi.Request) { r.Exception, r.Status = "AccessDeniedException", 400 })},
	{"error", logTime, with(func(r *kmsapi.Request) { r.Exception, r.Status = "KMSInternalException", 500 })},
	{"exception status 0", logTime, with(func(r *kmsapi.Request) { r.Exception, r.Status = "X", 0 })},
	{"negative status", logTime, with(func(r *kmsapi.Request) { r.Status = -1 })},
	{"control characters", logTime, everyString("a\x00b\x01\x1f\x7f\t\n\r")},
	{"quotes and backslashes", logTime, everyString(`say "hi" \ \\" end\`)},
	{"backslash alone", logTime, everyString(`a\b`)},
	{"equals", logTime, everyString("a=b")},
	{"spaces", logTime, everyString(" lead and trail ")},
	{"html", logTime, everyString("<script>&amp;</script>")},
	{"non-ASCII", logTime, everyString("ünïcödé 日本語 🔑")},
	{"non-ASCII no space", logTime, everyString("ünïcödé日本語🔑")},
	{"unicode space", logTime, everyString("a\u00a0b\u3000c")},
	{"non-printable rune", logTime, everyString("a\u200bb\ufeffc\u0085")},
	{"invalid UTF-8", logTime, everyString("a\xffb\xc3(\xe2\x82")},
	{"encoded U+FFFD", logTime, everyString("a\ufffdb")},
	{"line and paragraph separators", logTime, everyString("a\u2028b\u2029c")},
	{"very long", logTime, everyString(strings.Repeat("arn:aws:iam::000000000000:user/ops=\"x\" ", 2000))},
	{"zero duration", logTime, with(func(r *kmsapi.Request) { r.Duration = 0 })},
	{"sub-microsecond duration", logTime, with(func(r *kmsapi.Request) { r.Duration = 999 })},
	{"1 decimal", logTime, with(func(r *kmsapi.Request) { r.Duration = 2500 * time.Microsecond })},
	{"whole milliseconds", logTime, with(func(r *kmsapi.Request) { r.Duration = 7 * time.Millisecond })},
	{"1 microsecond", logTime, with(func(r *kmsapi.Request) { r.Duration = time.Microsecond })},
	{"hour", logTime, with(func(r *kmsapi.Request) { r.Duration = time.Hour + time.Microsecond })},
	{"longest duration", logTime, with(func(r *kmsapi.Request) { r.Duration = 1<<63 - 1 })},
	{"negative duration", logTime, with(func(r *kmsapi.Request) { r.Duration = -1500 * time.Microsecond })},
	{"time on the millisecond", time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC), typicalRq},
	{"time on the second", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), typicalRq},
	{"time last nanosecond", time.Date(2026, 12, 31, 23, 59, 59, 999_999_999, time.UTC), typicalRq},
	{"time zone east", logTime.In(time.FixedZone("IST", 5*3600+1800)), typicalRq},
	{"time zone west", logTime.In(time.FixedZone("PST", -8*3600)), typicalRq},
	{"time zone with seconds", logTime.In(time.FixedZone("LMT", -(4*3600 + 56*60 + 2))), typicalRq},
	{"local time", logTime.Local(), typicalRq},
	{"monotonic clock", time.Now(), typicalRq},
	{"year 0", time.Date(0, 1, 1, 0, 0, 0, 5, time.UTC), typicalRq},
	{"year 9999", time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC), typicalRq},
	{"year 10000 (through slog)", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), typicalRq},
	{"year -1 (through slog)", time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), typicalRq},
}

// slogLine is what slog's handler with nil options writes for the request
// line of r at t.
func slogLine(t *testing.T, format string, tm time.Time, r kmsapi.Request) string {
	var b bytes.Buffer
	l, err := newLogger(&b, format)
	require.NoError(t, err)
	require.NoError(t, l.Handler().Handle(context.Background(), requestRecord(tm, r)))
	return b.String()
}

// fastLine is what the request logger writes for r at tm, and the number
// of Writes it made.
func fastLine(t *testing.T, format string, tm time.Time, r kmsapi.Request) (string, int) {
	var w lockedBuffer
	l, err := newLogger(&w, format)
	require.NoError(t, err)
	rl := newRequestLogger(&w, format, l)
	rl.now = func() time.Time { return tm }
	rl.log(context.Background(), r)
	return w.String(), w.writes
}

// checkRequestLine fails t unless the request logger writes for r at tm
// exactly what slog writes, in one Write, in both formats.
func checkRequestLine(t *testing.T, tm time.Time, r kmsapi.Request) {
	for _, format := range []string{"text", "json"} {
		want := slogLine(t, format, tm, r)
		got, writes := fastLine(t, format, tm, r)
		require.Equal(t, want, got, "%s: the request line differs from slog's", format)
		require.Equal(t, 1, writes, "%s: the request line is one Write", format)
	}
}

func TestRequestLineMatchesSlog(t *testing.T) {
	for _, v := range requestLineVectors {
		t.Run(v.name, func(t *testing.T) { checkRequestLine(t, v.t, v.r) })
	}
}

func TestRequestLineFastPath(t *testing.T) {
	// The fast path, not the fallback, writes every vector within the
	// years 0 to 9999, so the differential test measures it.
	for _, v := range requestLineVectors {
		_, ok := appendRequestLine(nil, v.t, v.r, false)
		_, okJSON := appendRequestLine(nil, v.t, v.r, true)
		inRange := v.t.Year() >= 0 && v.t.Year() <= 9999
		assert.Equal(t, inRange, ok, "%s: text fast path", v.name)
		assert.Equal(t, inRange, okJSON, "%s: JSON fast path", v.name)
	}
}

func TestRequestLineGolden(t *testing.T) {
	// The contract lines themselves, not only agreement with slog.
	r := with(func(r *kmsapi.Request) { r.Exception, r.Status = "NotFoundException", 400 })
	text, _ := fastLine(t, "text", logTime, r)
	assert.Equal(t, `time=2026-12-06T19:31:12.127Z level=WARN msg="kmsring request" principal=arn:aws:iam::000000000000:user/ops operation=GenerateDataKey key_id=96989baa-7c1e-4f2a-9d0b-3f4e5a6b7c8d outcome=NotFoundException status=400 duration_ms=11.518 access_key_id=AKIAIOSFODNN7EXAMPLE request_id=33e2b0a4-1f5c-4e8d-a9b7-6c5d4e3f2a1b remote_addr=127.0.0.1:51930`+"\n", text)
	js, _ := fastLine(t, "json", logTime, r)
	assert.Equal(t, `{"time":"2026-12-06T19:31:12.127456789Z","level":"WARN","msg":"kmsring request","principal":"arn:aws:iam::000000000000:user/ops","operation":"GenerateDataKey","key_id":"96989baa-7c1e-4f2a-9d0b-3f4e5a6b7c8d","outcome":"NotFoundException","status":400,"duration_ms":11.518,"access_key_id":"AKIAIOSFODNN7EXAMPLE","request_id":"33e2b0a4-1f5c-4e8d-a9b7-6c5d4e3f2a1b","remote_addr":"127.0.0.1:51930"}`+"\n", js)
}

// lineWriter records each Write, failing unless it is whole lines.
type lineWriter struct {
	mu     sync.Mutex
	writes []string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func TestRequestLineDoesNotInterleave(t *testing.T) {
	// Request lines and serve's other lines, from many goroutines, reach
	// the writer as whole lines in single Writes.
	for _, format := range []string{"text", "json"} {
		var w lineWriter
		l, err := newLogger(&w, format)
		require.NoError(t, err)
		rl := newRequestLogger(&w, format, l)
		const goroutines, lines = 8, 50
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for range lines {
					if g%2 == 0 {
						rl.log(context.Background(), requestLineVectors[g%len(requestLineVectors)].r)
					} else {
						l.Info("kmsring: rotation scheduler", "key", "k")
					}
				}
			})
		}
		wg.Wait()
		require.Len(t, w.writes, goroutines*lines, "%s: a Write a line", format)
		for _, s := range w.writes {
			require.Equal(t, 1, strings.Count(s, "\n"), "%s: one line a Write: %q", format, s)
			require.True(t, strings.HasSuffix(s, "\n"), "%s: a Write ends its line: %q", format, s)
		}
	}
}

func FuzzRequestLine(f *testing.F) {
	require.NotEmpty(f, requestLineVectors, "the seed corpus")
	for _, v := range requestLineVectors {
		r := v.r
		_, offset := v.t.Zone()
		f.Add(r.Principal, r.Operation, r.KeyID, r.Exception, r.AccessKeyID, r.RequestID, r.RemoteAddr,
			r.Status, int64(r.Duration), v.t.Unix(), v.t.Nanosecond(), offset)
	}
	f.Fuzz(func(t *testing.T, principal, operation, keyID, exception, accessKeyID, requestID, remoteAddr string,
		status int, duration, sec int64, nsec, offset int) {
		r := kmsapi.Request{Principal: principal, Operation: operation, KeyID: keyID, Exception: exception,
			AccessKeyID: accessKeyID, RequestID: requestID, RemoteAddr: remoteAddr, Status: status,
			Duration: time.Duration(duration)}
		tm := time.Unix(sec, int64(nsec)).In(time.FixedZone("", offset%(100*3600)))
		checkRequestLine(t, tm, r)
	})
}

// slogRequest is the request logger before the fast path: slog all the way.
func slogRequest(l *slog.Logger) func(context.Context, kmsapi.Request) {
	return func(ctx context.Context, r kmsapi.Request) {
		l.LogAttrs(ctx, requestLevel(r), requestMsg,
			slog.String("principal", r.Principal),
			slog.String("operation", r.Operation),
			slog.String("key_id", r.KeyID),
			slog.String("outcome", requestOutcome(r)),
			slog.Int("status", r.Status),
			slog.Float64("duration_ms", requestDurationMillis(r)),
			slog.String("access_key_id", r.AccessKeyID),
			slog.String("request_id", r.RequestID),
			slog.String("remote_addr", r.RemoteAddr))
	}
}

func BenchmarkRequestLine(b *testing.B) {
	for _, format := range []string{"text", "json"} {
		l, err := newLogger(io.Discard, format)
		require.NoError(b, err)
		paths := []struct {
			name string
			log  func(context.Context, kmsapi.Request)
		}{
			{"slog", slogRequest(l)},
			{"direct", newRequestLogger(io.Discard, format, l).log},
		}
		for _, p := range paths {
			b.Run(format+"/"+p.name, func(b *testing.B) {
				b.ReportAllocs()
				ctx := context.Background()
				for b.Loop() {
					p.log(ctx, typicalRq)
				}
			})
		}
	}
}
