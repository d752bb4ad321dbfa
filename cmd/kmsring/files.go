package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/keyring"
	"github.com/spf13/cobra"
)

// copyBufferSize is the read size of seal and open: sixteen 64 KiB
// envelope segments.
const copyBufferSize = 1 << 20

func (a *app) fileCommands() []*cobra.Command {
	return []*cobra.Command{a.sealCommand(), a.openCommand(), a.inspectCommand(), a.rewrapCommand()}
}

// fileFlags adds --in and --out (required) to c.
func fileFlags(c *cobra.Command, in, out *string, what string) {
	c.Flags().StringVar(in, "in", "", "the file to read (- for standard input)")
	c.MarkFlagRequired("in")
	if out != nil {
		c.Flags().StringVar(out, "out", "", "the file to write "+what+" to (- for standard output); replaced only when complete")
		c.MarkFlagRequired("out")
	}
}

func (a *app) sealCommand() *cobra.Command {
	var in, out, ecArg string
	c := &cobra.Command{
		Use:   "seal",
		Short: "Encrypt a file of any size into an envelope",
		Long: `Encrypt a file of any size into an envelope under a fresh data key from the
key's current version, streaming in constant memory. The envelope's header
names the key and version, so open needs neither. --out is written to a
temporary file beside it and renamed into place when complete.`,
		Example: `  kmsring seal --key-id alias/orders --in orders.csv --out orders.csv.sealed
  kmsring seal --key-id alias/orders --encryption-context dept=sales --in - --out - < a.tar > a.tar.sealed`,
		GroupID: "files",
	}
	fileFlags(c, &in, &out, "the envelope")
	c.Flags().StringVar(&ecArg, "encryption-context", "", contextUsage)
	var ec map[string]string
	c.PreRunE = func(*cobra.Command, []string) (err error) {
		ec, err = parseContext(ecArg)
		return err
	}
	return a.keyCommand(string(keyring.OpGenerateDataKey), c, func(ctx context.Context, k *keyring.Keyring) (any, error) {
		src, total, err := a.openInput(in)
		if err != nil {
			return nil, err
		}
		defer src.Close()
		dst, err := a.createOutput(out)
		if err != nil {
			return nil, err
		}
		defer dst.abort()
		w, err := envelope.NewWriter(ctx, k, dst, envelope.WithEncryptionContext(ec))
		if err != nil {
			return nil, err
		}
		if err := a.close(); err != nil {
			return nil, err
		}
		p := a.newProgress("sealing", total, true)
		if _, err := io.CopyBuffer(w, progressReader{ctx, src, p}, make([]byte, copyBufferSize)); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		p.finish()
		return nil, dst.commit()
	})
}

func (a *app) openCommand() *cobra.Command {
	var in, out, ecArg string
	c := &cobra.Command{
		Use:   "open",
		Short: "Decrypt an envelope made by seal",
		Long: `Decrypt an envelope made by seal, streaming in constant memory. The key and
version come from the envelope's header. With --encryption-context, the
envelope's context must be exactly that one.

The plaintext goes to a temporary file beside --out, which is renamed into
place only once the whole envelope has authenticated: a tampered or truncated
envelope fails and leaves nothing at --out. With --out -, each 64 KiB segment
is authenticated before it is written, and tampering or truncation is
reported (exit status 1) after the segments before it were written.`,
		Example: `  kmsring open --in orders.csv.sealed --out orders.csv
  kmsring open --in a.tar.sealed --out - --encryption-context dept=sales | tar x`,
		GroupID: "files",
		Args:    cobra.NoArgs,
	}
	fileFlags(c, &in, &out, "the plaintext")
	c.Flags().StringVar(&ecArg, "encryption-context", "", "the context the envelope must have: k=v,k2=v2 or a JSON object")
	c.RunE = a.op(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		var opts []envelope.Option
		if cmd.Flags().Changed("encryption-context") {
			ec, err := parseContext(ecArg)
			if err != nil {
				return err
			}
			opts = append(opts, envelope.WithEncryptionContext(ec))
		}
		src, total, err := a.openInput(in)
		if err != nil {
			return err
		}
		defer src.Close()
		if err := a.open(ctx, false); err != nil {
			return err
		}
		if a.allowNonApproved {
			opts = append(opts, envelope.AllowNonApproved())
		}
		r, err := envelope.NewReader(ctx, storeOpener{a}, src, opts...)
		if err != nil {
			return err
		}
		if err := a.close(); err != nil {
			return err
		}
		dst, err := a.createOutput(out)
		if err != nil {
			return err
		}
		defer dst.abort()
		p := a.newProgress("opening", total, true)
		if _, err := io.Copy(dst, progressReader{ctx, r, p}); err != nil {
			return err
		}
		p.finish()
		return dst.commit()
	})
	return c
}

// storeOpener decrypts data key blobs with the key they name, loaded from
// the store: what open needs, since the key is known only from the header.
type storeOpener struct{ a *app }

func (o storeOpener) Decrypt(ctx context.Context, blob []byte, opts ...keyring.OpOption) ([]byte, error) {
	id, _, err := keyring.ParseCiphertext(blob)
	if err != nil {
		return nil, err
	}
	k, err := o.a.loadKey(ctx, id)
	if err != nil {
		o.a.record(ctx, string(keyring.OpDecrypt), id, err)
		return nil, err
	}
	return k.Decrypt(ctx, blob, opts...)
}

