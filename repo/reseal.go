package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/kluis-nl/kluis/chunk"
)

// Re-sealing (docs/format.md, "Re-sealed packs"). A backup seals at
// zstd's fastest level so the night stays short; a first night or a night
// of fresh bases stores most of a tenant at once, and zstd's best level
// stores those bytes 8-12 % smaller. Once the snapshot is committed,
// Backup.Reseal reads the backup's own packs back, seals every blob again
// at the best level (same blob IDs, so the manifest does not change), and
// writes the new packs, then one index object that lists them and
// supersedes the backup's own. The old packs are then unindexed: under
// the tenant's exclusive lock DropResealed deletes them (or prune does,
// as it deletes any unindexed pack).
//
// Crash safety: the new packs reach every location before the index that
// names them, and the old packs are deleted only when no live index names
// them and every one of their blobs is in a pack the live index names at
// every location. A crash or a failing location at any step leaves the
// snapshot readable from either location alone: from the old packs with
// the old index, or from the new packs with the new one.

// ResealResult is what Backup.Reseal did.
type ResealResult struct {
	// Skipped says why nothing was re-sealed (empty: it ran), and
	// SkipCause the same for scripts: "off", "small" (the backup stored
	// less than the threshold), "degraded", "object_lock", "no_gain".
	Skipped   string `json:"skipped,omitempty"`
	SkipCause string `json:"skip_cause,omitempty"`
	// Packs is how many packs were re-sealed; BytesBefore and BytesAfter
	// their sizes (per location) before and after.
	Packs       int     `json:"packs"`
	BytesBefore int64   `json:"bytes_before"`
	BytesAfter  int64   `json:"bytes_after"`
	Seconds     float64 `json:"seconds"`
	// Index is the index object that supersedes the backup's.
	Index string `json:"index,omitempty"`
	// Dropped is how many old packs DropResealed deleted (per location
	// count once), and DropError why it did not (prune will).
	Dropped     int     `json:"old_packs_deleted"`
	Retained    int     `json:"old_objects_retained,omitempty"` // deletes Object Lock refused
	DropError   string  `json:"old_packs_error,omitempty"`
	DropSeconds float64 `json:"drop_seconds,omitempty"`
	// Error is why the re-seal failed (the caller's to set: the snapshot
	// is committed either way).
	Error string `json:"error,omitempty"`
	// Old are the superseded packs and their blobs, and oldIndex the
	// superseded index object, for DropResealed.
	Old      []PackBlobs `json:"-"`
	oldIndex Hash
	newIndex Hash
	// pairs maps each old pack to its re-sealed one, for DropResealed.
	pairs map[Hash]Hash
}

// objectLocker is a Location that may write under Object Lock (repo/s3).
type objectLocker interface {
	ObjectLocked() bool
}

// Notable reports whether rs is worth a line in the job history and the
// command's output: it ran, failed, or was skipped for another reason
// than its policy (off, or a small backup).
func (rs *ResealResult) Notable() bool {
	return rs != nil && (rs.Error != "" || (rs.SkipCause != "off" && rs.SkipCause != "small"))
}

// HasOld reports whether rs superseded packs that DropResealed is to
// delete.
func (rs *ResealResult) HasOld() bool { return rs != nil && len(rs.Old) > 0 }

