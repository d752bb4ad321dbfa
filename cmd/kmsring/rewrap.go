package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"os"
	"slices"

	"github.com/kmsring/kmsring/envelope"
	"github.com/kmsring/kmsring/keyring"
	"github.com/spf13/cobra"
)

// Per-file outcomes of rewrap.
const (
	rewrapDone    = "REWRAPPED"
	rewrapCurrent = "CURRENT"
	rewrapFailed  = "FAILED"
)

type (
	rewrapFile struct {
		Path           string
		KeyId          string `json:",omitempty"`
		FromKeyVersion uint32 `json:",omitempty"`
		KeyVersion     uint32 `json:",omitempty"`
		Status         string
		Error          string `json:",omitempty"`
	}
	rewrapKey struct {
		KeyId                 string
		CurrentKeyVersion     uint32
		ReferencedKeyVersions []uint32
	}
	rewrapOutput struct {
		Files                             []rewrapFile
		Keys                              []rewrapKey
		Rewrapped, AlreadyCurrent, Failed int
	}
)

func (a *app) rewrapCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rewrap PATH...",
		Short: "Move envelopes to their key's current version",
		Long: `Move sealed files to their key's current version: each envelope gets a new data
key blob under the current version, and its payload bytes are copied
unchanged (nothing is decrypted). Each file is replaced atomically (a
temporary file renamed over it). Files already under the current version are
left alone, so a run that was interrupted resumes when run again.

The output lists, per key, the versions the files still reference after the
run: a version no file references can be disabled or scheduled for
destruction without losing these files.`,
		Example: `  kmsring rewrap archive/*.sealed
  kmsring --output table rewrap orders.csv.sealed`,
		GroupID: "files",
		Args:    cobra.MinimumNArgs(1),
		RunE:    a.op(a.rewrap),
	}
}

func (a *app) rewrap(ctx context.Context, _ *cobra.Command, paths []string) error {
	if err := a.open(ctx, false); err != nil {
		return err
	}
	files := make([]rewrapFile, len(paths))
	index := map[string]int{}
	byKey := map[string][]string{}
	for i, p := range paths {
		files[i] = rewrapFile{Path: p}
		index[p] = i
		h, err := peekHeader(p)
		if err != nil {
			files[i].Status, files[i].Error = rewrapFailed, oneLine(err.Error())
			continue
		}
		files[i].KeyId, files[i].FromKeyVersion = h.KeyID, h.Version
		byKey[h.KeyID] = append(byKey[h.KeyID], p)
	}
	bar := a.newProgress("rewrapping", int64(len(paths)), false)
	bar.add(int64(len(paths) - countAll(byKey)))
	out := rewrapOutput{Files: files, Keys: []rewrapKey{}}
	var runErr error
	for _, id := range slices.Sorted(maps.Keys(byKey)) {
		k, err := a.loadKey(ctx, id)
		if err != nil {
			for _, p := range byKey[id] {
				files[index[p]].Status, files[index[p]].Error = rewrapFailed, oneLine(err.Error())
			}
			continue
		}
		current := k.CurrentVersion()
		if k.Approved() {
			// FIPS 140-3 mode: envelopes of a default suite are
			// resealed in the approved suite (payload included), not
			// rewrapped.
			byKey[id] = a.resealNonApproved(ctx, k, byKey[id], func(p string, err error) {
				f := &files[index[p]]
				if err != nil {
					f.Status, f.Error = rewrapFailed, oneLine(err.Error())
				} else {
					f.Status, f.KeyVersion = rewrapDone, current
				}
				bar.add(1)
			})
		}
		save := func(name string, header []byte) error {
			if err := spliceHeader(name, header); err != nil {
				return err
			}
			files[index[name]].Status = rewrapDone
			return nil
		}
		done := 0
		r, err := envelope.RewrapAll(ctx, k, headers(byKey[id]), save, func(r envelope.RewrapReport) {
			n := r.Rewrapped + r.Current + r.Foreign + len(r.Failed)
			bar.add(int64(n - done))
			done = n
		})
		for _, p := range byKey[id][:done] {
			f := &files[index[p]]
			switch ferr, failed := r.Failed[p]; {
			case failed:
				f.Status, f.Error = rewrapFailed, oneLine(ferr.Error())
			case f.Status == rewrapDone:
				f.KeyVersion = current
			default:
				f.Status, f.KeyVersion = rewrapCurrent, f.FromKeyVersion
			}
		}
		out.Keys = append(out.Keys, rewrapKey{KeyId: id, CurrentKeyVersion: current, ReferencedKeyVersions: r.ReferencedVersions()})
		if err != nil {
			runErr = err
			break
		}
	}
	bar.finish()
	for _, f := range files {
		switch f.Status {
		case rewrapDone:
			out.Rewrapped++
		case rewrapCurrent:
			out.AlreadyCurrent++
		case rewrapFailed:
			out.Failed++
		}
	}
	if err := a.print(out); err != nil {
		return err
	}
	switch {
	case errors.Is(runErr, context.Canceled):
		return errInterrupted
	case runErr != nil:
		return runErr
	case out.Failed > 0:
		first := slices.IndexFunc(files, func(f rewrapFile) bool { return f.Status == rewrapFailed })
		return fmt.Errorf("%d of %d files failed; first: %s: %s", out.Failed, len(files), files[first].Path, files[first].Error)
	}
	return nil
}

