package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kluis-nl/kluis/chunk"
)

// BackupOptions describe the snapshot being written.
type BackupOptions struct {
	Engine        string
	ServerVersion string
	Appliance     string
	// SourceIdentity names the database read (source.Identifier), sealed
	// into the manifest: the tenant is bound to it (backup.Database).
	SourceIdentity string
	// Rebind lets backup.Database accept a source whose identity differs
	// from the one the tenant is bound to (the practice's database really
	// moved); the new identity binds from then on.
	Rebind bool
	// DeltaMaxSteps bounds how many nights in a row a table may be stored
	// as a row delta (docs/format.md, "Row deltas"): 0 means the default
	// (backup.DefaultDeltaMaxSteps), a negative value never stores one.
	DeltaMaxSteps int
	// Progress, when set, is called after every pack and stream with the
	// running totals.
	Progress func(Stats)
	// ResealAbove: once committed, a backup that stored at least this
	// many bytes (a first night, fresh bases) seals its packs again at
	// zstd's best level (Backup.Reseal); 0 never does.
	ResealAbove int64
}

// Stats are the running totals of a backup.
type Stats struct {
	// Read is the plaintext read from the source.
	Read int64 `json:"bytes_read"`
	// New is the plaintext of blobs not stored before.
	New int64 `json:"bytes_new"`
	// Stored is the sealed bytes written in new packs (per location).
	Stored    int64 `json:"bytes_stored"`
	Blobs     int64 `json:"blobs"`
	NewBlobs  int64 `json:"blobs_new"`
	Packs     int64 `json:"packs"`
	Streams   int   `json:"streams"`
	IndexSize int64 `json:"index_bytes"`
}

// Backup writes one snapshot. Create it with Repo.NewBackup, write each
// stream with Stream, then Commit. A Backup that is abandoned (or whose
// process dies) leaves only packs no index refers to, which prune removes.
type Backup struct {
	r    *Repo
	idx  *Index
	opts BackupOptions
	m    Manifest
	// ctx is the backup's own lifetime (NewBackup's context). Pack uploads
	// run under it, not under the stream that filled the pack: a stream's
	// context ends when the stream does, while its last pack may still be
	// on its way to the locations.
	ctx context.Context

	claimMu sync.Mutex
	claimed map[chunk.ID]bool

	packMu sync.Mutex
	packer packer

	uploads  sync.WaitGroup
	upSem    chan struct{}
	stateMu  sync.Mutex
	failed   map[string]error
	newPacks []PackBlobs
	fatal    error

	stats    Stats
	read     atomic.Int64
	streamMu sync.Mutex

	parent *SnapshotInfo
	dict   backupDict

	// index is the name of the index object Commit wrote (zero: none),
	// and result what Commit returned; Reseal supersedes the one and
	// reports into the other.
	index  Hash
	result *Result
}

// Parent returns the newest snapshot when the backup started (the
// manifest's parent), or nil for the first.
func (b *Backup) Parent() *SnapshotInfo { return b.parent }

// Repo returns the repository the backup writes to.
func (b *Backup) Repo() *Repo { return b.r }

// AddRead counts plaintext read from the source that no stream's blobs
// hold (a row delta stores only what changed).
func (b *Backup) AddRead(n int64) { b.read.Add(n) }