// Reseal seals the packs this committed backup wrote again at zstd's best
// level when the backup stored at least BackupOptions.ResealAbove bytes.
// It needs every location: a degraded backup, or one at a location with
// Object Lock (whose old packs could not be deleted until their retention
// ends, so re-sealing would store more, not less), is not re-sealed, and
// Skipped says why. An error leaves the snapshot as committed and
// readable; it is not the backup's failure. The result is also in the
// Result Commit returned (Result.Reseal).
func (b *Backup) Reseal(ctx context.Context) (*ResealResult, error) {
	res := &ResealResult{}
	if b.result != nil {
		b.result.Reseal = res
	}
	switch {
	case b.result == nil:
		return res, errors.New("reseal: the backup is not committed")
	case b.opts.ResealAbove <= 0:
		res.Skipped, res.SkipCause = "off", "off"
	case b.index == (Hash{}) || b.Stats().Stored < b.opts.ResealAbove:
		res.Skipped, res.SkipCause = fmt.Sprintf("stored %d bytes, under the %d that pay re-sealing", b.Stats().Stored, b.opts.ResealAbove), "small"
	case len(b.result.Committed) < len(b.r.locs):
		res.Skipped, res.SkipCause = "the snapshot is not at every location", "degraded"
	}
	for _, l := range b.r.locs {
		if ol, ok := As[objectLocker](l); ok && ol.ObjectLocked() && res.Skipped == "" {
			res.Skipped, res.SkipCause = "location "+l.Name()+" has Object Lock: the old packs would stay until their retention ends", "object_lock"
		}
	}
	if res.Skipped != "" {
		return res, nil
	}
	start := time.Now()

	// The dictionary the snapshot names compresses every blob again (a
	// first night that trained it at Commit gains it too); the
	// dictionary's own pack stays as it is.
	var dict *chunk.Dict
	var dictBlob chunk.ID
	if ref := b.m.Dictionary; ref != nil {
		if b.r.sealer.Dict(ref.ZstdID) == nil {
			if err := b.r.loadDictRef(ctx, *ref); err != nil {
				return res, fmt.Errorf("reseal: %w", err)
			}
		}
		dict, dictBlob = b.r.sealer.Dict(ref.ZstdID), ref.Blob
	}
	packs := append([]PackBlobs(nil), b.newPacks...)
	be := chunk.NewBestEncoders() // dropped after: its tables are large
	type outcome struct {
		old, new PackBlobs
		before   int64
		after    int64
		err      error
	}
	out := make([]outcome, len(packs))
	work := make(chan int)
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				o := &out[i]
				o.old = packs[i]
				o.new, o.before, o.after, o.err = b.resealPack(ctx, packs[i], dict, dictBlob, be)
			}
		}()
	}
	for i := range packs {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("reseal: %w (nothing superseded; the new packs are unindexed and prune removes them)", err)
	}

	for _, o := range out {
		if o.err != nil {
			return res, fmt.Errorf("reseal: pack %s: %w (nothing superseded; the new packs written are unindexed and prune removes them)", o.old.Pack.Short(), o.err)
		}
	}
	var list, old []PackBlobs
	pairs := map[Hash]Hash{}
	for _, o := range out {
		if o.new.Pack == o.old.Pack {
			list = append(list, o.old)
			continue
		}
		list = append(list, o.new)
		old = append(old, o.old)
		pairs[o.old.Pack] = o.new.Pack
		res.Packs++
		res.BytesBefore += o.before
		res.BytesAfter += o.after
	}
	if res.Packs == 0 {
		res.Skipped, res.SkipCause = "no pack got smaller", "no_gain"
		return res, nil
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Pack.String() < list[j].Pack.String() })
	indexData := b.r.meta.seal(b.r.adIndex, encodeIndex([]Hash{b.index}, list))
	ih := Hash(sha256.Sum256(indexData))
	put := b.r.forEachLocation(ctx, func(ctx context.Context, l Location) error {
		return l.Put(ctx, objectName(b.r.tenant, kindIndex, ih), indexData)
	})
	// The in-memory index is read afresh when next needed.
	b.r.setIndex(nil)
	if countOK(put) != len(put) {
		return res, fmt.Errorf("reseal: the new index reached %d of %d locations (%s); the old packs stay, and the snapshot reads from either",
			countOK(put), len(put), joinErrors(put))
	}
	res.Index = ih.String()
	res.Old, res.oldIndex, res.newIndex, res.pairs = old, b.index, ih, pairs
	res.Seconds = time.Since(start).Seconds()
	b.r.log.Info("re-sealed the backup's packs at zstd's best level", "packs", res.Packs,
		"bytes_before", res.BytesBefore, "bytes_after", res.BytesAfter, "seconds", res.Seconds)
	return res, nil
}

