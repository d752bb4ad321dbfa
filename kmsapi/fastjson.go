package kmsapi

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Reflection-free JSON for the hot requests and responses (Encrypt,
// Decrypt, GenerateDataKey and GenerateDataKeyWithoutPlaintext), which
// encoding/json decoded and encoded at about a fifth of the handler's cost.
//
// The decoder takes only the plain form the AWS SDKs send: one object whose
// members are the operation's own field names, spelled exactly, each once,
// holding values of the field's type without escapes, nulls or exponents.
// Anything else (an unknown or differently cased name, a duplicate, an
// escape, a type mismatch, bad syntax) is left to encoding/json, so that
// every answer to unusual input, errors included, is still encoding/json's.
// FuzzFastDecode checks that whatever the decoder takes, it decodes as
// encoding/json does.

// fastDecoder is an operation input with a fast decoder. decodeFast
// reports false, having perhaps set some fields, for input it leaves to
// encoding/json.
type fastDecoder interface{ decodeFast(body []byte) bool }

// jsonScanner reads the plain form of a JSON object.
type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// consume skips spaces and then c, reporting whether c was there.
func (s *jsonScanner) consume(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object calls member with each member's name, positioned at its value,
// and reports whether the object (and nothing after it but spaces) was in
// the plain form and every member call succeeded. Names must be plain and
// unique among those member accepts (seen tracks them, by the bit member
// returns).
func (s *jsonScanner) object(member func(name []byte) (bit uint, ok bool)) bool {
	if !s.consume('{') {
		return false
	}
	if s.consume('}') {
		s.space()
		return s.i == len(s.b)
	}
	var seen uint
	for {
		s.space()
		name, ok := s.str()
		if !ok || !s.consume(':') {
			return false
		}
		s.space()
		bit, ok := member(name)
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		if s.consume(',') {
			continue
		}
		if !s.consume('}') {
			return false
		}
		s.space()
		return s.i == len(s.b)
	}
}

// str reads a string without escapes: its bytes, valid UTF-8 without
// control characters.
func (s *jsonScanner) str() ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	start := s.i + 1
	ascii := true
	for j := start; j < len(s.b); j++ {
		c := s.b[j]
		switch {
		case c == '"':
			v := s.b[start:j]
			if !ascii && !utf8.Valid(v) {
				return nil, false
			}
			s.i = j + 1
			return v, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// stringValue reads a string value into *dst.
func (s *jsonScanner) stringValue(dst *string) bool {
	v, ok := s.str()
	if ok {
		*dst = string(v)
	}
	return ok
}

// bytesValue reads a base64 string (standard alphabet, padded) into *dst,
// as encoding/json decodes a []byte.
func (s *jsonScanner) bytesValue(dst *[]byte) bool {
	v, ok := s.str()
	if !ok {
		return false
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(v)))
	n, err := base64.StdEncoding.Decode(b, v)
	if err != nil {
		clear(b)
		return false
	}
	*dst = b[:n]
	return true
}

// boolValue reads true or false.
func (s *jsonScanner) boolValue(dst *bool) bool {
	rest := s.b[s.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		*dst, s.i = true, s.i+4
	case len(rest) >= 5 && string(rest[:5]) == "false":
		*dst, s.i = false, s.i+5
	default:
		return false
	}
	return s.i == len(s.b) || !isJSONWordByte(s.b[s.i])
}

// intValue reads an integer of at most 9 digits, without sign, fraction
// or exponent (so that it fits an int anywhere).
func (s *jsonScanner) intValue(dst **int) bool {
	j := s.i
	for j < len(s.b) && '0' <= s.b[j] && s.b[j] <= '9' {
		j++
	}
	digits := s.b[s.i:j]
	if len(digits) == 0 || len(digits) > 9 || len(digits) > 1 && digits[0] == '0' ||
		j < len(s.b) && (isJSONWordByte(s.b[j]) || s.b[j] == '.' || s.b[j] == '-' || s.b[j] == '+') {
		return false
	}
	n, err := strconv.Atoi(string(digits))
	if err != nil {
		return false
	}
	*dst, s.i = &n, j
	return true
}

// isJSONWordByte reports whether c would continue a literal or number.
func isJSONWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// stringMap reads an object of strings, such as an encryption context.
// Names may repeat (the last wins, as with encoding/json).
func (s *jsonScanner) stringMap(dst *map[string]string) bool {
	if !s.consume('{') {
		return false
	}
	m := make(map[string]string)
	if !s.consume('}') {
		for {
			s.space()
			k, ok := s.str()
			if !ok || !s.consume(':') {
				return false
			}
			s.space()
			v, ok := s.str()
			if !ok {
				return false
			}
			m[string(k)] = string(v)
			if s.consume(',') {
				continue
			}
			if !s.consume('}') {
				return false
			}
			break
		}
	}
	*dst = m
	return true
}

// The bits naming the fields of the fast inputs, for object's seen set.
const (
	fieldKeyId uint = 1 << iota
	fieldEncryptionContext
	fieldEncryptionAlgorithm
	fieldDryRun
	fieldKeySpec
	fieldNumberOfBytes
	fieldCiphertextBlob
	fieldPlaintext
)

// member reads the value of one of cryptoInput's fields. It leaves
// GrantTokens and Recipient to encoding/json, as the SDKs rarely send them.
func (in *cryptoInput) member(s *jsonScanner, name []byte) (uint, bool) {
	switch string(name) {
	case "KeyId":
		return fieldKeyId, s.stringValue(&in.KeyId)
	case "EncryptionContext":
		return fieldEncryptionContext, s.stringMap(&in.EncryptionContext)
	case "EncryptionAlgorithm":
		return fieldEncryptionAlgorithm, s.stringValue(&in.EncryptionAlgorithm)
	case "DryRun":
		return fieldDryRun, s.boolValue(&in.DryRun)
	}
	return 0, false
}

func (in *generateDataKeyInput) decodeFast(body []byte) bool {
	s := &jsonScanner{b: body}
	return s.object(func(name []byte) (uint, bool) {
		switch string(name) {
		case "KeySpec":
			return fieldKeySpec, s.stringValue(&in.KeySpec)
		case "NumberOfBytes":
			return fieldNumberOfBytes, s.intValue(&in.NumberOfBytes)
		}
		return in.cryptoInput.member(s, name)
	})
}

func (in *decryptInput) decodeFast(body []byte) bool {
	s := &jsonScanner{b: body}
	return s.object(func(name []byte) (uint, bool) {
		if string(name) == "CiphertextBlob" {
			return fieldCiphertextBlob, s.bytesValue(&in.CiphertextBlob)
		}
		return in.cryptoInput.member(s, name)
	})
}

func (in *encryptInput) decodeFast(body []byte) bool {
	s := &jsonScanner{b: body}
	ok := s.object(func(name []byte) (uint, bool) {
		if string(name) == "Plaintext" {
			return fieldPlaintext, s.bytesValue(&in.Plaintext)
		}
		return in.cryptoInput.member(s, name)
	})
	if !ok {
		clear(in.Plaintext) // encoding/json decodes it again
	}
	return ok
}

// jsonAppender is a response that encodes itself as encoding/json would.
type jsonAppender interface{ appendJSON(dst []byte) []byte }

// appendJSONString appends v as a JSON string, as encoding/json writes it.
func appendJSONString(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf {
			b, _ := json.Marshal(v) // cannot fail for a string
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, v...)
	return append(dst, '"')
}

// appendJSONBytes appends v as encoding/json writes a []byte: base64, or
// null for nil.
func appendJSONBytes(dst []byte, v []byte) []byte {
	if v == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, v)
	return append(dst, '"')
}

func (o generateDataKeyOutput) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"CiphertextBlob":`...)
	dst = appendJSONBytes(dst, o.CiphertextBlob)
	if len(o.Plaintext) > 0 { // omitempty
		dst = append(dst, `,"Plaintext":`...)
		dst = appendJSONBytes(dst, o.Plaintext)
	}
	dst = append(dst, `,"KeyId":`...)
	dst = appendJSONString(dst, o.KeyId)
	return append(dst, '}')
}

func (o decryptOutput) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"KeyId":`...)
	dst = appendJSONString(dst, o.KeyId)
	dst = append(dst, `,"Plaintext":`...)
	dst = appendJSONBytes(dst, o.Plaintext)
	dst = append(dst, `,"EncryptionAlgorithm":`...)
	dst = appendJSONString(dst, o.EncryptionAlgorithm)
	return append(dst, '}')
}

func (o encryptOutput) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"CiphertextBlob":`...)
	dst = appendJSONBytes(dst, o.CiphertextBlob)
	dst = append(dst, `,"KeyId":`...)
	dst = appendJSONString(dst, o.KeyId)
	dst = append(dst, `,"EncryptionAlgorithm":`...)
	dst = appendJSONString(dst, o.EncryptionAlgorithm)
	return append(dst, '}')
}
