package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/kluis-nl/kluis/chunk"
)

// DefaultReadBudget is the bytes that a repository's stream readers
// together may hold ahead of their consumers unless SetReadBudget says
// otherwise: sealed bytes in flight plus opened plaintext not yet read.
const DefaultReadBudget = 24 << 20

// rangedWorkers is the number of ranged reads one stream keeps in flight.
const rangedWorkers = 4

// rangedQueue bounds the segments one stream reader has fetched or is
// fetching ahead of its consumer (the budget bounds their bytes).
const rangedQueue = 256

// readBudget bounds the bytes held by every stream reader of one Repo:
// however many tables load at once and however many parts a row delta's
// chain has, what is fetched ahead stays under max. A reader whose
// consumer waits for the segment being charged may always take it (one
// segment over the budget per reader at most), so readers that feed one
// another (a row delta's merge) never wait on each other's read-ahead.
type readBudget struct {
	mu      sync.Mutex
	max     int64
	used    int64
	changed chan struct{} // closed and replaced whenever used or a reader's position changes
}

func newReadBudget(max int64) *readBudget {
	return &readBudget{max: max, changed: make(chan struct{})}
}

// acquire charges n bytes for the segment seq of a reader whose consumer
// has read every segment before *consumed.
func (b *readBudget) acquire(ctx context.Context, n, seq int64, consumed *int64) error {
	return b.take(ctx, n, func() bool { return *consumed >= seq })
}

// hold charges n bytes for a reader with nothing else in flight: it
// waits until they fit, or until nothing at all is held (so a blob larger
// than the budget still goes through).
func (b *readBudget) hold(ctx context.Context, n int64) error {
	return b.take(ctx, n, func() bool { return b.used == 0 })
}