// NewBackup starts a snapshot. It loads the index so that blobs already
// stored at any location are not stored again.
func (r *Repo) NewBackup(ctx context.Context, opts BackupOptions) (*Backup, error) {
	idx, err := r.ReloadIndex(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(r.locs))
	for i, l := range r.locs {
		names[i] = l.Name()
	}
	b := &Backup{
		r: r, idx: idx, opts: opts, ctx: ctx,
		claimed: map[chunk.ID]bool{},
		upSem:   make(chan struct{}, 2),
		failed:  map[string]error{},
		m: Manifest{
			Version: manifestVersion, Tenant: r.tenant, Appliance: opts.Appliance,
			Engine: opts.Engine, ServerVersion: opts.ServerVersion, Started: r.now().UTC(),
			SourceIdentity: opts.SourceIdentity,
			Locations:      names,
		},
	}
	// A location whose tenant prefix holds a config that is not this
	// repository's (squatted) gets nothing: the backup is degraded there.
	r.forEachLocation(ctx, func(ctx context.Context, l Location) error {
		if err := r.ensureRepoObjects(ctx, l); errors.Is(err, ErrForeign) {
			b.stateMu.Lock()
			b.failed[l.Name()] = err
			b.stateMu.Unlock()
			r.log.Warn("location skipped: its tenant prefix holds a foreign config", "location", l.Name(), "err", err)
		}
		return nil
	})
	if latest, err := r.FindSnapshot(ctx, "latest"); err == nil { // one manifest, however long the history
		b.parent = &latest
		b.m.Parent = latest.ID.String()
	}
	b.setupDict(ctx)
	return b, nil
}

// Stream reads one named stream to its end and adds it to the snapshot.
// Streams may be added concurrently. meta is stored with the stream
// unchanged.
func (b *Backup) Stream(ctx context.Context, name, kind string, rd io.Reader, meta json.RawMessage) error {
	b.streamMu.Lock()
	_, dup := b.m.Stream(name)
	b.streamMu.Unlock()
	if dup {
		return fmt.Errorf("stream %q added twice", name)
	}
	if err := b.err(); err != nil {
		return err
	}
	blobs, size, err := b.chunkStream(ctx, rd, nil)
	if err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	b.read.Add(size)
	return b.addStream(Stream{Name: name, Kind: kind, Size: size, Blobs: blobs, Meta: meta})
}

// addStream records a finished stream in the manifest. Streams may be
// written concurrently; the manifest lists them by name at Commit.
func (b *Backup) addStream(s Stream) error {
	b.streamMu.Lock()
	if _, dup := b.m.Stream(s.Name); dup {
		b.streamMu.Unlock()
		return fmt.Errorf("stream %q added twice", s.Name)
	}
	b.m.Streams = append(b.m.Streams, s)
	b.streamMu.Unlock()
	b.stateMu.Lock()
	b.stats.Streams++
	b.stateMu.Unlock()
	b.progress()
	return nil
}

// StreamWriter returns a writer for a stream whose producer writes (e.g. a
// database COPY). Close it with the stream's metadata, or abort it with
// CloseWithError.
func (b *Backup) StreamWriter(ctx context.Context, name, kind string) *StreamWriter {
	return b.IndexedStreamWriter(ctx, name, kind, nil)
}

// StreamIndexer builds a stream's row index while the backup cuts it: it
// sees every chunk, in stream order, before the next is cut, and at the
// end the stream's blob list. Finish returns the index (a paged index's
// head) and its pages (none for an index read whole). An indexer that
// fails costs only the index: the stream is stored without one (and read
// whole).
type StreamIndexer interface {
	Chunk(data []byte)
	Finish(blobs []chunk.ID) (index []byte, pages [][]byte, err error)
}

// IndexedStreamWriter is StreamWriter with a row index built by ix (nil:
// none), stored as blobs with the stream (Stream.RowIndex).
func (b *Backup) IndexedStreamWriter(ctx context.Context, name, kind string, ix StreamIndexer) *StreamWriter {
	pr, pw := io.Pipe()
	sw := &StreamWriter{pw: pw, done: make(chan error, 1), stream: Stream{Name: name}}
	var onChunk func([]byte)
	var chunks chan []byte
	indexed := make(chan struct{})
	if ix != nil {
		// The indexer runs beside the chunker, on copies of the chunks,
		// so the stream is cut at the chunker's pace.
		chunks = make(chan []byte, 8)
		go func() {
			defer close(indexed)
			for c := range chunks {
				ix.Chunk(c)
			}
		}()
		onChunk = func(data []byte) { chunks <- append([]byte(nil), data...) }
	} else {
		close(indexed)
	}
	go func() {
		// chunkStream returns after its chunker, the only caller of
		// onChunk, has stopped.
		blobs, size, err := b.chunkStream(ctx, pr, onChunk)
		pr.CloseWithError(err)
		if chunks != nil {
			close(chunks)
		}
		<-indexed
		if err == nil {
			b.read.Add(size)
			sw.stream = Stream{Name: name, Kind: kind, Size: size, Blobs: blobs}
			if ix != nil {
				sw.stream.RowIndex, err = b.storeRowIndex(ctx, name, ix, blobs)
			}
		}
		sw.done <- err
	}()
	sw.b = b
	return sw
}

