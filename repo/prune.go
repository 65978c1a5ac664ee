package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Forget deletes snapshot manifests at every location. The data they
// referenced stays until Prune. It fails if a location cannot delete; the
// results say which did.
func (r *Repo) Forget(ctx context.Context, ids []Hash) ([]LocationResult, error) {
	if err := r.recordForget(ids); err != nil {
		return nil, err
	}
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
// Prune is conservative against a hostile or damaged location: it deletes
// nothing while any listed index object or manifest has no copy that opens
// (unless it is proven planted: its bytes match its name but were never
// sealed by this repository); a pack counts as kept only when it is listed
// at some location; the compacted index holds only entries of kept packs
// and supersedes, sealed inside it, every index object it replaces and
// every one replaced before, so an old index put back later is ignored.
//
// Crash safety: the new index is written before any old index or pack is
// deleted, and only unreferenced packs are deleted, so a crash at any
// point leaves every snapshot restorable.
func (r *Repo) Prune(ctx context.Context, opts PruneOptions) (*PruneResult, error) {
	ss, err := r.snapshotState(ctx)
	if err != nil {
		return nil, err
	}
	if !ss.allListed {
		return nil, fmt.Errorf("prune needs every location: a location's snapshots could not be listed")
	}
	if err := refuseUnopened("snapshot manifest", ss.unopened); err != nil {
		return nil, err
	}
	// A fresh index: the union at every location, now.
	st, err := r.loadIndexState(ctx)
	if err != nil {
		return nil, err
	}
	if !st.allListed() {
		return nil, fmt.Errorf("prune needs every location: a location's indexes or packs could not be listed")
	}
	if err := refuseUnopened("index object", st.unopened); err != nil {
		return nil, err
	}
	idx := st.idx
	keep := map[Hash]bool{}
	for _, s := range ss.snaps {
		for _, stream := range s.Manifest.StreamsAndDictionary() {
			for _, id := range stream.AllBlobs() { // a delta needs its chain
				cands := idx.Candidates(id)
				if len(cands) == 0 {
					return nil, fmt.Errorf("snapshot %s needs blob %s that no index lists: refusing to prune (run check)", s.ID.Short(), id)
				}
				found := false
				for _, c := range cands {
					if st.present[c.Pack] {
						keep[c.Pack] = true
						found = true
					}
				}
				if !found {
					return nil, fmt.Errorf("snapshot %s needs blob %s whose packs are at no location (a damaged snapshot, or a forgotten snapshot's manifest put back): refusing to prune; run check, and forget the snapshot if it should not exist", s.ID.Short(), id)
				}
			}
		}
	}

	byPack := idx.byPack()
	var kept []PackBlobs
	for h := range keep {
		kept = append(kept, PackBlobs{Pack: h, Blobs: byPack[h]})
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].Pack.String() < kept[j].Pack.String() })
	res := &PruneResult{Snapshots: len(ss.snaps), PacksKept: len(kept), DryRun: opts.DryRun}

	// The compacted index supersedes every index object opened now and
	// every one superseded before.
	supersede := map[Hash]bool{}
	for h := range st.superseded {
		supersede[h] = true
	}
	for h := range st.live {
		supersede[h] = true
	}
	var newIndex Hash
	var indexData []byte
	if h, ok := reusableIndex(st, byPack, keep); ok {
		// One current index already describes exactly the kept packs and
		// supersedes everything listed: rewriting it would only churn
		// objects (and pile up locked ones under Object Lock).
		newIndex = h
		delete(supersede, h)
	} else if len(kept) > 0 || len(supersede) > 0 {
		names := make([]Hash, 0, len(supersede))
		for h := range supersede {
			names = append(names, h)
		}
		sort.Slice(names, func(i, j int) bool { return names[i].String() < names[j].String() })
		indexData = r.meta.seal(r.adIndex, encodeIndex(names, kept))
		newIndex = sha256.Sum256(indexData)
	}
	now := r.now()
	for i, l := range r.locs {
		for h := range st.indexes[i] {
			if supersede[h] && h != newIndex {
				res.IndexesDeleted++
			}
		}
		for h, size := range st.packs[i] {
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

	// 1. the compacted index everywhere, 2. superseded indexes, 3. packs.
	// Planted objects (st.planted, ss.planted) are left alone: check
	// reports them, an operator removes them.
	if indexData != nil {
		put := r.forEachLocation(ctx, func(ctx context.Context, l Location) error {
			return l.Put(ctx, objectName(r.tenant, kindIndex, newIndex), indexData)
		})
		if countOK(put) != len(put) {
			return nil, fmt.Errorf("prune: writing the compacted index failed, nothing deleted: %s", joinErrors(put))
		}
	}
	for i, l := range r.locs {
		for h := range st.indexes[i] {
			if h == newIndex || !supersede[h] {
				continue
			}
			// A superseded index that Object Lock keeps is ignored by
			// every reader: its packs need not stay.
			if err := l.Delete(ctx, objectName(r.tenant, kindIndex, h)); err != nil && !r.retained(res, err) {
				return nil, fmt.Errorf("prune: %w", err)
			}
		}
	}
	for i, l := range r.locs {
		for h := range st.packs[i] {
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
	x := newIndexFrom(kept)
	x.superseded = supersede
	r.setIndex(x)
	r.log.Info("pruned", "packs_deleted", res.PacksDeleted, "bytes_freed", res.BytesFreed, "packs_kept", res.PacksKept)
	return res, nil
}

// refuseUnopened is prune's conservative rule: while an object it needs to
// see does not open anywhere, and is not proven planted, it deletes
// nothing.
func refuseUnopened(what string, unopened map[Hash]string) error {
	if len(unopened) == 0 {
		return nil
	}
	var names []string
	for h := range unopened {
		names = append(names, h.String())
	}
	sort.Strings(names)
	return fmt.Errorf("prune refused, nothing deleted: %d %s(s) open at no location (%s): run `kluis check` and repair or remove them: %w",
		len(unopened), what, strings.Join(names, ", "), ErrCorrupt)
}

// reusableIndex returns the one live index when it is version 2, describes
// exactly the kept packs, and nothing listed needs superseding.
func reusableIndex(st *indexState, byPack map[Hash][]BlobEntry, keep map[Hash]bool) (Hash, bool) {
	if len(st.live) != 1 || len(byPack) != len(keep) {
		return Hash{}, false
	}
	var h Hash
	for k, x := range st.live {
		if x.Version < indexVersion {
			return Hash{}, false
		}
		h = k
	}
	for _, names := range st.indexes {
		// A prune killed while it wrote its compacted index may have
		// written it at some locations only: reusing it would leave the
		// others with no index once the superseded ones are deleted.
		if _, here := names[h]; !here {
			return Hash{}, false
		}
		for n := range names {
			if n != h && !st.planted[n] && !st.superseded[n] {
				return Hash{}, false
			}
		}
	}
	return h, true
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