// resealPack reads one of the backup's packs from a location whose copy
// matches its name, opens every blob, seals it again at the best level
// and writes the new pack at every location. A pack holding the
// dictionary, or one that would not shrink, is returned unchanged.
func (b *Backup) resealPack(ctx context.Context, pb PackBlobs, dict *chunk.Dict, dictBlob chunk.ID, be *chunk.BestEncoders) (PackBlobs, int64, int64, error) {
	for _, e := range pb.Blobs {
		if e.ID == dictBlob {
			return pb, 0, 0, nil
		}
	}
	data, err := b.r.fetchPack(ctx, pb.Pack)
	if err != nil {
		return pb, 0, 0, err
	}
	// The new pack is built in place, its blobs in a new random order
	// (as packer.finish does), so only the old and the new pack are held.
	newData := make([]byte, 0, len(data))
	entries := make([]BlobEntry, 0, len(pb.Blobs))
	var plain, check []byte
	for _, i := range rand.Perm(len(pb.Blobs)) {
		e := pb.Blobs[i]
		end := uint64(e.Offset) + uint64(e.Length)
		if end > uint64(len(data)) {
			return pb, 0, 0, fmt.Errorf("blob %s lies outside the pack: %w", e.ID, ErrCorrupt)
		}
		if plain, err = b.r.open(ctx, plain[:0], e.ID, data[e.Offset:end]); err != nil {
			return pb, 0, 0, err
		}
		off := len(newData)
		if newData, err = b.r.sealer.SealBest(newData, e.ID, plain, dict, be); err != nil {
			return pb, 0, 0, err
		}
		// The old copies are deleted once the new ones are in place: each
		// new blob must open to the same plaintext (its ID) first.
		if check, err = b.r.sealer.Open(check[:0], e.ID, newData[off:]); err != nil {
			return pb, 0, 0, fmt.Errorf("blob %s does not open once re-sealed: %w", e.ID, err)
		}
		entries = append(entries, BlobEntry{ID: e.ID, Offset: uint32(off), Length: uint32(len(newData) - off), RawLength: uint32(len(plain))})
	}
	newData = appendPackHeader(b.r.meta, newData, entries)
	if len(newData) >= len(data) {
		return pb, 0, 0, nil
	}
	h := Hash(sha256.Sum256(newData))
	name := objectName(b.r.tenant, kindData, h)
	put := b.r.forEachLocation(ctx, func(ctx context.Context, l Location) error {
		return l.Put(ctx, name, newData)
	})
	if countOK(put) != len(put) {
		return pb, 0, 0, fmt.Errorf("writing its re-sealed pack %s: %s", h.Short(), joinErrors(put))
	}
	return PackBlobs{Pack: h, Blobs: entries}, int64(len(data)), int64(len(newData)), nil
}

