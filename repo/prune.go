package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Forget deletes snapshot manifests at every location. The data they
// referenced stays until Prune. It fails if a location cannot delete; the
// results say which did.
func (r *Repo) Forget(ctx context.Context, ids []Hash) ([]LocationResult, error) {
	res := r.forEachLocation(ctx, func(ctx context.Context, l Location) error {
		for _, h := range ids {
			if err := l.Delete(ctx, objectName(r.tenant, kindSnapshot, h)); err != nil {
				return err
			}
		}
		return nil
	})
	if countOK(res) != len(res) {
		return res, fmt.Errorf("forget incomplete: %s", joinErrors(res))
	}
	return res, nil
}

// PruneOptions tune Prune.
type PruneOptions struct {
	// Grace protects packs younger than this that no index names yet (a
	// backup from a process outside this appliance's lock could be writing
	// them). The tenant lock already excludes this appliance's backups.
	Grace time.Duration
	// DryRun reports without deleting.
	DryRun bool
}

// PruneResult reports what prune removed.
type PruneResult struct {
	Snapshots      int   `json:"snapshots"`
	PacksKept      int   `json:"packs_kept"`
	PacksDeleted   int   `json:"packs_deleted"`
	BytesFreed     int64 `json:"bytes_freed"`
	IndexesDeleted int   `json:"indexes_deleted"`
	// TempFilesRemoved counts leftovers of interrupted writes.
	TempFilesRemoved int `json:"temp_files_removed,omitempty"`
	// Retained counts objects kept because Object Lock retention has not
	// ended (repo.ErrRetained); a later prune removes them.
	Retained int  `json:"retained,omitempty"`
	DryRun   bool `json:"dry_run,omitempty"`
}

