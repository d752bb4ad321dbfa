package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/stretchr/testify/assert"
)

// Script commands for kmsring serve: start a command in the background
// with its output in files, wait for a line in a file, stop the command
// with a signal, send a SigV4-signed AWS KMS request, make a self-signed
// certificate.

// procsKey finds a script's started processes in its Values.
type procsKey struct{}

// procs are the processes a script started, by name.
type procs struct {
	mu sync.Mutex
	m  map[string]*proc
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited
	err  error         // cmd.Wait's, once done
}

func scriptProcs(ts *testscript.TestScript) *procs {
	return ts.Value(procsKey{}).(*procs)
}

// waitTimeout bounds how long waitline waits: only a failing test waits
// that long.
const waitTimeout = 2 * time.Minute

// cmdStart implements "start NAME COMMAND ARGS...": it starts the command
// (found on PATH, with the same environment as exits gives) in the
// background, its standard output in NAME.stdout and standard error in
// NAME.stderr. A process still running at the end of the script is killed.
func cmdStart(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: start NAME COMMAND ARGS...")
	}
	name := args[0]
	ps := scriptProcs(ts)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.m[name] != nil {
		ts.Fatalf("start: %s already started", name)
	}
	stdout, err := os.Create(ts.MkAbs(name + ".stdout"))
	ts.Check(err)
	stderr, err := os.Create(ts.MkAbs(name + ".stderr"))
	ts.Check(err)
	cmd := exec.Command(args[1], args[2:]...)
	cmd.Env = scriptEnviron(ts)
	cmd.Dir = ts.MkAbs(".")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	ts.Check(cmd.Start())
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		stdout.Close()
		stderr.Close()
		close(p.done)
	}()
	ps.m[name] = p
	ts.Defer(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
}

// scriptEnviron is the environment of a command run by exits or start.
func scriptEnviron(ts *testscript.TestScript) []string {
	var env []string
	for _, k := range scriptEnv {
		if v := ts.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// cmdHalt implements "halt [-INT|-TERM] NAME [STATUS]" (stop is
// testscript's own): it sends the signal (SIGTERM by default) to the
// started process NAME, waits for it and asserts its exit status (0 by
// default). Its output files are the script's stdout and stderr
// afterwards.
func cmdHalt(ts *testscript.TestScript, neg bool, args []string) {
	sig := syscall.SIGTERM
	if len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-INT":
			sig = syscall.SIGINT
		case "-TERM":
		default:
			ts.Fatalf("halt: unknown signal %s", args[0])
		}
		args = args[1:]
	}
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: halt [-INT|-TERM] NAME [STATUS]")
	}
	want := 0
	if len(args) == 2 {
		var err error
		want, err = strconv.Atoi(args[1])
		ts.Check(err)
	}
	ps := scriptProcs(ts)
	ps.mu.Lock()
	p := ps.m[args[0]]
	delete(ps.m, args[0])
	ps.mu.Unlock()
	if p == nil {
		ts.Fatalf("halt: no process %s", args[0])
	}
	ts.Check(p.cmd.Process.Signal(sig))
	<-p.done
	ts.Stdout().Write([]byte(ts.ReadFile(args[0] + ".stdout")))
	ts.Stderr().Write([]byte(ts.ReadFile(args[0] + ".stderr")))
	got := 0
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		got = ee.ExitCode()
	} else {
		ts.Check(p.err)
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[0], got, want)
	}
}

// cmdWaitline implements "waitline FILE REGEXP [VAR]": it waits until a
// whole line of FILE matches REGEXP and sets $VAR to the first
// parenthesized submatch (or the whole match). It fails at once if FILE is
// the output of a started process that exited without writing the line.
func cmdWaitline(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: waitline FILE REGEXP [VAR]")
	}
	re, err := regexp.Compile(args[1])
	ts.Check(err)
	var p *proc
	if name, _, ok := strings.Cut(args[0], "."); ok {
		ps := scriptProcs(ts)
		ps.mu.Lock()
		p = ps.m[name]
		ps.mu.Unlock()
	}
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(waitTimeout)
	for {
		exited := p != nil && isDone(p.done)
		data, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			ts.Fatalf("waitline: %v", err)
		}
		lines := strings.Split(string(data), "\n")
		for _, line := range lines[:len(lines)-1] { // whole lines only
			if m := re.FindStringSubmatch(line); m != nil {
				if len(args) == 3 {
					ts.Setenv(args[2], m[len(m)-1])
				}
				return
			}
		}
		if exited {
			ts.Fatalf("waitline: the process writing %s exited (%v) without a line matching %q:\n%s", args[0], p.err, args[1], data)
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitline: no line matching %q in %s after %v:\n%s", args[1], args[0], waitTimeout, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func isDone(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// cmdKMSCall implements "kmscall [-cacert FILE] URL ACCESSKEYID SECRET
// OPERATION JSON": it sends one AWS KMS request, signed with SigV4 for
// service kms in $KMSRING_REGION (default us-east-1), and writes the
// response body to stdout. It fails unless the status is 200 OK; with !,
// unless it is not.
func cmdKMSCall(ts *testscript.TestScript, neg bool, args []string) {
	client := http.DefaultClient
	if len(args) > 2 && args[0] == "-cacert" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(ts.ReadFile(args[1]))) {
			ts.Fatalf("kmscall: no certificate in %s", args[1])
		}
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		args = args[2:]
	}
	if len(args) != 5 {
		ts.Fatalf("usage: kmscall [-cacert FILE] URL ACCESSKEYID SECRET OPERATION JSON")
	}
	region := ts.Getenv(envRegion)
	if region == "" {
		region = "us-east-1"
	}
	req := signedRequest(ts, args[0], region, args[1], args[2], args[3], args[4])
	resp, err := client.Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	ts.Check(err)
	ts.Stdout().Write(append(body, '\n'))
	if ok := resp.StatusCode == http.StatusOK; ok == neg {
		ts.Fatalf("kmscall %s: status %s: %s", args[3], resp.Status, body)
	}
}