// take charges n bytes once they fit in the budget or anyway (called
// under b.mu) says to take them over it.
func (b *readBudget) take(ctx context.Context, n int64, anyway func() bool) error {
	for {
		b.mu.Lock()
		if b.used+n <= b.max || anyway() {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release gives back n bytes; a reader's consumer that finished a segment
// passes its position (nil otherwise).
func (b *readBudget) release(n int64, consumed *int64) {
	b.mu.Lock()
	b.used -= n
	if consumed != nil {
		*consumed++
	}
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// SetReadBudget bounds the bytes that r's stream readers (StreamReader)
// together fetch ahead of what their consumers have read; n <= 0 restores
// DefaultReadBudget. Each reader may go over it by one segment (at most
// the larger of 1 MiB and a blob), so that it always makes progress. Set
// it before reading.
func (r *Repo) SetReadBudget(n int64) {
	if n <= 0 {
		n = DefaultReadBudget
	}
	r.budget = newReadBudget(n)
}

// ReadBudget returns the bytes r's stream readers may hold ahead.
func (r *Repo) ReadBudget() int64 { return r.budget.max }

// rangedSegmentMax bounds one ranged read of a stream reader: small
// enough that eight fit in the budget.
func (r *Repo) rangedSegmentMax() int64 {
	return min(max(r.budget.max/8, 256<<10), maxSegment)
}

// rangedReader reads a list of blobs in order with ranged reads of only
// their bytes (adjacent blobs of one pack in one read), rangedWorkers at
// once, under the Repo's read budget. A blob no location's ranged copy
// opens is read with LoadBlob, whose errors name the pack and locations;
// the reader adds the blob's place in the stream.
type rangedReader struct {
	ctx     context.Context
	cancel  context.CancelFunc
	r       *Repo
	budget  *readBudget
	what    string
	total   int
	results chan *fetched

	consumed int64 // segments fully read by the consumer; under budget.mu
	cur      *fetched
	next     int // next blob of cur
	got      int // blobs delivered
	err      error
}

// fetched is one segment on its way to the consumer.
type fetched struct {
	seq    int64
	seg    *segment
	raw    []uint32 // plaintext length of each blob (from the index)
	first  int      // the stream position of its first blob
	charge int64
	plain  [][]byte
	err    error
	done   chan struct{}
}

// rangedStream returns a reader of blobs; what names them in errors.
func (r *Repo) rangedStream(ctx context.Context, what string, blobs []chunk.ID) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	rr := &rangedReader{ctx: ctx, cancel: cancel, r: r, budget: r.budget, what: what, total: len(blobs), results: make(chan *fetched, rangedQueue)}
	go rr.run(blobs)
	return rr
}

func (rr *rangedReader) run(blobs []chunk.ID) {
	defer close(rr.results)
	ctx, r := rr.ctx, rr.r
	fail := func(f *fetched, err error) {
		f.err = err
		close(f.done)
	}
	idx, err := r.Index(ctx)
	if err != nil {
		f := &fetched{done: make(chan struct{})}
		fail(f, err)
		rr.results <- f
		return
	}
	limit := r.rangedSegmentMax()
	sem := make(chan struct{}, rangedWorkers)
	for i, seq := 0, int64(0); i < len(blobs); seq++ {
		f := &fetched{seq: seq, first: i, done: make(chan struct{})}
		f.seg, f.raw, f.charge = nextSegment(idx, blobs[i:], limit)
		i += len(f.seg.ids)
		if err := rr.budget.acquire(ctx, f.charge, seq, &rr.consumed); err != nil {
			f.charge = 0
			fail(f, err)
			rr.results <- f
			return
		}
		select {
		case rr.results <- f:
		case <-ctx.Done():
			rr.budget.release(f.charge, nil)
			return
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			fail(f, ctx.Err())
			return
		}
		go func() {
			defer func() { <-sem }()
			rr.fetch(f)
			close(f.done)
		}()
	}
}

// nextSegment takes the longest run at the head of blobs that lies back
// to back in one pack, up to limit sealed bytes, and its charge against
// the budget: its sealed bytes plus its plaintext.
func nextSegment(idx *Index, blobs []chunk.ID, limit int64) (*segment, []uint32, int64) {
	bl, ok := idx.Lookup(blobs[0])
	if !ok {
		return &segment{ids: blobs[:1], whole: true}, []uint32{0}, chunk.MaxChunkSize
	}
	s := &segment{ids: blobs[:1], pack: bl.Pack, off: int64(bl.Offset), ends: []int64{int64(bl.Length)}}
	raw := []uint32{bl.RawLength}
	charge := int64(bl.Length) + int64(bl.RawLength)
	for _, id := range blobs[1:] {
		end := s.ends[len(s.ends)-1]
		n, ok := idx.Lookup(id)
		if !ok || n.Pack != s.pack || s.off+end != int64(n.Offset) || end+int64(n.Length) > limit {
			break
		}
		s.ids = s.ids[:len(s.ids)+1]
		s.ends = append(s.ends, end+int64(n.Length))
		raw = append(raw, n.RawLength)
		charge += int64(n.Length) + int64(n.RawLength)
	}
	return s, raw, charge
}

// fetch fills f.plain, or f.err naming the first blob that opens nowhere.
func (rr *rangedReader) fetch(f *fetched) {
	r := rr.r
	f.plain = r.readRanged(rr.ctx, f.seg, f.raw, r.readOrder())
	for i, id := range f.seg.ids {
		if f.plain[i] != nil {
			continue
		}
		p, err := r.LoadBlob(rr.ctx, id, make([]byte, 0, f.raw[i]))
		if err != nil {
			if rr.ctx.Err() == nil {
				err = fmt.Errorf("%s: blob %d of %d (%s): %w", rr.what, f.first+i+1, rr.total, id, err)
			}
			f.plain, f.err = nil, err
			return
		}
		f.plain[i] = p
	}
}

// readOrder returns r's locations, those whose last ranged read failed
// for a reason other than a missing or damaged object (a location down
// mid-restore) last: every other read does not wait on it first.
func (r *Repo) readOrder() []Location {
	out := make([]Location, 0, len(r.locs))
	var down []Location
	for _, l := range r.locs {
		if _, bad := r.readDown.Load(l.Name()); bad {
			down = append(down, l)
			continue
		}
		out = append(out, l)
	}
	return append(out, down...)
}

func (rr *rangedReader) Read(p []byte) (int, error) {
	// A cancelled read stops here, however much was read ahead.
	if err := rr.ctx.Err(); err != nil && rr.err == nil {
		rr.err = err
	}
	for rr.cur == nil || rr.next == len(rr.cur.plain) || rr.err != nil {
		if rr.err != nil {
			return 0, rr.err
		}
		if rr.cur != nil {
			rr.budget.release(rr.cur.charge, &rr.consumed)
			rr.cur = nil
		}
		f, ok := <-rr.results
		if !ok {
			rr.err = endOfStream(rr.ctx, rr.got, rr.total)
			return 0, rr.err
		}
		<-f.done
		rr.cur, rr.next = f, 0
		if f.err != nil {
			rr.err = f.err
			rr.cancel()
			return 0, f.err
		}
	}
	b := rr.cur.plain[rr.next]
	n := copy(p, b)
	if n == len(b) {
		rr.cur.plain[rr.next] = nil
		rr.next++
		rr.got++
	} else {
		rr.cur.plain[rr.next] = b[n:]
	}
	return n, nil
}

// Close stops the read-ahead and gives its bytes back to the budget.
func (rr *rangedReader) Close() error {
	rr.cancel()
	if rr.cur != nil {
		rr.budget.release(rr.cur.charge, nil)
		rr.cur = nil
	}
	for f := range rr.results {
		<-f.done
		rr.budget.release(f.charge, nil)
	}
	return nil
}

// readRanged returns the plaintext of a segment's blobs, nil for each that
// no location's ranged copy opened, trying locs in order. raw, when not
// nil, gives each blob's plaintext length, so each opens into a buffer of
// its size. A location whose read fails for another reason than a
// missing object is remembered as down (readOrder).
func (r *Repo) readRanged(ctx context.Context, s *segment, raw []uint32, locs []Location) [][]byte {
	plain := make([][]byte, len(s.ids))
	if s.whole {
		return plain
	}
	name := objectName(r.tenant, kindData, s.pack)
	size := s.ends[len(s.ends)-1]
	left := len(s.ids)
	for _, l := range locs {
		if left == 0 || ctx.Err() != nil {
			break
		}
		data, err := readRange(ctx, l, name, s.off, size)
		if err != nil {
			if errors.Is(err, ErrCorrupt) {
				r.noteRead(l, name, err)
			} else if ctx.Err() == nil && !errors.Is(err, ErrNotFound) {
				if _, seen := r.readDown.LoadOrStore(l.Name(), true); !seen {
					r.log.Warn("location failed during a read; reading from the others first", "location", l.Name(), "err", err.Error())
				}
			}
			continue
		}
		r.readDown.Delete(l.Name())
		start := int64(0)
		for i, end := range s.ends {
			if plain[i] == nil {
				var dst []byte
				if raw != nil {
					dst = make([]byte, 0, raw[i])
				}
				p, err := r.open(ctx, dst, s.ids[i], data[start:end])
				if err == nil {
					plain[i] = p
					left--
				} else {
					r.noteRead(l, name, fmt.Errorf("blob %s does not open: %w", s.ids[i], ErrCorrupt))
				}
			}
			start = end
		}
	}
	return plain
}

// readRange reads exactly size bytes of name from offset at l.
func readRange(ctx context.Context, l Location, name string, off, size int64) ([]byte, error) {
	rc, err := l.Get(ctx, name, off, size)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data := make([]byte, size)
	if _, err := io.ReadFull(rc, data); err != nil {
		return nil, fmt.Errorf("ranged read of %d bytes at %d: %v: %w", size, off, err, ErrCorrupt)
	}
	return data, nil
}