// Prune deletes every pack that no snapshot at any location needs, after
// writing one compacted index of the packs kept. The caller must hold the
// tenant lock exclusively. Every location must be reachable: prune works
// from the complete picture or not at all.
//
// Crash safety: the new index is written before any old index or pack is
// deleted, and only unreferenced packs are deleted, so a crash at any
// point leaves every snapshot restorable.
func (r *Repo) Prune(ctx context.Context, opts PruneOptions) (*PruneResult, error) {
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	// A fresh index: the union at every location, now.
	idx, err := r.loadIndex(ctx)
	if err != nil {
		return nil, err
	}
	keep := map[Hash]bool{}
	for _, s := range snaps {
		for _, st := range s.Manifest.Streams {
			for _, id := range st.Blobs {
				bl, ok := idx.Lookup(id)
				if !ok {
					return nil, fmt.Errorf("snapshot %s needs blob %s that no index lists: refusing to prune (run check)", s.ID.Short(), id)
				}
				keep[bl.Pack] = true
			}
		}
	}
	type locState struct {
		packs, indexes map[Hash]int64
	}
	states := make([]locState, len(r.locs))
	for i, l := range r.locs {
		p, err := r.listNames(ctx, l, kindData)
		if err != nil {
			return nil, fmt.Errorf("prune needs every location: %w", err)
		}
		x, err := r.listNames(ctx, l, kindIndex)
		if err != nil {
			return nil, fmt.Errorf("prune needs every location: %w", err)
		}
		states[i] = locState{p, x}
	}

	byPack := idx.byPack()
	var kept []PackBlobs
	for h := range keep {
		entries := byPack[h]
		sort.Slice(entries, func(i, j int) bool { return entries[i].Offset < entries[j].Offset })
		kept = append(kept, PackBlobs{Pack: h, Blobs: entries})
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].Pack.String() < kept[j].Pack.String() })
	res := &PruneResult{Snapshots: len(snaps), PacksKept: len(kept), DryRun: opts.DryRun}

	var newIndex Hash
	var indexData []byte
	existing := map[Hash]bool{}
	for _, st := range states {
		for h := range st.indexes {
			existing[h] = true
		}
	}
	switch {
	case len(existing) == 1 && len(byPack) == len(keep):
		// One index already describes exactly the kept packs: rewriting it
		// would only churn objects (and pile up locked ones under Object
		// Lock).
		for h := range existing {
			newIndex = h
		}
	case len(kept) > 0:
		indexData = r.meta.seal(adIndex, encodeIndex(kept))
		newIndex = sha256.Sum256(indexData)
	}
	now := r.now()
	for i, l := range r.locs {
		st := states[i]
		for h := range st.indexes {
			if h != newIndex {
				res.IndexesDeleted++
			}
		}
		for h, size := range st.packs {
			if !keep[h] {
				if _, indexed := byPack[h]; !indexed && opts.Grace > 0 {
					if oi, err := l.Stat(ctx, objectName(r.tenant, kindData, h)); err == nil && now.Sub(oi.ModTime) < opts.Grace {
						continue
					}
				}
				res.PacksDeleted++
				res.BytesFreed += size
			}
		}
	}
	if opts.DryRun {
		return res, nil
	}

	// 1. the compacted index everywhere, 2. old indexes, 3. packs.
	if indexData != nil {
		put := r.forEachLocation(ctx, func(ctx context.Context, l Location) error {
			return l.Put(ctx, objectName(r.tenant, kindIndex, newIndex), indexData)
		})
		if countOK(put) != len(put) {
			return nil, fmt.Errorf("prune: writing the compacted index failed, nothing deleted: %s", joinErrors(put))
		}
	}
	for i, l := range r.locs {
		for h := range states[i].indexes {
			if h == newIndex {
				continue
			}
			if err := l.Delete(ctx, objectName(r.tenant, kindIndex, h)); err != nil {
				if !r.retained(res, err) {
					return nil, fmt.Errorf("prune: %w", err)
				}
				// A retained index still feeds deduplication: the packs
				// it names must stay as long as it does.
				packs, err := r.readIndexObject(ctx, h)
				if err != nil {
					return nil, fmt.Errorf("prune: retained index %s: %w", h.Short(), err)
				}
				for _, p := range packs {
					keep[p.Pack] = true
				}
			}
		}
	}
	for i, l := range r.locs {
		for h := range states[i].packs {
			if keep[h] {
				continue
			}
			if _, indexed := byPack[h]; !indexed && opts.Grace > 0 {
				if oi, err := l.Stat(ctx, objectName(r.tenant, kindData, h)); err == nil && now.Sub(oi.ModTime) < opts.Grace {
					continue
				}
			}
			if err := l.Delete(ctx, objectName(r.tenant, kindData, h)); err != nil {
				if !r.retained(res, err) {
					return nil, fmt.Errorf("prune: %w", err)
				}
			}
		}
	}
	// Temporary files of writes interrupted by a crash (local directories).
	for _, l := range r.locs {
		if rs, ok := As[staleRemover](l); ok {
			n, err := rs.RemoveStale(ctx, r.tenant+"/", opts.Grace)
			if err != nil {
				return nil, fmt.Errorf("prune: %w", err)
			}
			res.TempFilesRemoved += n
		}
	}
	// The in-memory index now describes the kept packs only.
	r.setIndex(newIndexFrom(kept))
	r.log.Info("pruned", "packs_deleted", res.PacksDeleted, "bytes_freed", res.BytesFreed, "packs_kept", res.PacksKept)
	return res, nil
}

// retained reports whether a Delete failed only because Object Lock
// retention has not ended: the object stays, noted, and prune goes on (a
// later prune removes it). An unreferenced object that cannot be deleted
// yet costs space, never correctness.
func (r *Repo) retained(res *PruneResult, err error) bool {
	if !errors.Is(err, ErrRetained) {
		return false
	}
	res.Retained++
	r.log.Info("prune: object kept until its retention ends", "err", err)
	return true
}

// staleRemover is a Location that can leave temporary files behind when a
// write is interrupted (repo/local).
type staleRemover interface {
	RemoveStale(ctx context.Context, prefix string, olderThan time.Duration) (int, error)
}

func newIndexFrom(packs []PackBlobs) *Index {
	x := newIndex()
	x.addAll(packs)
	return x
}
