package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	kmsv2 "k8s.io/kms/apis/v2"
)

// kmsv2Timeout bounds one call of the kmsv2 script command.
const kmsv2Timeout = 10 * time.Second

// cmdKMSv2 implements the API server's side of the KMS v2 protocol, over a
// Go gRPC client on the socket SOCK (a path relative to the script):
//
//	kmsv2 SOCK status [-wait-change FIELD VALUE DURATION]
//	kmsv2 SOCK encrypt PLAINTEXT
//	kmsv2 SOCK decrypt CIPHERTEXT [KEYID] [-flip BIT]
//	kmsv2 stale SOCK
//
// Bytes are base64, or zeros:N for N zero bytes. The reply is JSON on
// stdout ({"version","healthz","key_id"}, {"ciphertext","key_id",
// "annotations"}, {"plaintext"}); with !, the call must fail and stdout is
// "CODE: MESSAGE". status -wait-change polls every 20 ms until FIELD (key_id or
// healthz) is not VALUE, failing after DURATION. "stale" leaves a socket at SOCK
// that nothing serves, as a plugin that crashed does.
func cmdKMSv2(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 2 && args[0] == "stale" {
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: ts.MkAbs(args[1]), Net: "unix"})
		ts.Check(err)
		l.SetUnlinkOnClose(false)
		ts.Check(l.Close())
		return
	}
	if len(args) < 2 {
		ts.Fatalf("usage: kmsv2 SOCK status|encrypt|decrypt ...")
	}
	conn, err := grpc.NewClient("unix://"+ts.MkAbs(args[0]), grpc.WithTransportCredentials(insecure.NewCredentials()))
	ts.Check(err)
	defer conn.Close()
	client := kmsv2.NewKeyManagementServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), kmsv2Timeout)
	defer cancel()
	bytesArg := func(s string) []byte {
		if n, ok := strings.CutPrefix(s, "zeros:"); ok {
			size, err := strconv.Atoi(n)
			ts.Check(err)
			return make([]byte, size)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		ts.Check(err)
		return b
	}
	var reply any
	switch rest := args[2:]; args[1] {
	case "status":
		resp, err := client.Status(ctx, &kmsv2.StatusRequest{})
		if err == nil && len(rest) == 4 && rest[0] == "-wait-change" {
			field := map[string]func() string{"key_id": resp.GetKeyId, "healthz": resp.GetHealthz}[rest[1]]
			d, perr := time.ParseDuration(rest[3])
			if field == nil || perr != nil {
				ts.Fatalf("usage: kmsv2 SOCK status -wait-change key_id|healthz VALUE DURATION")
			}
			start := time.Now()
			for err == nil && field() == rest[2] {
				if time.Since(start) > d {
					ts.Fatalf("kmsv2 status: %s still %s after %v", rest[1], rest[2], d)
				}
				time.Sleep(20 * time.Millisecond)
				resp, err = client.Status(ctx, &kmsv2.StatusRequest{})
				field = map[string]func() string{"key_id": resp.GetKeyId, "healthz": resp.GetHealthz}[rest[1]]
			}
			if err == nil {
				ts.Logf("%s changed after %v", rest[1], time.Since(start).Round(time.Millisecond))
			}
		} else if len(rest) != 0 {
			ts.Fatalf("usage: kmsv2 SOCK status [-wait-change FIELD VALUE DURATION]")
		}
		reply = map[string]string{"version": resp.GetVersion(), "healthz": resp.GetHealthz(), "key_id": resp.GetKeyId()}
		kmsv2Check(ts, neg, err)
	case "encrypt":
		if len(rest) != 1 {
			ts.Fatalf("usage: kmsv2 SOCK encrypt PLAINTEXT")
		}
		resp, err := client.Encrypt(ctx, &kmsv2.EncryptRequest{Plaintext: bytesArg(rest[0]), Uid: "testscript"})
		reply = map[string]any{"ciphertext": resp.GetCiphertext(), "key_id": resp.GetKeyId(), "annotations": resp.GetAnnotations()}
		kmsv2Check(ts, neg, err)
	case "decrypt":
		if len(rest) < 1 {
			ts.Fatalf("usage: kmsv2 SOCK decrypt CIPHERTEXT [KEYID] [-flip BIT]")
		}
		ct := bytesArg(rest[0])
		keyID := ""
		for rest = rest[1:]; len(rest) > 0; rest = rest[1:] {
			if rest[0] == "-flip" && len(rest) > 1 {
				bit, err := strconv.Atoi(rest[1])
				ts.Check(err)
				ct[bit/8] ^= 1 << (bit % 8)
				rest = rest[1:]
			} else {
				keyID = rest[0]
			}
		}
		resp, err := client.Decrypt(ctx, &kmsv2.DecryptRequest{Ciphertext: ct, KeyId: keyID, Uid: "testscript"})
		reply = map[string]any{"plaintext": resp.GetPlaintext()}
		kmsv2Check(ts, neg, err)
	default:
		ts.Fatalf("kmsv2: unknown call %s", args[1])
	}
	if neg {
		return
	}
	b, err := json.MarshalIndent(reply, "", "  ")
	ts.Check(err)
	ts.Stdout().Write(append(b, '\n'))
}

// kmsv2Check prints a failed call's status for a negated kmsv2, and fails
// the script if the call's outcome is not the one expected.
func kmsv2Check(ts *testscript.TestScript, neg bool, err error) {
	switch {
	case err != nil && neg:
		st := status.Convert(err)
		ts.Stdout().Write([]byte(st.Code().String() + ": " + st.Message() + "\n"))
	case err != nil:
		ts.Fatalf("kmsv2: %v", err)
	case neg:
		ts.Fatalf("kmsv2: the call succeeded, want an error")
	}
}
