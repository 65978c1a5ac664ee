package repo

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/kluis-nl/kluis/chunk"
)

// Training samples: up to dictSamples chunks, each cut to its first
// dictSampleBytes, chosen uniformly over the whole night (reservoir
// sampling), so every table has its share; at most 8 MiB in memory.
const (
	dictSamples     = 1024
	dictSampleBytes = 8 << 10
)

// backupDict is a backup's zstd dictionary state (docs/format.md, "Zstd
// dictionary").
type backupDict struct {
	cur atomic.Pointer[chunk.Dict] // what new blobs are sealed with

	mu       sync.Mutex
	training bool // sampling this night's new chunks to train on at Commit
	seen     int  // new chunks offered to the sample
	samples  [][]byte
}

// setupDict decides the backup's dictionary. The parent's is carried
// forward (and used when it loads). The first backup of a tenant (nothing
// stored yet) samples its new chunks and trains the tenant's dictionary
// at Commit, for the backups after it: a dictionary trained on the first
// megabytes of one night would know only the first tables. A backup that
// finds no parent in a repository that stores blobs neither trains nor
// deduplicates: blobs of forgotten snapshots may need a dictionary no
// manifest names any more, and a snapshot must name the dictionary of
// every blob it uses (prune keeps only what manifests name).
func (b *Backup) setupDict(ctx context.Context) {
	switch {
	case b.parent != nil && b.parent.Manifest.Dictionary != nil:
		ref := *b.parent.Manifest.Dictionary
		b.m.Dictionary = &ref
		if err := b.r.loadDictRef(ctx, ref); err != nil {
			b.r.log.Warn("the tenant's zstd dictionary does not load: new blobs are compressed without it (run check)", "err", err)
			return
		}
		b.dict.cur.Store(b.r.sealer.Dict(ref.ZstdID))
	case b.parent == nil && b.idx.Len() == 0:
		b.dict.training = true
	case b.parent == nil:
		b.idx = newIndex()
	}
}

// sample offers a new chunk to the training sample.
func (b *Backup) sample(data []byte) {
	b.dict.mu.Lock()
	defer b.dict.mu.Unlock()
	if !b.dict.training {
		return
	}
	b.dict.seen++
	i := len(b.dict.samples)
	if i >= dictSamples {
		if i = rand.IntN(b.dict.seen); i >= dictSamples {
			return
		}
	}
	s := append([]byte(nil), data[:min(len(data), dictSampleBytes)]...)
	if i == len(b.dict.samples) {
		b.dict.samples = append(b.dict.samples, s)
	} else {
		b.dict.samples[i] = s
	}
}

// WantsDictionary reports whether the backup is to train the tenant's
// dictionary (its first backup), so that the caller may offer a sample
// of the data before streaming it (TrainDictionary).
func (b *Backup) WantsDictionary() bool {
	b.dict.mu.Lock()
	defer b.dict.mu.Unlock()
	return b.dict.training
}

// TrainDictionary trains the tenant's dictionary on samples of the data
// the backup is about to store (a few rows of every table), before any of
// it is sealed, so that the first night is compressed with it too. With
// too little (less than 256 KiB) it does nothing and the backup trains at
// Commit, for the nights after. Call it before the first stream.
func (b *Backup) TrainDictionary(ctx context.Context, samples [][]byte) {
	b.dict.mu.Lock()
	defer b.dict.mu.Unlock()
	if b.dict.training && b.trainLocked(ctx, samples, chunk.MinDictTraining/4) {
		b.dict.training, b.dict.samples = false, nil
	}
}

// train trains the tenant's dictionary at Commit on the night's sample,
// for the nights after. Without enough data, or when training fails, the
// snapshot has no dictionary and the next backup deduplicates as always.
func (b *Backup) train(ctx context.Context) {
	b.dict.mu.Lock()
	defer b.dict.mu.Unlock()
	if b.dict.training {
		b.trainLocked(ctx, b.dict.samples, chunk.MinDictTraining)
	}
	b.dict.training, b.dict.samples = false, nil
}

// trainLocked trains on samples when they hold at least least bytes,
// stores the dictionary in a pack of its own, names it in the manifest
// and compresses the blobs sealed from then on with it. b.dict.mu is held.
func (b *Backup) trainLocked(ctx context.Context, samples [][]byte, least int) bool {
	var n int
	for _, s := range samples {
		n += len(s)
	}
	if n < least {
		return false
	}
	plain, err := chunk.TrainDict(samples, least)
	if err != nil {
		b.r.log.Warn("no zstd dictionary: training failed", "err", err)
		return false
	}
	d, err := chunk.LoadDict(plain)
	if err != nil {
		b.r.log.Warn("no zstd dictionary: the trained one does not load", "err", err)
		return false
	}
	id := b.r.sealer.ID(plain)
	sealed, err := b.r.sealer.Seal(nil, id, plain)
	if err != nil {
		b.r.log.Warn("no zstd dictionary", "err", err)
		return false
	}
	// In a pack of its own: every reader of a blob compressed with it
	// fetches it, and should fetch nothing else.
	b.flushPack(ctx)
	b.addToPackUncounted(ctx, chunkResult{id: id, sealed: sealed, raw: len(plain)})
	b.flushPack(ctx)
	b.r.sealer.AddDict(d)
	b.r.dicts.LoadOrStore(d.ZstdID(), id)
	b.m.Dictionary = &DictRef{ZstdID: d.ZstdID(), Blob: id}
	b.dict.cur.Store(d)
	return true
}
