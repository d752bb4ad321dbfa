package main

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/jmespath/go-jmespath"
	"github.com/kmsring/kmsring/audit"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/kmsapi"
	"github.com/kmsring/kmsring/store"
	"github.com/spf13/cobra"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// app holds one invocation's settings and what it opened.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	// global flags
	storeURL, rootKeyPath, output, region, account string
	defaultStore                                   bool // storeURL is the default location
	binaryFormat                                   string
	queryExpr                                      string
	query                                          *jmespath.JMESPath // --query, compiled
	allowNonApproved                               bool               // --allow-non-approved

	// opened on first use by a command
	st     storeCloser
	stDesc string // the store as the user named it, for messages
	rk     tink.AEAD
	log    *audit.Logger
	mac    func() hash.Hash // the store's audit chain key (keyring.AuditMAC)
	opened bool
	// created lists the files this invocation created, and createdNote
	// says so; create-key reports them once the key exists.
	created     []string
	createdNote string
	keys        map[string]*keyring.Keyring // loaded keys by ID and by the name used
	// auditFailClosed, when positive, makes the audit log fail-closed
	// with that bound (serve --audit-fail-closed).
	auditFailClosed time.Duration
}

// storeCloser is what kmsring needs of a store: keys, the audit log, Close.
type storeCloser interface {
	store.Store
	store.AuditLog
	Close() error
}

// Environment variables of the global flags.
const (
	envStore   = "KMSRING_STORE"
	envRootKey = "KMSRING_ROOT_KEY_FILE"
	envRegion  = "KMSRING_REGION"
	envAccount = "KMSRING_ACCOUNT"
)

var (
	regionRE  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	accountRE = regexp.MustCompile(`^[0-9]{12}$`)
)

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "kmsring",
		Short: "Operate kmsring keys the way aws kms operates AWS KMS keys",
		Long: `kmsring manages the keys of a kmsring store: create keys and aliases, rotate
them on a schedule or on demand, disable or schedule them for deletion,
generate data keys, encrypt, decrypt, and seal files in envelopes. Its
commands, flags and JSON output follow the AWS CLI's "aws kms", so a runbook
written for AWS KMS works with "aws kms" replaced by "kmsring".

The store is an embedded file (default kmsring.db in the user config
directory, under kmsring/) or PostgreSQL (--store postgres://...). Key
material in it is wrapped under the root key file (default kmsring.key beside
the default store). Both default files are created, 0600, on first use.

Exit status: 0 on success, 1 when the operation failed, 2 for a usage error.`,
		Example: `  kmsring create-key --description "orders" --alias alias/orders
  kmsring enable-key-rotation --key-id alias/orders --rotation-period-in-days 90
  kmsring --output table describe-key --key-id alias/orders
  KMSRING_STORE=postgres://kmsring@db/app kmsring list-keys`,
		Version:           version(),
		SilenceErrors:     true,
		SilenceUsage:      true,
		PersistentPreRunE: a.checkGlobals,
	}
	f := root.PersistentFlags()
	f.StringVar(&a.storeURL, "store", "", "the store: a file path (embedded store) or postgres://... (env "+envStore+"; default kmsring.db in the user config directory)")
	f.StringVar(&a.rootKeyPath, "root-key-file", "", "the root key file (env "+envRootKey+"; default kmsring.key beside the default store)")
	f.StringVar(&a.output, "output", "json", "output format: json (the AWS response shapes), text (the AWS CLI's text format) or table")
	f.StringVar(&a.queryExpr, "query", "", "a JMESPath expression selecting from the JSON output, as the AWS CLI's --query")
	f.StringVar(&a.region, "region", "", "the region key ARNs name (env "+envRegion+"; default us-east-1)")
	f.StringVar(&a.binaryFormat, "cli-binary-format", base64Format, "how blob arguments given as text are read: base64, or raw-in-base64-out (as the AWS CLI v2)")
	f.StringVar(&a.account, "account", "", "the account ID key ARNs name (env "+envAccount+"; default 000000000000)")
	f.BoolVar(&a.allowNonApproved, "allow-non-approved", false, "in FIPS 140-3 mode, read what was written outside it, to migrate it (docs/FIPS.md)")
	root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"json", "text", "table"}, cobra.ShellCompDirectiveNoFileComp))
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError("%s: %v (see kmsring %s --help)", c.Name(), err, strings.TrimPrefix(c.CommandPath(), "kmsring "))
	})
	root.AddGroup(
		&cobra.Group{ID: "keys", Title: "Keys:"},
		&cobra.Group{ID: "rotation", Title: "Rotation:"},
		&cobra.Group{ID: "aliases", Title: "Aliases:"},
		&cobra.Group{ID: "crypto", Title: "Data keys and encryption:"},
		&cobra.Group{ID: "files", Title: "Files (envelopes):"},
		&cobra.Group{ID: "versions", Title: "Key versions (kmsring's own):"},
		&cobra.Group{ID: "audit", Title: "Audit:"},
		&cobra.Group{ID: "endpoint", Title: "The AWS KMS-compatible endpoint:"},
		&cobra.Group{ID: "kubernetes", Title: "Kubernetes:"},
	)
	for _, c := range a.commands() {
		root.AddCommand(c)
	}
	return root
}

