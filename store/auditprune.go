package store

import "context"

// AuditPruner is implemented by stores whose audit log can shed its oldest
// entries once they are kept elsewhere (package audit's Archive moves them
// to files, durably, before it calls PruneAudit). All the stores in this
// module implement it.
//
// The entry numbered keep stays in the store as the anchor the chain
// continues from: LastAudit still finds it when every later entry is gone,
// so appends go on numbering from it, and a verifier that holds the pruned
// entries elsewhere checks that the two agree on it.
type AuditPruner interface {
	// PruneAudit deletes the audit entries numbered below keep and keeps
	// entry keep. Pruning to keep at or below the oldest stored entry
	// changes nothing and is not an error (an interrupted archive repeats
	// it); otherwise it fails with ErrNotFound, deleting nothing, if there
	// is no entry keep. It is atomic.
	PruneAudit(ctx context.Context, keep uint64) error
}