// storeRowIndex stores the index ix built for a stream as blobs. An
// indexer that failed, or an index over the size bound, is logged and
// left out.
func (b *Backup) storeRowIndex(ctx context.Context, name string, ix StreamIndexer, blobs []chunk.ID) (*RowIndexRef, error) {
	data, pages, err := ix.Finish(blobs)
	if err == nil && len(data) > maxRowIndex {
		err = fmt.Errorf("%d bytes, more than %d", len(data), maxRowIndex)
	}
	if err == nil && len(pages) > maxRowIndexPages {
		err = fmt.Errorf("%d pages, more than %d", len(pages), maxRowIndexPages)
	}
	for _, p := range pages {
		if err == nil && len(p) > chunk.MaxChunkSize {
			err = fmt.Errorf("a page of %d bytes, more than %d", len(p), chunk.MaxChunkSize)
		}
	}
	if err != nil {
		b.r.log.Warn("stream stored without a row index: dossiers from it read the whole table", "stream", name, "err", err)
		return nil, nil
	}
	ib, isize, err := b.chunkStream(ctx, bytes.NewReader(data), nil)
	if err != nil {
		return nil, err
	}
	ref := &RowIndexRef{Size: isize, Blobs: ib}
	for _, p := range pages {
		id, err := b.storeBlob(ctx, p)
		if err != nil {
			return nil, err
		}
		ref.Pages = append(ref.Pages, id)
	}
	return ref, nil
}

// storeBlob stores data as one blob (a row index page: read alone, so
// never cut) and returns its ID. Like chunkStream, a failure means the
// snapshot cannot be committed.
func (b *Backup) storeBlob(ctx context.Context, data []byte) (chunk.ID, error) {
	// Not sampled for the dictionary: pages are keyed hashes.
	res := b.sealNew(data, false)
	err := res.err
	if err == nil && res.sealed != nil {
		b.addToPack(ctx, res)
	}
	if err == nil {
		err = b.err()
	}
	if err != nil {
		b.stateMu.Lock()
		if b.fatal == nil {
			b.fatal = fmt.Errorf("a row index page failed, so the snapshot cannot be committed: %w", err)
		}
		b.stateMu.Unlock()
		return chunk.ID{}, err
	}
	return res.id, nil
}

// StreamWriter is a stream being written by its producer.
type StreamWriter struct {
	b      *Backup
	pw     *io.PipeWriter
	done   chan error
	stream Stream

	waitOnce sync.Once
	err      error
}

// wait returns the chunker's result; it may be called more than once.
func (w *StreamWriter) wait() error {
	w.waitOnce.Do(func() { w.err = <-w.done })
	return w.err
}

// Write passes stream bytes to the chunker.
func (w *StreamWriter) Write(p []byte) (int, error) { return w.pw.Write(p) }

// Close ends the stream and adds it, with meta, to the snapshot.
func (w *StreamWriter) Close(meta json.RawMessage) error {
	return w.CloseKeyed(meta, nil, 0)
}