// DropResealed deletes the old packs a Reseal superseded, and the index
// object that named them, at every location, and returns how many packs
// it deleted everywhere it held them (a delete Object Lock refuses leaves
// the pack and counts in rs.Retained, not here). The caller must hold the
// tenant's lock exclusively (no backup or check is then reading the old
// index).
//
// It works from a fresh index of every location and deletes nothing
// unless every location lists everything and no index object fails to
// open, the old index is superseded, and at **every** location the new
// index and each re-sealed pack read back whole and match their names
// (listing is not enough: a damaged copy there would leave that location
// alone with nothing to restore from), the live index names each
// re-sealed pack with every blob of the old pack it replaces, and names
// no old pack. Otherwise it says why and prune decides later, as it does
// for any unindexed pack.
func (r *Repo) DropResealed(ctx context.Context, rs *ResealResult) (int, error) {
	if rs == nil || len(rs.Old) == 0 {
		return 0, nil
	}
	st, err := r.loadIndexState(ctx)
	if err != nil {
		return 0, err
	}
	if !st.allListed() {
		return 0, fmt.Errorf("a location's indexes or packs could not be listed: nothing deleted")
	}
	if err := refuseUnopened("index object", st.unopened); err != nil {
		return 0, err
	}
	if !st.superseded[rs.oldIndex] {
		return 0, fmt.Errorf("no index in force supersedes the backup's index %s: nothing deleted", rs.oldIndex.Short())
	}
	byPack := st.idx.byPack()
	for _, pb := range rs.Old {
		if _, indexed := byPack[pb.Pack]; indexed {
			return 0, fmt.Errorf("old pack %s is still named by an index in force: nothing deleted", pb.Pack.Short())
		}
		np := rs.pairs[pb.Pack]
		have := map[chunk.ID]bool{}
		for _, e := range byPack[np] {
			have[e.ID] = true
		}
		for _, e := range pb.Blobs {
			if !have[e.ID] {
				return 0, fmt.Errorf("blob %s of old pack %s is not in its re-sealed pack %s as the index in force has it: nothing deleted", e.ID, pb.Pack.Short(), np.Short())
			}
		}
	}
	// Read back, at every location, what that location will restore from.
	for i, l := range r.locs {
		check := func(kind string, h Hash, max int64) error {
			if _, ok := st.indexes[i][h]; kind == kindIndex && !ok {
				return fmt.Errorf("the re-seal's index %s is not at %s: nothing deleted", h.Short(), l.Name())
			}
			if err := hashesTo(ctx, l, objectName(r.tenant, kind, h), max, h); err != nil {
				return fmt.Errorf("the re-seal's %s %s at %s does not read back: %w: nothing deleted", kind, h.Short(), l.Name(), err)
			}
			return nil
		}
		if err := check(kindIndex, rs.newIndex, maxIndexObject); err != nil {
			return 0, err
		}
		for _, pb := range rs.Old {
			if err := check(kindData, rs.pairs[pb.Pack], r.maxPackObject()); err != nil {
				return 0, err
			}
		}
	}
	var res PruneResult
	for i, l := range r.locs {
		if _, ok := st.indexes[i][rs.oldIndex]; !ok {
			continue
		}
		if err := l.Delete(ctx, objectName(r.tenant, kindIndex, rs.oldIndex)); err != nil && !errors.Is(err, ErrNotFound) && !r.retained(&res, err) {
			return 0, fmt.Errorf("deleting the superseded index %s at %s: %w", rs.oldIndex.Short(), l.Name(), err)
		}
	}
	n := 0
	for _, pb := range rs.Old {
		deleted := true
		for i, l := range r.locs {
			if _, ok := st.packs[i][pb.Pack]; !ok {
				continue
			}
			if err := l.Delete(ctx, objectName(r.tenant, kindData, pb.Pack)); err != nil && !errors.Is(err, ErrNotFound) {
				if !r.retained(&res, err) {
					rs.Retained = res.Retained
					return n, fmt.Errorf("deleting old pack %s at %s: %w", pb.Pack.Short(), l.Name(), err)
				}
				deleted = false
			}
		}
		if deleted {
			n++
		}
	}
	rs.Retained = res.Retained
	r.setIndex(nil)
	return n, nil
}

// hashesTo reads an object at one location through SHA-256, holding none
// of it, and checks that it matches its name h.
func hashesTo(ctx context.Context, l Location, name string, max int64, h Hash) error {
	rc, err := l.Get(ctx, name, 0, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	sum := sha256.New()
	n, err := io.Copy(sum, io.LimitReader(rc, max+1))
	switch {
	case err != nil:
		return err
	case n > max:
		return fmt.Errorf("larger than %d bytes: %w", max, ErrCorrupt)
	case Hash(sum.Sum(nil)) != h:
		return fmt.Errorf("content does not match its name: %w", ErrCorrupt)
	}
	return nil
}