func countAll(m map[string][]string) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

// peekHeader reads the envelope header at the start of the file at path.
func peekHeader(path string) (envelope.Header, error) {
	h, _, err := readHeaderFile(path)
	return h, err
}

func readHeaderFile(path string) (envelope.Header, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return envelope.Header{}, nil, err
	}
	defer f.Close()
	return readHeader(f)
}

// headers yields each file's name and envelope header: all RewrapAll and
// Rewrap read, so a file of any size costs one header in memory. A file
// whose header cannot be read yields nil, which RewrapAll reports as
// failed.
func headers(paths []string) iter.Seq2[string, []byte] {
	return func(yield func(string, []byte) bool) {
		for _, p := range paths {
			_, hdr, _ := readHeaderFile(p)
			if !yield(p, hdr) {
				return
			}
		}
	}
}

// spliceHeader replaces the envelope header of the file at path with
// header, keeping the payload bytes after the old header, atomically: a
// crash leaves the old file or the new one. The file keeps its mode.
func spliceHeader(path string, header []byte) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	h, _, err := readHeader(src)
	if err != nil {
		return err
	}
	if _, err := src.Seek(int64(h.Size), io.SeekStart); err != nil {
		return err
	}
	dst, err := createAtomic(path)
	if err != nil {
		return err
	}
	defer dst.abort()
	if _, err := dst.Write(header); err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		return err
	}
	if err := dst.f.Chmod(fi.Mode().Perm()); err != nil {
		return err
	}
	return dst.commit()
}

// resealNonApproved reseals, in the approved suite, each file of paths
// whose envelope is of a default suite, calling done for each, and returns
// the other paths.
func (a *app) resealNonApproved(ctx context.Context, k *keyring.Keyring, paths []string, done func(string, error)) []string {
	var rest []string
	for _, p := range paths {
		h, err := peekHeader(p)
		if err != nil || h.FIPSApproved {
			rest = append(rest, p)
			continue
		}
		done(p, resealFile(ctx, k, p, h.EncryptionContext))
	}
	return rest
}

// resealFile opens the envelope in the file at path (a default suite,
// read with envelope.AllowNonApproved for this migration) and replaces it,
// atomically and keeping its mode, with an envelope of the same plaintext
// and encryption context in the approved suite, streaming.
func resealFile(ctx context.Context, k *keyring.Keyring, path string, ec map[string]string) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	r, err := envelope.NewReader(ctx, k, src, envelope.AllowNonApproved(), envelope.WithEncryptionContext(ec))
	if err != nil {
		return err
	}
	dst, err := createAtomic(path)
	if err != nil {
		return err
	}
	defer dst.abort()
	w, err := envelope.NewWriter(ctx, k, dst, envelope.WithEncryptionContext(ec))
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := dst.f.Chmod(fi.Mode().Perm()); err != nil {
		return err
	}
	return dst.commit()
}
