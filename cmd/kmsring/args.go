package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// Values of --cli-binary-format, as the AWS CLI v2 names them.
const (
	base64Format   = "base64"
	rawInBase64Out = "raw-in-base64-out"
)

// maxBlobArg bounds what a blob argument reads: far above the 4 KiB
// plaintexts and blobs KMS takes, so the library, not this limit, says what
// is too large.
const maxBlobArg = 1 << 20

// readBlob reads a blob argument as the AWS CLI does: fileb://PATH is the
// file's bytes, file://PATH a file holding base64 text, anything else
// base64 text; with --cli-binary-format raw-in-base64-out, text (from the
// argument or file://) is taken as it is.
func (a *app) readBlob(flag, v string) ([]byte, error) {
	var text string
	switch {
	case strings.HasPrefix(v, "fileb://"):
		return readFileArg(strings.TrimPrefix(v, "fileb://"))
	case strings.HasPrefix(v, "file://"):
		b, err := readFileArg(strings.TrimPrefix(v, "file://"))
		if err != nil {
			return nil, err
		}
		text = string(b)
	default:
		text = v
	}
	if a.binaryFormat == rawInBase64Out {
		return []byte(text), nil
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil {
		return nil, usageError("--%s: not base64 (use fileb://PATH for a file's bytes): %v", flag, err)
	}
	return b, nil
}

func readFileArg(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxBlobArg+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBlobArg {
		return nil, fmt.Errorf("%s is larger than %d bytes (seal takes files of any size)", path, maxBlobArg)
	}
	return b, nil
}

// parseContext parses --encryption-context: the AWS CLI shorthand
// k=v,k2=v2, a JSON object {"k":"v"}, or file://PATH holding one. An empty
// value is no context.
func parseContext(v string) (map[string]string, error) {
	if strings.HasPrefix(v, "file://") {
		b, err := readFileArg(strings.TrimPrefix(v, "file://"))
		if err != nil {
			return nil, err
		}
		v = string(b)
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	ec := map[string]string{}
	if strings.HasPrefix(v, "{") {
		if err := json.Unmarshal([]byte(v), &ec); err != nil {
			return nil, usageError("--encryption-context: not a JSON object of strings: %v", err)
		}
		return ec, nil
	}
	for _, pair := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(pair, "=")
		if !ok || k == "" {
			return nil, usageError("--encryption-context: %q is not KEY=VALUE (write k=v,k2=v2 or a JSON object)", pair)
		}
		if _, dup := ec[k]; dup {
			return nil, usageError("--encryption-context: key %q given twice", k)
		}
		ec[k] = val
	}
	return ec, nil
}
