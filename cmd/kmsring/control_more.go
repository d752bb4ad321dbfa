package main

import (
	"context"
	"time"

	"github.com/kmsring/kmsring/store"
)

// The control socket's optional store capabilities: paged listing, the due
// index and audit pruning, so that list-keys, the scheduler's work and
// audit archive behave the same through a running serve as on the file.

var (
	_ store.Pager       = (*remoteStore)(nil)
	_ store.DueIndex    = (*remoteStore)(nil)
	_ store.AuditPruner = (*remoteStore)(nil)
)

// Arguments and replies of these calls (exported, as net/rpc requires).
type (
	CtlPageArgs struct {
		After string
		Limit int
	}
	CtlAliases struct {
		Aliases []store.AliasEntry
		Err     *RemoteErr
	}
	CtlDueArgs struct {
		Through time.Time
		After   store.DueEntry
		Limit   int
	}
	CtlDue struct {
		Entries []store.DueEntry
		Err     *RemoteErr
	}
	CtlErr struct{ Err *RemoteErr }
)

// controlStore is what serve's embedded store gives the socket.
type controlStore interface {
	store.Store
	store.AuditLog
	store.VersionRanger
	store.Pager
	store.DueIndex
	store.AuditPruner
}

func (s *ControlService) ListPage(in CtlPageArgs, out *CtlIDs) error {
	ctx, cancel := s.ctx()
	defer cancel()
	ids, err := s.st.ListPage(ctx, in.After, in.Limit)
	*out = CtlIDs{ids, toRemote(err)}
	return nil
}

func (s *ControlService) ListAliasPage(in CtlPageArgs, out *CtlAliases) error {
	ctx, cancel := s.ctx()
	defer cancel()
	as, err := s.st.ListAliasPage(ctx, in.After, in.Limit)
	*out = CtlAliases{as, toRemote(err)}
	return nil
}

func (s *ControlService) ListDue(in CtlDueArgs, out *CtlDue) error {
	ctx, cancel := s.ctx()
	defer cancel()
	es, err := s.st.ListDue(ctx, in.Through, in.After, in.Limit)
	*out = CtlDue{es, toRemote(err)}
	return nil
}

func (s *ControlService) PruneAudit(keep uint64, out *CtlErr) error {
	ctx, cancel := s.ctx()
	defer cancel()
	*out = CtlErr{toRemote(s.st.PruneAudit(ctx, keep))}
	return nil
}

func (r *remoteStore) ListPage(ctx context.Context, after string, limit int) ([]string, error) {
	var out CtlIDs
	if err := r.call(ctx, "ListPage", CtlPageArgs{after, limit}, &out); err != nil {
		return nil, err
	}
	return out.IDs, out.Err.err()
}

func (r *remoteStore) ListAliasPage(ctx context.Context, after string, limit int) ([]store.AliasEntry, error) {
	var out CtlAliases
	if err := r.call(ctx, "ListAliasPage", CtlPageArgs{after, limit}, &out); err != nil {
		return nil, err
	}
	return out.Aliases, out.Err.err()
}

func (r *remoteStore) ListDue(ctx context.Context, through time.Time, after store.DueEntry, limit int) ([]store.DueEntry, error) {
	var out CtlDue
	if err := r.call(ctx, "ListDue", CtlDueArgs{through, after, limit}, &out); err != nil {
		return nil, err
	}
	return out.Entries, out.Err.err()
}

func (r *remoteStore) PruneAudit(ctx context.Context, keep uint64) error {
	var out CtlErr
	if err := r.call(ctx, "PruneAudit", keep, &out); err != nil {
		return err
	}
	return out.Err.err()
}
