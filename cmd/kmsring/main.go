// Command kmsring is the operators' command for kmsring keys, named and
// shaped after `aws kms`: the steps of an AWS KMS runbook carry over with
// `aws kms` replaced by `kmsring`.
//
//	kmsring create-key --alias alias/orders --rotation-period-in-days 90
//	kmsring get-key-rotation-status --key-id alias/orders
//	kmsring rotate-key-on-demand --key-id alias/orders
//	kmsring list-key-rotations --key-id alias/orders
//	kmsring seal --key-id alias/orders --in report.pdf --out report.pdf.sealed
//	kmsring open --in report.pdf.sealed --out report.pdf
//
// Keys live in a store: the embedded file kmsring.db in
// os.UserConfigDir()/kmsring by default, any other file with --store, or
// PostgreSQL with --store postgres://... Key material in the store is
// wrapped under the root key in --root-key-file (kmsring.key beside the
// default store). Both default files are created, 0600, on first use.
//
// Output is JSON in the AWS KMS response shapes (so jq pipelines written
// against `aws kms` keep working), or a table with --output table. Exit
// status is 0 on success, 1 when the operation failed (one line on standard
// error) and 2 for a usage error.
//
// Every command is a thin layer over the library: it parses its flags,
// calls package keyring, envelope or audit, and prints the result.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kmsring/kmsring/audit"
)

func main() {
	// SIGINT or SIGTERM: serve shuts down gracefully, seal and open remove
	// their partial output. A second signal ends the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(audit.WithPrincipal(ctx, principal()))
	if cerr := a.close(); err == nil {
		err = cerr
	}
	if err == nil {
		return 0
	}
	code := 2 // errors cobra reports itself: unknown commands and flags, missing flags
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	fmt.Fprintln(stderr, "kmsring: "+oneLine(err.Error()))
	return code
}

// exitError is an error with the exit status it causes.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError reports a bad command line: exit status 2.
func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// opError marks err as the failure of an operation: exit status 1, unless
// it already is a usage error.
func opError(err error) error {
	var ee *exitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	return &exitError{code: 1, err: err}
}

// oneLine joins the lines of a message (errors.Join makes several) so that
// every failure is one line on standard error.
func oneLine(s string) string {
	// cobra's suggestion for a mistyped command spans lines of its own.
	if msg, alts, ok := strings.Cut(s, "\n\nDid you mean this?\n"); ok {
		s = msg + " (did you mean " + strings.Join(strings.Fields(alts), " or ") + "?)"
	}
	var lines []string
	for l := range strings.Lines(s) {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			lines = append(lines, l)
		}
	}
	return escapeControl(strings.Join(lines, "; "))
}