type inspectOutput struct {
	KeyId             string
	KeyArn            string
	KeyVersion        uint32
	KeyMaterialId     string
	EncryptionContext map[string]string
	HeaderSize        int
	SegmentSize       int
	// FIPSApproved: the envelope's suite uses only FIPS 140-3 approved
	// algorithms, so it opens in FIPS mode.
	FIPSApproved bool
}

func (a *app) inspectCommand() *cobra.Command {
	var in string
	c := &cobra.Command{
		Use:   "inspect",
		Short: "Show an envelope's header: key, version, encryption context",
		Long: `Show an envelope's header without decrypting anything: the key and version
whose blob wraps its data key, and its encryption context. Needs no store or
root key. Nothing in the header is authenticated until the envelope is opened.`,
		Example: `  kmsring inspect --in orders.csv.sealed`,
		GroupID: "files",
		Args:    cobra.NoArgs,
	}
	fileFlags(c, &in, nil, "")
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, _ []string) error {
		src, _, err := a.openInput(in)
		if err != nil {
			return err
		}
		defer src.Close()
		h, _, err := readHeader(src)
		if err != nil {
			return err
		}
		ec := h.EncryptionContext
		if ec == nil {
			ec = map[string]string{}
		}
		return a.print(inspectOutput{
			KeyId: h.KeyID, KeyArn: a.keyARN(h.KeyID), KeyVersion: h.Version,
			KeyMaterialId: keyMaterialID(h.KeyID, h.Version), EncryptionContext: ec,
			HeaderSize: h.Size, SegmentSize: h.SegmentSize, FIPSApproved: h.FIPSApproved,
		})
	})
	return c
}

// maxHeaderRead covers the largest envelope header: the fixed part, an
// 8 KiB encryption context and a data key blob.
const maxHeaderRead = 32 << 10

// readHeader reads and parses an envelope's header from the start of r,
// reading at most maxHeaderRead bytes.
func readHeader(r io.Reader) (envelope.Header, []byte, error) {
	buf := make([]byte, maxHeaderRead)
	n, err := io.ReadFull(r, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return envelope.Header{}, nil, err
	}
	h, err := envelope.Inspect(buf[:n])
	if err != nil {
		return envelope.Header{}, nil, err
	}
	return h, buf[:h.Size], nil
}

// openInput opens --in, or standard input for "-", and returns its size
// (0 when unknown).
func (a *app) openInput(path string) (io.ReadCloser, int64, error) {
	if path == "-" {
		return io.NopCloser(a.stdin), 0, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if fi.IsDir() {
		f.Close()
		return nil, 0, fmt.Errorf("%s is a directory", path)
	}
	return f, fi.Size(), nil
}

// output is a file being written: a temporary file beside its path,
// renamed over it by commit, removed by abort; or standard output.
type output struct {
	io.Writer
	f    *os.File // nil for standard output
	path string
	done bool
}

func (a *app) createOutput(path string) (*output, error) {
	if path == "-" {
		return &output{Writer: a.stdout}, nil
	}
	if err := checkReplaceable(path); err != nil {
		return nil, fmt.Errorf("--out %w", err)
	}
	return createAtomic(path)
}

// createAtomic starts writing path through a temporary file in the same
// directory, created 0600. An existing path that is not a regular file (a
// symlink, a device, a named pipe, a directory) is refused and left as it
// is: renaming over it would replace a link with a plaintext file or a
// device with a copy.
func createAtomic(path string) (*output, error) {
	if err := checkReplaceable(path); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".kmsring-*")
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return nil, fmt.Errorf("write %s: %w", path, pe.Err)
	} else if err != nil {
		return nil, err
	}
	return &output{Writer: f, f: f, path: path}, nil
}

// commit makes the output durable and puts it in place.
func (o *output) commit() error {
	if o.f == nil {
		return nil
	}
	if err := o.f.Sync(); err != nil {
		return err
	}
	if err := o.f.Close(); err != nil {
		return err
	}
	// Checked again: the path may have changed while the output was
	// written.
	if err := checkReplaceable(o.path); err != nil {
		return err
	}
	if err := os.Rename(o.f.Name(), o.path); err != nil {
		return err
	}
	o.done = true
	if d, err := os.Open(filepath.Dir(o.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// checkReplaceable refuses an existing path that is not a regular file.
func checkReplaceable(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().IsRegular() {
		return nil
	}
	what := "not a regular file"
	switch m := fi.Mode(); {
	case m&fs.ModeSymlink != 0:
		what = "a symbolic link"
	case m.IsDir():
		what = "a directory"
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe"
	case m&fs.ModeDevice != 0:
		what = "a device"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	}
	return fmt.Errorf("%s is %s: refusing to replace it (give a regular file, a new path, or - for standard output)", path, what)
}

// abort removes the temporary file unless commit put it in place.
func (o *output) abort() {
	if o.f == nil || o.done {
		return
	}
	o.f.Close()
	os.Remove(o.f.Name())
}

// errInterrupted ends a rewrap stopped by Ctrl-C.
var errInterrupted = errors.New("interrupted: run the same command again to resume")
