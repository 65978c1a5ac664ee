package repo

import (
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/rowdelta"
)

// packCache holds whole packs that have been verified against their names,
// for LoadBlob: a restore test reads every pack of a snapshot whole and so
// detects a flipped byte anywhere in one, and the ranged stream readers
// fall back on it for a blob no ranged copy opens. It is bounded in bytes.
type packCache struct {
	r       *Repo
	max     int64
	mu      sync.Mutex
	size    int64
	lru     *list.List // of *cachedPack, front = most recent
	entries map[Hash]*cachedPack
}

type cachedPack struct {
	h     Hash
	data  []byte
	err   error
	ready chan struct{}
	elem  *list.Element
}

func newPackCache(r *Repo, max int64) *packCache {
	return &packCache{r: r, max: max, lru: list.New(), entries: map[Hash]*cachedPack{}}
}

// get returns a verified pack, fetching it once however many callers ask.
func (c *packCache) get(ctx context.Context, h Hash) ([]byte, error) {
	c.mu.Lock()
	if e, ok := c.entries[h]; ok {
		if e.elem != nil {
			c.lru.MoveToFront(e.elem)
		}
		c.mu.Unlock()
		select {
		case <-e.ready:
			return e.data, e.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	e := &cachedPack{h: h, ready: make(chan struct{})}
	c.entries[h] = e
	c.mu.Unlock()

	e.data, e.err = c.r.fetchPack(ctx, h)
	close(e.ready)

	c.mu.Lock()
	defer c.mu.Unlock()
	if e.err != nil {
		delete(c.entries, h)
		return nil, e.err
	}
	e.elem = c.lru.PushFront(e)
	c.size += int64(len(e.data))
	for c.size > c.max && c.lru.Len() > 1 {
		old := c.lru.Back().Value.(*cachedPack)
		c.lru.Remove(old.elem)
		delete(c.entries, old.h)
		c.size -= int64(len(old.data))
	}
	return e.data, nil
}

// maxPackObject bounds a pack read from a location.
func (r *Repo) maxPackObject() int64 { return 2*r.cfg.PackSize + chunk.MaxSealedSize + maxPackHeader }

// fetchPack reads a whole pack from the first location whose copy matches
// its name and whose header decrypts.
func (r *Repo) fetchPack(ctx context.Context, h Hash) ([]byte, error) {
	data, err := r.readVerified(ctx, kindData, h, r.maxPackObject())
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", h, err)
	}
	return data, nil
}

// LoadBlob returns a blob's plaintext, appended to dst. Every candidate
// place the index names is tried in turn (those in packs present at some
// location first), and each pack's copy at each location: a missing or
// damaged pack is read around. A pack that verifies but whose blob does
// not open is reported as corrupt.
func (r *Repo) LoadBlob(ctx context.Context, id chunk.ID, dst []byte) ([]byte, error) {
	idx, err := r.Index(ctx)
	if err != nil {
		return nil, err
	}
	cands := idx.Candidates(id)
	if len(cands) == 0 {
		if len(idx.unopened) > 0 {
			return nil, fmt.Errorf("blob %s is in no index object of tenant %s that opens; these open at no location: %s: %w", id, r.tenant, strings.Join(idx.unopened, "; "), ErrCorrupt)
		}
		return nil, fmt.Errorf("blob %s is not in the index of tenant %s: %w", id, r.tenant, ErrNotFound)
	}
	var firstErr error
	for _, bl := range cands {
		plain, err := r.loadBlobAt(ctx, id, bl, dst)
		if err == nil {
			return plain, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	// No place the index names gave the blob: a re-seal (reseal.go) or a
	// prune may have moved it since the index was read, and a location
	// may answer for the deleted pack with an error rather than "not
	// found". The blob is read from where a fresh index says it is.
	if fresh := r.indexAfterMiss(ctx, idx); fresh != nil {
		tried := map[Hash]bool{}
		for _, bl := range cands {
			tried[bl.Pack] = true
		}
		for _, bl := range fresh.Candidates(id) {
			if tried[bl.Pack] {
				continue
			}
			plain, err := r.loadBlobAt(ctx, id, bl, dst)
			if err == nil {
				return plain, nil
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			firstErr = err // where the blob is now: the error that matters
		}
	}
	return nil, firstErr
}

// indexAfterMiss returns the index to read a blob from after no pack
// that used named for it gave it at any location: the current one when
// another reader has read it afresh since, or one read afresh now, at
// most every two seconds (a repository missing many packs is not listed
// once per blob); nil when there is none newer.
func (r *Repo) indexAfterMiss(ctx context.Context, used *Index) *Index {
	r.missMu.Lock()
	defer r.missMu.Unlock()
	r.indexMu.Lock()
	cur := r.index
	r.indexMu.Unlock()
	if cur != nil && cur != used {
		return cur
	}
	if !r.missReloaded.IsZero() && time.Since(r.missReloaded) < 2*time.Second {
		return nil
	}
	x, err := r.ReloadIndex(ctx)
	// Paced from the end of a read: one that takes longer than the pause
	// (a large tenant at S3) does not start the next at once.
	r.missReloaded = time.Now()
	if err != nil {
		return nil
	}
	return x
}

func (r *Repo) loadBlobAt(ctx context.Context, id chunk.ID, bl BlobLocation, dst []byte) ([]byte, error) {
	data, err := r.packs.get(ctx, bl.Pack)
	if err != nil {
		return nil, err
	}
	end := uint64(bl.Offset) + uint64(bl.Length)
	if end > uint64(len(data)) {
		return nil, fmt.Errorf("pack %s: blob %s lies outside the pack: %w", bl.Pack, id, ErrCorrupt)
	}
	plain, err := r.open(ctx, dst, id, data[bl.Offset:end])
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", bl.Pack, errors.Join(err, ErrCorrupt))
	}
	return plain, nil
}

// readPackOpened returns a pack, for copying to another location, from the
// first location whose copy matches its name, whose header authenticates
// and decodes and whose every blob opens.
func (r *Repo) readPackOpened(ctx context.Context, h Hash) ([]byte, error) {
	name := objectName(r.tenant, kindData, h)
	return r.firstGoodCopy(ctx, name, func(l Location) ([]byte, error) {
		data, err := readContent(ctx, l, name, r.maxPackObject(), h)
		if err == nil {
			err = r.verifyPack(h, data)
		}
		return data, err
	})
}

// firstGoodCopy returns what read gives for the first location whose copy
// of name it accepts, recording every read. With none, the error is
// ErrNotFound when every location lacks it, and ErrCorrupt otherwise, also
// errPlanted when a copy proves the object planted.
func (r *Repo) firstGoodCopy(ctx context.Context, name string, read func(Location) ([]byte, error)) ([]byte, error) {
	var problems []string
	notFound, planted := true, false
	for _, l := range r.locs {
		data, err := read(l)
		r.noteRead(l, name, err)
		if err == nil {
			return data, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		problems = append(problems, fmt.Sprintf("%s: %v", l.Name(), err))
		notFound = notFound && errors.Is(err, ErrNotFound)
		planted = planted || errors.Is(err, errPlanted)
	}
	switch {
	case notFound:
		return nil, fmt.Errorf("%s: missing at every location: %w", name, ErrNotFound)
	case planted:
		return nil, fmt.Errorf("%s: %s: %w: %w", name, strings.Join(problems, "; "), errPlanted, ErrCorrupt)
	}
	return nil, fmt.Errorf("%s: no good copy: %s: %w", name, strings.Join(problems, "; "), ErrCorrupt)
}

// verifyPack checks a whole pack: its name, its header, every blob.
func (r *Repo) verifyPack(h Hash, data []byte) error {
	if sha256.Sum256(data) != h {
		return fmt.Errorf("content does not match its name: %w", ErrCorrupt)
	}
	entries, err := parsePack(r.meta, h, data)
	if err != nil {
		return fmt.Errorf("%w: %v: %w", errPlanted, err, ErrCorrupt)
	}
	var buf []byte
	for _, e := range entries {
		// A blob compressed with a dictionary authenticated here (the
		// AEAD opened); its plaintext is checked when it is read.
		if buf, err = r.sealer.Open(buf[:0], e.ID, data[e.Offset:e.Offset+e.Length]); err != nil && !isDictError(err) {
			return fmt.Errorf("%w: blob %s: %v: %w", errPlanted, e.ID, err, ErrCorrupt)
		}
	}
	return nil
}

// StreamReader returns the plaintext of a snapshot stream. Only the bytes
// of its blobs are read (ranged reads, adjacent blobs of a pack in one),
// a few at once and ahead of the reader, and every stream reader of r
// together holds at most r's read budget ahead (SetReadBudget), so memory
// does not grow with the data or with how many packs a snapshot's blobs
// are spread over. Each blob authenticates on its own; one no location's
// ranged copy opens is read with LoadBlob (whole packs, every candidate),
// and a failure names the stream and the blob's place in it. A row delta
// (Stream.IsDelta) reads as the table it stands for: its chain and its own
// records merged in one pass (rowdelta.Merge), each part read as it goes.
func (r *Repo) StreamReader(ctx context.Context, s *Stream) io.ReadCloser {
	if !s.IsDelta() {
		return r.rangedStream(ctx, "stream "+s.Name, s.Blobs)
	}
	parts := s.Parts()
	mr := &mergeReader{}
	src := make([]rowdelta.Source, len(parts))
	for i, p := range parts {
		what := p.What
		if what == "" {
			what = "delta written by this snapshot"
		}
		name := "stream " + s.Name + ": " + what
		rd := r.rangedStream(ctx, name, p.Blobs)
		mr.parts = append(mr.parts, rd)
		src[i] = rowdelta.Source{Name: name, R: rd}
	}
	mr.m = rowdelta.Merge(s.Keyed.Key, src)
	return mr
}

// mergeReader is a row delta's table stream.
type mergeReader struct {
	m     *rowdelta.Merger
	parts []io.ReadCloser
}

func (mr *mergeReader) Read(p []byte) (int, error) { return mr.m.Read(p) }

func (mr *mergeReader) Close() error {
	for _, p := range mr.parts {
		p.Close()
	}
	return nil
}

type blobResult struct {
	data []byte
	err  error
}

// streamReader is SparseReader's: blobs delivered in order through a
// channel per blob.
type streamReader struct {
	ctx     context.Context
	cancel  context.CancelFunc
	total   int // blobs in the stream
	got     int // blobs delivered
	results chan chan blobResult
	cur     []byte
	err     error
}

// endOfStream is what a reader returns when its producer is done: fewer
// blobs than the stream has means the producer stopped early, which must
// never look like the end of the stream.
func endOfStream(ctx context.Context, got, total int) error {
	if got >= total {
		return io.EOF
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

func (sr *streamReader) Read(p []byte) (int, error) {
	for len(sr.cur) == 0 {
		if sr.err != nil {
			return 0, sr.err
		}
		ch, ok := <-sr.results
		if !ok {
			sr.err = endOfStream(sr.ctx, sr.got, sr.total)
			return 0, sr.err
		}
		res := <-ch
		sr.got++
		if res.err != nil {
			sr.err = res.err
			sr.cancel()
			return 0, res.err
		}
		sr.cur = res.data
	}
	n := copy(p, sr.cur)
	sr.cur = sr.cur[n:]
	return n, nil
}

func (sr *streamReader) Close() error {
	sr.cancel()
	for ch := range sr.results {
		<-ch
	}
	return nil
}

// describeLocations is used in messages: "amsterdam, groningen".
func describeLocations(locs []Location) string {
	names := make([]string, len(locs))
	for i, l := range locs {
		names[i] = l.Name()
	}
	return strings.Join(names, ", ")
}

// RowIndex returns a stream's row index (Stream.RowIndex), read whole:
// ErrNotFound when the stream has none. Its blobs are authenticated like
// every blob; what they hold is the caller's to check.
func (r *Repo) RowIndex(ctx context.Context, s *Stream) ([]byte, error) {
	ri := s.RowIndex
	if ri == nil {
		return nil, fmt.Errorf("stream %s has no row index: %w", s.Name, ErrNotFound)
	}
	if ri.Size < 0 || ri.Size > maxRowIndex {
		return nil, fmt.Errorf("stream %s: row index of %d bytes: %w", s.Name, ri.Size, ErrCorrupt)
	}
	rd := r.SparseReader(ctx, ri.Blobs)
	defer rd.Close()
	out, err := io.ReadAll(io.LimitReader(rd, ri.Size+1))
	if err != nil {
		return nil, fmt.Errorf("stream %s: row index: %w", s.Name, err)
	}
	if int64(len(out)) != ri.Size {
		return nil, fmt.Errorf("stream %s: row index holds %d bytes, its manifest says %d: %w", s.Name, len(out), ri.Size, ErrCorrupt)
	}
	return out, nil
}

// RowIndexPage returns page n of a paged row index (RowIndexRef.Pages),
// one blob, authenticated like every blob; what it holds is the caller's
// to check.
func (r *Repo) RowIndexPage(ctx context.Context, ri *RowIndexRef, n int) ([]byte, error) {
	if ri == nil {
		return nil, fmt.Errorf("no row index: %w", ErrNotFound)
	}
	if n < 0 || n >= len(ri.Pages) {
		return nil, fmt.Errorf("row index page %d of %d: %w", n, len(ri.Pages), ErrCorrupt)
	}
	rd := r.SparseReader(ctx, ri.Pages[n:n+1])
	defer rd.Close()
	out, err := io.ReadAll(io.LimitReader(rd, chunk.MaxChunkSize+1))
	if err != nil {
		return nil, fmt.Errorf("row index page %d: %w", n, err)
	}
	return out, nil
}

// maxSegment bounds one ranged read of adjacent blobs.
const maxSegment = 8 << 20

// segment is a run of blobs stored one after the other in one pack.
type segment struct {
	ids   []chunk.ID
	pack  Hash
	off   int64
	ends  []int64 // each blob's end, relative to off
	whole bool    // no candidate: read with LoadBlob
}

// SparseReader returns the plaintext of blobs, in order (a part of a
// stream, or a stream), reading only their bytes: each run of blobs
// stored one after the other in a pack is one ranged read, from the first
// location whose bytes open (every blob authenticates on its own, so a
// damaged copy is read around). A blob that opens nowhere this way is
// read with LoadBlob (whole packs, every candidate and location), so the
// errors are LoadBlob's. Unlike StreamReader, what it reads does not grow
// with the packs' other contents: a dossier needs few chunks of packs that
// also hold other tables and older snapshots.
func (r *Repo) SparseReader(ctx context.Context, blobs []chunk.ID) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	sr := &streamReader{ctx: ctx, cancel: cancel, results: make(chan chan blobResult, 16), total: len(blobs)}
	go sr.runSparse(ctx, r, blobs)
	return sr
}

func (sr *streamReader) runSparse(ctx context.Context, r *Repo, blobs []chunk.ID) {
	defer close(sr.results)
	idx, err := r.Index(ctx)
	if err != nil {
		ch := make(chan blobResult, 1)
		ch <- blobResult{err: err}
		sr.results <- ch
		return
	}
	var segs []*segment
	for _, id := range blobs {
		bl, ok := idx.Lookup(id)
		if !ok {
			segs = append(segs, &segment{ids: []chunk.ID{id}, whole: true})
			continue
		}
		if n := len(segs); n > 0 {
			s := segs[n-1]
			if !s.whole && s.pack == bl.Pack && s.off+s.ends[len(s.ends)-1] == int64(bl.Offset) && s.ends[len(s.ends)-1]+int64(bl.Length) <= maxSegment {
				s.ids = append(s.ids, id)
				s.ends = append(s.ends, s.ends[len(s.ends)-1]+int64(bl.Length))
				continue
			}
		}
		segs = append(segs, &segment{ids: []chunk.ID{id}, pack: bl.Pack, off: int64(bl.Offset), ends: []int64{int64(bl.Length)}})
	}
	sem := make(chan struct{}, 4)
	for _, s := range segs {
		chs := make([]chan blobResult, len(s.ids))
		fail := func(n int) {
			for _, ch := range chs[:n] {
				ch <- blobResult{err: ctx.Err()}
			}
		}
		for i := range chs {
			chs[i] = make(chan blobResult, 1)
			select {
			case sr.results <- chs[i]:
			case <-ctx.Done():
				fail(i)
				return
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			fail(len(chs))
			return
		}
		go func() {
			defer func() { <-sem }()
			plain := r.readSegment(ctx, s)
			for i, id := range s.ids {
				if plain[i] == nil {
					data, err := r.LoadBlob(ctx, id, nil)
					chs[i] <- blobResult{data: data, err: err}
					continue
				}
				chs[i] <- blobResult{data: plain[i]}
			}
		}()
	}
}

// readSegment returns the plaintext of a segment's blobs, nil for each
// that no location's ranged copy opened.
func (r *Repo) readSegment(ctx context.Context, s *segment) [][]byte {
	return r.readRanged(ctx, s, nil, r.locs)
}
