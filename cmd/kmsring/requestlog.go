package main

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kmsring/kmsring/internal/jsonesc"
	"github.com/kmsring/kmsring/kmsapi"
)

// serve's request line, written without slog's generic machinery.
//
// A request line costs serve more CPU than it should when it goes through
// slog: a Record of nine Attrs, then the handler's walk over them. The
// request logger appends the same line straight into a pooled buffer and
// writes it with one Write, byte for byte what slog.NewTextHandler or
// slog.NewJSONHandler with nil options writes for the record requestRecord
// builds (the line format is a contract: DESIGN.md "Observable"). The
// differential test and FuzzRequestLine hold it to that; a line the fast
// path cannot match exactly (a clock outside the years 0 to 9999) goes
// through slog instead.

// requestMsg is the message of a request line.
const requestMsg = "kmsring request"

// requestLogger writes serve's request lines to w, the writer its slog
// logger writes to. It is safe for concurrent use when w is: each line is
// one Write of a whole line, as slog's handlers write.
type requestLogger struct {
	w    io.Writer
	json bool
	slog *slog.Logger // writes a line the fast path does not
	now  func() time.Time
}

// newRequestLogger returns the request logger for l, which newLogger
// returned for w and format.
func newRequestLogger(w io.Writer, format string, l *slog.Logger) *requestLogger {
	return &requestLogger{w: w, json: format == "json", slog: l, now: time.Now}
}

// requestLevel is the level of a request line: INFO on success, WARN on a
// client's exception, ERROR on a 5xx.
func requestLevel(r kmsapi.Request) slog.Level {
	switch {
	case r.Exception == "":
		return slog.LevelInfo
	case r.Status >= 500:
		return slog.LevelError
	}
	return slog.LevelWarn
}

// requestOutcome is "success" or the AWS exception.
func requestOutcome(r kmsapi.Request) string {
	if r.Exception == "" {
		return "success"
	}
	return r.Exception
}

// requestDurationMillis is the duration in milliseconds, to the microsecond.
func requestDurationMillis(r kmsapi.Request) float64 {
	return float64(r.Duration.Microseconds()) / 1000
}

// requestRecord is the slog record of a request line logged at t: the
// definition the fast path reproduces.
func requestRecord(t time.Time, r kmsapi.Request) slog.Record {
	rec := slog.NewRecord(t, requestLevel(r), requestMsg, 0)
	rec.AddAttrs(
		slog.String("principal", r.Principal),
		slog.String("operation", r.Operation),
		slog.String("key_id", r.KeyID),
		slog.String("outcome", requestOutcome(r)),
		slog.Int("status", r.Status),
		slog.Float64("duration_ms", requestDurationMillis(r)),
		slog.String("access_key_id", r.AccessKeyID),
		slog.String("request_id", r.RequestID),
		slog.String("remote_addr", r.RemoteAddr))
	return rec
}

// log writes the line of r. It is a kmsapi request observer.
func (l *requestLogger) log(ctx context.Context, r kmsapi.Request) {
	t := l.now()
	bp := requestBufPool.Get().(*[]byte)
	b, ok := appendRequestLine((*bp)[:0], t, r, l.json)
	if ok {
		l.w.Write(b) // as slog's handlers, whose errors Logger drops
	} else {
		l.slog.Handler().Handle(ctx, requestRecord(t, r))
	}
	if cap(b) <= maxPooledRequestBuf {
		*bp = b
		requestBufPool.Put(bp)
	}
}

// maxPooledRequestBuf bounds the buffers kept for reuse, so one request
// with kilobytes of header values does not pin them.
const maxPooledRequestBuf = 16 << 10

var requestBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// appendRequestLine appends the line slog's text or JSON handler writes
// for requestRecord(t, r), newline included; ok is false, with b
// unspecified, for a line it cannot write exactly.
func appendRequestLine(b []byte, t time.Time, r kmsapi.Request, json bool) (_ []byte, ok bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false // slog's JSON handler adds an error; text's time is skewed
	}
	level := requestLevel(r).String()
	ms := requestDurationMillis(r)
	if json {
		b = append(b, `{"time":"`...)
		b = t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","level":"`...)
		b = append(b, level...)
		b = append(b, `","msg":"`+requestMsg+`","principal":"`...)
		b = jsonesc.Slog.Append(b, r.Principal)
		b = append(b, `","operation":"`...)
		b = jsonesc.Slog.Append(b, r.Operation)
		b = append(b, `","key_id":"`...)
		b = jsonesc.Slog.Append(b, r.KeyID)
		b = append(b, `","outcome":"`...)
		b = jsonesc.Slog.Append(b, requestOutcome(r))
		b = append(b, `","status":`...)
		b = strconv.AppendInt(b, int64(r.Status), 10)
		b = append(b, `,"duration_ms":`...)
		// encoding/json writes a float64 as 'f', -1 unless its magnitude
		// is below 1e-6 or at least 1e21; a duration in milliseconds to
		// the microsecond is 0 or at least 0.001, and below 1e13.
		b = strconv.AppendFloat(b, ms, 'f', -1, 64)
		b = append(b, `,"access_key_id":"`...)
		b = jsonesc.Slog.Append(b, r.AccessKeyID)
		b = append(b, `","request_id":"`...)
		b = jsonesc.Slog.Append(b, r.RequestID)
		b = append(b, `","remote_addr":"`...)
		b = jsonesc.Slog.Append(b, r.RemoteAddr)
		b = append(b, "\"}\n"...)
		return b, true
	}
	b = append(b, "time="...)
	b = appendRFC3339Millis(b, t)
	b = append(b, " level="...)
	b = append(b, level...)
	b = append(b, ` msg="`+requestMsg+`" principal=`...)
	b = appendTextString(b, r.Principal)
	b = append(b, " operation="...)
	b = appendTextString(b, r.Operation)
	b = append(b, " key_id="...)
	b = appendTextString(b, r.KeyID)
	b = append(b, " outcome="...)
	b = appendTextString(b, requestOutcome(r))
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, " duration_ms="...)
	b = strconv.AppendFloat(b, ms, 'g', -1, 64) // as slog's Value.append
	b = append(b, " access_key_id="...)
	b = appendTextString(b, r.AccessKeyID)
	b = append(b, " request_id="...)
	b = appendTextString(b, r.RequestID)
	b = append(b, " remote_addr="...)
	b = appendTextString(b, r.RemoteAddr)
	b = append(b, '\n')
	return b, true
}

// appendRFC3339Millis is log/slog's: RFC 3339 with exactly three digits
// of fraction, in t's location.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	// RFC3339Nano trims trailing zeros, so add a tenth of a millisecond
	// to have four digits after the period, and drop the fourth.
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...)
}

// appendTextString appends s as slog's text handler writes a string value:
// as it is, or quoted by strconv.Quote when it is empty or holds a space,
// '=', '"', a control character, invalid UTF-8, or a rune that is a space
// or not printable.
func appendTextString(b []byte, s string) []byte {
	if textNeedsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// textNeedsQuoting is log/slog's needsQuoting.
func textNeedsQuoting(s string) bool {
	if len(s) == 0 {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == '=' || c == '"' { // a space, a control character, or slog's specials
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}