// signedRequest builds a request for operation op signed with AWS
// Signature Version 4, as an AWS SDK signs it.
func signedRequest(ts *testscript.TestScript, endpoint, region, id, secret, op, body string) *http.Request {
	u, err := url.Parse(endpoint)
	ts.Check(err)
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
	ts.Check(err)
	now := time.Now().UTC().Format("20060102T150405Z")
	target := "TrentService." + op
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", target)
	req.Header.Set("X-Amz-Date", now)
	const signed = "content-type;host;x-amz-date;x-amz-target"
	canonical := strings.Join([]string{
		"POST", "/", "",
		"content-type:application/x-amz-json-1.1",
		"host:" + u.Host,
		"x-amz-date:" + now,
		"x-amz-target:" + target,
		"",
		signed,
		sha256Hex(body),
	}, "\n")
	scope := now[:8] + "/" + region + "/kms/aws4_request"
	key := []byte("AWS4" + secret)
	for _, s := range []string{now[:8], region, "kms", "aws4_request"} {
		key = hmacSHA256(key, s)
	}
	sig := hmacSHA256(key, "AWS4-HMAC-SHA256\n"+now+"\n"+scope+"\n"+sha256Hex(canonical))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+id+"/"+scope+
		", SignedHeaders="+signed+", Signature="+hex.EncodeToString(sig))
	return req
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func hmacSHA256(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// cmdGenCert implements "gencert CERT KEY": it writes a self-signed ECDSA
// P-256 certificate for localhost, 127.0.0.1 and ::1, valid for a day, and
// its private key (0600), both PEM.
func cmdGenCert(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: gencert CERT KEY")
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ts.Check(err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kmsring test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	ts.Check(err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "127.0.0.1": true, "127.1.2.3": true, "::1": true, "::ffff:127.0.0.1": true,
		"": false, "0.0.0.0": false, "::": false, "192.0.2.1": false, "example.com": false, "localhost.example.com": false,
	} {
		assert.Equal(t, want, isLoopbackHost(host), "isLoopbackHost(%q)", host)
	}
}

func TestListenURL(t *testing.T) {
	bound := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 41234}
	assert.Equal(t, "http://127.0.0.1:41234", listenURL("127.0.0.1:0", bound, false), "the port listened on")
	assert.Equal(t, "https://localhost:41234", listenURL("localhost:0", bound, true), "the host as --addr names it")
	assert.Equal(t, "https://127.0.0.1:41234", listenURL(":0", bound, true), "the bound address when --addr names no host")
	v6 := &net.TCPAddr{IP: net.IPv6loopback, Port: 8080}
	assert.Equal(t, "http://[::1]:8080", listenURL("[::1]:8080", v6, false), "IPv6 in brackets")
}

// cmdHTTPGet implements "httpget URL [STATUS]": it GETs URL and writes the
// body to stdout; the status must be STATUS (200 by default), or with !
// must not be 200.
func cmdHTTPGet(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 || len(args) > 2 || neg && len(args) == 2 {
		ts.Fatalf("usage: [!] httpget URL [STATUS]")
	}
	want := http.StatusOK
	if len(args) == 2 {
		var err error
		want, err = strconv.Atoi(args[1])
		ts.Check(err)
	}
	resp, err := http.Get(args[0])
	ts.Check(err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	ts.Check(err)
	ts.Stdout().Write(body)
	if ok := resp.StatusCode == want; ok == neg {
		ts.Fatalf("httpget %s: status %s", args[0], resp.Status)
	}
}