// CloseKeyed is Close for a table stream whose rows are ascending by a
// key, or (keyed.Chain non-empty) a row delta standing for a table of
// size bytes (Stream.Keyed).
func (w *StreamWriter) CloseKeyed(meta json.RawMessage, keyed *Keyed, size int64) error {
	w.pw.Close()
	if err := w.wait(); err != nil {
		return fmt.Errorf("stream %s: %w", w.stream.Name, err)
	}
	w.stream.Meta = meta
	if keyed != nil {
		if len(keyed.Chain) > 0 {
			keyed.DeltaSize = w.stream.Size
			w.stream.Size = size
		}
		if err := keyed.validate(); err != nil {
			return fmt.Errorf("stream %s: %w", w.stream.Name, err)
		}
		w.stream.Keyed = keyed
	}
	return w.b.addStream(w.stream)
}

// Discard ends the stream without adding it to the snapshot (a row delta
// given up for a full table). Blobs it stored stay in their packs,
// unreferenced, until prune; a chunking error still fails the snapshot.
func (w *StreamWriter) Discard() error {
	w.pw.Close()
	return w.wait()
}

// CloseWithError aborts the stream with the producer's error: the
// snapshot can no longer be committed (Commit returns err), and a later
// Close returns it too.
func (w *StreamWriter) CloseWithError(err error) {
	w.pw.CloseWithError(err)
	w.wait()
}

type chunkJob struct {
	seq  int
	data []byte
}

type chunkResult struct {
	seq    int
	id     chunk.ID
	sealed []byte
	raw    int
	err    error
}

