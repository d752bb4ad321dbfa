package envelope

import (
	"context"
	"iter"
	"maps"
	"slices"

	"github.com/kmsring/kmsring/keyring"
)

// RewrapReport is what RewrapAll did and found.
type RewrapReport struct {
	// Rewrapped envelopes were moved to the current version; Current ones
	// already were; Foreign ones belong to another key and were left alone.
	Rewrapped, Current, Foreign int
	// Failed holds the envelopes that could not be rewrapped or saved, by
	// name. They still reference their old version.
	Failed map[string]error
	// References counts, for each version of k, the envelopes seen that
	// reference it after the run.
	References map[uint32]int
}

// Referenced reports whether any envelope seen still references version n.
// When RewrapAll has seen every envelope of a key and a version is not
// referenced, destroying it loses nothing that was sealed in envelopes.
func (r *RewrapReport) Referenced(n uint32) bool { return r.References[n] > 0 }

// ReferencedVersions returns the versions still referenced, ascending.
func (r *RewrapReport) ReferencedVersions() []uint32 {
	return slices.Sorted(maps.Keys(r.References))
}

// RewrapAll moves every envelope of k that envelopes yields (name, sealed
// bytes) to k's current version with Rewrap, and calls save with the new
// bytes for each one it rewrapped; save should replace the stored envelope
// atomically (write a new file, then rename it over the old). Envelopes
// already under the current version are not rewritten, so a run that was
// interrupted resumes where it stopped when called again on the same set.
// When k writes approved formats (in FIPS 140-3 mode, or with
// keyring.WithApprovedAlgorithms), an envelope of a default suite is
// moved to the approved suite instead: opened (with AllowNonApproved) and
// sealed again under the same encryption context, so its payload bytes
// change too; an interrupted run resumes just as well.
// progress, if not nil, is called after every envelope. RewrapAll stops
// early only when ctx ends, returning ctx.Err() with the report so far; a
// failure on one envelope is recorded in the report and the run goes on.
func RewrapAll(ctx context.Context, k *keyring.Keyring, envelopes iter.Seq2[string, []byte], save func(name string, sealed []byte) error, progress func(RewrapReport)) (RewrapReport, error) {
	r := RewrapReport{Failed: map[string]error{}, References: map[uint32]int{}}
	for name, sealed := range envelopes {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		r.rewrapOne(ctx, k, name, sealed, save)
		if progress != nil {
			progress(r)
		}
	}
	return r, ctx.Err()
}

func (r *RewrapReport) rewrapOne(ctx context.Context, k *keyring.Keyring, name string, sealed []byte, save func(string, []byte) error) {
	h, err := Inspect(sealed)
	if err != nil {
		r.Failed[name] = err
		return
	}
	if h.KeyID != k.ID() {
		r.Foreign++
		return
	}
	current := k.CurrentVersion()
	reseal := k.Approved() && !h.FIPSApproved
	if h.Version == current && !reseal {
		r.Current++
		r.References[current]++
		return
	}
	var out []byte
	if reseal {
		out, err = resealApproved(ctx, k, sealed, h.EncryptionContext)
	} else {
		out, err = Rewrap(ctx, k, sealed)
	}
	if err == nil {
		err = save(name, out)
	}
	if err != nil {
		r.Failed[name] = err
		r.References[h.Version]++
		return
	}
	nh, _ := Inspect(out)
	r.Rewrapped++
	r.References[nh.Version]++
}

// resealApproved opens sealed, an envelope of a default suite, for a
// migration and seals its plaintext again in the approved suite.
func resealApproved(ctx context.Context, k *keyring.Keyring, sealed []byte, ec map[string]string) ([]byte, error) {
	pt, err := Open(ctx, k, sealed, AllowNonApproved(), WithEncryptionContext(ec))
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return Seal(ctx, k, pt, WithEncryptionContext(ec))
}
