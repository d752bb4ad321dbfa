// Package jsonesc appends a string escaped for a JSON string literal as
// one of the standard library's JSON writers escapes it, so that a
// hand-written encoder writes the bytes that writer would.
//
// The two writers differ: encoding/json escapes '<', '>' and '&' (its
// default HTML escaping) and writes \b and \f in their short forms;
// log/slog's JSON handler does neither. Both escape '"', '\\' and the
// other control characters, write each byte of invalid UTF-8 as \ufffd,
// and U+2028 and U+2029 as \u2028 and \u2029.
package jsonesc

import "unicode/utf8"

// Style is one writer's escaping.
type Style struct {
	safe    *[utf8.RuneSelf]bool // ASCII bytes written as they are
	shortBF bool                 // \b and \f rather than \u0008 and \u000c
}

var (
	// EncodingJSON escapes as encoding/json.Marshal does.
	EncodingJSON = Style{safe: safeSet(`"\<>&`), shortBF: true}
	// Slog escapes as log/slog's JSONHandler does.
	Slog = Style{safe: safeSet(`"\`)}
)

// safeSet marks the printable ASCII bytes but those in unsafe.
func safeSet(unsafe string) *[utf8.RuneSelf]bool {
	var t [utf8.RuneSelf]bool
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	for _, c := range unsafe {
		t[c] = false
	}
	return &t
}

const lowerHex = "0123456789abcdef"

// Append appends s escaped in style st, without the quotes around it.
func (st Style) Append(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if st.safe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch {
			case c == '\\' || c == '"':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b' && st.shortBF:
				b = append(b, '\\', 'b')
			case c == '\f' && st.shortBF:
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', lowerHex[c>>4], lowerHex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', lowerHex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(b, s[start:]...)
}