// chunkStream cuts rd into chunks, identifies them, seals the new ones
// into packs and returns the stream's blob list. Chunking runs on one
// goroutine, which also passes each chunk to onChunk (when set);
// identifying and sealing on one worker per CPU; results are put back in
// stream order.
func (b *Backup) chunkStream(parent context.Context, rd io.Reader, onChunk func([]byte)) ([]chunk.ID, int64, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan chunkJob, 2*workers)
	results := make(chan chunkResult, 2*workers)
	bufPool := sync.Pool{New: func() any { return make([]byte, 0, b.r.cfg.Chunker.Max) }}

	var chunkErr error
	go func() {
		defer close(jobs)
		c := chunk.NewChunker(rd, b.r.key.Pol, chunk.RowSeed(b.r.key.IDKey), b.r.cfg.Chunker)
		for seq := 0; ; seq++ {
			// Each chunk is cut straight into a buffer of its own, which
			// the worker that seals it gives back.
			buf := bufPool.Get().([]byte)
			data, err := c.NextInto(buf)
			if err == io.EOF {
				return
			}
			if err != nil {
				chunkErr = err
				cancel()
				return
			}
			if onChunk != nil {
				onChunk(data)
			}
			select {
			case jobs <- chunkJob{seq: seq, data: data}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				res := b.identifyAndSeal(j)
				bufPool.Put(j.data[:0]) //nolint:staticcheck // slices are fine in a pool here
				select {
				case results <- res:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	var (
		blobs   []chunk.ID
		size    int64
		next    int
		pending = map[int]chunkResult{}
		err     error
	)
	for res := range results {
		if err != nil {
			continue
		}
		if res.err != nil {
			err = res.err
			cancel()
			continue
		}
		pending[res.seq] = res
		for {
			r, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			blobs = append(blobs, r.id)
			size += int64(r.raw)
			if r.sealed != nil {
				// Uploads outlive this stream: they run under the caller's context.
				b.addToPack(parent, r)
			}
			if e := b.err(); e != nil {
				err = e
				cancel()
				break
			}
		}
	}
	if err == nil {
		err = chunkErr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		// Blobs this stream claimed may never reach a pack, and a later
		// stream would refer to them without storing them: the snapshot
		// must not be committed.
		b.stateMu.Lock()
		if b.fatal == nil {
			b.fatal = fmt.Errorf("a stream failed, so the snapshot cannot be committed: %w", err)
		}
		b.stateMu.Unlock()
		return nil, 0, err
	}
	return blobs, size, nil
}

func (b *Backup) identifyAndSeal(j chunkJob) chunkResult {
	res := b.sealNew(j.data, true)
	res.seq = j.seq
	return res
}

// sealNew counts a blob of the snapshot and identifies it; unless the
// index or another stream of this backup already holds it, it seals it
// (res.sealed; nil when it is not this call's to store). sample lets the
// blob train the tenant's zstd dictionary.
func (b *Backup) sealNew(data []byte, sample bool) chunkResult {
	id := b.r.sealer.ID(data)
	res := chunkResult{id: id, raw: len(data)}
	b.stateMu.Lock()
	b.stats.Blobs++
	b.stateMu.Unlock()
	if b.idx.Has(id) {
		return res
	}
	b.claimMu.Lock()
	mine := !b.claimed[id]
	b.claimed[id] = true
	b.claimMu.Unlock()
	if !mine {
		return res
	}
	if sample {
		b.sample(data)
	}
	sealed, err := b.r.sealer.SealDict(nil, id, data, b.dict.cur.Load())
	if err != nil {
		res.err = err
		return res
	}
	res.sealed = sealed
	return res
}

func (b *Backup) addToPack(ctx context.Context, r chunkResult) {
	b.stateMu.Lock()
	b.stats.New += int64(r.raw)
	b.stats.NewBlobs++
	b.stateMu.Unlock()
	b.addToPackUncounted(ctx, r)
}

// addToPackUncounted adds a blob that no stream or index holds (the zstd
// dictionary): Stats.Blobs does not count it, so neither do New and
// NewBlobs (NewBlobs ≤ Blobs); its sealed bytes are in Stored with its
// pack's.
func (b *Backup) addToPackUncounted(ctx context.Context, r chunkResult) {
	b.packMu.Lock()
	b.packer.add(r.id, r.sealed, r.raw)
	full := int64(b.packer.size) >= b.r.cfg.PackSize
	b.packMu.Unlock()
	if full {
		b.flushPack(ctx)
	}
}

// flushPack seals the current pack and uploads it in the background to
// every location still healthy, under the backup's context (b.ctx): the
// caller's may be a stream's, which ends before the upload does.
func (b *Backup) flushPack(context.Context) {
	ctx := b.ctx
	b.packMu.Lock()
	if len(b.packer.blobs) == 0 {
		b.packMu.Unlock()
		return
	}
	data, h, entries := b.packer.finish(b.r.meta)
	b.packMu.Unlock()
	b.upSem <- struct{}{}
	b.uploads.Add(1)
	go func() {
		defer func() { <-b.upSem; b.uploads.Done() }()
		name := objectName(b.r.tenant, kindData, h)
		ok := b.putEverywhere(ctx, name, data)
		b.stateMu.Lock()
		defer b.stateMu.Unlock()
		if ok == 0 {
			if b.fatal == nil {
				b.fatal = fmt.Errorf("pack %s could not be stored at any location: %s", h.Short(), b.failedText())
				if err := ctx.Err(); err != nil {
					b.fatal = fmt.Errorf("pack %s not stored: %w", h.Short(), err)
				}
			}
			return
		}
		b.newPacks = append(b.newPacks, PackBlobs{Pack: h, Blobs: entries})
		b.stats.Stored += int64(len(data))
		b.stats.Packs++
		go b.progress()
	}()
}

// healthy returns the locations that have not failed in this backup.
func (b *Backup) healthy() []Location {
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	var out []Location
	for _, l := range b.r.locs {
		if b.failed[l.Name()] == nil {
			out = append(out, l)
		}
	}
	return out
}

// putEverywhere writes an object at every healthy location in parallel; a
// location that fails is left out for the rest of the backup. It returns
// how many locations hold the object.
func (b *Backup) putEverywhere(ctx context.Context, name string, data []byte) int {
	res := b.r.forLocations(ctx, b.healthy(), func(ctx context.Context, l Location) error {
		return l.Put(ctx, name, data)
	})
	b.markFailed(res)
	return countOK(res)
}

func (b *Backup) markFailed(res []LocationResult) {
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	for _, r := range res {
		if !r.OK && b.failed[r.Location] == nil {
			b.failed[r.Location] = errors.New(r.Error)
			b.r.log.Warn("location failed during backup; continuing without it", "location", r.Location, "err", r.Error)
		}
	}
}

func (b *Backup) failedText() string {
	var parts []string
	for name, err := range b.failed {
		parts = append(parts, name+": "+err.Error())
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func (b *Backup) err() error {
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	return b.fatal
}

func (b *Backup) progress() {
	if b.opts.Progress != nil {
		b.opts.Progress(b.Stats())
	}
}

// Stats returns the running totals.
func (b *Backup) Stats() Stats {
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	s := b.stats
	s.Read = b.read.Load()
	return s
}

// Result is what a committed backup reports.
type Result struct {
	ID        Hash             `json:"-"`
	Snapshot  string           `json:"snapshot"`
	Committed []string         `json:"committed"`
	Locations []LocationResult `json:"locations"`
	Stats     Stats            `json:"stats"`
	Started   time.Time        `json:"started"`
	Finished  time.Time        `json:"finished"`
	// Reseal is what Backup.Reseal did after the commit (nil: not run).
	Reseal *ResealResult `json:"reseal,omitempty"`
}

// Degraded reports whether fewer than want locations hold the snapshot.
func (res *Result) Degraded(want int) bool { return len(res.Committed) < want }

// Commit finishes the snapshot: it waits for the packs, writes the index
// and then the manifest at every healthy location. Each location commits
// on its own; Commit fails only when none does.
func (b *Backup) Commit(ctx context.Context) (*Result, error) {
	if b.err() == nil {
		b.train(b.ctx)
	}
	b.flushPack(ctx)
	b.uploads.Wait()
	if err := b.err(); err != nil {
		return nil, err
	}
	b.m.Finished = b.r.now().UTC()
	b.streamMu.Lock()
	sort.Slice(b.m.Streams, func(i, j int) bool { return b.m.Streams[i].Name < b.m.Streams[j].Name })
	b.streamMu.Unlock()

	// The index of this backup's packs, then the manifest.
	var indexName string
	var indexData []byte
	if len(b.newPacks) > 0 {
		sort.Slice(b.newPacks, func(i, j int) bool { return b.newPacks[i].Pack.String() < b.newPacks[j].Pack.String() })
		indexData = b.r.meta.seal(b.r.adIndex, encodeIndex(nil, b.newPacks))
		b.index = sha256.Sum256(indexData)
		indexName = objectName(b.r.tenant, kindIndex, b.index)
		b.stateMu.Lock() // progress callbacks may be reading stats
		b.stats.IndexSize = int64(len(indexData))
		b.stateMu.Unlock()
	}
	mplain, err := encodeManifest(&b.m)
	if err != nil {
		return nil, err
	}
	mdata := b.r.meta.seal(b.r.adManifest, mplain)
	mid := Hash(sha256.Sum256(mdata))
	mname := objectName(b.r.tenant, kindSnapshot, mid)

	needed := b.referencedPacks()
	healthy := b.healthy()
	res := b.r.forLocations(ctx, healthy, func(ctx context.Context, l Location) error {
		if err := b.r.ensureRepoObjects(ctx, l); err != nil {
			return err
		}
		if indexData != nil {
			if err := l.Put(ctx, indexName, indexData); err != nil {
				return err
			}
		}
		// A location that missed packs or indexes of earlier snapshots (it
		// was down) gets them now, before the manifest that refers to them.
		if err := b.r.copyMissing(ctx, l, needed, b.idx); err != nil {
			return err
		}
		// Under Object Lock, reused packs stay locked as long as this
		// snapshot.
		if ext, ok := As[retentionExtender](l); ok {
			for h := range needed {
				if err := ext.ExtendRetention(ctx, objectName(b.r.tenant, kindData, h)); err != nil {
					return err
				}
			}
		}
		return l.Put(ctx, mname, mdata)
	})
	b.markFailed(res)
	result := &Result{ID: mid, Snapshot: mid.String(), Stats: b.Stats(), Started: b.m.Started, Finished: b.m.Finished}
	b.stateMu.Lock()
	for _, l := range b.r.locs {
		lr := LocationResult{Location: l.Name(), OK: b.failed[l.Name()] == nil}
		if !lr.OK {
			lr.Error = b.failed[l.Name()].Error()
		} else {
			result.Committed = append(result.Committed, l.Name())
		}
		result.Locations = append(result.Locations, lr)
	}
	b.stateMu.Unlock()
	if len(result.Committed) == 0 {
		return result, fmt.Errorf("snapshot could not be committed at any location: %s", joinErrors(result.Locations))
	}
	b.idx.addPresent(b.newPacks)
	b.r.times.put(mid, b.m.Started)
	b.r.times.save()
	b.r.recordCommit(result)
	b.result = result
	return result, nil
}

// retentionExtender is a Location with Object Lock (repo/s3) that can
// lengthen an existing object's retention.
type retentionExtender interface {
	ExtendRetention(ctx context.Context, name string) error
}

// referencedPacks returns the packs holding the snapshot's blobs.
func (b *Backup) referencedPacks() map[Hash]bool {
	local := map[chunk.ID]Hash{}
	for _, p := range b.newPacks {
		for _, e := range p.Blobs {
			local[e.ID] = p.Pack
		}
	}
	out := map[Hash]bool{}
	for _, s := range b.m.StreamsAndDictionary() {
		for _, id := range s.AllBlobs() { // a delta's chain too
			if h, ok := local[id]; ok {
				out[h] = true
			} else if bl, ok := b.idx.Lookup(id); ok {
				out[bl.Pack] = true
			}
		}
	}
	return out
}

// copyMissing copies to l every pack in needed and every live index
// object that l lacks, reading each from a location whose copy verifies,
// authenticates and decodes (openPack, readOpened): nothing damaged or
// planted at one location reaches another. Superseded index objects are
// not copied.
func (r *Repo) copyMissing(ctx context.Context, l Location, needed map[Hash]bool, idx *Index) error {
	have, err := r.listNames(ctx, l, kindData)
	if err != nil {
		return err
	}
	for h := range needed {
		if _, ok := have[h]; ok {
			continue
		}
		data, err := r.readPackOpened(ctx, h)
		if err != nil {
			return fmt.Errorf("copy pack %s to %s: %w", h.Short(), l.Name(), err)
		}
		if err := l.Put(ctx, objectName(r.tenant, kindData, h), data); err != nil {
			return err
		}
		r.log.Info("copied missing pack", "location", l.Name(), "pack", h.String())
	}
	haveIdx, err := r.listNames(ctx, l, kindIndex)
	if err != nil {
		return err
	}
	for _, other := range r.locs {
		if other == l {
			continue
		}
		names, err := r.listNames(ctx, other, kindIndex)
		if err != nil {
			continue
		}
		for h := range names {
			if _, ok := haveIdx[h]; ok || idx.isSuperseded(h) {
				continue
			}
			data, err := r.readSealedVerified(ctx, kindIndex, h)
			if errors.Is(err, ErrCorrupt) {
				// Damaged or planted where it is: that location's damage
				// (recorded, reported by check), never copied, and no
				// reason to refuse this location the snapshot.
				r.log.Warn("index not copied: no location has a copy that opens", "location", l.Name(), "index", h.String(), "err", err)
				continue
			}
			if err != nil {
				return fmt.Errorf("copy index %s to %s: %w", h.Short(), l.Name(), err)
			}
			if err := l.Put(ctx, objectName(r.tenant, kindIndex, h), data); err != nil {
				return err
			}
			haveIdx[h] = 0
		}
	}
	return nil
}