// commands returns every subcommand.
func (a *app) commands() []*cobra.Command {
	var cs []*cobra.Command
	cs = append(cs, a.keyCommands()...)
	cs = append(cs, a.rotationCommands()...)
	cs = append(cs, a.versionCommands()...)
	cs = append(cs, a.aliasCommands()...)
	cs = append(cs, a.cryptoCommands()...)
	cs = append(cs, a.fileCommands()...)
	cs = append(cs, a.auditCommand(), a.complianceCommand())
	cs = append(cs, a.serveCommand())
	cs = append(cs, a.accessKeyCommands()...)
	cs = append(cs, a.kmsPluginCommand())
	cs = append(cs, a.policyCommands()...)
	cs = append(cs, a.buildVersionCommand())
	return cs
}

// checkGlobals applies the environment to global flags not given and
// checks their values.
func (a *app) checkGlobals(cmd *cobra.Command, _ []string) error {
	f := cmd.Flags()
	env := func(name, key, def string, v *string) {
		if !f.Changed(name) {
			*v = os.Getenv(key)
		}
		if *v == "" {
			*v = def
		}
	}
	env("store", envStore, "", &a.storeURL)
	env("root-key-file", envRootKey, "", &a.rootKeyPath)
	env("region", envRegion, "us-east-1", &a.region)
	env("account", envAccount, "000000000000", &a.account)
	switch {
	case a.output != "json" && a.output != "text" && a.output != "table":
		return usageError("--output must be json, text or table, not %q", a.output)
	case !regionRE.MatchString(a.region):
		return usageError("--region %q is not a region name such as us-east-1", a.region)
	case a.binaryFormat != base64Format && a.binaryFormat != rawInBase64Out:
		return usageError("--cli-binary-format must be %s or %s, not %q", base64Format, rawInBase64Out, a.binaryFormat)
	case !accountRE.MatchString(a.account):
		return usageError("--account %q is not a 12-digit account ID", a.account)
	}
	if f.Changed("query") {
		q, err := jmespath.Compile(a.queryExpr)
		if err != nil {
			return usageError("--query %q is not a JMESPath expression: %v", a.queryExpr, oneLine(err.Error()))
		}
		a.query = q
	}
	return nil
}

// op adapts a command's function to cobra: it runs with the command's
// context, and its errors, prefixed with the command's name and followed by
// the AWS exception name that matches, are operation errors (exit status
// 1) unless they are usage errors.
func (a *app) op(fn func(ctx context.Context, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd.Context(), cmd, args)
		if err == nil {
			return nil
		}
		name := strings.TrimPrefix(cmd.CommandPath(), "kmsring ")
		var ee *exitError
		if errors.As(err, &ee) && ee.code == 2 {
			return &exitError{code: 2, err: fmt.Errorf("%s: %w", name, err)}
		}
		if errors.Is(err, context.Canceled) {
			return opError(fmt.Errorf("%s: interrupted", name))
		}
		if ex := exceptionName(err); ex != "" {
			return opError(fmt.Errorf("%s: %w (%s)", name, err, ex))
		}
		return opError(fmt.Errorf("%s: %w", name, err))
	}
}

// exceptionName is the AWS KMS exception a user of aws kms knows err by:
// the endpoint's (kmsapi.ExceptionName), or NotFoundException for a store
// record that is missing.
func exceptionName(err error) string {
	if ex := kmsapi.ExceptionName(err); ex != "" {
		return ex
	}
	if errors.Is(err, store.ErrNotFound) {
		return "NotFoundException"
	}
	return ""
}

// version is the module version the binary was built from, as go install
// records it, or "(devel)".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
