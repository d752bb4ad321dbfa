package kmsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// The AWS JSON 1.1 protocol as AWS KMS speaks it: POST / with the
// operation in X-Amz-Target ("TrentService.Encrypt"), a JSON body whose
// binary fields are base64 and whose timestamps are epoch seconds (JSON
// numbers), and errors as {"__type": "...", "message": "..."}.

const (
	targetPrefix = "TrentService."
	contentType  = "application/x-amz-json-1.1"
)

// operation answers one API operation, given the request body.
type operation func(h *Handler, ctx context.Context, c *caller, body []byte) (any, error)

// op adapts an operation that takes its decoded input.
func op[In any](fn func(h *Handler, ctx context.Context, c *caller, in *In) (any, error)) operation {
	return func(h *Handler, ctx context.Context, c *caller, body []byte) (any, error) {
		var in In
		if len(bytes.TrimSpace(body)) > 0 && !decodeFast(&in, body) {
			in = *new(In)
			if err := json.Unmarshal(body, &in); err != nil {
				return nil, &apiError{Type: "SerializationException", Message: "the request body is not the operation's JSON input: " + truncate(err.Error())}
			}
		}
		return fn(h, ctx, c, &in)
	}
}

// decodeFast decodes body into in without reflection where in has a fast
// decoder and body is in the plain form it takes (fastjson.go).
func decodeFast(in any, body []byte) bool {
	fd, ok := in.(fastDecoder)
	return ok && fd.decodeFast(body)
}

// operations are the supported operations by name, grouped as the AWS KMS
// API reference groups them. Anything else is UnsupportedOperationException.
var operations map[string]operation

func init() {
	operations = map[string]operation{
		// Keys (ops_keys.go).
		"CreateKey":            op((*Handler).createKey),
		"DescribeKey":          op((*Handler).describeKey),
		"ListKeys":             op((*Handler).listKeys),
		"UpdateKeyDescription": op((*Handler).updateKeyDescription),
		"EnableKey":            op((*Handler).enableKey),
		"DisableKey":           op((*Handler).disableKey),
		"ScheduleKeyDeletion":  op((*Handler).scheduleKeyDeletion),
		"CancelKeyDeletion":    op((*Handler).cancelKeyDeletion),
		// Aliases (ops_aliases.go).
		"CreateAlias": op((*Handler).createAlias),
		"UpdateAlias": op((*Handler).updateAlias),
		"DeleteAlias": op((*Handler).deleteAlias),
		"ListAliases": op((*Handler).listAliases),
		// Cryptographic operations (ops_crypto.go).
		"Encrypt":                         op((*Handler).encrypt),
		"Decrypt":                         op((*Handler).decrypt),
		"ReEncrypt":                       op((*Handler).reEncrypt),
		"GenerateDataKey":                 op((*Handler).generateDataKey),
		"GenerateDataKeyWithoutPlaintext": op((*Handler).generateDataKeyWithoutPlaintext),
		"GenerateRandom":                  op((*Handler).generateRandom),
		// Key rotation (ops_rotation.go).
		"EnableKeyRotation":    op((*Handler).enableKeyRotation),
		"DisableKeyRotation":   op((*Handler).disableKeyRotation),
		"GetKeyRotationStatus": op((*Handler).getKeyRotationStatus),
		"RotateKeyOnDemand":    op((*Handler).rotateKeyOnDemand),
		"ListKeyRotations":     op((*Handler).listKeyRotations),
		// Key policies (ops_policy.go).
		"GetKeyPolicy": op((*Handler).getKeyPolicy),
		"PutKeyPolicy": op((*Handler).putKeyPolicy),
	}
}

// wiper is a response holding secrets (a plaintext) to erase once sent.
type wiper interface{ wipe() }

// writeResponse writes resp as the operation's JSON output.
func writeResponse(w http.ResponseWriter, resp any) {
	if a, ok := resp.(jsonAppender); ok {
		bp := bufPool.Get().(*[]byte)
		b := a.appendJSON((*bp)[:0])
		writeJSON(w, http.StatusOK, b)
		if s, ok := resp.(wiper); ok {
			s.wipe()
			clear(b)
		}
		*bp = b
		bufPool.Put(bp)
		return
	}
	if resp == nil {
		resp = struct{}{}
	}
	b, err := json.Marshal(resp)
	if err != nil {
		// Response types are plain structs: this cannot happen.
		panic("kmsapi: marshal response: " + err.Error())
	}
	writeJSON(w, http.StatusOK, b)
	if s, ok := resp.(wiper); ok {
		s.wipe()
		clear(b)
	}
}

func writeErrorBody(w http.ResponseWriter, ae *apiError) {
	b, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{ae.Type, ae.Message})
	w.Header().Set("X-Amzn-Errortype", ae.Type)
	writeJSON(w, ae.status(), b)
}

func writeJSON(w http.ResponseWriter, status int, b []byte) {
	hd := w.Header()
	// Direct assignments of canonical names: Set would canonicalize
	// them again.
	hd["Content-Type"] = []string{contentType}
	hd["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	w.Write(b)
}

// epoch is a timestamp as AWS JSON writes it: seconds since 1970 as a
// JSON number, to the millisecond.
type epoch float64

// epochOf returns t as an epoch, or nil for the zero time (the field is
// then left out).
func epochOf(t time.Time) *epoch {
	if t.IsZero() {
		return nil
	}
	e := epoch(float64(t.UnixMilli()) / 1000)
	return &e
}

// MarshalJSON writes the number without an exponent, as AWS does.
func (e epoch) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(e), 'f', -1, 64), nil
}
